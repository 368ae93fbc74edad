format "pb" {
  plugin = "protobuf"
}

transport "net" {
  plugin = "network"
  format = "pb"
  config {
    endpoint    = "logs"
    token       = "0123456789abcdef0123"
    sender      = "web-1"
    application = "shop"
  }
  allow {
    endpoint "logs" {
      address      = "127.0.0.1:7400"
      dial_timeout = "1s"
    }
  }
  spool {
    dir       = "spool"
    max_bytes = "64MiB"
    when_full = "drop_oldest"
  }
}
