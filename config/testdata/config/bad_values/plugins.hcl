worker "bad name!" {
  command         = "/bin/true"
  count           = 0
  backoff_initial = "soon"
  stop_signal     = "SIGNOPE"
  stop_timeout    = "-1s"
  env             = { "A=B" = "x" }
  ring_bytes      = 5000
  stderr_level    = "loud"
}
