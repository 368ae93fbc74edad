package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/logserver"
)

// BenchmarkMakeRun runs make run's main job (plugins.hcl, its workers
// and stages, into a log server) with a logtk-host built as make builds
// it, one host process a run, and reports what the footprint targets
// are about: the time from the host's start to the first record on the
// terminal, and the host's peak RSS, with an empty compilation cache
// (cold) and with the cache the cold run filled (warm). Medians over
// b.N runs of each.
func BenchmarkMakeRun(b *testing.B) {
	dir := b.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hello, host := filepath.Join(dir, "hello"), filepath.Join(dir, "logtk-host")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", hello, "../../examples/hello").CombinedOutput(); err != nil {
		b.Fatalf("building the example worker: %v\n%s", err, out)
	}
	// The binary itself, not this test binary (larger by the tests and
	// the testing package, which it would count in the peak).
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", host, ".").CombinedOutput(); err != nil {
		b.Fatalf("building logtk-host: %v\n%s", err, out)
	}
	token, err := os.ReadFile("../../examples/server/token")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := logserver.New(&config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: filepath.Join(dir, "received"),
		Tokens: [][]byte{[]byte(strings.TrimSpace(string(token)))}, Fsync: "batch", MaxBytes: 1 << 30}}, logserver.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
	}()
	// plugins.hcl as it is, but for where its worker, token and server
	// are.
	hcl, err := os.ReadFile("../../plugins.hcl")
	if err != nil {
		b.Fatal(err)
	}
	abs, _ := filepath.Abs("../../examples/server/token")
	cfg := strings.NewReplacer(`"bin/hello"`, `"`+hello+`"`, `"examples/server/token"`, `"`+abs+`"`,
		`"127.0.0.1:7400"`, `"`+ln.Addr().String()+`"`).Replace(string(hcl))
	cfgPath := filepath.Join(dir, "plugins.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	record := regexp.MustCompile(`^\d{4}-\d\d-\d\dT`)
	runHost := func(cache string) (first time.Duration, peakMB float64) {
		cmd := exec.CommandContext(ctx, host, "run", "-config", cfgPath)
		cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache)
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if first == 0 && record.Match(sc.Bytes()) {
				first = time.Since(start)
			}
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("logtk-host run: %v", err)
		}
		if first == 0 {
			b.Fatal("no record on the terminal")
		}
		return first, float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024
	}
	var coldT, warmT, coldM, warmM []float64
	for range b.N {
		cache := b.TempDir()
		t, m := runHost(cache)
		coldT, coldM = append(coldT, float64(t.Milliseconds())), append(coldM, m)
		t, m = runHost(cache)
		warmT, warmM = append(warmT, float64(t.Milliseconds())), append(warmM, m)
	}
	median := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	b.ReportMetric(median(coldT), "cold-first-record-ms")
	b.ReportMetric(median(warmT), "warm-first-record-ms")
	b.ReportMetric(median(coldM), "cold-host-peak-MB")
	b.ReportMetric(median(warmM), "warm-host-peak-MB")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkServerIdle starts `logtk-host serve` (examples/server's
// settings, on a port of its own) and reports its peak RSS once it
// listens: what a log server costs doing nothing.
func BenchmarkServerIdle(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var peaks []float64
	for range b.N {
		dir := b.TempDir()
		cfg := filepath.Join(dir, "server.hcl")
		abs, _ := filepath.Abs("../../examples/server/token")
		os.WriteFile(cfg, []byte("server {\n  listen = \"127.0.0.1:0\"\n  dir = \"received\"\n  token_file = \""+abs+"\"\n}\n"), 0o644)
		cmd := exec.CommandContext(ctx, os.Args[0])
		cmd.Env = append(os.Environ(), "LOGTK_TEST_ROLE=serve", "LOGTK_TEST_CONFIG="+cfg)
		errs, err := cmd.StderrPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(errs)
		for sc.Scan() && !strings.Contains(sc.Text(), "log server listening") {
		}
		status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "status"))
		cmd.Process.Signal(syscall.SIGTERM)
		go io.Copy(io.Discard, errs)
		cmd.Wait()
		if err != nil {
			b.Fatal(err)
		}
		m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(status)
		if m == nil {
			b.Fatalf("no VmHWM in %s", status)
		}
		kb, _ := strconv.Atoi(string(m[1]))
		peaks = append(peaks, float64(kb)/1024)
	}
	slices.Sort(peaks)
	b.ReportMetric(peaks[len(peaks)/2], "server-idle-peak-MB")
	b.ReportMetric(0, "ns/op")
}
