package logtkhclog

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/logtk/logtk/internal/ipc"
	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/record/textfmt"
	"github.com/logtk/logtk/sdk"
)

type sink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// lines renders what was logged as text lines without the time.
func (s *sink) lines(t *testing.T) []string {
	r := ipc.NewReader(bytes.NewReader(s.buf.Bytes()), 0)
	var out []string
	for {
		_, p, err := r.Next()
		if err != nil {
			return out
		}
		var v record.Record
		if !v.Parse(p) {
			t.Fatalf("malformed record %x", p)
		}
		v.TimeUnixNano = 0
		out = append(out, string(bytes.TrimSpace(textfmt.Append(nil, &v))))
	}
}

func TestAdapter(t *testing.T) {
	s := &sink{}
	var h hclog.Logger = New(sdk.New(sdk.Options{Name: "app", Level: sdk.LevelTrace, Writer: s}))
	h.Info("plain", "k", "v", "n", 3)
	h.SetLevel(hclog.Debug)
	h.Trace("filtered out")
	h.Debug("debug", "f", hclog.Fmt("%d-%s", 1, "x"), "h", hclog.Hex(255))
	sub := h.Named("db").With("conn", 7)
	sub.Warn("warn", "odd")
	if !sub.IsDebug() || sub.IsTrace() || sub.GetLevel() != hclog.Debug || sub.Name() != "app.db" {
		t.Errorf("sub: debug=%v trace=%v level=%v name=%q", sub.IsDebug(), sub.IsTrace(), sub.GetLevel(), sub.Name())
	}
	if got := fmt.Sprint(sub.ImpliedArgs()); got != "[conn 7]" {
		t.Errorf("implied args = %s", got)
	}
	sub.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[ERROR] from the log package")
	h.Log(hclog.NoLevel, "no level means info")
	sub.ResetNamed("fresh").Info("renamed")
	want := []string{
		"INFO  app: plain k=v n=3",
		"DEBUG app: debug f=1-x h=0xff",
		"WARN  app.db: warn conn=7 EXTRA_VALUE_AT_END=odd",
		"ERROR app.db: from the log package conn=7",
		"INFO  app: no level means info",
		"INFO  fresh: renamed conn=7",
	}
	got := s.lines(t)
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
