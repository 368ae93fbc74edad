worker "web" {
  count = 2
}
