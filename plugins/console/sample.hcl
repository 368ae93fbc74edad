transport "terminal" {
  plugin = "console"
  format = "text"
  config {
    stream = "stdout" # or "stderr"
  }
  allow {
    stdout = true # without it the plugin's output goes to the host log
  }
}
