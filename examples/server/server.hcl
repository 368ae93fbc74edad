# The log server `make run` starts: logtk-host serve -config examples/server/server.hcl
server {
  listen     = "127.0.0.1:7400"
  dir        = "../../logs/received" # a directory per sending application
  token_file = "token"
  fsync      = "batch"               # sync before acknowledging each batch
}
