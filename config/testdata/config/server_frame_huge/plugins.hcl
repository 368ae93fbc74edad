server {
  listen          = "127.0.0.1:0"
  dir             = "received"
  tokens          = ["a-token-of-20-chars!"]
  max_frame_bytes = 8589934592
}
