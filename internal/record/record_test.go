package record

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/google/go-cmp/cmp"

	"github.com/logtk/logtk/internal/recordwire"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	pubrecord "github.com/logtk/logtk/record"
)

type stringer struct{}

func (stringer) String() string { return "stringer!" }

type valuer struct{}

func (valuer) LogValue() slog.Value { return slog.StringValue("resolved") }

func TestEncodeMatchesGeneratedCode(t *testing.T) {
	ts := time.Unix(1700000000, 123456789)
	long := strings.Repeat("x", 300) // forces multi-byte lengths in endLen
	sattr := func(k, v string) *logtkv1.Attr { return &logtkv1.Attr{Key: k, Value: &logtkv1.Attr_Str{Str: v}} }
	group := func(k string, as ...*logtkv1.Attr) *logtkv1.Attr {
		return &logtkv1.Attr{Key: k, Value: &logtkv1.Attr_Group{Group: &logtkv1.Group{Attrs: as}}}
	}
	tests := []struct {
		name  string
		attrs []slog.Attr
		want  []*logtkv1.Attr
	}{
		{name: "no attrs"},
		{name: "scalars", attrs: []slog.Attr{
			slog.String("s", "v"), slog.Int("i", -5), slog.Uint64("u", 1<<63), slog.Float64("f", 2.5),
			slog.Bool("b", true), slog.Any("by", []byte{0, 1, 2}), slog.Time("t", ts), slog.Duration("d", -time.Second),
		}, want: []*logtkv1.Attr{
			sattr("s", "v"), {Key: "i", Value: &logtkv1.Attr_Int{Int: -5}}, {Key: "u", Value: &logtkv1.Attr_Uint{Uint: 1 << 63}},
			{Key: "f", Value: &logtkv1.Attr_Float{Float: 2.5}}, {Key: "b", Value: &logtkv1.Attr_Bool{Bool: true}},
			{Key: "by", Value: &logtkv1.Attr_Bytes{Bytes: []byte{0, 1, 2}}}, {Key: "t", Value: &logtkv1.Attr_TimeUnixNano{TimeUnixNano: ts.UnixNano()}},
			{Key: "d", Value: &logtkv1.Attr_DurationNanos{DurationNanos: -int64(time.Second)}},
		}},
		{name: "long values", attrs: []slog.Attr{slog.String(long, long)}, want: []*logtkv1.Attr{sattr(long, long)}},
		{name: "any values", attrs: []slog.Attr{slog.Any("e", errors.New("boom")), slog.Any("st", stringer{}), slog.Any("x", struct{ A int }{7})},
			want: []*logtkv1.Attr{sattr("e", "boom"), sattr("st", "stringer!"), sattr("x", "{A:7}")}},
		{name: "nested groups", attrs: []slog.Attr{slog.Group("g", slog.String("a", "1"), slog.Group("h", slog.String("b", long)))},
			want: []*logtkv1.Attr{group("g", sattr("a", "1"), group("h", sattr("b", long)))}},
		{name: "slog rules: empty group dropped, empty key inlined, empty attr dropped",
			attrs: []slog.Attr{slog.Group("empty"), slog.Group("", slog.String("in", "line")), {}},
			want:  []*logtkv1.Attr{sattr("in", "line")}},
		{name: "nil value keeps its key", attrs: []slog.Attr{slog.Any("nil", nil)}, want: []*logtkv1.Attr{{Key: "nil"}}},
		{name: "strings around a one-byte attribute length", // 4 bytes of keys and lengths + key + value: 126, 127, 128
			attrs: []slog.Attr{slog.String("k", long[:121]), slog.String("k", long[:122]), slog.String("k", long[:123]), slog.String("", "no key")},
			want:  []*logtkv1.Attr{sattr("k", long[:121]), sattr("k", long[:122]), sattr("k", long[:123]), sattr("", "no key")}},
		{name: "LogValuer resolved", attrs: []slog.Attr{slog.Any("lv", valuer{})}, want: []*logtkv1.Attr{sattr("lv", "resolved")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := AppendHead(nil, ts, pubrecord.LevelWarn, "msg", "db.pool")
			for _, a := range tc.attrs {
				b = AppendAttr(b, a)
			}
			b = AppendCaller(b, "main.go", 12, "main.main")
			b = AppendStamp(b, &Stamp{Worker: "web", WorkerIndex: 2, PID: 99, Incarnation: 1, Seq: 7, Source: pubrecord.SourceSDK, Received: ts})
			if err := Validate(b); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			var got logtkv1.Record
			if err := proto.Unmarshal(b, &got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			want := &logtkv1.Record{
				TimeUnixNano: ts.UnixNano(), Level: logtkv1.Level_LEVEL_WARN, Message: "msg", Logger: "db.pool",
				Attrs:  tc.want,
				Caller: &logtkv1.Caller{File: "main.go", Line: 12, Function: "main.main"},
				Worker: "web", WorkerIndex: 2, Pid: 99, Incarnation: 1, Seq: 7, Source: logtkv1.Source_SOURCE_SDK,
				ReceivedUnixNano: ts.UnixNano(),
			}
			if diff := cmp.Diff(want, &got, protocmp.Transform()); diff != "" {
				t.Fatalf("decoded record differs (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServerStampOverrides: the server's stamp, appended last, is what
// a reader sees, whatever a sender put in the record.
func TestServerStampOverrides(t *testing.T) {
	b := AppendHead(nil, time.Now(), pubrecord.LevelInfo, "m", "")
	b = AppendServerStamp(b, "forged", "forged-host", "forged-app")
	b = AppendServerStamp(b, "web-01", "web-01.example", "shop")
	if err := Validate(b); err != nil {
		t.Fatal(err)
	}
	var v pubrecord.Record
	v.Parse(b)
	var r logtkv1.Record
	if err := proto.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	for _, got := range [][3]string{
		{string(v.Sender), string(v.Hostname), string(v.Application)},
		{r.Sender, r.Hostname, r.Application},
	} {
		if got != [3]string{"web-01", "web-01.example", "shop"} {
			t.Errorf("read %q", got)
		}
	}
	if bad := AppendServerStamp(nil, "a\xff", "", "x"); Validate(append(AppendHead(nil, time.Now(), pubrecord.LevelInfo, "m", ""), bad...)) == nil {
		t.Error("a sender that is not UTF-8 validated")
	}
}

func TestStampOverridesWorkerValues(t *testing.T) {
	b := AppendHead(nil, time.Now(), pubrecord.LevelInfo, "m", "")
	b = protowire.AppendTag(b, recordwire.Worker, protowire.BytesType)
	b = protowire.AppendString(b, "forged")
	b = protowire.AppendTag(b, recordwire.Seq, protowire.VarintType)
	b = protowire.AppendVarint(b, 1000)
	b = AppendStamp(b, &Stamp{Worker: "real", Seq: 3})
	var r logtkv1.Record
	if err := proto.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Worker != "real" || r.Seq != 3 {
		t.Fatalf("worker=%q seq=%d, want the host's values", r.Worker, r.Seq)
	}
}

func TestGroups(t *testing.T) {
	b := AppendHead(nil, time.Unix(1, 0), pubrecord.LevelInfo, "m", "")
	b, outer := OpenGroup(b, "outer", false)
	b, empty := OpenGroup(b, "empty", true)
	b = CloseGroup(b, empty)
	b = AppendGroupAttr(b, slog.String("k", strings.Repeat("v", 200)))
	b = CloseGroup(b, outer)
	b, gone := OpenGroup(b, "gone", false)
	b = CloseGroup(b, gone)
	var r logtkv1.Record
	if err := proto.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Attrs) != 1 || r.Attrs[0].Key != "outer" {
		t.Fatalf("attrs = %v", r.Attrs)
	}
	g := r.Attrs[0].GetGroup().GetAttrs()
	if len(g) != 1 || g[0].Key != "k" || len(g[0].GetStr()) != 200 {
		t.Fatalf("group = %v", g)
	}
}

func TestValidateRejects(t *testing.T) {
	deep := []byte{}
	for range MaxGroupDepth + 2 {
		inner := protowire.AppendTag(nil, 1, protowire.BytesType) // Group.attrs
		inner = protowire.AppendBytes(inner, deep)
		attr := protowire.AppendTag(nil, recordwire.AttrGroup, protowire.BytesType)
		attr = protowire.AppendBytes(attr, inner)
		deep = attr
	}
	deepRec := protowire.AppendTag(nil, recordwire.Attrs, protowire.BytesType)
	deepRec = protowire.AppendBytes(deepRec, deep)

	tests := []struct {
		name, want string
		b          []byte
	}{
		{"truncated tag", "bad field tag", []byte{0x80}},
		{"wrong wire type for level", "field 2 has wire type 2", protowire.AppendString(protowire.AppendTag(nil, recordwire.Level, protowire.BytesType), "x")},
		{"length past end", "field 3", []byte{0x1a, 0x10, 'a'}},
		{"invalid utf-8 message", "not valid UTF-8", protowire.AppendString(protowire.AppendTag(nil, recordwire.Message, protowire.BytesType), "\xff")},
		{"bad nested attr", "field 2 has wire type 0", []byte{0x22, 0x02, 0x10, 0x80}},
		{"groups too deep", "nested deeper", deepRec},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want error containing %q", err, tc.want)
			}
		})
	}
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1)
	if err := Validate(unknown); err != nil {
		t.Fatalf("unknown field rejected: %v", err)
	}
}

// nested returns a record with one attribute nested depth groups deep.
func nested(depth int) []byte {
	v := slog.String("k", "v")
	for range depth {
		v = slog.Group("g", v)
	}
	return AppendAttr(nil, v)
}

// TestValidFast: the shapes the SDK and the host write take the fast path
// (a regression here costs every record's check), others and invalid
// records are left to validateMsg, and Validate agrees with validateMsg
// either way.
func TestValidFast(t *testing.T) {
	now := time.Unix(1700000000, 5)
	rec := func(msg string, attrs ...slog.Attr) []byte {
		b := AppendHead(nil, now, pubrecord.LevelInfo, msg, "http")
		for _, a := range attrs {
			b = AppendAttr(b, a)
		}
		return b
	}
	stamp := func(b []byte) []byte {
		return AppendStamp(b, &Stamp{Worker: "web", WorkerIndex: 3, PID: 123456, Incarnation: 2, Seq: 1 << 40, Source: pubrecord.SourceSDK, Received: now})
	}
	long := strings.Repeat("long ", 60)
	tests := []struct {
		name  string
		b     []byte
		fast  bool
		valid bool
	}{
		{"typical", typical(), true, true},
		{"typical, stamped", stamp(typical()), true, true},
		{"empty", nil, true, true},
		{"non-ASCII text", rec("ünïcode ✓", slog.String("ключ", "значение ✓")), true, true},
		{"strings of more than 127 bytes", rec(long, slog.String(long, long)), true, true},
		{"every value kind", rec("m", slog.Int("i", -5), slog.Uint64("u", 1<<63), slog.Float64("f", 1.5), slog.Bool("b", true),
			slog.Duration("d", time.Hour), slog.Time("t", now), slog.Any("bytes", []byte{0xff, 0x80, 0})), true, true},
		{"a key alone", []byte{0x22, 0x03, 0x0a, 0x01, 'k'}, true, true},
		{"a group", rec("m", slog.Group("g", slog.String("k", "v"), slog.Group("h", slog.Int("n", 300)))), true, true},
		{"an empty group", []byte{0x22, 0x05, 0x0a, 0x01, 'g', 0x52, 0x00}, true, true},
		{"groups as deep as allowed", nested(MaxGroupDepth), true, true},
		{"groups one deeper", nested(MaxGroupDepth + 1), false, false},
		{"a group's attribute with the wrong wire type", []byte{0x22, 0x0a, 0x0a, 0x01, 'g', 0x52, 0x05, 0x08, 0x03, 0x0a, 0x01, 'k'}, false, false},
		{"a group holding a malformed attribute", []byte{0x22, 0x09, 0x0a, 0x01, 'g', 0x52, 0x04, 0x0a, 0x02, 0x0a, 0x05}, false, false},
		{"the caller", AppendCaller(typical(), "main.go", 12, "main.main"), true, true},
		{"the caller, long", AppendCaller(typical(), long, 1<<20, long), true, true},
		{"the caller with invalid UTF-8", AppendCaller(typical(), "ma\xffin.go", 12, "main.main"), false, false},
		{"an unknown field", protowire.AppendVarint(protowire.AppendTag(typical(), 99, protowire.VarintType), 1), true, true},
		{"unknown fields of every wire type", protowire.AppendFixed32(protowire.AppendTag(protowire.AppendBytes(protowire.AppendTag(
			protowire.AppendFixed64(protowire.AppendTag(typical(), 7, protowire.Fixed64Type), 1), 14, protowire.BytesType), []byte{0xff, 0xfe}),
			3000, protowire.Fixed32Type), 7), false, true}, // field 3000: a three-byte tag, left to validateMsg
		{"an unknown field cut short", append(protowire.AppendTag(typical(), 14, protowire.BytesType), 0x05, 'a'), false, false},
		{"an unknown group", protowire.AppendTag(protowire.AppendTag(typical(), 15, protowire.StartGroupType), 15, protowire.EndGroupType), true, true},
		{"invalid UTF-8 in a value", rec("m", slog.String("k", "a\xff")), false, false},
		{"a sequence cut short before the next field", rec("m", slog.String("k", "a\xe4"), slog.String("k2", "\x80\x80")), false, false},
		{"invalid UTF-8 in a long value", rec("m", slog.String("k", long+"\xff")), false, false},
		{"invalid UTF-8 in the stamp", AppendStamp(typical(), &Stamp{Worker: "w\xff"}), false, false},
		{"a value past the attribute's end", []byte{0x22, 0x05, 0x0a, 0x01, 'k', 0x12, 0x05, 'a', 'b', 'c', 'd', 'e'}, false, false},
		{"a varint value longer than the attribute", []byte{0x22, 0x04, 0x0a, 0x01, 'k', 0x18, 0x80, 0x01}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := validFast(tc.b); got != tc.fast {
				t.Errorf("validFast = %v, want %v", got, tc.fast)
			}
			err := Validate(tc.b)
			if (err == nil) != tc.valid {
				t.Errorf("Validate = %v, want valid %v", err, tc.valid)
			}
			if slow := validateMsg(tc.b, 0, msgRecord, 0); (slow == nil) != (err == nil) {
				t.Errorf("Validate = %v but validateMsg = %v", err, slow)
			}
		})
	}
}

// FuzzValidate: Validate never panics, and what it accepts the generated
// code decodes.
func FuzzValidate(f *testing.F) {
	b := AppendHead(nil, time.Unix(5, 0), pubrecord.LevelInfo, "hello", "l")
	b = AppendAttr(b, slog.Group("g", slog.Int("i", 1)))
	f.Add(b)
	f.Add([]byte{0x22, 0x02, 0x10, 0x80})
	f.Add(AppendHead(nil, time.Unix(5, 0), pubrecord.LevelInfo, "0123456789abcde\xff", ""))                      // invalid UTF-8 after two words
	f.Add([]byte{0x0a, 0x01, 'k', 0x18, 0x90, 0x03})                                                             // a simple attribute: key, varint
	f.Add([]byte{0x0a, 0x01, 'k', 0x12, 0x02, 'a', 0xff})                                                        // not simple: invalid UTF-8
	f.Add(AppendAttr(AppendHead(nil, time.Unix(5, 0), pubrecord.LevelInfo, "m", ""), slog.String("k", "a\xe4"))) // cut short before the end
	f.Add(AppendStamp(AppendAttr(nil, slog.Int("status", 200)), &Stamp{Worker: "w", Seq: 300}))
	f.Fuzz(func(t *testing.T, data []byte) {
		// What validFast takes as a record, validateMsg accepts.
		if validFast(data) {
			if err := validateMsg(data, 0, msgRecord, 0); err != nil {
				t.Fatalf("validFast accepted a record validateMsg rejects: %v", err)
			}
		}
		if Validate(data) != nil {
			return
		}
		var r logtkv1.Record
		if err := proto.Unmarshal(data, &r); err != nil {
			t.Fatalf("Validate accepted what proto.Unmarshal rejects: %v", err)
		}
	})
}

func TestEncodeDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 4096)
	now := time.Now()
	n := testing.AllocsPerRun(100, func() {
		b := AppendHead(buf[:0], now, pubrecord.LevelInfo, "request served", "http")
		b = AppendAttr(b, slog.String("path", "/api/v1/users"))
		b = AppendAttr(b, slog.Int("status", 200))
		b = AppendAttr(b, slog.Duration("elapsed", time.Millisecond))
		b = AppendAttr(b, slog.Bool("cached", false))
		_ = b
	})
	if n != 0 {
		t.Fatalf("encoding allocated %.0f times per record", n)
	}
}

// TestStampMatchesGenerated: the stamp's hand-written keys decode as the
// generated code's fields, for small and large values.
func TestStampMatchesGenerated(t *testing.T) {
	for _, s := range []Stamp{
		{Worker: "w", WorkerIndex: 0, PID: 1, Incarnation: 0, Seq: 1, Source: pubrecord.SourceSDK, Received: time.Unix(0, 5)},
		{Worker: strings.Repeat("x", 200), WorkerIndex: 300, PID: 1 << 40, Incarnation: 1 << 20, Seq: 1 << 50, Source: pubrecord.SourceHost, Received: time.Unix(1<<32, 7)},
	} {
		var r logtkv1.Record
		if err := proto.Unmarshal(AppendStamp(nil, &s), &r); err != nil {
			t.Fatal(err)
		}
		if r.Worker != s.Worker || r.WorkerIndex != s.WorkerIndex || r.Pid != s.PID || r.Incarnation != s.Incarnation ||
			r.Seq != s.Seq || int32(r.Source) != s.Source || r.ReceivedUnixNano != s.Received.UnixNano() {
			t.Fatalf("stamp %+v decoded as %v", s, &r)
		}
	}
}

// TestWholeFields: whole fields, of any kind and contents, pass; a record
// cut inside a field, tag, length or value does not.
func TestWholeFields(t *testing.T) {
	rec := AppendStamp(AppendAttr(AppendHead(nil, time.Unix(1, 2), pubrecord.LevelInfo, "m", "l"), slog.Group("g", slog.Int("i", 1))),
		&Stamp{Worker: "w", Seq: 300, Received: time.Unix(3, 0)})
	if !WholeFields(rec) || !WholeFields(nil) {
		t.Fatal("a whole record is not whole")
	}
	unknown := protowire.AppendBytes(protowire.AppendTag(bytes.Clone(rec), 100, protowire.BytesType), []byte("x"))
	if !WholeFields(unknown) {
		t.Fatal("an unknown whole field is not whole")
	}
	for cut := 1; cut < len(unknown); cut++ {
		if WholeFields(unknown[:cut]) != protowireWhole(unknown[:cut]) {
			t.Fatalf("cut at %d of %d: WholeFields says %v", cut, len(unknown), WholeFields(unknown[:cut]))
		}
	}
}

// protowireWhole is WholeFields by protowire's reading.
func protowireWhole(b []byte) bool {
	for len(b) > 0 {
		num, typ, tn := protowire.ConsumeTag(b)
		if tn < 0 {
			return false
		}
		n := protowire.ConsumeFieldValue(num, typ, b[tn:])
		if n < 0 {
			return false
		}
		b = b[tn+n:]
	}
	return true
}

// FuzzWholeFields: WholeFields reads as protowire does.
func FuzzWholeFields(f *testing.F) {
	f.Add(AppendStamp(AppendHead(nil, time.Unix(1, 2), pubrecord.LevelInfo, "m", ""), &Stamp{Worker: "w", Seq: 3}))
	f.Add([]byte{0x82, 0x01, 0x05, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		if WholeFields(b) != protowireWhole(b) {
			t.Fatalf("WholeFields(%x) = %v, protowire says %v", b, WholeFields(b), protowireWhole(b))
		}
	})
}
