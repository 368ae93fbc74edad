format "json" {
  plugin = "json"
  config {
    # "rfc3339" (default; UTC, nanoseconds) or "unix_nano".
    time_format = "rfc3339"
    # Nest the attributes under one key instead of beside the record fields.
    attrs_key = "attrs"
  }
}
