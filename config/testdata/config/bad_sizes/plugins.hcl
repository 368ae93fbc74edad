worker "sizes" {
  command         = "/bin/true"
  args            = ["ok", "a\u0000b"]
  env             = { A = "x\u0000y" }
  max_line_bytes  = "17179869185GiB"
  max_frame_bytes = -1
  ring_bytes      = 1.5
}
