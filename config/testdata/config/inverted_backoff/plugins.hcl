worker "web" {
  command         = "/bin/true"
  backoff_initial = "10s"
  backoff_max     = "1s"
}
