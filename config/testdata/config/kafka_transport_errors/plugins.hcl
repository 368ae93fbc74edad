format "text" {
  plugin = "text"
}

transport "kafka" {
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
    }
  }
}

transport "kafka2" {
  plugin = "kafka"
  format = "text"
  config {
    cluster     = "nowhere"
    topic       = "logs"
    sender      = "web-1"
    application = "shop"
  }
}
