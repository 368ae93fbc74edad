format "text" {
  plugin = "text"
  config {
    # "none" (default) or "color": ANSI colours for a terminal.
    theme = "none"
  }
}
