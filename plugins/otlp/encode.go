package otlp

import (
	"encoding/hex"
	"math"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/record/textfmt"
)

// The mapping of a record to an OTLP log record (docs/otlp.md, "Out of
// logtk"): encoded with protowire, field by field, after the
// opentelemetry-proto messages (ExportLogsServiceRequest, ResourceLogs,
// ScopeLogs, LogRecord, KeyValue, AnyValue); a test decodes what it
// writes with the official Go types.

// Field numbers of opentelemetry-proto's logs and common messages.
const (
	reqResourceLogs   = 1 // ExportLogsServiceRequest
	rlResource        = 1 // ResourceLogs
	rlScopeLogs       = 2
	resAttributes     = 1 // Resource
	slScope           = 1 // ScopeLogs
	slLogRecords      = 2
	scopeName         = 1 // InstrumentationScope
	lrTime            = 1 // LogRecord
	lrSeverityNumber  = 2
	lrSeverityText    = 3
	lrBody            = 5
	lrAttributes      = 6
	lrTraceID         = 9
	lrSpanID          = 10
	lrObservedTime    = 11
	lrEventName       = 12
	kvKey             = 1 // KeyValue
	kvValue           = 2
	avString          = 1 // AnyValue
	avBool            = 2
	avInt             = 3
	avDouble          = 4
	avKvlist          = 6
	avBytes           = 7
	kvlValues         = 1 // KeyValueList
	maxDepth          = 32
	identityKeyPrefix = "logtk."
)

// sourceNames name a record's source in the logtk.source attribute.
var sourceNames = map[int32]string{record.SourceSDK: "sdk", record.SourceStdout: "stdout", record.SourceStderr: "stderr", record.SourceHost: "host"}

// encoder gathers a batch's records by resource (service.name and
// host.name) and scope (the logger), in the order they first appear.
type encoder struct {
	resource  map[string]string // configured attributes of every resource
	resources []*resourceLogs
	records   int
	scratch   []byte
}

type resourceLogs struct {
	service, host string
	scopes        []*scopeLogs
}

type scopeLogs struct {
	name    string
	records []byte // LogRecord fields, each as a length-delimited field 2
}

func (e *encoder) reset() {
	e.resources = e.resources[:0]
	e.records = 0
}

func (e *encoder) add(r *record.Record) {
	service := string(r.Worker)
	if service == "" {
		service = string(r.Application)
	}
	host := string(r.Hostname)
	var rl *resourceLogs
	for _, x := range e.resources {
		if x.service == service && x.host == host {
			rl = x
			break
		}
	}
	if rl == nil {
		rl = &resourceLogs{service: service, host: host}
		e.resources = append(e.resources, rl)
	}
	var sl *scopeLogs
	for _, x := range rl.scopes {
		if x.name == string(r.Logger) {
			sl = x
			break
		}
	}
	if sl == nil {
		sl = &scopeLogs{name: string(r.Logger)}
		rl.scopes = append(rl.scopes, sl)
	}
	e.scratch = appendLogRecord(e.scratch[:0], r)
	sl.records = protowire.AppendTag(sl.records, slLogRecords, protowire.BytesType)
	sl.records = protowire.AppendBytes(sl.records, e.scratch)
	e.records++
}

// appendRequest appends the ExportLogsServiceRequest of what was added.
func (e *encoder) appendRequest(b []byte) []byte {
	for _, rl := range e.resources {
		var res []byte
		if rl.service != "" {
			res = appendKV(res, resAttributes, "service.name", func(v []byte) []byte { return appendStringValue(v, rl.service) })
		}
		if rl.host != "" {
			res = appendKV(res, resAttributes, "host.name", func(v []byte) []byte { return appendStringValue(v, rl.host) })
		}
		for k, v := range e.resource {
			res = appendKV(res, resAttributes, k, func(b []byte) []byte { return appendStringValue(b, v) })
		}
		var m []byte
		m = protowire.AppendTag(m, rlResource, protowire.BytesType)
		m = protowire.AppendBytes(m, res)
		for _, sl := range rl.scopes {
			var s []byte
			if sl.name != "" {
				var scope []byte
				scope = protowire.AppendTag(scope, scopeName, protowire.BytesType)
				scope = protowire.AppendString(scope, sl.name)
				s = protowire.AppendTag(s, slScope, protowire.BytesType)
				s = protowire.AppendBytes(s, scope)
			}
			s = append(s, sl.records...)
			m = protowire.AppendTag(m, rlScopeLogs, protowire.BytesType)
			m = protowire.AppendBytes(m, s)
		}
		b = protowire.AppendTag(b, reqResourceLogs, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b
}

// appendLogRecord appends the fields of r's LogRecord.
func appendLogRecord(b []byte, r *record.Record) []byte {
	if r.TimeUnixNano != 0 {
		b = protowire.AppendTag(b, lrTime, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, uint64(r.TimeUnixNano))
	}
	if r.Level != 0 {
		b = protowire.AppendTag(b, lrSeverityNumber, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(r.Level))
		b = protowire.AppendTag(b, lrSeverityText, protowire.BytesType)
		b = protowire.AppendString(b, strings.TrimSpace(textfmt.LevelName(r.Level)))
	}
	if len(r.Message) > 0 {
		b = protowire.AppendTag(b, lrBody, protowire.BytesType)
		b = protowire.AppendBytes(b, appendStringValue(nil, string(r.Message)))
	}
	var a record.Attr
	for it := r.Attrs(); it.Next(&a); {
		// Ids and an event name the receiver sent as attributes go back
		// to their fields.
		switch {
		case string(a.Key) == "trace_id" && a.Kind == record.KindString && isHexID(a.Data, 16):
			id, _ := hex.DecodeString(string(a.Data))
			b = protowire.AppendTag(b, lrTraceID, protowire.BytesType)
			b = protowire.AppendBytes(b, id)
			continue
		case string(a.Key) == "span_id" && a.Kind == record.KindString && isHexID(a.Data, 8):
			id, _ := hex.DecodeString(string(a.Data))
			b = protowire.AppendTag(b, lrSpanID, protowire.BytesType)
			b = protowire.AppendBytes(b, id)
			continue
		case string(a.Key) == "event_name" && a.Kind == record.KindString:
			b = protowire.AppendTag(b, lrEventName, protowire.BytesType)
			b = protowire.AppendBytes(b, a.Data)
			continue
		}
		b = appendAttr(b, lrAttributes, &a, 1)
	}
	// The record's identity, for a receiver that keeps it (logtk's otlp
	// receiver stamps it back).
	str := func(b []byte, k, v string) []byte {
		return appendKV(b, lrAttributes, k, func(x []byte) []byte { return appendStringValue(x, v) })
	}
	num := func(b []byte, k string, v int64) []byte {
		return appendKV(b, lrAttributes, k, func(x []byte) []byte { return appendIntValue(x, v) })
	}
	if len(r.Worker) > 0 {
		b = str(b, "logtk.worker", string(r.Worker))
		b = num(b, "logtk.worker_index", int64(r.WorkerIndex))
		b = num(b, "logtk.incarnation", int64(r.Incarnation))
	}
	if r.PID != 0 {
		b = num(b, "logtk.pid", r.PID)
	}
	if r.Seq != 0 {
		b = num(b, "logtk.seq", int64(r.Seq))
	}
	if s := sourceNames[r.Source]; s != "" {
		b = str(b, "logtk.source", s)
	}
	if len(r.Sender) > 0 {
		b = str(b, "logtk.sender", string(r.Sender))
	}
	if len(r.Application) > 0 {
		b = str(b, "logtk.application", string(r.Application))
	}
	if r.Received != 0 {
		b = protowire.AppendTag(b, lrObservedTime, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, uint64(r.Received))
	}
	return b
}

func isHexID(s []byte, n int) bool {
	if len(s) != 2*n {
		return false
	}
	_, err := hex.DecodeString(string(s))
	return err == nil
}

// appendKV appends a KeyValue as field num, its value from value.
func appendKV(b []byte, num protowire.Number, key string, value func([]byte) []byte) []byte {
	var kv []byte
	kv = protowire.AppendTag(kv, kvKey, protowire.BytesType)
	kv = protowire.AppendString(kv, key)
	kv = protowire.AppendTag(kv, kvValue, protowire.BytesType)
	kv = protowire.AppendBytes(kv, value(nil))
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, kv)
}

func appendStringValue(b []byte, s string) []byte {
	b = protowire.AppendTag(b, avString, protowire.BytesType)
	return protowire.AppendString(b, strings.ToValidUTF8(s, "\uFFFD"))
}

func appendIntValue(b []byte, n int64) []byte {
	b = protowire.AppendTag(b, avInt, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(n))
}

// appendAttr appends an attribute as a KeyValue, as field num.
func appendAttr(b []byte, num protowire.Number, a *record.Attr, depth int) []byte {
	return appendKV(b, num, string(a.Key), func(v []byte) []byte { return appendValue(v, a, depth) })
}

// appendValue appends an attribute's value as an AnyValue: each kind as
// the nearest OTLP one (docs/otlp.md).
func appendValue(b []byte, a *record.Attr, depth int) []byte {
	switch a.Kind {
	case record.KindString:
		return appendStringValue(b, string(a.Data))
	case record.KindInt, record.KindTime, record.KindDuration:
		return appendIntValue(b, a.Int())
	case record.KindUint:
		if a.Uint() > math.MaxInt64 {
			return appendStringValue(b, string(textfmt.AppendValue(nil, a)))
		}
		return appendIntValue(b, int64(a.Uint()))
	case record.KindFloat:
		b = protowire.AppendTag(b, avDouble, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(a.Float()))
	case record.KindBool:
		b = protowire.AppendTag(b, avBool, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(a.Bool()))
	case record.KindBytes:
		b = protowire.AppendTag(b, avBytes, protowire.BytesType)
		return protowire.AppendBytes(b, a.Data)
	case record.KindGroup:
		var list []byte
		if depth < maxDepth {
			var g record.Attr
			for it := a.Group(); it.Next(&g); {
				list = appendAttr(list, kvlValues, &g, depth+1)
			}
		}
		b = protowire.AppendTag(b, avKvlist, protowire.BytesType)
		return protowire.AppendBytes(b, list)
	}
	return b // KindNone: an empty AnyValue
}

// partialSuccess reads an ExportLogsServiceResponse's partial_success:
// how many records the receiver rejected, and why. Anything it cannot
// read counts as none rejected (the answer was a 2xx).
func partialSuccess(b []byte) (rejected int64, msg string) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, ""
		}
		b = b[n:]
		if num != 1 || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return 0, ""
			}
			b = b[n:]
			continue
		}
		ps, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, ""
		}
		b = b[n:]
		for len(ps) > 0 {
			num, typ, n := protowire.ConsumeTag(ps)
			if n < 0 {
				return rejected, msg
			}
			ps = ps[n:]
			switch {
			case num == 1 && typ == protowire.VarintType:
				v, n := protowire.ConsumeVarint(ps)
				if n < 0 {
					return rejected, msg
				}
				rejected, ps = int64(v), ps[n:]
			case num == 2 && typ == protowire.BytesType:
				v, n := protowire.ConsumeBytes(ps)
				if n < 0 {
					return rejected, msg
				}
				msg, ps = string(v), ps[n:]
			default:
				if n = protowire.ConsumeFieldValue(num, typ, ps); n < 0 {
					return rejected, msg
				}
				ps = ps[n:]
			}
		}
	}
	return rejected, msg
}
