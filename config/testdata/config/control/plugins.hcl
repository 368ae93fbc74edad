control {
  socket = "run/host.sock"
  group  = "root"
}

worker "a" {
  command = "/bin/true"
}
