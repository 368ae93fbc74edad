control {
  socket = "/a/very/long/path/that/goes/on/and/on/and/on/and/on/and/on/and/on/and/on/and/on/and/on/and/on/and/on/and/on/host.sock"
  group  = "no-such-group-logtk"
}

control {
}
