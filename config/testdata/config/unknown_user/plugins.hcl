worker "web" {
  command = "/bin/true"
  user    = "no-such-user-logtk"
  group   = "no-such-group-logtk"
}
