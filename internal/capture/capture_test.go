package capture

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type piece struct {
	line string
	part int
	last bool
}

func TestLines(t *testing.T) {
	long := strings.Repeat("a", 100_000) // longer than bufio's buffer
	tests := []struct {
		name  string
		input string
		max   int
		want  []piece
	}{
		{"empty", "", 10, nil},
		{"lines", "a\nb\n", 10, []piece{{"a", 0, true}, {"b", 0, true}}},
		{"crlf", "a\r\nb", 10, []piece{{"a", 0, true}, {"b", 0, true}}},
		{"empty lines kept", "\n\n", 10, []piece{{"", 0, true}, {"", 0, true}}},
		{"split at max", "abcdefg\nh\n", 3, []piece{{"abc", 0, false}, {"def", 1, false}, {"g", 2, true}, {"h", 0, true}}},
		{"exactly max", "abc\n", 3, []piece{{"abc", 0, true}}},
		{"long line kept whole under max", long + "\nz\n", 1 << 20, []piece{{long, 0, true}, {"z", 0, true}}},
		{"long final line without newline", long, 1 << 20, []piece{{long, 0, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []piece
			err := Lines(strings.NewReader(tc.input), tc.max, func(l []byte, part int, last bool) {
				got = append(got, piece{string(l), part, last})
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %d pieces %.200v, want %.200v", len(got), got, tc.want)
			}
		})
	}
}

func TestParseJSONLine(t *testing.T) {
	tests := []struct {
		name, line string
		ok         bool
		msg        string
		level      slog.Level
		hasLevel   bool
		logger     string
		attrs      string
		time       time.Time
	}{
		{name: "not json", line: "hello", ok: false},
		{name: "array", line: `[1,2]`, ok: false},
		{name: "two objects", line: `{"a":1}{"b":2}`, ok: false},
		{name: "slog", line: `{"time":"2024-01-02T03:04:05.5Z","level":"WARN","msg":"hi","k":"v","n":3,"f":1.5,"b":true,"z":null}`,
			ok: true, msg: "hi", level: slog.LevelWarn, hasLevel: true, attrs: "[k=v n=3 f=1.5 b=true z=<nil>]",
			time: time.Date(2024, 1, 2, 3, 4, 5, 5e8, time.UTC)},
		{name: "zap epoch seconds", line: `{"level":"error","ts":1700000000.25,"logger":"db","msg":"x"}`,
			ok: true, msg: "x", level: slog.LevelError, hasLevel: true, logger: "db", attrs: "[]", time: time.Unix(1700000000, 25e7)},
		{name: "hclog", line: `{"@level":"debug","@message":"m","@module":"plugin","@timestamp":"2024-01-02T03:04:05.000000Z"}`,
			ok: true, msg: "m", level: slog.LevelDebug, hasLevel: true, logger: "plugin", attrs: "[]", time: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{name: "pino numeric level and millis", line: `{"level":50,"time":1700000000123,"msg":"p"}`,
			ok: true, msg: "p", level: slog.LevelError, hasLevel: true, attrs: "[]", time: time.UnixMilli(1700000000123)},
		{name: "nested object and array", line: `{"msg":"n","req":{"id":7,"tags":["a",1]},"big":123456789012345678901234567890}`,
			ok: true, msg: "n", attrs: `[req=[id=7 tags=["a",1]] big=123456789012345678901234567890]`},
		{name: "unknown level stays an attribute", line: `{"level":"chatty","msg":"m"}`, ok: true, msg: "m", attrs: "[level=chatty]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := ParseJSONLine([]byte(tc.line))
			if ok != tc.ok {
				t.Fatalf("ok = %v", ok)
			}
			if !ok {
				return
			}
			if r.Message != tc.msg || r.HasLvl != tc.hasLevel || r.Level != tc.level || r.Logger != tc.logger {
				t.Fatalf("got %+v", r)
			}
			if got := fmt.Sprint(r.Attrs); got != tc.attrs {
				t.Fatalf("attrs = %s, want %s", got, tc.attrs)
			}
			if !r.Time.Equal(tc.time) {
				t.Fatalf("time = %v, want %v", r.Time, tc.time)
			}
		})
	}
}

func TestIsCrashStart(t *testing.T) {
	for line, want := range map[string]bool{
		"panic: boom": true,
		"fatal error: all goroutines are asleep - deadlock!": true,
		"Traceback (most recent call last):":                 true,
		"a panic: in the middle":                             false,
		"goroutine 1 [running]:":                             false,
	} {
		if got := IsCrashStart([]byte(line)); got != want {
			t.Errorf("IsCrashStart(%q) = %v", line, got)
		}
	}
}

// FuzzParseJSONLine: arbitrary worker output never panics the parser.
func FuzzParseJSONLine(f *testing.F) {
	f.Add([]byte(`{"level":"info","msg":"x","a":{"b":[1,{"c":2}]}}`))
	f.Add([]byte(`{"time":1e400}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		ParseJSONLine(line)
	})
}
