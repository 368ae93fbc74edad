# Without config: logtk's own logtk.v1.Record (proto/logtk/v1/record.proto).
format "protobuf" {
  plugin = "protobuf"
}

# With a user's schema: fields filled by name (see the README).
# format "cluster" {
#   plugin = "protobuf"
#   config {
#     schema  = "proto/cluster.binpb"   # protoc --descriptor_set_out, or buf build -o
#     message = "cluster.LoggableMessage"
#   }
# }
