// Command plugin is the syslog transport built as a Wasm plugin.
package main

import (
	"github.com/logtk/logtk/plugins/syslog"
	"github.com/logtk/logtk/sdk/plugin"
)

func init() { plugin.RegisterTransport(syslog.Info, syslog.New()) }

func main() {}
