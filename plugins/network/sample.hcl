transport "logserver" {
  plugin = "network"
  format = "protobuf"
  config {
    endpoint    = "logserver"          # the name granted below
    token       = "a-secret-of-16+-characters" # or token_file = "path"
    sender      = "web-01"             # stable per host: retransmissions are dropped per sender
    application = "shop"               # the server's directory for these records
    hostname    = "web-01.example.internal" # optional: stamped on every stored record
    ack_timeout = "10s"
  }
  allow {
    endpoint "logserver" {
      address      = "logs.example.internal:7400"
      dial_timeout = "5s"
      io_timeout   = "10s"
      tls {
        # ca_file   = "ca.pem"            # default: the system's roots
        server_name = "logs.example.internal"
      }
    }
  }
}
