worker "web" {
  command = "/bin/true"
  restart = "sometimes"
}
