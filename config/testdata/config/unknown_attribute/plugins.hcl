worker "web" {
  comand = "/bin/true"
}
