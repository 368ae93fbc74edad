// Package text is the reference text formatter: one human-readable line
// per record, with an optional colour theme (the seed's theme option).
// See README.md.
package text

import (
	"fmt"

	"github.com/logtk/logtk/record/textfmt"
	"github.com/logtk/logtk/sdk/plugin"
)

// Info describes the plugin.
var Info = plugin.Info{
	Name:    "text",
	Version: "1.0.0",
	Config: []plugin.Field{
		{Name: "theme", Type: plugin.TypeString, Doc: `"none" (default) or "color" (ANSI colours)`},
	},
}

// Formatter formats records as text lines. It remembers recent times
// (textfmt.TimeCache), so one Formatter is not for concurrent use: the
// host never calls a plugin instance concurrently.
type Formatter struct {
	theme textfmt.Theme
	times textfmt.TimeCache
}

// New returns a Formatter with the default (plain) theme.
func New() *Formatter { return &Formatter{theme: textfmt.None} }

var _ plugin.Formatter = (*Formatter)(nil)
var _ plugin.Configurer = (*Formatter)(nil)

// Configure implements plugin.Configurer.
func (f *Formatter) Configure(config []byte) error {
	var c struct {
		Theme string `json:"theme"`
	}
	if err := plugin.DecodeConfig(config, &c); err != nil {
		return err
	}
	if c.Theme == "" {
		return nil
	}
	t, ok := textfmt.Themes[c.Theme]
	if !ok {
		return fmt.Errorf("unknown theme %q (want \"none\" or \"color\")", c.Theme)
	}
	f.theme = t
	return nil
}

// Format implements plugin.Formatter.
func (f *Formatter) Format(dst []byte, r *plugin.Record) ([]byte, error) {
	return f.theme.AppendWith(dst, r, &f.times), nil
}
