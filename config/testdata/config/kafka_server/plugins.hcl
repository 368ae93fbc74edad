server {
  listen = "127.0.0.1:7400"
  dir    = "received"
  tokens = ["0123456789abcdef0123"]

  kafka {
    brokers     = ["k1.internal:9092"]
    topics      = ["logs"]
    group       = "log-servers"
    member      = "store-1"
    application = "kafka-foreign"
    tls {
      server_name = "k1.internal"
    }
  }
}
