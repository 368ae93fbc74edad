worker "relative" {
  command = "bin/not-built-yet"
}

worker "in-path" {
  command = "logtk-no-such-program"
}

worker "not-executable" {
  command = "./plugins.hcl"
}

worker "bad-cwd" {
  command = "/bin/true"
  cwd     = "missing-dir"
}
