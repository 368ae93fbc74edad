# User-written plugins in the pipeline: `make examples` builds them, then
#   bin/logtk-host run -config examples/custom/plugins.hcl
# The hello worker's records are redacted and spooled one file per batch.

worker "hello" {
  command = "../../bin/hello"
  restart = "never"
}

format "safe" {
  plugin = "../redact/redact.wasm"
  config {
    keys = ["user", "authorization"]
  }
}

transport "spool" {
  plugin = "../batchfile/batchfile.wasm"
  format = "safe"
  config {
    dir = "spool"
  }
  allow {
    directories = ["spool"]
  }
}
