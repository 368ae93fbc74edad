package budget_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/logtk/logtk/internal/wasm/budget"
	"github.com/logtk/logtk/sdk/plugintest"
)

// The rewrite of the Go plugins logtk ships, built by plugintest (which
// imports internal/wasm, and so this package: an external test).

// TestThreadsGoCode: the Go compiler still emits the dispatch loop that
// the budget rewrite threads (thread.go): most of a Go plugin's jumps
// through it become direct branches. A Go release that changes that shape
// fails here, not silently in the benchmarks.
func TestThreadsGoCode(t *testing.T) {
	bin, err := os.ReadFile(plugintest.Build(t, "../../../plugins/text/plugin"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := budget.Instrument(bin)
	if err != nil {
		t.Fatal(err)
	}
	jump := []byte{0x21, 0x00, 0x0c} // local.set 0; br
	before, after := bytes.Count(bin, jump), bytes.Count(out, jump)
	t.Logf("jumps through the dispatch: %d before, %d after", before, after)
	if before < 1000 || after > before/2 {
		t.Fatalf("jumps through the dispatch: %d before, %d after; want most threaded", before, after)
	}
}

// BenchmarkInstrumentBudget: the load-time rewrite of the text plugin (a
// Go module of a few MB), which Load does for every plugin it compiles.
func BenchmarkInstrumentBudget(b *testing.B) {
	bin, err := os.ReadFile(plugintest.Build(b, "../../../plugins/text/plugin"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(bin)))
	for b.Loop() {
		if _, err := budget.Instrument(bin); err != nil {
			b.Fatal(err)
		}
	}
}
