// Command plugin is the file transport built as a Wasm plugin.
package main

import (
	"github.com/logtk/logtk/plugins/file"
	"github.com/logtk/logtk/sdk/plugin"
)

func init() { plugin.RegisterTransport(file.Info, file.New()) }

func main() {}
