package capture

import (
	"log/slog"
	"testing"
)

func TestLevelPrefix(t *testing.T) {
	const none = slog.Level(-100)
	tests := []struct {
		line string
		want slog.Level
	}{
		// Python logging's default format, command-line tools.
		{"INFO:root:started", slog.LevelInfo},
		{"WARNING:app.db:slow query", slog.LevelWarn},
		{"ERROR:root:request failed", slog.LevelError},
		{"DEBUG:urllib3.connectionpool:Starting new HTTP connection", slog.LevelDebug},
		{"CRITICAL:root:out of memory", 12},
		{"error: could not open file", slog.LevelError},
		{"Warning: deprecated flag", slog.LevelWarn},
		// Brackets.
		{"[INFO] listening", slog.LevelInfo},
		{"[warn] cache cold", slog.LevelWarn},
		{"[Notice] x", 2},
		{"[TRACE]", -8},
		{"[2024-12-06] x", none},
		{"[INFO listening", none},
		// A name and a space: upper case only.
		{"INFO listening on :8080", slog.LevelInfo},
		{"FATAL\tcannot start", 12},
		{"Error handling is fine", none},
		{"info about the weather", none},
		{"INFORMATION follows", none},
		{"ERROR", none},
		// logfmt.
		{"level=info msg=hi", slog.LevelInfo},
		{"lvl=WARN msg=hi", slog.LevelWarn},
		{`level="error" msg="x"`, slog.LevelError},
		{"level=debug", slog.LevelDebug},
		{"time=2024-12-06T10:00:00.000Z level=WARN msg=slow", slog.LevelWarn},
		{`time="2015-03-26T01:27:38-04:00" level=fatal msg="The ice breaks!"`, 12},
		{"ts=1733479200 lvl=info", slog.LevelInfo},
		{"level=chatty msg=x", none},
		{"level=infox", none},
		{"msg=x level=info", none},
		// glog and klog.
		{"I1206 10:00:00.123456   42 main.go:12] started", slog.LevelInfo},
		{"W1206 10:00:00.123456   42 main.go:12] retrying", slog.LevelWarn},
		{"E1206 10:00:00.123456   42 main.go:12] lost", slog.LevelError},
		{"F1206 10:00:00.123456   42 main.go:12] dead", 12},
		{"E1234 is an error code", none},
		{"X1206 10:00:00.123456", none},
		// After a timestamp.
		{"2024/12/06 10:00:00 WARN slow query", slog.LevelWarn},
		{"2024-12-06 10:00:00,123 INFO:root:x", slog.LevelInfo},
		{"2024-12-06T10:00:00Z [ERROR] x", slog.LevelError},
		{"10:00:00 DEBUG x", slog.LevelDebug},
		{"12 ERROR rows", none}, // not a timestamp
		{"127.0.0.1 - - [06/Dec/2024 10:00:00] \"GET / HTTP/1.1\" 200 -", none},
		{"2024/12/06 10:00:00 server started", none},
		// Nothing.
		{"", none},
		{"plain text", none},
		{"{\"level\":\"info\"}", none},
		{"panic: boom", none},
	}
	for _, tc := range tests {
		got, ok := LevelPrefix([]byte(tc.line))
		if !ok {
			got = none
		}
		if got != tc.want {
			t.Errorf("LevelPrefix(%q) = %v, %v; want %v", tc.line, got, ok, tc.want)
		}
	}
}

func BenchmarkLevelPrefix(b *testing.B) {
	for _, line := range []string{
		`127.0.0.1 - - [06/Dec/2024 10:00:00] "GET /index.html HTTP/1.1" 200 -`,
		"2024/12/06 10:00:00 WARN slow query duration=1.5s",
		"time=2024-12-06T10:00:00.000Z level=INFO msg=served",
	} {
		b.Run(line[:12], func(b *testing.B) {
			l := []byte(line)
			b.ReportAllocs()
			for b.Loop() {
				LevelPrefix(l)
			}
		})
	}
}
