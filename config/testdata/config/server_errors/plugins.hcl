server {
  listen     = "nonsense"
  dir        = "received"
  tokens     = ["short"]
  fsync      = "sometimes"
  heartbeat  = "soon"
  token_file = "missing-token-file"
  max_unauthenticated = 0
  max_open_applications = -1
}

server {
  listen = "127.0.0.1:1"
  dir    = "x"
}
