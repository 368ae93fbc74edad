package protobuf_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	irecord "github.com/logtk/logtk/internal/record"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/logtk/logtk/internal/goldentest"
	"github.com/logtk/logtk/plugins/protobuf"
	"github.com/logtk/logtk/plugins/protobuf/protobuftest"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/sdk/plugin"
	"github.com/logtk/logtk/sdk/plugintest"
)

func format(t *testing.T, f *protobuf.Formatter, rec []byte) []byte {
	t.Helper()
	var v plugin.Record
	if !v.Parse(rec) {
		t.Fatal("bad sample")
	}
	out, err := f.Format(nil, &v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOwnSchema: by default the output is logtk.v1.Record, byte for byte
// the record the host holds.
func TestOwnSchema(t *testing.T) {
	f := protobuf.New()
	for _, rec := range plugintest.SampleRecords() {
		out := format(t, f, rec)
		if !bytes.Equal(out, rec) {
			t.Fatal("output differs from the record")
		}
		var r logtkv1.Record
		if err := proto.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
	}
}

// userSchema is protobuftest.UserSchema for a test.
func userSchema(t *testing.T) ([]byte, protoreflect.MessageDescriptor) {
	t.Helper()
	b, md, err := protobuftest.UserSchema()
	if err != nil {
		t.Fatal(err)
	}
	return b, md
}

func configure(t *testing.T, f *protobuf.Formatter, schema []byte, message string) error {
	cfg, _ := json.Marshal(map[string]any{"schema": schema, "message": message})
	return f.Configure(cfg)
}

// TestUserSchema maps the sample records onto a user's message and checks
// the result with the real protobuf library.
func TestUserSchema(t *testing.T) {
	schema, md := userSchema(t)
	f := protobuf.New()
	if err := configure(t, f, schema, "cluster.LoggableMessage"); err != nil {
		t.Fatal(err)
	}
	rec := plugintest.SampleRecords()[0]
	out := format(t, f, rec)
	msg := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(out, msg); err != nil {
		t.Fatalf("output does not decode as cluster.LoggableMessage: %v", err)
	}
	get := func(name string) protoreflect.Value { return msg.Get(md.Fields().ByName(protoreflect.Name(name))) }
	ts := get("time").Message()
	if sec, nanos := ts.Get(ts.Descriptor().Fields().ByName("seconds")).Int(), ts.Get(ts.Descriptor().Fields().ByName("nanos")).Int(); sec != 1795766400 || nanos != 123456789 {
		t.Errorf("time = %d.%09d", sec, nanos)
	}
	for name, want := range map[string]any{
		"level": "INFO", "message": "request served", "worker": "web", "seq": uint64(1),
		"status": int32(200), "path": "/api/v1/users", "ratio": 0.25, "pid": int64(4242),
	} {
		if got := get(name).Interface(); got != want {
			t.Errorf("%s = %v (%T), want %v (%T)", name, got, got, want, want)
		}
	}
	attrs := map[string]string{}
	get("attrs").Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		attrs[k.String()] = v.String()
		return true
	})
	for k, want := range map[string]string{"bytes": "1099511627776", "cached": "false", "client.ip": "10.1.2.3", "client.geo.country": "NZ", "elapsed": "1.5ms", "token": "base64:3q2+7w=="} {
		if attrs[k] != want {
			t.Errorf("attrs[%q] = %q, want %q (attrs: %v)", k, attrs[k], want, attrs)
		}
	}
	if _, ok := attrs["status"]; ok {
		t.Error("status went to attrs although it has a field")
	}
	if s := get("started").Message(); s.Get(s.Descriptor().Fields().ByName("seconds")).Int() != 1795766399 {
		t.Error("time attribute not mapped onto a Timestamp field")
	}
}

// TestTextSchema: numbers, times, flags and byte strings go as text into
// string fields, as the text formatter writes them.
func TestTextSchema(t *testing.T) {
	schema, md, err := protobuftest.TextSchema()
	if err != nil {
		t.Fatal(err)
	}
	f := protobuf.New()
	if err := configure(t, f, schema, protobuftest.TextMessage); err != nil {
		t.Fatal(err)
	}
	msg := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(format(t, f, plugintest.SampleRecords()[0]), msg); err != nil {
		t.Fatalf("output does not decode as %s: %v", protobuftest.TextMessage, err)
	}
	for name, want := range map[string]string{
		"time": "2026-11-27T08:00:00.123456789Z", "level": "INFO", "worker_index": "1", "pid": "4242", "seq": "1",
		"status": "200", "bytes": "1099511627776", "ratio": "0.25", "cached": "false", "token": "3q2+7w==",
		"started": "2026-11-27T07:59:59.123456789Z", "elapsed": "1.5ms",
	} {
		if got := msg.Get(md.Fields().ByName(protoreflect.Name(name))).String(); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// A source the formatter does not know (a record from a newer
	// writer, or a hostile one) is left out, not a crash (it indexed a
	// table with a negative number once).
	for _, src := range []int32{-1, 5, 1 << 30} {
		rec := irecord.AppendStampArrival(irecord.AppendHead(nil, time.Time{}, 9, "m", ""), 1, src, 0)
		msg = dynamicpb.NewMessage(md)
		if err := proto.Unmarshal(format(t, f, rec), msg); err != nil {
			t.Fatal(err)
		}
		if got := msg.Get(md.Fields().ByName("source")).String(); got != "" {
			t.Errorf("source %d written as %q", src, got)
		}
	}
	// What the log server stamps goes into fields of the same names.
	stored := plugintest.SampleRecords()[4]
	msg = dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(format(t, f, stored), msg); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"sender": "web-01", "hostname": "web-01.example.com", "application": "shop", "message": "order placed"} {
		if got := msg.Get(md.Fields().ByName(protoreflect.Name(name))).String(); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	schema, _ := userSchema(t)
	tests := []struct {
		name, message, want string
		schema              []byte
	}{
		{"unknown message", "cluster.Nope", `schema has no message "cluster.Nope"`, schema},
		{"not a descriptor set", "x.Y", "schema is not a FileDescriptorSet", []byte{0xff, 0xff}},
		{"schema without message", "", "schema given without message", schema},
		{"message without schema", "x.Y", "given without a schema", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := configure(t, protobuf.New(), tc.schema, tc.message)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestFormatDoesNotAllocate: no sample record makes Format allocate, with
// a user schema or with one that takes everything as text.
func TestFormatDoesNotAllocate(t *testing.T) {
	user, _ := userSchema(t)
	text, _, err := protobuftest.TextSchema()
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range []struct {
		schema  []byte
		message string
	}{{user, protobuftest.Message}, {text, protobuftest.TextMessage}} {
		f := protobuf.New()
		if err := configure(t, f, sc.schema, sc.message); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 0, 4096)
		for i, rec := range plugintest.SampleRecords() {
			var v plugin.Record
			v.Parse(rec)
			f.Format(buf[:0], &v) // scratch buffers grow once
			if n := testing.AllocsPerRun(100, func() { f.Format(buf[:0], &v) }); n != 0 {
				t.Errorf("%s: Format allocated %.0f times for sample record %d", sc.message, n, i)
			}
		}
	}
}

// FuzzSchema: the schema is a file the user points at; no content makes
// Configure panic.
func FuzzSchema(f *testing.F) {
	f.Add([]byte{0x0a, 0x02, 0x22, 0x00}, "x.Y")
	f.Fuzz(func(t *testing.T, schema []byte, message string) {
		configure(t, protobuf.New(), schema, message)
	})
}

func TestGolden(t *testing.T) {
	goldentest.Run(t, func() plugin.Formatter { return protobuf.New() })
}

// TestOwnSchemaBatchIsACopy: formatting a whole batch with logtk's own
// schema is one copy, and equals formatting record by record.
func TestOwnSchemaBatchIsACopy(t *testing.T) {
	var batch []byte
	for _, r := range plugintest.SampleRecords() {
		batch = plugin.AppendEntry(batch, r)
	}
	got, err := plugin.FormatBatch(protobuf.New(), nil, batch)
	if err != nil || !bytes.Equal(got, batch) {
		t.Fatalf("batch path: %v, equal=%v", err, bytes.Equal(got, batch))
	}
	schema, _ := userSchema(t)
	f := protobuf.New()
	if err := configure(t, f, schema, "cluster.LoggableMessage"); err != nil {
		t.Fatal(err)
	}
	if f.PassThrough() {
		t.Fatal("a user schema takes the copy path")
	}
	if got, err := plugin.FormatBatch(f, nil, batch); err != nil || bytes.Equal(got, batch) {
		t.Fatalf("a user schema's batch came out as the records (err %v)", err)
	}
}
