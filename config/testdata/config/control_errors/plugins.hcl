control {
  socket = "/a/very/long/path/that/goes/on/and/on/and/on/and/on/and/on/and/on/and/on/and/on/and/on/and/on/and/on/and/on/host.sock"
  group  = "no-such-group-logtk"
}

control {
}

metrics {
  listen = "everywhere"
}

metrics {
  address = "127.0.0.1:9464"
}
