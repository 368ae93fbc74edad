// Package sdk is what a Go worker imports to log through logtk-host.
//
// A Logger encodes each record straight into the protobuf form the host
// routes and hands it to the host before the log call returns. There is no
// buffer in the worker: a record whose log call has returned is in memory
// the host owns as much as the worker (the shared-memory ring the host
// gives each worker) or in the kernel's socket buffer, owned by the host's
// end of the channel. Either way it survives the worker's death right
// after the call (panic, os.Exit, SIGKILL). Through the ring a log call
// makes no system call; docs/ipc.md describes both paths.
//
// Outside logtk-host (no LOGTK_IPC_FD in the environment) the same calls
// write readable text to standard error instead.
//
// Loggers are safe for concurrent use. With, WithGroup and Named return new
// Loggers and never change the receiver.
//
// A record's time is the wall clock's, read with one clock read where
// time.Now makes two; after a step of the wall clock (settimeofday, an NTP
// step) record times follow within 100 ms (clock.go). Records that go
// through the slog handler keep the time slog gave them.
package sdk

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"unicode/utf8"

	"github.com/logtk/logtk/internal/ipc"
	"github.com/logtk/logtk/internal/record"
)

// Options configure a Logger. The zero value is valid: records at info and
// above, no caller, no name.
type Options struct {
	// Name is the logger's name ("db.pool"). Default: none.
	Name string
	// Level is the minimum level logged. Default: LevelInfo, or the level
	// named by the LOGTK_LEVEL environment variable (trace, debug, info,
	// notice, warn, error, fatal).
	Level slog.Leveler
	// AddCaller records the file, line and function of the log call. It
	// costs about a microsecond and an allocation per record. Default: off.
	AddCaller bool
	// Writer, when set, receives the Logger's records instead of the host
	// channel: each Write is one whole frame in the IPC framing of
	// docs/ipc.md. Tests use it to capture exactly what a Logger sends.
	// Default: the host channel, or text on stderr without a host.
	Writer io.Writer
}

// Logger is a leveled, structured logger. See the package comment for its
// delivery guarantee.
type Logger struct {
	c         *client
	name      string
	level     slog.Leveler
	addCaller bool
	// pre holds the encoded attributes added by With at the top level;
	// groups holds the open groups added by WithGroup, each with the
	// attributes added inside it.
	pre    []byte
	groups []openGroup
}

type openGroup struct {
	name string
	pre  []byte // attributes encoded with the group field number
}

// New returns a Logger. All Loggers of a process share one channel to the
// host, opened on first use.
func New(opts Options) *Logger {
	c := theClient()
	if opts.Writer != nil {
		c = newClient(opts.Writer, os.Stderr)
	}
	l := &Logger{c: c, name: opts.Name, level: opts.Level, addCaller: opts.AddCaller}
	if l.level == nil {
		l.level = envLevel()
	}
	return l
}

var (
	defaultLoggerOnce sync.Once
	defaultLogger     *Logger
)

// Default returns a process-wide Logger with the zero Options.
func Default() *Logger {
	defaultLoggerOnce.Do(func() { defaultLogger = New(Options{}) })
	return defaultLogger
}

func envLevel() slog.Leveler {
	switch os.Getenv("LOGTK_LEVEL") {
	case "trace":
		return LevelTrace
	case "debug":
		return LevelDebug
	case "notice":
		return LevelNotice
	case "warn":
		return LevelWarn
	case "error":
		return LevelError
	case "fatal":
		return LevelFatal
	}
	return LevelInfo
}

// Enabled reports whether records at level are logged. Call it to avoid
// computing attributes for a record that would be dropped.
func (l *Logger) Enabled(level Level) bool { return level >= l.level.Level() }

// Trace logs at LevelTrace.
func (l *Logger) Trace(msg string, attrs ...Attr) { l.log(LevelTrace, msg, attrs, 0) }

// Debug logs at LevelDebug.
func (l *Logger) Debug(msg string, attrs ...Attr) { l.log(LevelDebug, msg, attrs, 0) }

// Info logs at LevelInfo.
func (l *Logger) Info(msg string, attrs ...Attr) { l.log(LevelInfo, msg, attrs, 0) }

// Notice logs at LevelNotice.
func (l *Logger) Notice(msg string, attrs ...Attr) { l.log(LevelNotice, msg, attrs, 0) }

// Warn logs at LevelWarn.
func (l *Logger) Warn(msg string, attrs ...Attr) { l.log(LevelWarn, msg, attrs, 0) }

// Error logs at LevelError.
func (l *Logger) Error(msg string, attrs ...Attr) { l.log(LevelError, msg, attrs, 0) }

// Fatal logs at LevelFatal and exits the process with status 1. The record
// is with the host before the exit.
func (l *Logger) Fatal(msg string, attrs ...Attr) {
	l.log(LevelFatal, msg, attrs, 0)
	os.Exit(1)
}

// Log logs at any level.
func (l *Logger) Log(level Level, msg string, attrs ...Attr) { l.log(level, msg, attrs, 0) }

// With returns a Logger that adds attrs to every record.
func (l *Logger) With(attrs ...Attr) *Logger {
	if len(attrs) == 0 {
		return l
	}
	l2 := l.clone()
	if n := len(l2.groups); n > 0 {
		g := &l2.groups[n-1]
		g.pre = append([]byte(nil), g.pre...)
		for _, a := range attrs {
			g.pre = record.AppendGroupAttr(g.pre, a)
		}
	} else {
		l2.pre = append([]byte(nil), l2.pre...)
		for _, a := range attrs {
			l2.pre = record.AppendAttr(l2.pre, a)
		}
	}
	return l2
}

// WithGroup returns a Logger that puts every attribute added afterwards, by
// With or in a log call, in a group named name. An empty name returns l.
func (l *Logger) WithGroup(name string) *Logger {
	if name == "" {
		return l
	}
	l2 := l.clone()
	l2.groups = append(l2.groups, openGroup{name: name})
	return l2
}

// Named returns a Logger whose name is l's name and name joined by a dot.
func (l *Logger) Named(name string) *Logger {
	l2 := l.clone()
	if l2.name == "" {
		l2.name = name
	} else {
		l2.name = l2.name + "." + name
	}
	return l2
}

// WithName returns a Logger like l but named name (Named appends to the
// current name; WithName replaces it).
func (l *Logger) WithName(name string) *Logger {
	l2 := l.clone()
	l2.name = name
	return l2
}

// Name returns the logger's name.
func (l *Logger) Name() string { return l.name }

func (l *Logger) clone() *Logger {
	l2 := *l
	l2.groups = append([]openGroup(nil), l.groups...)
	return &l2
}

type buffer struct{ b []byte }

var bufPool = sync.Pool{New: func() any { return &buffer{b: make([]byte, 0, 1024)} }}

// maxPooled keeps one huge record from pinning a huge buffer in the pool.
const maxPooled = 64 << 10

func (l *Logger) log(level Level, msg string, attrs []Attr, pc uintptr) {
	if !l.Enabled(level) {
		return
	}
	if l.addCaller && pc == 0 {
		// Here, where the depth is the same whichever path the record
		// then takes: Callers, log, Info/Warn/...: then the caller.
		var pcs [1]uintptr
		runtime.Callers(3, pcs[:])
		pc = pcs[0]
	}
	l.logAt(now(), level, msg, pc, attrs, nil)
}

// logAt encodes and sends a record of time t (Unix nanoseconds; 0 for
// none). Attributes come from attrs, or from r when it is a slog.Record
// (the slog handler's path).
func (l *Logger) logAt(t int64, level Level, msg string, pc uintptr, attrs []Attr, r *slog.Record) {
	if l.c.ring != nil && l.logInPlace(t, level, msg, pc, attrs, r) {
		return
	}
	buf := bufPool.Get().(*buffer)
	b := l.encode(buf.b[:0], t, level, msg, pc, attrs, r)
	if len(b)-ipc.HeaderSize > l.c.maxRecord {
		b = l.encodeTruncated(b[:0], t, level, msg, len(b)-ipc.HeaderSize)
	}
	ipc.PatchHeader(b, ipc.TypeRecord)
	l.c.writeRecord(b)
	if cap(b) <= maxPooled {
		buf.b = b
		bufPool.Put(buf)
	}
}

func (l *Logger) encode(b []byte, t int64, level Level, msg string, pc uintptr, attrs []Attr, r *slog.Record) []byte {
	b = append(b, 0, 0, 0, 0, 0) // frame header, patched once the size is known
	b = record.AppendHeadNanos(b, t, record.LevelFromSlog(level), msg, l.name)
	if l.addCaller && pc != 0 {
		fs := runtime.CallersFrames([]uintptr{pc})
		f, _ := fs.Next()
		b = record.AppendCaller(b, f.File, f.Line, f.Function)
	}
	b = append(b, l.pre...)
	var marks [8]record.GroupMark
	ms := marks[:0]
	for i := range l.groups {
		var m record.GroupMark
		b, m = record.OpenGroup(b, l.groups[i].name, i > 0)
		ms = append(ms, m)
		b = append(b, l.groups[i].pre...)
	}
	inGroup := len(l.groups) > 0
	if r != nil {
		b = appendRecordAttrs(b, r, inGroup)
	} else {
		// No closure here: one that captures b would keep it in memory
		// for the whole function (BENCHMARKS.md, measured design choices).
		for i := range attrs {
			if inGroup {
				b = record.AppendGroupAttrOf(b, &attrs[i])
			} else {
				b = record.AppendAttrOf(b, &attrs[i])
			}
		}
	}
	for i := len(ms) - 1; i >= 0; i-- {
		b = record.CloseGroup(b, ms[i])
	}
	return b
}

// appendRecordAttrs appends a slog.Record's attributes.
func appendRecordAttrs(b []byte, r *slog.Record, inGroup bool) []byte {
	r.Attrs(func(a Attr) bool {
		if inGroup {
			b = record.AppendGroupAttr(b, a)
		} else {
			b = record.AppendAttr(b, a)
		}
		return true
	})
	return b
}

// encodeTruncated replaces a record too large for the host with one that
// keeps its head and the start of its message, and says how large it was.
func (l *Logger) encodeTruncated(b []byte, t int64, level Level, msg string, size int) []byte {
	keep := l.c.maxRecord / 2
	if len(msg) > keep {
		for keep > 0 && !utf8.RuneStart(msg[keep]) {
			keep--
		}
		msg = msg[:keep]
	}
	b = append(b, 0, 0, 0, 0, 0)
	b = record.AppendHeadNanos(b, t, record.LevelFromSlog(level), msg, l.name)
	b = record.AppendAttr(b, slog.Int("logtk.truncated_from_bytes", size))
	return b
}

// Handler returns a slog.Handler that logs through l.
func (l *Logger) Handler() slog.Handler { return &Handler{l: l} }

// Handler is a slog.Handler writing through a Logger. It passes
// testing/slogtest.
type Handler struct{ l *Logger }

// NewHandler returns a slog.Handler logging through a new Logger made with
// opts. slog.New(sdk.NewHandler(sdk.Options{})) is the one line a worker
// already using slog needs.
func NewHandler(opts Options) *Handler { return &Handler{l: New(opts)} }

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool { return h.l.Enabled(level) }

// Handle implements slog.Handler.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	var t int64
	if !r.Time.IsZero() {
		t = r.Time.UnixNano()
	}
	h.l.logAt(t, r.Level, r.Message, r.PC, nil, &r)
	return nil
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler { return &Handler{l: h.l.With(attrs...)} }

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler { return &Handler{l: h.l.WithGroup(name)} }

// Logger returns the Logger h writes through.
func (h *Handler) Logger() *Logger { return h.l }
