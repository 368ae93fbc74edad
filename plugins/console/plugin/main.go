// Command plugin is the console transport built as a Wasm plugin.
package main

import (
	"github.com/logtk/logtk/plugins/console"
	"github.com/logtk/logtk/sdk/plugin"
)

func init() { plugin.RegisterTransport(console.Info, console.New()) }

func main() {}
