server {
  listen          = "127.0.0.1:7400"
  dir             = "received"
  tokens          = ["0123456789abcdef0123"]
  fsync           = "none"
  max_bytes       = 10485760
  max_frame_bytes = 1048576
  max_in_flight   = 4
  max_connections = 100
  max_unauthenticated = 16
  max_open_applications = 32
  heartbeat       = "2s"
  auth_timeout    = "1s"

  syslog {
    tcp               = "127.0.0.1:0"
    udp               = "127.0.0.1:0"
    application       = "system"
    by_app_name       = true
    max_message_bytes = "8KiB"
  }

  otlp {
    http              = "127.0.0.1:0"
    grpc              = "127.0.0.1:0"
    by_service_name   = true
    max_request_bytes = "1MiB"
  }
}
