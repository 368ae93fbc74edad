package json_test

import (
	stdjson "encoding/json"
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
