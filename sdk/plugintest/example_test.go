package plugintest_test

import (
	"fmt"

	"github.com/logtk/logtk/record/textfmt"
	"github.com/logtk/logtk/sdk/plugin"
	"github.com/logtk/logtk/sdk/plugintest"
)

// The sample records are the same on every call: a plugin's native tests
// can format them and compare the result with a golden file.
func ExampleSampleRecords() {
	for _, b := range plugintest.SampleRecords() {
		var r plugin.Record
		if !r.Parse(b) {
			fmt.Println("malformed record")
			continue
		}
		fmt.Printf("%s %q %q\n", textfmt.LevelName(r.Level), r.Logger, r.Message)
	}
	// Output:
	// INFO  "http" "request served"
	// WARN  "" "quote \" backslash \\ tab\t and ünïcode ✓"
	// ERROR "logtk.host" "worker exited with status 2: panic: boom"
	// DEBUG "" ""
	// INFO  "shop.orders" "order placed"
	// WARN  "" "bell\a escape\x1b[31m nul\x00 sep\u2028 end"
}
