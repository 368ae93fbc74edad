// Package bench compares the logtk SDK with the loggers users would pick
// instead, in the same run. It is its own module so that the main module
// does not depend on the peers.
//
// Every logger writes one message with 4 attributes (3 strings, 1 int) to
// io.Discard. logtk's "ring" case is the real, crash-safe path under
// logtk-host: each record published in a shared-memory ring that a host
// process drains (fakehost_test.go), so that the record survives the
// process's death once the call returns. "socket" is the crash-safe path
// without a ring: one write(2) per record on a unix socket.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/logtk/logtk/sdk"
)

const msg = "request served"

var host *fakeHost

func TestMain(m *testing.M) {
	if os.Getenv(envHostChild) != "" {
		if err := runFakeHostChild(); err != nil {
			fmt.Fprintln(os.Stderr, "fake host:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The ring is logtk-host's default size unless LOGTK_BENCH_RING_BYTES
	// says otherwise (for experiments with its size).
	ringBytes := 1 << 20
	if v, err := strconv.Atoi(os.Getenv("LOGTK_BENCH_RING_BYTES")); err == nil {
		ringBytes = v
	}
	var err error
	if host, err = startFakeHost(ringBytes); err != nil {
		fmt.Fprintln(os.Stderr, "fake host:", err)
		os.Exit(1)
	}
	code := m.Run()
	host.stop()
	os.Exit(code)
}

func BenchmarkLogger(b *testing.B) {
	b.Run("logtk/ring", func(b *testing.B) {
		l := sdk.New(sdk.Options{})
		if st := sdk.Stats(); !st.Ring {
			b.Fatalf("the SDK is not using the ring: %+v", st)
		}
		before, bells, polls, pollNs := host.records.Load(), host.doorbells.Load(), host.polls.Load(), host.pollNs.Load()
		defer func() {
			b.ReportMetric(float64(host.doorbells.Load()-bells)/float64(b.N), "doorbells/op")
			b.ReportMetric(float64(b.N)/float64(host.polls.Load()-polls), "records/poll")
			b.ReportMetric(float64(host.pollNs.Load()-pollNs)/float64(host.polls.Load()-polls)/1e3, "us/poll")
		}()
		b.ReportAllocs()
		for b.Loop() {
			l.Info(msg, sdk.String("method", "GET"), sdk.String("path", "/api/v1/users"), sdk.String("remote", "10.1.2.3:4567"), sdk.Int("status", 200))
		}
		b.StopTimer()
		deadline := time.Now().Add(10 * time.Second)
		for host.records.Load()-before < int64(b.N) {
			if time.Now().After(deadline) {
				b.Fatalf("the host read %d of %d records", host.records.Load()-before, b.N)
			}
			runtime.Gosched()
		}
	})
	b.Run("logtk/discard", func(b *testing.B) {
		l := sdk.New(sdk.Options{Writer: io.Discard})
		b.ReportAllocs()
		for b.Loop() {
			l.Info(msg, sdk.String("method", "GET"), sdk.String("path", "/api/v1/users"), sdk.String("remote", "10.1.2.3:4567"), sdk.Int("status", 200))
		}
	})
	b.Run("logtk/socket", func(b *testing.B) {
		conn := socketDrained(b)
		l := sdk.New(sdk.Options{Writer: conn})
		b.ReportAllocs()
		for b.Loop() {
			l.Info(msg, sdk.String("method", "GET"), sdk.String("path", "/api/v1/users"), sdk.String("remote", "10.1.2.3:4567"), sdk.Int("status", 200))
		}
	})
	b.Run("zerolog", func(b *testing.B) {
		l := zerolog.New(io.Discard).With().Timestamp().Logger()
		b.ReportAllocs()
		for b.Loop() {
			l.Info().Str("method", "GET").Str("path", "/api/v1/users").Str("remote", "10.1.2.3:4567").Int("status", 200).Msg(msg)
		}
	})
	b.Run("zap", func(b *testing.B) {
		core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel)
		l := zap.New(core)
		b.ReportAllocs()
		for b.Loop() {
			l.Info(msg, zap.String("method", "GET"), zap.String("path", "/api/v1/users"), zap.String("remote", "10.1.2.3:4567"), zap.Int("status", 200))
		}
	})
	ctx := context.Background()
	b.Run("slog-json", func(b *testing.B) {
		l := slog.New(slog.NewJSONHandler(io.Discard, nil))
		b.ReportAllocs()
		for b.Loop() {
			l.LogAttrs(ctx, slog.LevelInfo, msg, slog.String("method", "GET"), slog.String("path", "/api/v1/users"), slog.String("remote", "10.1.2.3:4567"), slog.Int("status", 200))
		}
	})
	b.Run("logtk-slog-handler/discard", func(b *testing.B) {
		l := slog.New(sdk.NewHandler(sdk.Options{Writer: io.Discard}))
		b.ReportAllocs()
		for b.Loop() {
			l.LogAttrs(ctx, slog.LevelInfo, msg, slog.String("method", "GET"), slog.String("path", "/api/v1/users"), slog.String("remote", "10.1.2.3:4567"), slog.Int("status", 200))
		}
	})
}

// socketDrained returns one end of a unix socket pair whose other end a
// goroutine reads and discards, as the host does.
func socketDrained(b *testing.B) net.Conn {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	mk := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "sock")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	w, r := mk(fds[0]), mk(fds[1])
	go io.Copy(io.Discard, r)
	b.Cleanup(func() { w.Close(); r.Close() })
	return w
}
