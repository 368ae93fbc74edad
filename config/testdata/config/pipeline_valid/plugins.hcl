format "text" {
  plugin       = "text"
  instances    = 3
  memory_limit = "32MiB"
  call_timeout = "2s"
  config {
    theme = "color"
  }
}

transport "out" {
  plugin      = "file"
  format      = "text"
  ack_timeout = "90s"
  config {
    path      = "logs/app.log"
    max_bytes = 1000
  }
  allow {
    directories = ["logs"]
    clock       = true
  }
}

format "fast" {
  plugin       = "protobuf"
  call_timeout = "off"
}
