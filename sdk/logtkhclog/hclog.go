// Package logtkhclog adapts a logtk sdk.Logger to hashicorp/go-hclog's
// hclog.Logger, so that a worker already logging through hclog switches
// with one line:
//
//	logger := logtkhclog.New(sdk.New(sdk.Options{Name: "app"}))
//
// It lives in its own package so that workers not using hclog do not link
// it.
package logtkhclog

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/logtk/logtk/sdk"
)

// Logger is an hclog.Logger writing through an sdk.Logger.
type Logger struct {
	l       *sdk.Logger
	base    *sdk.Logger // without implied args, for ResetNamed
	level   *slog.LevelVar
	implied []any
}

var _ hclog.Logger = (*Logger)(nil)

// New returns an hclog.Logger writing through l. Its level starts at
// hclog.Info and is changed with SetLevel; l's own level still applies.
func New(l *sdk.Logger) *Logger {
	lv := &slog.LevelVar{}
	return &Logger{l: l, base: l, level: lv}
}

func toSlog(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return sdk.LevelTrace
	case hclog.Debug:
		return sdk.LevelDebug
	case hclog.Warn:
		return sdk.LevelWarn
	case hclog.Error:
		return sdk.LevelError
	case hclog.Off:
		return 1 << 10
	}
	return sdk.LevelInfo
}

func fromSlog(l slog.Level) hclog.Level {
	switch {
	case l >= 1<<10:
		return hclog.Off
	case l >= sdk.LevelError:
		return hclog.Error
	case l >= sdk.LevelWarn:
		return hclog.Warn
	case l >= sdk.LevelInfo:
		return hclog.Info
	case l >= sdk.LevelDebug:
		return hclog.Debug
	}
	return hclog.Trace
}

// attrs converts hclog's alternating key/value arguments. A missing final
// value is kept under EXTRA_VALUE_AT_END, as hclog itself does.
func attrs(args []any) []sdk.Attr {
	out := make([]sdk.Attr, 0, len(args)/2+1)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			out = append(out, slog.Any("EXTRA_VALUE_AT_END", args[i]))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		switch v := args[i+1].(type) {
		case hclog.Format:
			out = append(out, slog.String(key, fmt.Sprintf(v[0].(string), v[1:]...)))
		case hclog.Hex:
			out = append(out, slog.String(key, fmt.Sprintf("0x%x", int(v))))
		case hclog.Octal:
			out = append(out, slog.String(key, fmt.Sprintf("0%o", int(v))))
		case hclog.Binary:
			out = append(out, slog.String(key, fmt.Sprintf("0b%b", int(v))))
		case hclog.Quote:
			out = append(out, slog.String(key, fmt.Sprintf("%q", string(v))))
		case int:
			out = append(out, slog.Int(key, v))
		default:
			out = append(out, slog.Any(key, v))
		}
	}
	return out
}

// Log implements hclog.Logger.
func (h *Logger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	if level == hclog.Off || toSlog(level) < h.level.Level() {
		return
	}
	h.l.Log(toSlog(level), msg, attrs(args)...)
}

func (h *Logger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *Logger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *Logger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *Logger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *Logger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *Logger) enabled(l hclog.Level) bool {
	return toSlog(l) >= h.level.Level() && h.l.Enabled(toSlog(l))
}

func (h *Logger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *Logger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *Logger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *Logger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *Logger) IsError() bool { return h.enabled(hclog.Error) }

// ImpliedArgs implements hclog.Logger.
func (h *Logger) ImpliedArgs() []any { return append([]any(nil), h.implied...) }

// With implements hclog.Logger.
func (h *Logger) With(args ...any) hclog.Logger {
	return &Logger{l: h.l.With(attrs(args)...), base: h.base, level: h.level, implied: append(h.ImpliedArgs(), args...)}
}

// Name implements hclog.Logger.
func (h *Logger) Name() string { return h.l.Name() }

// Named implements hclog.Logger.
func (h *Logger) Named(name string) hclog.Logger {
	return &Logger{l: h.l.Named(name), base: h.base.Named(name), level: h.level, implied: h.implied}
}

// ResetNamed implements hclog.Logger.
func (h *Logger) ResetNamed(name string) hclog.Logger {
	b := h.base.WithName(name)
	return &Logger{l: b.With(attrs(h.implied)...), base: b, level: h.level, implied: h.implied}
}

// SetLevel implements hclog.Logger. The level is shared with the loggers
// derived from this one.
func (h *Logger) SetLevel(level hclog.Level) { h.level.Set(toSlog(level)) }

// GetLevel implements hclog.Logger.
func (h *Logger) GetLevel() hclog.Level { return fromSlog(h.level.Level()) }

// StandardLogger implements hclog.Logger.
func (h *Logger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

// StandardWriter implements hclog.Logger: each line written becomes a record,
// at info level or, with InferLevels, at the level its "[LEVEL]" prefix
// names.
func (h *Logger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	if opts == nil {
		opts = &hclog.StandardLoggerOptions{}
	}
	return &stdWriter{h: h, opts: *opts}
}

type stdWriter struct {
	h    *Logger
	opts hclog.StandardLoggerOptions
}

func (w *stdWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte{'\n'}) {
		s := string(line)
		level := hclog.Info
		if w.opts.ForceLevel != hclog.NoLevel {
			level = w.opts.ForceLevel
		} else if w.opts.InferLevels {
			for _, c := range []struct {
				p string
				l hclog.Level
			}{{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info}, {"[WARN]", hclog.Warn}, {"[ERROR]", hclog.Error}, {"[ERR]", hclog.Error}} {
				if strings.HasPrefix(s, c.p) {
					level, s = c.l, strings.TrimSpace(s[len(c.p):])
					break
				}
			}
		}
		w.h.Log(level, s)
	}
	return len(p), nil
}
