package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrimary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "primary")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin).CombinedOutput()
	if err != nil {
		t.Fatalf("primary: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Received IPC data from worker#0: custom message from worker 0",
		"Received IPC data from worker#1: custom message from worker 1",
		"worker: Hello, world! index=0",
		`worker: the primary replied reply="ack custom message from worker 0"`,
		`worker: the primary replied reply="ack custom message from worker 1"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}
