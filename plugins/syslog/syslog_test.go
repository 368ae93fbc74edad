package syslog

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	irecord "github.com/logtk/logtk/internal/record"
	sl "github.com/logtk/logtk/internal/syslog"
	"github.com/logtk/logtk/record"
)

// TestRendering: a record rendered as RFC 5424 reads back, through the
// log server's syslog parser, with every field where it belongs.
func TestRendering(t *testing.T) {
	b := irecord.AppendHead(nil, time.Date(2026, 12, 6, 10, 45, 12, 123456000, time.UTC), record.LevelWarn, "disk nearly full", "db.pool")
	b = irecord.AppendAttr(b, slog.String("path", `/var/"lib"]\x`))
	b = irecord.AppendAttr(b, slog.Group("http", slog.Int("status", 507)))
	b = irecord.AppendStamp(b, &irecord.Stamp{Worker: "web", WorkerIndex: 2, PID: 4242, Incarnation: 1, Seq: 17, Source: record.SourceSDK})
	var r record.Record
	r.Parse(b)
	tr := New()
	if err := tr.Configure([]byte(`{"endpoint":"x","facility":"local0"}`)); err != nil {
		t.Fatal(err)
	}
	msg := tr.Append(nil, &r)
	m, err := sl.Parse(msg, time.Now(), time.UTC)
	if err != nil {
		t.Fatalf("%s: %v", msg, err)
	}
	if m.Facility != 16 || m.Severity != 4 || string(m.AppName) != "web" || string(m.ProcID) != "4242" || string(m.MsgID) != "db.pool" || m.Hostname != nil {
		t.Errorf("header of %s: %+v", msg, m)
	}
	if !m.Time.Equal(time.Date(2026, 12, 6, 10, 45, 12, 123456000, time.UTC)) || string(m.Msg) != "disk nearly full" {
		t.Errorf("time %v msg %q", m.Time, m.Msg)
	}
	params := map[string]string{}
	for _, el := range m.Data {
		for _, p := range el.Params {
			params[string(el.ID)+" "+string(p.Name)] = string(p.Value)
		}
	}
	for k, v := range map[string]string{"logtk@32473 worker": "web", "logtk@32473 index": "2", "logtk@32473 seq": "17", "logtk@32473 incarnation": "1",
		"logtk@32473 level": "WARN", "attrs@32473 http.status": "507", "attrs@32473 path": `/var/"lib"]\x`} {
		if params[k] != v {
			t.Errorf("%s = %q, want %q (in %s)", k, params[k], v, msg)
		}
	}
}

func TestConfigure(t *testing.T) {
	for _, c := range []string{`{"endpoint":"x","framing":"lines"}`, `{"endpoint":"x","facility":"local9"}`, `{"endpoint":"x","facility":"24"}`, `{}`} {
		if err := New().Configure([]byte(c)); err == nil {
			t.Errorf("%s was accepted", c)
		}
	}
	tr := New()
	if err := tr.Configure([]byte(`{"endpoint":"x","facility":"3","framing":"newline","hostname":"h w","app_name":"` + strings.Repeat("a", 60) + `"}`)); err != nil {
		t.Fatal(err)
	}
	var r record.Record
	r.Parse(irecord.AppendHead(nil, time.Unix(1, 0), record.LevelFatal, "x", ""))
	got := string(tr.Append(nil, &r))
	if !strings.HasPrefix(got, "<26>1 ") || !strings.Contains(got, " h_w "+strings.Repeat("a", 48)+" - - ") {
		t.Fatalf("rendered %q", got)
	}
}

// TestNewlineFraming: with a message a line, a multi-line message stays
// one line.
func TestNewlineFraming(t *testing.T) {
	tr := New()
	if err := tr.Configure([]byte(`{"endpoint":"x","framing":"newline"}`)); err != nil {
		t.Fatal(err)
	}
	var r record.Record
	r.Parse(irecord.AppendHead(nil, time.Unix(1, 0), record.LevelError, "panic: boom\r\n\ngoroutine 1", ""))
	msg := tr.Append(nil, &r)
	line := appendLine(nil, msg)
	if strings.Count(string(line), "\n") != 1 || !strings.HasSuffix(string(line), "panic: boom#015#012#012goroutine 1\n") {
		t.Fatalf("%q", line)
	}
}
