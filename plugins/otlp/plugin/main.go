// Command plugin is the OTLP/HTTP logs transport built as a Wasm plugin.
package main

import (
	"github.com/logtk/logtk/plugins/otlp"
	"github.com/logtk/logtk/sdk/plugin"
)

func init() { plugin.RegisterTransport(otlp.Info, otlp.New()) }

func main() {}
