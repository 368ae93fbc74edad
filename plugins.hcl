# The main job that `make run` runs: the seed's example, in Go, through the
# Wasm stages. Paths are relative to this file; `make run` builds bin/.
#
# Records land in three places:
#   - the terminal (text format -> console transport),
#   - logs/app.jsonl (json format -> file transport, rotated at 10 MiB),
#   - logs/records.pb (protobuf format -> file transport, length-prefixed
#     logtk.v1.Record messages),
#   - logs/received/hello/records.pb (protobuf format -> network transport
#     -> the log server started by `make run`).

# A worker that embeds the SDK: logs "Hello, world!" and panics; the host
# captures the panic and its goroutine trace, then restarts it once.
worker "hello" {
  command         = "bin/hello"
  count           = 2
  restart         = "on-failure"
  backoff_initial = "250ms"
  max_restarts    = 3
  restart_window  = "1m"
}

# A program without the SDK: only its output is captured. JSON lines become
# structured records; a line that starts with a level ("WARNING:root:...",
# "[INFO] ...", "level=debug ...") has that level; other stderr lines are
# at stderr_level (default "error"). A panic or traceback stays whole.
worker "plain" {
  command = "/bin/sh"
  args = ["-c", <<-EOT
    echo "a plain line on stdout"
    echo '{"level":"warn","msg":"a JSON line becomes a structured record","port":8080,"tls":false}'
    echo "a line on stderr" >&2
    echo "WARNING:root:a line that names its level keeps it" >&2
  EOT
  ]
  restart = "never"
}

format "text" {
  plugin = "text"
  config {
    theme = "none"
  }
}

format "json" {
  plugin = "json"
}

format "protobuf" {
  plugin = "protobuf"
}

transport "terminal" {
  plugin = "console"
  format = "text"
  allow {
    stdout = true
  }
}

transport "jsonl" {
  plugin = "file"
  format = "json"
  config {
    path      = "logs/app.jsonl"
    max_bytes = 10485760
    max_files = 5
  }
  allow {
    directories = ["logs"]
  }
}

transport "records" {
  plugin = "file"
  format = "protobuf"
  config {
    path    = "logs/records.pb"
    framing = "length-prefixed"
  }
  allow {
    directories = ["logs"]
  }
}

# The seed's whole path: protobuf over the network to a log server
# (`make run` starts one: examples/server/server.hcl). A batch leaves the
# host only when the server has stored it; while the server is away the
# host retries, and the server drops retransmissions.
transport "logserver" {
  plugin = "network"
  format = "protobuf"
  config {
    endpoint    = "logserver"
    token_file  = "examples/server/token"
    sender      = "demo-host"
    application = "hello"
  }
  allow {
    endpoint "logserver" {
      address = "127.0.0.1:7400"
    }
  }
}
