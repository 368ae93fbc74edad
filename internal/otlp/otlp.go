// Package otlp turns OpenTelemetry logs (OTLP, the official
// go.opentelemetry.io/proto/otlp types) into logtk records, for the log
// server's OTLP/HTTP receiver (docs/otlp.md).
package otlp

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/record/textfmt"
)

// Unmarshal is proto.Unmarshal that takes invalid UTF-8 in string fields
// (which the OpenTelemetry SDKs of other languages and Collectors send),
// replacing it with U+FFFD, where proto.Unmarshal refuses the message.
func Unmarshal(b []byte, m proto.Message) error {
	err := proto.Unmarshal(b, m)
	if err == nil || !strings.Contains(err.Error(), "UTF-8") {
		return err
	}
	fixed, ok := sanitizeUTF8(b, m.ProtoReflect().Descriptor(), 0)
	if !ok {
		return err
	}
	proto.Reset(m)
	return proto.Unmarshal(fixed, m)
}

// sanitizeUTF8 rewrites the encoding b of a message of descriptor md with
// every string field's invalid UTF-8 replaced, in messages nested at
// most 100 deep; false if b is not an encoding it can walk.
func sanitizeUTF8(b []byte, md protoreflect.MessageDescriptor, depth int) ([]byte, bool) {
	if depth > 100 {
		return nil, false
	}
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		fd := md.Fields().ByNumber(num)
		if typ != protowire.BytesType || fd == nil || (fd.Kind() != protoreflect.StringKind && fd.Kind() != protoreflect.MessageKind) {
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if m < 0 {
				return nil, false
			}
			out = append(out, b[:n+m]...)
			b = b[n+m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return nil, false
		}
		if fd.Kind() == protoreflect.StringKind {
			v = bytes.ToValidUTF8(v, []byte("\uFFFD"))
		} else {
			var ok bool
			if v, ok = sanitizeUTF8(v, fd.Message(), depth+1); !ok {
				return nil, false
			}
		}
		out = protowire.AppendTag(out, num, typ)
		out = protowire.AppendBytes(out, v)
		b = b[n+m:]
	}
	return out, true
}

// ErrTooLarge is a request body (after gzip) over the limit.
var ErrTooLarge = errors.New("otlp: request larger than the limit")

// Decode reads an ExportLogsServiceRequest: protobuf
// ("application/x-protobuf") or JSON ("application/json"), gzip when
// encoding says so; at most max bytes once decompressed. It reads it as
// the LogsData it is on the wire (the OTLP specification makes the two
// messages the same), which spares the binary the gRPC service code the
// collector package brings.
func Decode(body io.Reader, contentType, encoding string, max int64) (*logs.LogsData, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, fmt.Errorf("otlp: gzip: %w", err)
		}
		defer zr.Close()
		body = zr
	default:
		return nil, fmt.Errorf("otlp: Content-Encoding %q is not supported (gzip or none)", encoding)
	}
	b, err := io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		return nil, fmt.Errorf("otlp: reading the request: %w", err)
	}
	if int64(len(b)) > max {
		return nil, ErrTooLarge
	}
	req := &logs.LogsData{}
	ct, _, _ := strings.Cut(strings.ToLower(contentType), ";")
	switch strings.TrimSpace(ct) {
	case "application/x-protobuf", "application/protobuf":
		err = Unmarshal(b, req)
	case "application/json":
		if !utf8.Valid(b) {
			// Replaced, as a protobuf body's strings are: JSON's own
			// characters are ASCII, so the structure is untouched.
			b = bytes.ToValidUTF8(b, []byte("\uFFFD"))
		}
		if b, err = hexIDs(b); err == nil {
			err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, req)
		}
	default:
		return nil, fmt.Errorf("otlp: Content-Type %q is not supported (application/x-protobuf or application/json)", contentType)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp: malformed request: %w", err)
	}
	return req, nil
}

// Each calls fn with every log record of req, encoded as a logtk
// record (docs/otlp.md), and its resource's service.name ("" when none).
// received stands in for a record with neither time nor observed time.
func Each(req *logs.LogsData, received time.Time, fn func(service string, rec []byte)) {
	var b []byte
	for _, rl := range req.GetResourceLogs() {
		resource := rl.GetResource().GetAttributes()
		service := ""
		for _, kv := range resource {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, sl := range rl.GetScopeLogs() {
			scope := sl.GetScope()
			for _, lr := range sl.GetLogRecords() {
				b = AppendRecord(b[:0], lr, scope, resource, received)
				fn(service, b)
			}
		}
	}
}

// AppendRecord appends the logtk record of one OTLP log record.
func AppendRecord(b []byte, lr *logs.LogRecord, scope *common.InstrumentationScope, resource []*common.KeyValue, received time.Time) []byte {
	ns := int64(lr.GetTimeUnixNano())
	if ns == 0 {
		ns = int64(lr.GetObservedTimeUnixNano())
	}
	if ns == 0 {
		ns = received.UnixNano()
	}
	msg := ""
	body := lr.GetBody()
	if sv, ok := body.GetValue().(*common.AnyValue_StringValue); ok {
		msg = sv.StringValue
	}
	// A severity outside OTLP's 0-24 (a negative one, or a number no
	// severity has) is kept as an attribute, the level left unspecified.
	sev := int32(lr.GetSeverityNumber())
	level := sev
	if sev < 0 || sev > 24 {
		level = 0
	}
	b = irecord.AppendHeadNanos(b, ns, level, validUTF8(msg), validUTF8(scope.GetName()))
	if level != sev {
		b = irecord.AppendAttr(b, slog.Int64("severity_number", int64(sev)))
	}
	if body != nil && msg == "" && body.GetValue() != nil {
		if _, isString := body.GetValue().(*common.AnyValue_StringValue); !isString {
			b = irecord.AppendAttr(b, attr("body", body))
		}
	}
	var id identity
	mine := make([]bool, len(lr.GetAttributes())) // the identity's
	for i, kv := range lr.GetAttributes() {
		mine[i] = id.take(kv)
	}
	// From logtk's otlp transport, a severity text that only names the
	// number says nothing more.
	if t := lr.GetSeverityText(); t != "" && !(id.any() && t == strings.TrimSpace(textfmt.LevelName(int32(lr.GetSeverityNumber())))) {
		b = irecord.AppendAttr(b, slog.String("severity_text", validUTF8(t)))
	}
	for i, kv := range lr.GetAttributes() {
		if !mine[i] {
			b = irecord.AppendAttr(b, attr(kv.GetKey(), kv.GetValue()))
		}
	}

	if id := lr.GetTraceId(); len(id) > 0 {
		b = irecord.AppendAttr(b, slog.String("trace_id", hex.EncodeToString(id)))
	}
	if id := lr.GetSpanId(); len(id) > 0 {
		b = irecord.AppendAttr(b, slog.String("span_id", hex.EncodeToString(id)))
	}
	if n := lr.GetEventName(); n != "" {
		b = irecord.AppendAttr(b, slog.String("event_name", validUTF8(n)))
	}
	if len(resource) > 0 {
		b = irecord.AppendAttr(b, group("resource", resource))
	}
	if scope != nil && (scope.GetVersion() != "" || len(scope.GetAttributes()) > 0) {
		sa := append([]*common.KeyValue{{Key: "version", Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: scope.GetVersion()}}}}, scope.GetAttributes()...)
		b = irecord.AppendAttr(b, group("scope", sa))
	}
	// A record logtk sent keeps its identity: stamped back.
	if id.worker != nil {
		b = irecord.AppendStampOrigin(b, *id.worker, uint32(id.index), id.pid, uint32(id.incarnation))
	}
	if id.seq != 0 || id.source != 0 {
		b = irecord.AppendStampArrival(b, uint64(id.seq), id.source, int64(lr.GetObservedTimeUnixNano()))
	}
	return b
}

// identity is what the logtk.* attributes of a record logtk's otlp
// transport sent say of its origin.
type identity struct {
	worker                       *string
	index, pid, incarnation, seq int64
	source                       int32
}

func (id *identity) any() bool { return id.worker != nil || id.seq != 0 || id.source != 0 }

var sources = map[string]int32{"sdk": record.SourceSDK, "stdout": record.SourceStdout, "stderr": record.SourceStderr, "host": record.SourceHost}

// take keeps kv if it is one of the identity's attributes, of its kind.
func (id *identity) take(kv *common.KeyValue) bool {
	v := kv.GetValue()
	iv, isInt := v.GetValue().(*common.AnyValue_IntValue)
	sv, isStr := v.GetValue().(*common.AnyValue_StringValue)
	switch kv.GetKey() {
	case "logtk.worker":
		if isStr && utf8.ValidString(sv.StringValue) {
			w := sv.StringValue
			id.worker = &w
			return true
		}
	case "logtk.worker_index":
		if isInt && iv.IntValue >= 0 && iv.IntValue <= math.MaxUint32 {
			id.index = iv.IntValue
			return true
		}
	case "logtk.incarnation":
		if isInt && iv.IntValue >= 0 && iv.IntValue <= math.MaxUint32 {
			id.incarnation = iv.IntValue
			return true
		}
	case "logtk.pid":
		if isInt {
			id.pid = iv.IntValue
			return true
		}
	case "logtk.seq":
		if isInt && iv.IntValue > 0 {
			id.seq = iv.IntValue
			return true
		}
	case "logtk.source":
		if isStr && sources[sv.StringValue] != 0 {
			id.source = sources[sv.StringValue]
			return true
		}
	}
	return false
}

func group(key string, kvs []*common.KeyValue) slog.Attr { return groupAt(key, kvs, 1) }

// maxDepth is how deep maps and arrays nest as groups; deeper, a value
// is kept as its OTLP/JSON text (a record holds groups 32 deep at most).
const maxDepth = 16

func groupAt(key string, kvs []*common.KeyValue, depth int) slog.Attr {
	as := make([]any, 0, len(kvs))
	for _, kv := range kvs {
		as = append(as, attrAt(kv.GetKey(), kv.GetValue(), depth))
	}
	return slog.Group(validUTF8(key), as...)
}

// attr maps an AnyValue onto the nearest attribute kind: strings, ints,
// doubles, bools and bytes as themselves, a kvlist as a group, an array
// as a group keyed "0", "1", ...
func attr(key string, v *common.AnyValue) slog.Attr { return attrAt(key, v, 1) }

func attrAt(key string, v *common.AnyValue, depth int) slog.Attr {
	key = validUTF8(key)
	switch v.GetValue().(type) {
	case *common.AnyValue_KvlistValue, *common.AnyValue_ArrayValue:
		if depth >= maxDepth {
			j, _ := protojson.Marshal(v)
			return slog.String(key, validUTF8(string(j)))
		}
	}
	switch x := v.GetValue().(type) {
	case *common.AnyValue_StringValue:
		return slog.String(key, validUTF8(x.StringValue))
	case *common.AnyValue_IntValue:
		return slog.Int64(key, x.IntValue)
	case *common.AnyValue_DoubleValue:
		if math.IsNaN(x.DoubleValue) || math.IsInf(x.DoubleValue, 0) {
			return slog.String(key, fmt.Sprint(x.DoubleValue))
		}
		return slog.Float64(key, x.DoubleValue)
	case *common.AnyValue_BoolValue:
		return slog.Bool(key, x.BoolValue)
	case *common.AnyValue_BytesValue:
		return slog.Any(key, x.BytesValue)
	case *common.AnyValue_KvlistValue:
		return groupAt(key, x.KvlistValue.GetValues(), depth+1)
	case *common.AnyValue_ArrayValue:
		as := make([]any, 0, len(x.ArrayValue.GetValues()))
		for i, e := range x.ArrayValue.GetValues() {
			as = append(as, attrAt(fmt.Sprint(i), e, depth+1))
		}
		return slog.Group(key, as...)
	}
	return slog.String(key, "")
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")))
}

// hexIDs rewrites the traceId and spanId of OTLP/JSON, which the spec
// writes in hexadecimal, into the base64 protojson reads bytes as.
func hexIDs(b []byte) ([]byte, error) {
	if !bytes.Contains(b, []byte(`"traceId"`)) && !bytes.Contains(b, []byte(`"spanId"`)) &&
		!bytes.Contains(b, []byte(`"trace_id"`)) && !bytes.Contains(b, []byte(`"span_id"`)) {
		return b, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var walk func(any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				switch k {
				case "traceId", "spanId", "trace_id", "span_id":
					if s, ok := e.(string); ok {
						id, err := hex.DecodeString(s)
						if err != nil {
							return fmt.Errorf("%s %q is not hexadecimal", k, s)
						}
						x[k] = base64.StdEncoding.EncodeToString(id)
					}
				default:
					if err := walk(e); err != nil {
						return err
					}
				}
			}
		case []any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}
