transport "rsyslog" {
  plugin = "syslog"
  format = "protobuf"              # the protobuf format without a schema: the plugin renders RFC 5424 itself
  config {
    endpoint = "rsyslog"           # the name granted below
    framing  = "octet-counting"    # or "newline"
    facility = "local0"            # default "user"
    # hostname = "web-01"          # default: the record's, or "-"
    # app_name = "shop"            # default: the record's worker name
  }
  allow {
    endpoint "rsyslog" {
      address    = "syslog.example.internal:6514"
      io_timeout = "10s"
      tls {
        server_name = "syslog.example.internal"
      }
    }
  }
}
