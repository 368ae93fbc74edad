# Every worker attribute, with values other than the defaults.
worker "web" {
  command         = "/bin/sh"
  args            = ["-c", "echo hi"]
  count           = 3
  cwd             = "."
  env             = { B = "2", A = "1" }
  inherit_env     = false
  user            = "root"
  group           = "root"
  restart         = "always"
  backoff_initial = "50ms"
  backoff_max     = "5s"
  backoff_reset   = "1m"
  max_restarts    = 7
  restart_window  = "2m"
  stop_signal     = "INT"
  stop_timeout    = "3s"
  drain_timeout   = "1s"
  max_line_bytes  = 65536
  max_frame_bytes = 131072
  ring_bytes      = 65536
  stderr_level    = "info"
}

worker "defaults" {
  command = "/bin/true"
}
