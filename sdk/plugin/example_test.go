package plugin_test

import (
	"fmt"
	"strings"

	"github.com/logtk/logtk/record/textfmt"
	"github.com/logtk/logtk/sdk/plugin"
	"github.com/logtk/logtk/sdk/plugintest"
)

// warnings is a Formatter: a record at warn or above becomes a line of its
// level and message; any other is dropped.
type warnings struct{}

func (warnings) Format(dst []byte, r *plugin.Record) ([]byte, error) {
	if r.Level < plugin.LevelWarn {
		return dst, nil // appending nothing drops the record
	}
	dst = append(dst, textfmt.LevelName(r.Level)...)
	dst = append(dst, ' ')
	dst = append(dst, r.Message...)
	return append(dst, '\n'), nil
}

// A Formatter runs natively, as in a plugin's tests: FormatBatch does what
// the host's format call does, one entry per record, in order. The records
// here are the conformance kit's samples, encoded as the host sends them.
func ExampleFormatBatch() {
	var records []byte
	for _, r := range plugintest.SampleRecords() {
		records = plugin.AppendEntry(records, r)
	}
	out, err := plugin.FormatBatch(warnings{}, nil, records)
	if err != nil {
		fmt.Println(err)
		return
	}
	batch, err := plugin.NewBatch(1, out)
	if err != nil {
		fmt.Println(err)
		return
	}
	i := 0
	batch.Each(func(entry []byte) bool {
		fmt.Printf("record %d: %q\n", i, entry)
		i++
		return true
	})
	// Output:
	// record 0: ""
	// record 1: "WARN  quote \" backslash \\ tab\t and ünïcode ✓\n"
	// record 2: "ERROR worker exited with status 2: panic: boom\n"
	// record 3: ""
	// record 4: ""
	// record 5: "WARN  bell\a escape\x1b[31m nul\x00 sep\u2028 end\n"
}

// A Record is read in place: its attributes, groups included, are walked
// with an iterator that fills an Attr the caller owns.
func ExampleRecord() {
	var r plugin.Record
	if !r.Parse(plugintest.SampleRecords()[0]) {
		fmt.Println("malformed record")
		return
	}
	fmt.Printf("%s: %s (worker %s#%d)\n", r.Logger, r.Message, r.Worker, r.WorkerIndex)

	var keys []string
	var walk func(prefix string, a *plugin.Attr)
	walk = func(prefix string, a *plugin.Attr) {
		if a.Kind != plugin.KindGroup {
			keys = append(keys, prefix+string(a.Key))
			return
		}
		var g plugin.Attr
		for it := a.Group(); it.Next(&g); {
			walk(prefix+string(a.Key)+".", &g)
		}
	}
	var a plugin.Attr
	for it := r.Attrs(); it.Next(&a); {
		walk("", &a)
	}
	fmt.Println(strings.Join(keys, " "))
	// Output:
	// http: request served (worker web#1)
	// path status bytes ratio cached token started elapsed client.ip client.geo.country
}
