server {
  listen          = "127.0.0.1:99999"
  dir             = "received"
  tokens          = ["a-token-of-20-chars!"]
  max_connections = -5
  max_in_flight   = -1
  max_frame_bytes = -1
  max_bytes       = "17179869185GiB"
  heartbeat       = "10ms"
  auth_timeout    = "2h"

  syslog {
    application       = "no spaces"
    max_message_bytes = 100
  }
}
