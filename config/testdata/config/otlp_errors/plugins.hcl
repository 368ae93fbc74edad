server {
  listen = "127.0.0.1:7400"
  dir    = "received"
  tokens = ["0123456789abcdef0123"]

  otlp {
    application = "otel"
  }
}
