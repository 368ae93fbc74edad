package network

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/internal/wire"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/sdk/plugin"
)

// The plugin's copy of the wire frame types agrees with internal/wire's:
// the same bytes, the same names, the same header.
func TestFrameTypesAreWires(t *testing.T) {
	for _, pair := range []struct {
		mine frameType
		want wire.Type
	}{{tAuth, wire.TypeAuth}, {tWelcome, wire.TypeWelcome}, {tData, wire.TypeData}, {tAck, wire.TypeAck},
		{tPing, wire.TypePing}, {tPong, wire.TypePong}, {tClose, wire.TypeClose}} {
		if byte(pair.mine) != byte(pair.want) {
			t.Errorf("%s is 0x%02x here, 0x%02x in internal/wire", pair.want, byte(pair.mine), byte(pair.want))
		}
	}
	for b := range 256 {
		if got, want := frameType(b).String(), wire.Type(b).String(); got != want {
			t.Errorf("frame type 0x%02x is %q here, %q in internal/wire", b, got, want)
		}
		if got, want := appendHeader(nil, frameType(b), 300), wire.AppendHeader(nil, wire.Type(b), 300); !bytes.Equal(got, want) {
			t.Errorf("header of type 0x%02x is %x here, %x in internal/wire", b, got, want)
		}
	}
}

func TestConfigure(t *testing.T) {
	for cfg, want := range map[string]string{
		`{}`:                                 "endpoint is required",
		`{"endpoint":"e","application":"a"}`: "sender and application are required",
		`{"endpoint":"e","sender":"s","application":"a"}`:                                 "token or token_file is required",
		`{"endpoint":"e","sender":"s","application":"a","token":"t","token_file":"dA=="}`: "not both",
		`{"endpoint":"e","sender":"s","application":"a","token":"t","ack_timeout":"x"}`:   "ack_timeout",
	} {
		if err := New().Configure([]byte(cfg)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", cfg, err, want)
		}
	}
	tr := New()
	if err := tr.Configure([]byte(`{"endpoint":"e","sender":"s","application":"a","token_file":"IHNlY3JldAo="}`)); err != nil {
		t.Fatal(err)
	}
	if string(tr.token) != "secret" || tr.cfg.Format != "logtk.v1.Record" {
		t.Fatalf("token %q format %q", tr.token, tr.cfg.Format)
	}
}

func TestDecoders(t *testing.T) {
	var w []byte
	w = protowire.AppendTag(w, 2, protowire.VarintType)
	w = protowire.AppendVarint(w, 4096)
	w = protowire.AppendTag(w, 9, protowire.BytesType) // unknown field: skipped
	w = protowire.AppendString(w, "x")
	w = protowire.AppendTag(w, 3, protowire.VarintType)
	w = protowire.AppendVarint(w, 16)
	w = protowire.AppendTag(w, 5, protowire.VarintType)
	w = protowire.AppendVarint(w, 77)
	for _, h := range []*logtkv1.WorkerSeq{{Worker: "api", WorkerIndex: 2, Seq: 90}, {Worker: "db", Seq: 7}} {
		b, _ := proto.Marshal(h)
		w = protowire.AppendTag(w, 6, protowire.BytesType)
		w = protowire.AppendBytes(w, b)
	}
	got, err := parseWelcome(w)
	want := welcome{stored: 77, maxFrame: 4096, maxInFlight: 16, held: []plugin.Mark{{Worker: "api", Index: 2, Seq: 90}, {Worker: "db", Seq: 7}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parseWelcome = %+v %v, want %+v", got, err, want)
	}
	frame := append(binary.LittleEndian.AppendUint32(nil, 3), 4, 'a', 'b')
	typ, p, rest, ok, err := splitFrame(append(frame, 9))
	if !ok || err != nil || typ != 4 || string(p) != "ab" || len(rest) != 1 {
		t.Fatalf("splitFrame = %d %q %v %v %v", typ, p, rest, ok, err)
	}
	if _, _, _, ok, _ := splitFrame(frame[:6]); ok {
		t.Fatal("incomplete frame split")
	}
	if _, _, _, _, err := splitFrame([]byte{0, 0, 0, 0, 1}); err == nil {
		t.Fatal("zero-length frame accepted")
	}
}

// FuzzServerFrames: whatever a server (or something pretending to be one)
// sends, the plugin's decoders do not panic.
func FuzzServerFrames(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 4, 1, 2})
	f.Add([]byte{0x10, 0x80, 0x20, 0x28, 0x05})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := b
		for range 100 {
			_, p, rest, ok, err := splitFrame(in)
			if err != nil || !ok {
				break
			}
			parseWelcome(p)
			describeClose(p)
			in = rest
		}
		parseWelcome(b)
		describeClose(b)
	})
}
