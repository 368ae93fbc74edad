// Command redact is an example format plugin, written as a user would
// write one: only the public plugin SDK. It renders each record as a
// logfmt line and replaces the values of configured attribute keys (at any
// depth) with a fixed string, so secrets never leave the host.
//
//	format "safe" {
//	  plugin = "examples/redact/redact.wasm"
//	  config {
//	    keys        = ["password", "token", "authorization"]
//	    replacement = "[REDACTED]"
//	  }
//	}
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o redact.wasm .
package main

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/logtk/logtk/sdk/plugin"
)

// Redact formats records as logfmt with some values hidden.
type Redact struct {
	keys        map[string]bool
	replacement string
}

var (
	_ plugin.Formatter  = (*Redact)(nil)
	_ plugin.Configurer = (*Redact)(nil)
)

// Configure implements plugin.Configurer.
func (r *Redact) Configure(config []byte) error {
	var c struct {
		Keys        []string `json:"keys"`
		Replacement string   `json:"replacement"`
	}
	if err := plugin.DecodeConfig(config, &c); err != nil {
		return err
	}
	if len(c.Keys) == 0 {
		return errors.New("keys: name at least one attribute key to redact")
	}
	r.keys = map[string]bool{}
	for _, k := range c.Keys {
		r.keys[strings.ToLower(k)] = true
	}
	r.replacement = c.Replacement
	if r.replacement == "" {
		r.replacement = "[REDACTED]"
	}
	return nil
}

var levels = map[int32]string{plugin.LevelTrace: "trace", plugin.LevelDebug: "debug", plugin.LevelInfo: "info",
	plugin.LevelNotice: "notice", plugin.LevelWarn: "warn", plugin.LevelError: "error", plugin.LevelFatal: "fatal"}

// Format implements plugin.Formatter.
func (r *Redact) Format(b []byte, rec *plugin.Record) ([]byte, error) {
	if rec.TimeUnixNano != 0 {
		b = append(b, "time="...)
		b = time.Unix(0, rec.TimeUnixNano).UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, ' ')
	}
	b = append(b, "level="...)
	b = append(b, levels[rec.Level]...)
	if len(rec.Worker) > 0 {
		b = append(b, " worker="...)
		b = append(b, rec.Worker...)
		b = append(b, '#')
		b = strconv.AppendUint(b, uint64(rec.WorkerIndex), 10)
	}
	b = append(b, " msg="...)
	b = strconv.AppendQuote(b, string(rec.Message))
	var a plugin.Attr
	for it := rec.Attrs(); it.Next(&a); {
		b = r.attr(b, "", &a)
	}
	return append(b, '\n'), nil
}

func (r *Redact) attr(b []byte, prefix string, a *plugin.Attr) []byte {
	key := prefix + string(a.Key)
	if a.Kind == plugin.KindGroup {
		var g plugin.Attr
		for it := a.Group(); it.Next(&g); {
			b = r.attr(b, key+".", &g)
		}
		return b
	}
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, '=')
	if r.keys[strings.ToLower(string(a.Key))] {
		return append(b, r.replacement...)
	}
	switch a.Kind {
	case plugin.KindString:
		return strconv.AppendQuote(b, string(a.Data))
	case plugin.KindInt:
		return strconv.AppendInt(b, a.Int(), 10)
	case plugin.KindUint:
		return strconv.AppendUint(b, a.Uint(), 10)
	case plugin.KindFloat:
		return strconv.AppendFloat(b, a.Float(), 'g', -1, 64)
	case plugin.KindBool:
		return strconv.AppendBool(b, a.Bool())
	case plugin.KindDuration:
		return append(b, a.Duration().String()...)
	case plugin.KindTime:
		return a.Time().UTC().AppendFormat(b, time.RFC3339Nano)
	}
	return append(b, `"<bytes>"`...)
}

func init() {
	plugin.RegisterFormatter(plugin.Info{
		Name:    "redact",
		Version: "1.0.0",
		Config: []plugin.Field{
			{Name: "keys", Type: plugin.TypeStringList, Required: true, Doc: "attribute keys whose values are hidden (case-insensitive, at any depth)"},
			{Name: "replacement", Type: plugin.TypeString, Doc: `what replaces them; default "[REDACTED]"`},
		},
	}, &Redact{})
}

func main() {}
