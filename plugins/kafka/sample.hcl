transport "kafka" {
  plugin = "kafka"
  format = "protobuf"
  config {
    cluster     = "events"
    topic       = "logs"
    sender      = "web-01"
    application = "shop"
  }
  allow {
    kafka "events" {
      brokers = ["k1.internal:9092", "k2.internal:9092", "k3.internal:9092"]
      topics  = ["logs"]
      sasl {
        mechanism = "SCRAM-SHA-512"
        username  = "logtk"
        password  = env("KAFKA_PASSWORD", "")
      }
      tls {}
    }
  }
  spool {
    dir       = "/var/spool/logtk/kafka"
    max_bytes = "1GiB"
  }
}
