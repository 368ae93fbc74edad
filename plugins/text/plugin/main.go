// Command plugin is the text formatter built as a Wasm plugin:
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"github.com/logtk/logtk/plugins/text"
	"github.com/logtk/logtk/sdk/plugin"
)

func init() { plugin.RegisterFormatter(text.Info, text.New()) }

func main() {}
