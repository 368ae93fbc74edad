transport "otel" {
  plugin = "otlp"
  format = "protobuf"              # the protobuf format without a schema: the plugin maps records itself
  config {
    endpoint    = "collector"      # the name granted below
    path        = "/v1/logs"       # default
    host        = "otel.example.internal" # the Host header; default the endpoint's name
    compression = "gzip"           # default; or "none"
    timeout     = "10s"            # how long to wait for an answer
    headers     = { authorization = "Bearer a-token" }
    resource    = { "deployment.environment" = "prod" }
  }
  spool {
    dir       = "spool/otel"
    max_bytes = "1GiB"
  }
  allow {
    clock = true                   # to honour Retry-After
    endpoint "collector" {
      address    = "otel.example.internal:4318"
      io_timeout = "10s"
      tls {
        server_name = "otel.example.internal"
      }
    }
  }
}
