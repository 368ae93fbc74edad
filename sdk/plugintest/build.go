// Package plugintest is the conformance kit for logtk plugins, as
// testing/slogtest is for slog handlers: a plugin author runs it from
// go test against their .wasm, and it loads the module in the host's real
// runtime and checks the contract, bad input included.
//
//	func TestConformance(t *testing.T) {
//		wasm := plugintest.Build(t, ".")
//		plugintest.TestFormatter(t, wasm, plugintest.Options{Config: `{"theme":"none"}`})
//	}
package plugintest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
)

// Build compiles the plugin whose main package is dir (a directory) with
// GOOS=wasip1 GOARCH=wasm -buildmode=c-shared and returns the path of the
// .wasm file. Each directory is built once per test process; Go's build
// cache makes later processes fast.
func Build(t testing.TB, dir string) string {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[abs]; ok {
		return p
	}
	p, err := BuildPlugin(abs, "")
	if err != nil {
		t.Fatal(err)
	}
	buildCache[abs] = p
	return p
}

// BuildPlugin builds the plugin at dir into out (a file path; empty for a
// file in a per-user temporary directory) and returns the output path.
func BuildPlugin(dir, out string) (string, error) {
	if out == "" {
		sum := sha256.Sum256([]byte(dir))
		tmp := filepath.Join(os.TempDir(), fmt.Sprintf("logtk-plugins-%d", os.Getuid()))
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			return "", err
		}
		out = filepath.Join(tmp, filepath.Base(dir)+"-"+hex.EncodeToString(sum[:6])+".wasm")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building plugin %s: the go command is not in PATH", dir)
	}
	tmpOut := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	cmd := exec.Command(goBin, "build", "-buildmode=c-shared", "-trimpath", "-o", tmpOut, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmpOut)
		return "", fmt.Errorf("building plugin %s: %v\n%s", dir, err, b)
	}
	// Rename is atomic: concurrent test processes never see half a file.
	if err := os.Rename(tmpOut, out); err != nil {
		return "", err
	}
	return out, nil
}
