// Command plugin is the JSON formatter built as a Wasm plugin.
package main

import (
	"github.com/logtk/logtk/plugins/json"
	"github.com/logtk/logtk/sdk/plugin"
)

func init() { plugin.RegisterFormatter(json.Info, json.New()) }

func main() {}
