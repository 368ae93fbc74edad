package capture

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// JSONRecord is a JSON log line parsed into record fields.
type JSONRecord struct {
	Time    time.Time // zero if the line had none
	Level   slog.Level
	HasLvl  bool
	Message string
	Logger  string
	Attrs   []slog.Attr
}

// Well-known keys of common JSON loggers: slog, zap, zerolog, logrus,
// hclog (@-prefixed), bunyan/pino (numeric levels).
var (
	timeKeys   = []string{"time", "ts", "timestamp", "@timestamp", "t"}
	levelKeys  = []string{"level", "lvl", "severity", "@level"}
	msgKeys    = []string{"msg", "message", "@message"}
	loggerKeys = []string{"logger", "@module", "name"}
)

// ParseJSONLine parses a line holding one JSON object. It reports false if
// the line is not exactly one JSON object, in which case the caller keeps
// it as text. Key order is preserved.
func ParseJSONLine(line []byte) (JSONRecord, bool) {
	var r JSONRecord
	line = bytes.TrimSpace(line)
	if len(line) < 2 || line[0] != '{' || line[len(line)-1] != '}' || !json.Valid(line) {
		return r, false
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	attrs, ok := decodeObject(dec, 0)
	if !ok {
		return r, false
	}
	found := func(keys []string, a slog.Attr) bool {
		for _, k := range keys {
			if a.Key == k {
				return true
			}
		}
		return false
	}
	var gotTime, gotMsg, gotLogger bool
	for _, a := range attrs {
		switch {
		case !gotTime && found(timeKeys, a):
			if t, ok := parseTime(a.Value); ok {
				r.Time, gotTime = t, true
				continue
			}
		case !r.HasLvl && found(levelKeys, a):
			if l, ok := parseLevel(a.Value); ok {
				r.Level, r.HasLvl = l, true
				continue
			}
		case !gotMsg && found(msgKeys, a) && a.Value.Kind() == slog.KindString:
			r.Message, gotMsg = a.Value.String(), true
			continue
		case !gotLogger && found(loggerKeys, a) && a.Value.Kind() == slog.KindString:
			r.Logger, gotLogger = a.Value.String(), true
			continue
		}
		r.Attrs = append(r.Attrs, a)
	}
	return r, true
}

const maxJSONDepth = 32

func decodeObject(dec *json.Decoder, depth int) ([]slog.Attr, bool) {
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	return decodeMembers(dec, depth)
}

// decodeMembers decodes an object's members after its opening brace.
func decodeMembers(dec *json.Decoder, depth int) ([]slog.Attr, bool) {
	if depth > maxJSONDepth {
		return nil, false
	}
	var attrs []slog.Attr
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := kt.(string)
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v slog.Value
		switch t := t.(type) {
		case json.Delim:
			if t == '{' {
				g, ok := decodeMembers(dec, depth+1)
				if !ok {
					return nil, false
				}
				v = slog.GroupValue(g...)
			} else {
				arr, ok := decodeArray(dec, depth+1)
				if !ok {
					return nil, false
				}
				text, _ := json.Marshal(arr)
				v = slog.StringValue(string(text))
			}
		default:
			v = scalar(t)
		}
		attrs = append(attrs, slog.Attr{Key: key, Value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, false
	}
	return attrs, true
}

// decodeArray decodes an array's elements after its opening bracket, into
// plain Go values for re-encoding as text.
func decodeArray(dec *json.Decoder, depth int) ([]any, bool) {
	if depth > maxJSONDepth {
		return nil, false
	}
	arr := []any{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		switch t := t.(type) {
		case json.Delim:
			if t == '[' {
				sub, ok := decodeArray(dec, depth+1)
				if !ok {
					return nil, false
				}
				arr = append(arr, sub)
			} else {
				g, ok := decodeMembers(dec, depth+1)
				if !ok {
					return nil, false
				}
				m := make(map[string]any, len(g))
				for _, a := range g {
					m[a.Key] = a.Value.Any()
				}
				arr = append(arr, m)
			}
		default:
			arr = append(arr, t)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, false
	}
	return arr, true
}

func scalar(t json.Token) slog.Value {
	switch t := t.(type) {
	case string:
		return slog.StringValue(t)
	case bool:
		return slog.BoolValue(t)
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return slog.Int64Value(i)
		}
		if !strings.ContainsAny(string(t), ".eE") {
			// An integer too large for int64: uint64, or exact text.
			if u, err := strconv.ParseUint(string(t), 10, 64); err == nil {
				return slog.Uint64Value(u)
			}
			return slog.StringValue(string(t))
		}
		if f, err := t.Float64(); err == nil && !math.IsInf(f, 0) {
			return slog.Float64Value(f)
		}
		return slog.StringValue(string(t))
	}
	return slog.AnyValue(nil)
}

func parseTime(v slog.Value) (time.Time, bool) {
	switch v.Kind() {
	case slog.KindString:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z0700", "2006-01-02 15:04:05.000000000Z07:00"} {
			if t, err := time.Parse(layout, v.String()); err == nil {
				return t, true
			}
		}
	case slog.KindInt64:
		return unixAuto(float64(v.Int64())), true
	case slog.KindFloat64:
		return unixAuto(v.Float64()), true
	}
	return time.Time{}, false
}

// unixAuto reads a Unix timestamp in seconds, milliseconds, microseconds or
// nanoseconds, judged by magnitude.
func unixAuto(f float64) time.Time {
	switch {
	case f > 1e17:
		return time.Unix(0, int64(f))
	case f > 1e14:
		return time.UnixMicro(int64(f))
	case f > 1e11:
		return time.UnixMilli(int64(f))
	default:
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9))
	}
}

// parseLevel understands level names of the common loggers and the numeric
// levels of bunyan/pino (10 trace .. 60 fatal).
func parseLevel(v slog.Value) (slog.Level, bool) {
	if v.Kind() == slog.KindInt64 {
		switch n := v.Int64(); {
		case n >= 60:
			return 12, true
		case n >= 50:
			return slog.LevelError, true
		case n >= 40:
			return slog.LevelWarn, true
		case n >= 30:
			return slog.LevelInfo, true
		case n >= 20:
			return slog.LevelDebug, true
		default:
			return -8, true
		}
	}
	if v.Kind() != slog.KindString {
		return 0, false
	}
	s := strings.ToLower(v.String())
	base, off, _ := strings.Cut(s, "+")
	l, ok := map[string]slog.Level{
		"trace": -8, "debug": slog.LevelDebug, "info": slog.LevelInfo,
		"notice": 2, "warn": slog.LevelWarn, "warning": slog.LevelWarn,
		"error": slog.LevelError, "err": slog.LevelError, "crit": 12, "critical": 12,
		"fatal": 12, "panic": 12, "dpanic": slog.LevelError, "emerg": 12, "alert": 12,
	}[base]
	if !ok {
		return 0, false
	}
	if off != "" {
		if n, err := strconv.Atoi(off); err == nil {
			l += slog.Level(n)
		}
	}
	return l, true
}
