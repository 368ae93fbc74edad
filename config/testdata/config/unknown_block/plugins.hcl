worker "web" {
  command = "/bin/true"
}

wrker "typo" {
}

worker {
  command = "/bin/true"
}
