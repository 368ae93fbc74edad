wrker "typo" {
  command = "/bin/true"
}

worker "a" {
  command = "/bin/true"
  count   = 0
}

worker "b" {
  command = "/bin/true"
  restart = "sometimes"
}

format "f" {
  plugin       = "text"
  memory_limit = "lots"
}

transport "t" {
  plugin = "console"
  format = "f"
  spool {
    dir       = "spool"
    when_full = "explode"
    colour    = "red"
  }
}
