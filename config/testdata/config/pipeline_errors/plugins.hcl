format "text" {
  plugin = "text"
  config {
    theme  = "plaid"
  }
}

format "json" {
  plugin = "json"
  config {
    colour = "blue"
  }
}

format "nope" {
  plugin = "no-such-plugin"
}

format "missing" {
  plugin = "plugins/missing.wasm"
}

format "wrongkind" {
  plugin = "console"
}

transport "t" {
  plugin    = "console"
  format    = "undefined"
  instances = 2
}

transport "t" {
  plugin = "console"
  format = "text"
}

transport "noformat" {
  plugin = "console"
  memory_limit = "lots"
}

transport "u" {
  plugin = "console"
  format = "undefined"
}

format "ackformat" {
  plugin      = "text"
  ack_timeout = "60s"
}

transport "shortack" {
  plugin      = "console"
  format      = "text"
  ack_timeout = "10ms"
}
