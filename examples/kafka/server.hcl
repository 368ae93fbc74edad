# A log server reading the topic as a member of group "log-servers"
# (docs/kafka.md). Run two, each with its own dir and member:
#   logtk-host serve -config server.hcl
server {
  listen = "127.0.0.1:7401"
  dir    = "received-1"
  tokens = ["0123456789abcdef0123"]

  kafka {
    brokers = ["localhost:19092"]
    topics  = ["logs"]
    group   = "log-servers"
    member  = "store-1"
  }
}
