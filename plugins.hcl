# The main job that `make run` runs: the seed's example, in Go.
#
# Paths are relative to this file. `make run` builds bin/hello first.

# A worker that embeds the SDK: logs "Hello, world!" and panics; the host
# captures the panic and its goroutine trace, then restarts it once.
worker "hello" {
  command         = "bin/hello"
  count           = 2
  restart         = "on-failure"
  backoff_initial = "250ms"
  max_restarts    = 3
  restart_window  = "1m"
  env = {
    LOGTK_LEVEL = "info"
  }
}

# A program without the SDK: only its output is captured. JSON lines become
# structured records; stderr lines are kept at error level.
worker "plain" {
  command = "/bin/sh"
  args = ["-c", <<-EOT
    echo "a plain line on stdout"
    echo '{"level":"warn","msg":"a JSON line becomes a structured record","port":8080,"tls":false}'
    echo "a line on stderr" >&2
  EOT
  ]
  restart = "never"
}
