format "pb" {
  plugin = "protobuf"
}

transport "kafka" {
  plugin = "kafka"
  format = "pb"
  config {
    cluster     = "events"
    topic       = "logs"
    sender      = "web-1"
    application = "shop"
  }
  allow {
    kafka "events" {
      brokers     = ["k1.internal:9092", "k2.internal:9092"]
      topics      = ["logs"]
      compression = "lz4"
      timeout     = "20s"
      sasl {
        mechanism = "SCRAM-SHA-512"
        username  = "logtk"
        password  = "secret"
      }
    }
  }
  spool {
    dir = "spool"
  }
}
