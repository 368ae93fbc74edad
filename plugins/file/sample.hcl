transport "archive" {
  plugin = "file"
  format = "json"
  config {
    path      = "logs/app.jsonl" # relative to plugins.hcl
    max_bytes = 104857600        # rotate at 100 MiB
    max_age   = "24h"            # and daily (needs the clock)
    max_files = 14               # rotated files kept
    fsync     = "batch"          # sync before acknowledging each batch
    framing   = "raw"            # "newline", "length-prefixed" for protobuf
  }
  allow {
    directories = ["logs"]
    clock       = true
  }
}
