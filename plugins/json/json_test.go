package json_test

import (
	stdjson "encoding/json"
	"strings"
	"testing"

	"github.com/logtk/logtk/internal/goldentest"
	"github.com/logtk/logtk/plugins/json"
	"github.com/logtk/logtk/sdk/plugin"
	"github.com/logtk/logtk/sdk/plugintest"
)

func TestGolden(t *testing.T) {
	goldentest.Run(t, func() plugin.Formatter { return json.New() })
}

// TestValidJSON: every line is one valid JSON object that encoding/json
// reads back with the same message.
func TestValidJSON(t *testing.T) {
	f := json.New()
	for i, rec := range plugintest.SampleRecords() {
		var v plugin.Record
		v.Parse(rec)
		out, err := f.Format(nil, &v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := stdjson.Unmarshal(out, &m); err != nil {
			t.Fatalf("record %d: %v\n%s", i, err, out)
		}
		if m["msg"] != string(v.Message) {
			t.Fatalf("record %d: msg %q, want %q", i, m["msg"], v.Message)
		}
	}
}

func TestNoAllocs(t *testing.T) { goldentest.NoAllocs(t, json.New()) }

// TestAppendStringEveryPosition: a byte that must be escaped is escaped
// wherever it falls in strings of 1-24 bytes, and nothing else changes.
func TestAppendStringEveryPosition(t *testing.T) {
	specials := map[string]string{`"`: `\"`, `\`: `\\`, "\n": `\n`, "\x01": `\u0001`, "\x1f": `\u001f`, "\x7f": "\x7f", "é": "é", "\u2028": `\u2028`, "\xff": `\ufffd`, " ": " ", "~": "~"}
	for n := 1; n <= 24; n++ {
		for p := 0; p < n; p++ {
			for raw, esc := range specials {
				prefix, suffix := strings.Repeat("a", p), strings.Repeat("b", n-p-1)
				got := string(json.AppendString([]byte("x"), []byte(prefix+raw+suffix)))
				if want := `x"` + prefix + esc + suffix + `"`; got != want {
					t.Fatalf("%q at %d of %d: got %s, want %s", raw, p, n, got, want)
				}
			}
		}
	}
}
