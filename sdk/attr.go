package sdk

import (
	"log/slog"
	"time"
)

// Attr is a key/value pair. It is log/slog's Attr, so values made for slog
// work here and the reverse.
type Attr = slog.Attr

// Level is a record's severity, on slog's scale so that slog levels convert
// without a table.
type Level = slog.Level

// Levels. Trace, notice and fatal extend slog's four.
const (
	LevelTrace  Level = -8
	LevelDebug  Level = slog.LevelDebug
	LevelInfo   Level = slog.LevelInfo
	LevelNotice Level = 2
	LevelWarn   Level = slog.LevelWarn
	LevelError  Level = slog.LevelError
	LevelFatal  Level = 12
)

// String returns an Attr for a string value.
func String(key, value string) Attr { return slog.String(key, value) }

// Int returns an Attr for an int value.
func Int(key string, value int) Attr { return slog.Int64(key, int64(value)) }

// Int64 returns an Attr for an int64 value.
func Int64(key string, value int64) Attr { return slog.Int64(key, value) }

// Uint64 returns an Attr for a uint64 value.
func Uint64(key string, value uint64) Attr { return slog.Uint64(key, value) }

// Float64 returns an Attr for a float64 value.
func Float64(key string, value float64) Attr { return slog.Float64(key, value) }

// Bool returns an Attr for a bool value.
func Bool(key string, value bool) Attr { return slog.Bool(key, value) }

// Bytes returns an Attr for a byte slice, carried as bytes (not text).
func Bytes(key string, value []byte) Attr { return slog.Any(key, value) }

// Time returns an Attr for a time value.
func Time(key string, value time.Time) Attr { return slog.Time(key, value) }

// Duration returns an Attr for a duration value.
func Duration(key string, value time.Duration) Attr { return slog.Duration(key, value) }

// Group returns an Attr holding attrs under key.
func Group(key string, attrs ...Attr) Attr { return Attr{Key: key, Value: slog.GroupValue(attrs...)} }

// Err returns an Attr with key "error" holding err's text.
func Err(err error) Attr { return slog.Any("error", err) }

// Any returns an Attr for any value. Types without a native encoding are
// sent as their fmt "%+v" text.
func Any(key string, value any) Attr { return slog.Any(key, value) }
