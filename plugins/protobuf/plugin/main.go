// Command plugin is the protobuf formatter built as a Wasm plugin.
package main

import (
	"github.com/logtk/logtk/plugins/protobuf"
	"github.com/logtk/logtk/sdk/plugin"
)

func init() { plugin.RegisterFormatter(protobuf.Info, protobuf.New()) }

func main() {}
