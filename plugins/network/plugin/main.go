// Command plugin is the network transport built as a Wasm plugin.
package main

import (
	"github.com/logtk/logtk/plugins/network"
	"github.com/logtk/logtk/sdk/plugin"
)

func init() { plugin.RegisterTransport(network.Info, network.New()) }

func main() {}
