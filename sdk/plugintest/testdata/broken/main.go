// A format plugin broken in the way its config says, on ordinary input:
// {"mode": "trap" | "loop" | "leak"}.
package main

import (
	"github.com/logtk/logtk/sdk/plugin"
)

type broken struct {
	mode string
	kept [][]byte
}

var spin int

func (b *broken) Configure(c []byte) error {
	var cfg struct {
		Mode string `json:"mode"`
	}
	err := plugin.DecodeConfig(c, &cfg)
	b.mode = cfg.Mode
	return err
}

func (b *broken) Format(dst []byte, r *plugin.Record) ([]byte, error) {
	switch {
	case b.mode == "trap" && r.Level == plugin.LevelError:
		panic("broken on purpose")
	case b.mode == "loop" && r.Level == plugin.LevelError:
		for {
			spin++
		}
	case b.mode == "leak":
		b.kept = append(b.kept, append(make([]byte, 0, 64<<10), r.Message...))
	}
	return append(dst, r.Message...), nil
}

func init() { plugin.RegisterFormatter(plugin.Info{Name: "broken", Version: "0"}, &broken{}) }

func main() {}
