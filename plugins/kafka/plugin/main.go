// Command plugin is the Kafka transport built as a Wasm plugin.
package main

import (
	"github.com/logtk/logtk/plugins/kafka"
	"github.com/logtk/logtk/sdk/plugin"
)

func init() { plugin.RegisterTransport(kafka.Info, kafka.New()) }

func main() {}
