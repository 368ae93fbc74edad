package host

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logtk/logtk/config"
)

// TestDurableCleanStop: with a runtime directory, a host that stops
// cleanly routes everything and leaves only the journals, compacted to
// their header (the next host goes on counting seqs from there).
func TestDurableCleanStop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "20000"})
	w.Count = 2
	c := newCollector()
	h, err := New(&config.Config{Workers: []config.WorkerConfig{w}, RuntimeDir: dir}, Options{Output: c})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	waitDone(t, h, time.Minute)
	for i := range 2 {
		checkSequence(t, c.snapshot(), "flood", uint32(i))
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, n := range names {
		switch filepath.Base(n) {
		case "lock", "flood.0.journal", "flood.1.journal":
		default:
			t.Errorf("%s left behind", n)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "flood.0.journal"))
	j, err := parseJournal(b)
	if err != nil || len(j.chunks) != 0 || j.lastSeq < 20000 {
		t.Fatalf("journal after a clean stop: %+v, %v", j, err)
	}
}
