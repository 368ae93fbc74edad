worker "web" {
  command = "/bin/true"
