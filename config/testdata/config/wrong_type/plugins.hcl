worker "web" {
  command = "/bin/true"
  count   = "two"
  args    = "not-a-list"
}
