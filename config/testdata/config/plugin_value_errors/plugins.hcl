format "a" {
  plugin       = "text"
  memory_limit = "17179869185GiB"
  sha256       = "XYZ"
}
format "b" {
  plugin = "/dev/zero"
}
transport "t" {
  plugin = "console"
  format = "a"
  spool {
    dir       = "spool"
    max_bytes = "99999999TiB"
  }
}
transport "u" {
  plugin = "console"
  format = "a"
  spool {
    dir       = "spool2"
    max_bytes = 0
  }
}
