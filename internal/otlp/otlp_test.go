package otlp

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/record"
)

func str(s string) *common.AnyValue {
	return &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: s}}
}

// TestMapping: every kind of value lands as the nearest attribute, and
// the records validate.
func TestMapping(t *testing.T) {
	req := &logs.LogsData{ResourceLogs: []*logs.ResourceLogs{{
		Resource: &resource.Resource{Attributes: []*common.KeyValue{{Key: "service.name", Value: str("api")}}},
		ScopeLogs: []*logs.ScopeLogs{{
			Scope: &common.InstrumentationScope{Name: "db", Version: "2"},
			LogRecords: []*logs.LogRecord{{
				ObservedTimeUnixNano: 1700000000000000000,
				SeverityNumber:       logs.SeverityNumber_SEVERITY_NUMBER_ERROR,
				Body:                 &common.AnyValue{Value: &common.AnyValue_KvlistValue{KvlistValue: &common.KeyValueList{Values: []*common.KeyValue{{Key: "event", Value: str("x")}}}}},
				Attributes: []*common.KeyValue{
					{Key: "nan", Value: &common.AnyValue{Value: &common.AnyValue_DoubleValue{DoubleValue: math.NaN()}}},
					{Key: "bytes", Value: &common.AnyValue{Value: &common.AnyValue_BytesValue{BytesValue: []byte{1, 2}}}},
					{Key: "list", Value: &common.AnyValue{Value: &common.AnyValue_ArrayValue{ArrayValue: &common.ArrayValue{Values: []*common.AnyValue{str("a"), str("b")}}}}},
					{Key: "bad\xff", Value: str("v\xfe")},
				},
			}},
		}},
	}}}
	n := 0
	Each(req, time.Now(), func(service string, rec []byte) {
		n++
		if service != "api" {
			t.Errorf("service %q", service)
		}
		if err := irecord.Validate(rec); err != nil {
			t.Fatal(err)
		}
		var r record.Record
		r.Parse(rec)
		if r.Level != record.LevelError || string(r.Logger) != "db" || r.TimeUnixNano != 1700000000000000000 {
			t.Errorf("record level %d logger %q time %d", r.Level, r.Logger, r.TimeUnixNano)
		}
		keys := map[string]record.Kind{}
		var a record.Attr
		for it := r.Attrs(); it.Next(&a); {
			keys[string(a.Key)] = a.Kind
		}
		for k, kind := range map[string]record.Kind{"body": record.KindGroup, "nan": record.KindString, "bytes": record.KindBytes, "list": record.KindGroup, "resource": record.KindGroup, "scope": record.KindGroup} {
			if keys[k] != kind {
				t.Errorf("attribute %s: kind %v, want %v (%v)", k, keys[k], kind, keys)
			}
		}
	})
	if n != 1 {
		t.Fatalf("%d records", n)
	}
}

func FuzzDecode(f *testing.F) {
	pb, _ := proto.Marshal(&collogs.ExportLogsServiceRequest{ResourceLogs: []*logs.ResourceLogs{{ScopeLogs: []*logs.ScopeLogs{{LogRecords: []*logs.LogRecord{{Body: str("x")}}}}}}})
	f.Add(pb, false)
	f.Add([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"},"traceId":"00ff"}]}]}]}`), true)
	f.Fuzz(func(t *testing.T, b []byte, isJSON bool) {
		ct := "application/x-protobuf"
		if isJSON {
			ct = "application/json"
		}
		req, err := Decode(bytes.NewReader(b), ct, "", 1<<20)
		if err != nil {
			return
		}
		Each(req, time.Now(), func(_ string, rec []byte) {
			if err := irecord.Validate(rec); err != nil {
				t.Fatalf("a record that does not validate: %v", err)
			}
		})
	})
}

// TestDeepNesting: maps nested past what a record holds are kept as
// their JSON text from maxDepth down, and the record validates.
func TestDeepNesting(t *testing.T) {
	v := str("leaf")
	for range 3000 {
		v = &common.AnyValue{Value: &common.AnyValue_KvlistValue{KvlistValue: &common.KeyValueList{Values: []*common.KeyValue{{Key: "k", Value: v}}}}}
	}
	lr := &logs.LogRecord{Body: str("deep"), Attributes: []*common.KeyValue{{Key: "a", Value: v}}}
	rec := AppendRecord(nil, lr, nil, []*common.KeyValue{{Key: "r", Value: v}}, time.Now())
	if err := irecord.Validate(rec); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeInvalidUTF8AndSeverity: invalid UTF-8 in a protobuf or JSON
// request is replaced, not refused; a severity number outside 0-24 leaves
// the level unspecified and is kept as an attribute.
func TestDecodeInvalidUTF8AndSeverity(t *testing.T) {
	json := "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"severityNumber\":-3,\"body\":{\"stringValue\":\"caf\xe9\"}}]}]}]}"
	req, err := Decode(strings.NewReader(json), "application/json", "", 1<<20)
	if err != nil {
		t.Fatalf("JSON with invalid UTF-8: %v", err)
	}
	var rec []byte
	Each(req, time.Unix(1, 0), func(_ string, r []byte) { rec = append(rec[:0], r...) })
	var v record.Record
	v.Parse(rec)
	var a record.Attr
	sev := int64(0)
	for it := v.Attrs(); it.Next(&a); {
		if string(a.Key) == "severity_number" {
			sev = a.Int()
		}
	}
	if string(v.Message) != "caf\uFFFD" || v.Level != 0 || sev != -3 {
		t.Fatalf("message %q level %d severity_number %d", v.Message, v.Level, sev)
	}
	pb := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), // resource_logs
		protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), // scope_logs
			protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), // log_records
				protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), // body
					protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("x\xffy"))))))
	req, err = Decode(bytes.NewReader(pb), "application/x-protobuf", "", 1<<20)
	if err != nil {
		t.Fatalf("protobuf with invalid UTF-8: %v", err)
	}
	if got := req.ResourceLogs[0].ScopeLogs[0].LogRecords[0].Body.GetStringValue(); got != "x\uFFFDy" {
		t.Fatalf("body %q", got)
	}
}
