control {
  socket = "run/host.sock"
  group  = "root"
}

worker "a" {
  command = "/bin/true"
}

metrics {
  listen = "127.0.0.1:9464"
}
