package main_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/host"
)

// TestHello runs the example the way `make run` does, through the host
// library, and checks what the user is promised to see: the hello record,
// the panic captured with its trace, the restart and the clean finish.
func TestHello(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hello")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var out bytes.Buffer
	h, err := host.New(&config.Config{Workers: []config.WorkerConfig{{
		Name: "hello", Command: bin, Restart: config.RestartOnFailure, BackoffInitial: 10 * time.Millisecond,
	}}}, host.Options{Output: host.NewConsoleOutput(&out)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Done():
	case <-time.After(time.Minute):
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Stop(ctx)
		t.Fatalf("example did not finish:\n%s", out.String())
	}
	got := out.String()
	for _, want := range []string{
		"INFO  hello#0",
		"hello: Hello, world! user=unprivileged-worker answer=42 uptime=3ms request.method=GET request.path=/",
		"hello.slog: the same pipeline, through log/slog incarnation=0",
		"ERROR hello#0",
		"worker exited with status 2: panic: This is an uncaught error that will be discovered by the host, and logged.; restarting in 10ms",
		"    | goroutine 1 [running]:",
		"    | main.main()",
		"hello: restarted after the crash; finishing cleanly incarnation=1",
		"worker exited with status 0; exited successfully; restart policy is on-failure",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", got)
	}
}
