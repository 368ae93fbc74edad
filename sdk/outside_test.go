package sdk_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestOutsideModule: a program in a module of its own uses the SDK with
// exactly the commands the README gives (a require and a replace of a
// checkout), and runs (issue 14: the README never said how to depend on
// the module, which is not published).
func TestOutsideModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	checkout, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(`package main

import "github.com/logtk/logtk/sdk"

func main() {
	log := sdk.New(sdk.Options{Name: "outside"})
	log.Info("hello from another module")
}
`), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = dir
		// Modules come from the cache this test's own build filled, or
		// the proxy; the checksum database may be out of reach here (a
		// user's machine checks it).
		cmd.Env = append(os.Environ(), "GOSUMDB=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// The README's commands.
	run(gobin, "mod", "init", "example.com/outside")
	run(gobin, "mod", "edit", "-require=github.com/logtk/logtk@v0.0.0", "-replace=github.com/logtk/logtk="+checkout)
	run(gobin, "mod", "tidy")
	run(gobin, "build", "-o", "outside", ".")
	if out := run(filepath.Join(dir, "outside")); !strings.Contains(out, "outside: hello from another module") {
		t.Fatalf("the program printed %q", out)
	}
}
