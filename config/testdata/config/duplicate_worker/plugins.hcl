worker "web" {
  command = "/bin/true"
}

worker "web" {
  command = "/bin/false"
}
