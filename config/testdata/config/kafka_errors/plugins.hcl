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
      brokers     = ["k1.internal"]
      topics      = ["logs", "no/slash"]
      compression = "brotli"
      timeout     = "10ms"
      sasl {
        mechanism = "GSSAPI"
        username  = ""
        password  = "x"
      }
    }
    kafka "events" {
      brokers = []
      topics  = []
    }
  }
}

format "text" {
  plugin = "text"
}

transport "kafka2" {
  plugin = "kafka"
  format = "text"
  config {
    cluster     = "events"
    topic       = "other"
    sender      = "web-1"
    application = "shop"
  }
  allow {
    kafka "events" {
      brokers = ["k1.internal:9092"]
      topics  = ["logs"]
      tls {
        cert_file = "client.pem"
      }
    }
  }
}
