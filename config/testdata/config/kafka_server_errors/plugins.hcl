server {
  listen = "127.0.0.1:7400"
  dir    = "received"
  tokens = ["0123456789abcdef0123"]

  kafka {
    brokers         = ["k1.internal:9092"]
    topics          = ["logs"]
    group           = "a/b"
    member          = "store 1"
    session_timeout = "100ms"
  }
}
