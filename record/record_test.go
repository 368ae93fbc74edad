package record_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/recordwire"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/record"
)

// FuzzView: the in-place reader never panics on arbitrary bytes, including
// attribute iteration and nested groups.
func FuzzView(f *testing.F) {
	b := irecord.AppendHead(nil, time.Unix(5, 0), record.LevelInfo, "hello", "l")
	b = irecord.AppendAttr(b, slog.Group("g", slog.Int("i", 1), slog.Group("h", slog.String("s", "x"))))
	b = irecord.AppendCaller(b, "f.go", 1, "main")
	f.Add(b)
	f.Add([]byte{0x08, 0x80})                                                  // truncated varint
	f.Add([]byte{0x11, 1, 2, 3})                                               // truncated fixed64
	f.Add([]byte{0x1a, 0x05, 'a'})                                             // bytes past the end
	f.Add([]byte{0x00, 0x01})                                                  // field number 0
	f.Add([]byte{0xf8, 0xff, 0xff, 0xff, 0x7f, 0x01})                          // field number past MaxInt32
	f.Add([]byte{0x0b, 0x10, 0x01, 0x0c, 0x15, 1, 2, 3, 4})                    // group, fixed32
	f.Add([]byte{0x1a, 0x82, 0x00, 'a', 'b', 0x20, 0xff, 0xff, 0xff, 0xff, 1}) // padded length, long varint
	// Tags, varints and lengths of one, two and three bytes, at the edges.
	f.Add([]byte{0x80, 0x01, 0x96, 0x01, 0x88, 0x00, 0x05})       // two-byte tag and varint; padded tag
	f.Add([]byte{0x82, 0x01, 0x81, 0x01, 'a'})                    // two-byte length past the end
	f.Add([]byte{0x12, 0x02, 'a'})                                // length one past the end
	f.Add([]byte{0x82, 0x01})                                     // two-byte tag, nothing after
	f.Add([]byte{0x80, 0x80, 0x01, 0x00})                         // three-byte tag
	f.Add([]byte{0x09, 1, 2, 3, 4, 5, 6, 7, 8, 0x08, 0x80})       // fixed64, truncated varint
	f.Add([]byte{0x08, 0x80, 0x80, 0x01, 0x12, 0x80, 0x80, 0x00}) // three-byte varint and length
	f.Add(irecord.AppendStamp(bytes.Clone(b), &irecord.Stamp{Worker: "w", WorkerIndex: 300, PID: 4242, Incarnation: 2, Seq: 1 << 40, Source: record.SourceHost, Received: time.Unix(6, 7)}))
	f.Add(irecord.AppendServerStamp(irecord.AppendServerStamp(bytes.Clone(b), "forged", "", "x"), "web-01", "web-01.example", "shop"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFieldMatchesProtowire(t, data)
		var v record.Record
		parsed := v.Parse(data)
		checkViewMatchesGenerated(t, data, &v, parsed)
		record.CallerView(v.Caller)
		var walk func(it record.AttrIter, depth int)
		walk = func(it record.AttrIter, depth int) {
			var a record.Attr
			for n := 0; it.Next(&a) && n < 10000; n++ {
				if depth < 64 {
					walk(a.Group(), depth+1)
				}
			}
		}
		walk(v.Attrs(), 0)
	})
}

// checkViewMatchesGenerated: where the generated code decodes b, Parse
// does too, to the same fields and attribute keys.
func checkViewMatchesGenerated(t *testing.T, b []byte, v *record.Record, parsed bool) {
	t.Helper()
	var r logtkv1.Record
	if proto.Unmarshal(b, &r) != nil {
		return
	}
	if !parsed {
		t.Fatal("Parse failed on a record the generated code decodes")
	}
	if v.TimeUnixNano != r.TimeUnixNano || v.Level != int32(r.Level) || string(v.Message) != r.Message || string(v.Logger) != r.Logger ||
		string(v.Worker) != r.Worker || v.WorkerIndex != r.WorkerIndex || v.PID != r.Pid || v.Incarnation != r.Incarnation ||
		v.Seq != r.Seq || v.Source != int32(r.Source) || v.Received != r.ReceivedUnixNano ||
		string(v.Sender) != r.Sender || string(v.Hostname) != r.Hostname || string(v.Application) != r.Application {
		t.Fatalf("Parse read %+v, the generated code %v", v, &r)
	}
	var keys []string
	var a record.Attr
	for it := v.Attrs(); it.Next(&a); {
		keys = append(keys, string(a.Key))
	}
	if len(keys) != len(r.Attrs) {
		t.Fatalf("%d attributes iterated, the generated code has %d", len(keys), len(r.Attrs))
	}
	for i, k := range keys {
		if k != r.Attrs[i].Key {
			t.Fatalf("attribute %d: key %q, the generated code %q", i, k, r.Attrs[i].Key)
		}
	}
}

// checkFieldMatchesProtowire walks b with recordwire.Field, which Parse,
// AttrIter and internal/record's WholeFields read with, and with
// protowire's Consume functions, which Field must agree with on every
// input.
func checkFieldMatchesProtowire(t *testing.T, b []byte) {
	t.Helper()
	for off := 0; off < len(b); {
		num, typ, x, data, next := recordwire.Field(b, off)
		// FieldShort, where it reads a field, reads it as Field does.
		if snum, styp, sx, snext, ok := recordwire.FieldShort(b, off); ok {
			sdata := []byte(nil)
			if styp == protowire.BytesType {
				sdata = b[off+2 : snext]
			}
			if snum != num || styp != typ || (styp == protowire.VarintType && sx != x) || !bytes.Equal(sdata, data) || snext != next {
				t.Fatalf("at %d: fieldShort = (%d, %d, %d, %q, %d), field (%d, %d, %d, %q, %d)", off, snum, styp, sx, sdata, snext, num, typ, x, data, next)
			}
		}
		wnum, wtyp, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			if next >= 0 {
				t.Fatalf("at %d: field read a tag protowire rejects", off)
			}
			return
		}
		var wx uint64
		var wdata []byte
		m := 0
		switch wtyp {
		case protowire.VarintType:
			wx, m = protowire.ConsumeVarint(b[off+n:])
		case protowire.Fixed64Type:
			wx, m = protowire.ConsumeFixed64(b[off+n:])
		case protowire.BytesType:
			wdata, m = protowire.ConsumeBytes(b[off+n:])
		default:
			m = protowire.ConsumeFieldValue(wnum, wtyp, b[off+n:])
		}
		if m < 0 {
			if next >= 0 {
				t.Fatalf("at %d: field read a value protowire rejects", off)
			}
			return
		}
		if next != off+n+m || num != wnum || typ != wtyp || x != wx || !bytes.Equal(data, wdata) || (data == nil) != (wdata == nil) {
			t.Fatalf("at %d: field = (%d, %d, %d, %q, %d), protowire (%d, %d, %d, %q, %d)", off, num, typ, x, data, next, wnum, wtyp, wx, wdata, off+n+m)
		}
		off = next
	}
}

// TestAttrsAmongOtherFields: attributes are iterated wherever they are
// among the record's other fields, in order, and the host's stamp after
// them is not taken for one.
func TestAttrsAmongOtherFields(t *testing.T) {
	b := irecord.AppendAttr(nil, slog.String("a", "1"))
	b = irecord.AppendHead(b, time.Unix(5, 0), record.LevelInfo, "m", "l")
	b = irecord.AppendAttr(b, slog.Group("g", slog.Int("b", 2)))
	b = irecord.AppendCaller(b, "f.go", 1, "main")
	b = irecord.AppendAttr(b, slog.Int("c", 3))
	b = irecord.AppendStamp(b, &irecord.Stamp{Worker: "w", PID: 4242, Seq: 300, Received: time.Unix(6, 0)})
	var v record.Record
	if !v.Parse(b) {
		t.Fatal("Parse failed")
	}
	var keys []string
	var a record.Attr
	for it := v.Attrs(); it.Next(&a); {
		keys = append(keys, string(a.Key))
	}
	if got := strings.Join(keys, ","); got != "a,g,c" {
		t.Fatalf("attributes %q, want a,g,c", got)
	}
	if string(v.Message) != "m" || v.PID != 4242 || v.Seq != 300 {
		t.Fatalf("fields around the attributes misread: %q %d %d", v.Message, v.PID, v.Seq)
	}
	v.Parse(irecord.AppendHead(nil, time.Unix(5, 0), record.LevelInfo, "no attributes", ""))
	if it := v.Attrs(); it.Next(&a) {
		t.Fatalf("a record without attributes has %q", a.Key)
	}
}
