package host

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/logtk/logtk/config"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
)

// Crash reports as programs print them.
const (
	pyTrace = "Traceback (most recent call last):\n" +
		"  File \"/srv/app.py\", line 12, in handle\n" +
		"    return 1 / 0\n" +
		"           ~~^~~\n" +
		"ZeroDivisionError: division by zero\n"
	pyChained = pyTrace +
		"\nDuring handling of the above exception, another exception occurred:\n\n" +
		"Traceback (most recent call last):\n" +
		"  File \"/srv/app.py\", line 14, in handle\n" +
		"    raise RuntimeError(\"handler failed\")\n" +
		"RuntimeError: handler failed\n"
	goRecovered = "panic: boom [recovered]\n" +
		"\tpanic: boom\n" +
		"\n" +
		"goroutine 7 [running]:\n" +
		"main.handle.func1()\n" +
		"\t/src/main.go:12 +0x1d\n" +
		"panic({0x4b3e00?, 0x4ef8b0?})\n" +
		"\t/usr/lib/go/src/runtime/panic.go:785 +0x132\n" +
		"main.handle(...)\n" +
		"\t/src/main.go:15\n" +
		"created by main.main in goroutine 1\n" +
		"\t/src/main.go:20 +0x25\n"
	goDump = "panic: boom\n" +
		"\n" +
		"goroutine 1 [running]:\n" +
		"main.main()\n" +
		"\t/src/main.go:5 +0x25\n" +
		"\n" +
		"goroutine 6 [chan receive, 2 minutes]:\n" +
		"main.worker(0xc000012345)\n" +
		"\t/src/main.go:9 +0x3a\n" +
		"created by main.main in goroutine 1\n" +
		"\t/src/main.go:4 +0x1f\n"
)

// scriptWorker runs the test binary in "script" mode: it writes stderr,
// then waits for messages (or exits with env's LOGTK_TEST_EXIT).
func scriptWorker(name, stderr string, env map[string]string) config.WorkerConfig {
	e := map[string]string{"LOGTK_TEST_STDERR": stderr}
	for k, v := range env {
		e[k] = v
	}
	return testWorker(name, "script", e)
}

func isStderr(r *logtkv1.Record) bool { return r.Source == logtkv1.Source_SOURCE_STDERR }

func isExit(r *logtkv1.Record) bool {
	return r.Source == logtkv1.Source_SOURCE_HOST && (strings.HasPrefix(r.Message, "worker exited") || strings.HasPrefix(r.Message, "worker killed") || strings.HasPrefix(r.Message, "worker stopped"))
}

// stderrLine finds the stderr record of an ordinary line.
func stderrLine(recs []*logtkv1.Record, msg string) *logtkv1.Record {
	return find(recs, func(r *logtkv1.Record) bool { return isStderr(r) && r.Message == msg && attr(r, "panic") == nil })
}

func send(t *testing.T, h *Host, id WorkerID, msg string) {
	t.Helper()
	if err := h.Send(id, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// TestCrashReportEndsWhileWorkerRuns: a traceback or panic the worker
// survives becomes one record of its own while the worker runs (ended by
// the first line that is not part of it, or by a quiet spell), and the
// lines after it are ordinary lines again. The exit record that follows
// does not repeat it.
func TestCrashReportEndsWhileWorkerRuns(t *testing.T) {
	tests := []struct {
		name, stderr  string
		report        string   // the report's text (its panic attribute)
		summary       string   // its message
		before, after []string // the ordinary stderr lines around it
	}{
		{name: "python traceback then a line", stderr: "ERROR:root:request failed\n" + pyTrace + "INFO:root:next request\n",
			report: pyTrace, summary: "ZeroDivisionError: division by zero",
			before: []string{"ERROR:root:request failed"}, after: []string{"INFO:root:next request"}},
		{name: "python chained traceback then a line", stderr: pyChained + "serving again\n",
			report: pyChained, summary: "RuntimeError: handler failed", after: []string{"serving again"}},
		{name: "python traceback then quiet", stderr: pyTrace,
			report: pyTrace, summary: "ZeroDivisionError: division by zero"},
		{name: "go recovered panic then a line", stderr: goRecovered + "2024/12/06 10:00:00 still serving\n",
			report: goRecovered, summary: "panic: boom [recovered]", after: []string{"2024/12/06 10:00:00 still serving"}},
		{name: "go goroutine dump, blank line, then a line", stderr: goDump + "\nlistening on :8080\n",
			report: goDump, summary: "panic: boom", after: []string{"", "listening on :8080"}},
		{name: "go goroutine dump then quiet", stderr: goDump,
			report: goDump, summary: "panic: boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, c := startHost(t, Options{}, scriptWorker("w", tc.stderr, nil))
			id := WorkerID{"w", 0}
			text := strings.TrimSuffix(tc.report, "\n")
			isReport := func(r *logtkv1.Record) bool { return isStderr(r) && attr(r, "panic") != nil }
			recs := c.waitFor(t, 30*time.Second, "the report and the lines around it", func(recs []*logtkv1.Record) bool {
				if find(recs, msgIs("ready")) == nil || find(recs, isReport) == nil {
					return false
				}
				for _, l := range append(append([]string(nil), tc.before...), tc.after...) {
					if stderrLine(recs, l) == nil {
						return false
					}
				}
				return true
			})
			if r := find(recs, isExit); r != nil {
				t.Fatalf("the worker is no longer running: %q", r.Message)
			}
			rep := find(recs, isReport)
			if rep.Message != tc.summary || attr(rep, "panic").GetStr() != text || rep.Level != logtkv1.Level_LEVEL_ERROR {
				t.Fatalf("report record %v %q, panic:\n%s\nwant %q, panic:\n%s", rep.Level, rep.Message, attr(rep, "panic").GetStr(), tc.summary, text)
			}
			var seqs []uint64
			for _, l := range tc.before {
				seqs = append(seqs, stderrLine(recs, l).Seq)
			}
			seqs = append(seqs, rep.Seq)
			for _, l := range tc.after {
				seqs = append(seqs, stderrLine(recs, l).Seq)
			}
			for i := 1; i < len(seqs); i++ {
				if seqs[i] <= seqs[i-1] {
					t.Fatalf("records out of order (before, report, after: seq %v):\n%s", seqs, dump(recs, 20))
				}
			}

			// Capture is back in line mode: a new line is a record now.
			send(t, h, id, "stderr:later\n")
			c.waitFor(t, 30*time.Second, "the line written after the report", func(recs []*logtkv1.Record) bool {
				return stderrLine(recs, "later") != nil
			})
			send(t, h, id, "exit:0")
			waitDone(t, h, 30*time.Second)
			recs = checkSequence(t, c.snapshot(), "w", 0)
			if n := count(recs, func(r *logtkv1.Record) bool { return attr(r, "panic") != nil }); n != 1 {
				t.Errorf("%d records carry the report, want 1:\n%s", n, dump(recs, 20))
			}
			exit := find(recs, isExit)
			if exit == nil || exit.Message != "worker exited with status 0; restart policy is never" || exit.Level != logtkv1.Level_LEVEL_INFO {
				t.Errorf("exit record: %v", exit)
			}
		})
	}
}

// TestCrashExitRecord: a crash report the worker dies in is the exit
// record's panic attribute, whole, and its summary is the line that says
// what went wrong: Python's exception line (the last one of a chain), Go's
// first line.
func TestCrashExitRecord(t *testing.T) {
	tests := []struct {
		name, stderr, code, msg string
	}{
		{"python traceback", pyTrace, "1", "worker exited with status 1: ZeroDivisionError: division by zero"},
		{"python chained traceback", pyChained, "1", "worker exited with status 1: RuntimeError: handler failed"},
		{"go fatal error", "fatal error: all goroutines are asleep - deadlock!\n\ngoroutine 1 [chan receive]:\nmain.main()\n\t/src/main.go:5 +0x25\n",
			"2", "worker exited with status 2: fatal error: all goroutines are asleep - deadlock!"},
		{"go goroutine dump", goDump, "2", "worker exited with status 2: panic: boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, c := startHost(t, Options{}, scriptWorker("w", tc.stderr, map[string]string{"LOGTK_TEST_EXIT": tc.code}))
			waitDone(t, h, 30*time.Second)
			recs := checkSequence(t, c.snapshot(), "w", 0)
			exit := find(recs, isExit)
			if exit == nil {
				t.Fatalf("no exit record:\n%s", dump(recs, 20))
			}
			if want := tc.msg + "; restart policy is never"; exit.Message != want {
				t.Errorf("exit record %q, want %q", exit.Message, want)
			}
			if p := attr(exit, "panic").GetStr(); p != strings.TrimSuffix(tc.stderr, "\n") {
				t.Errorf("panic attribute:\n%s\nwant:\n%s", p, tc.stderr)
			}
			if n := count(recs, isStderr); n != 0 {
				t.Errorf("%d stderr records: the report should be only in the exit record:\n%s", n, dump(recs, 20))
			}
		})
	}
}

// TestCrashLastWords: a report that ended because the worker went quiet
// is still the exit record's panic when the worker then dies without
// writing anything else to stderr (a slow death: a core dump, exit
// handlers); once other lines followed it, it is not.
func TestCrashLastWords(t *testing.T) {
	for _, tc := range []struct {
		name, then, want string
		panic            bool
	}{
		{"dies quietly", "", "worker exited with status 2: panic: boom; restart policy is never", true},
		{"writes a line, then dies", "recovered, serving\n", "worker exited with status 2; restart policy is never", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, c := startHost(t, Options{}, scriptWorker("w", goDump, nil))
			id := WorkerID{"w", 0}
			c.waitFor(t, 30*time.Second, "the report, ended by the quiet", func(recs []*logtkv1.Record) bool {
				return find(recs, msgIs("ready")) != nil && find(recs, func(r *logtkv1.Record) bool { return isStderr(r) && r.Message == "panic: boom" }) != nil
			})
			if tc.then != "" {
				send(t, h, id, "stderr:"+tc.then)
				c.waitFor(t, 30*time.Second, "the line after the report", func(recs []*logtkv1.Record) bool {
					return stderrLine(recs, strings.TrimSuffix(tc.then, "\n")) != nil
				})
			}
			send(t, h, id, "exit:2")
			waitDone(t, h, 30*time.Second)
			recs := checkSequence(t, c.snapshot(), "w", 0)
			exit := find(recs, isExit)
			if exit == nil || exit.Message != tc.want || exit.Level != logtkv1.Level_LEVEL_ERROR {
				t.Fatalf("exit record %v, want %q:\n%s", exit, tc.want, dump(recs, 20))
			}
			if p := attr(exit, "panic").GetStr(); (p != "") != tc.panic || tc.panic && p != strings.TrimSuffix(goDump, "\n") {
				t.Errorf("exit record's panic attribute:\n%s", p)
			}
		})
	}
}

// TestStderrLevel: stderr_level sets the level of stderr lines that name
// none; a line that starts with a level prefix has that level, on stdout
// as on stderr, whatever stderr_level says.
func TestStderrLevel(t *testing.T) {
	lines := []struct {
		stdout bool
		line   string
		level  logtkv1.Level
	}{
		{false, `127.0.0.1 - - [06/Dec/2024 10:00:00] "GET / HTTP/1.1" 200 -`, logtkv1.Level_LEVEL_INFO}, // http.server
		{false, "WARNING:root:disk almost full", logtkv1.Level_LEVEL_WARN},                               // Python logging
		{false, "ERROR:app.db:connection lost", logtkv1.Level_LEVEL_ERROR},
		{false, "DEBUG:urllib3:starting connection", logtkv1.Level_LEVEL_DEBUG},
		{false, "CRITICAL:root:out of memory", logtkv1.Level_LEVEL_FATAL},
		{false, "[warn] cache cold", logtkv1.Level_LEVEL_WARN},
		{false, "ERROR cannot bind", logtkv1.Level_LEVEL_ERROR},
		{false, "level=debug msg=tick", logtkv1.Level_LEVEL_DEBUG},
		{false, "time=2024-12-06T10:00:00.000Z level=WARN msg=slow", logtkv1.Level_LEVEL_WARN},   // slog TextHandler
		{false, "2024/12/06 10:00:00 WARN slow query", logtkv1.Level_LEVEL_WARN},                 // slog's default
		{false, "E1206 10:00:00.123456   42 main.go:12] lost leader", logtkv1.Level_LEVEL_ERROR}, // klog
		{false, "W1206 10:00:00.123456   42 main.go:13] retrying", logtkv1.Level_LEVEL_WARN},
		{false, "Error handling is fine here", logtkv1.Level_LEVEL_INFO}, // a word, not a prefix
		{true, "ERROR: cannot read config", logtkv1.Level_LEVEL_ERROR},
		{true, "[DEBUG] cache hit", logtkv1.Level_LEVEL_DEBUG},
		{true, "plain stdout line", logtkv1.Level_LEVEL_INFO},
	}
	var stdout, stderr strings.Builder
	for _, l := range lines {
		if l.stdout {
			fmt.Fprintln(&stdout, l.line)
		} else {
			fmt.Fprintln(&stderr, l.line)
		}
	}
	src := fmt.Sprintf(`worker "lv" {
  command      = %q
  restart      = "never"
  stderr_level = "info"
  env = {
    %s = "script"
    LOGTK_TEST_STDOUT = %q
    LOGTK_TEST_STDERR = %q
    LOGTK_TEST_EXIT   = "0"
  }
}
`, os.Args[0], workerEnv, stdout.String(), stderr.String())
	cfg, err := config.Parse([]byte(src), "levels.hcl")
	if err != nil {
		t.Fatalf("%s\n%s", config.FormatDiagnostics(err), src)
	}
	w := cfg.Workers[0]
	w.BackoffInitial, w.StopTimeout, w.DrainTimeout = 10*time.Millisecond, 5*time.Second, 5*time.Second
	h, c := startHost(t, Options{}, w)
	waitDone(t, h, 30*time.Second)
	recs := checkSequence(t, c.snapshot(), "lv", 0)
	for _, l := range lines {
		src := logtkv1.Source_SOURCE_STDERR
		if l.stdout {
			src = logtkv1.Source_SOURCE_STDOUT
		}
		r := find(recs, func(r *logtkv1.Record) bool { return r.Message == l.line && r.Source == src })
		if r == nil {
			t.Errorf("no %v record %q:\n%s", src, l.line, dump(recs, 30))
		} else if r.Level != l.level {
			t.Errorf("%q: level %v, want %v", l.line, r.Level, l.level)
		}
	}
}
