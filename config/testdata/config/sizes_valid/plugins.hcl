worker "sizes" {
  command         = "/bin/true"
  max_line_bytes  = "2MiB"
  max_frame_bytes = 65536
  ring_bytes      = "64KiB"
}
format "text" {
  plugin       = "text"
  memory_limit = 33554432
}
transport "console" {
  plugin = "console"
  format = "text"
  spool {
    dir       = "spool"
    max_bytes = 1048576
  }
}
