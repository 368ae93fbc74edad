# The example workers logging through the kafka transport:
#   logtk-host run -config plugins.hcl
worker "hello" {
  command = "../../bin/hello"
  count   = 2
}

format "protobuf" {
  plugin = "protobuf"
}

transport "kafka" {
  plugin = "kafka"
  format = "protobuf"
  config {
    cluster     = "local"
    topic       = "logs"
    sender      = "laptop"
    application = "hello"
  }
  allow {
    kafka "local" {
      brokers = ["localhost:19092"]
      topics  = ["logs"]
    }
  }
  spool {
    dir = "spool"
  }
}
