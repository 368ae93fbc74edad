package wire

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/ipc"
)

func batchOf(es ...string) []byte {
	var b []byte
	for _, e := range es {
		b = entries.Append(b, []byte(e))
	}
	return b
}

func TestDataRoundTrip(t *testing.T) {
	frame := AppendData(nil, 300, batchOf("a", "", "ccc"))
	r := ipc.NewReader(bytes.NewReader(frame), 0)
	ty, p, err := r.Next()
	if err != nil || ty != TypeData {
		t.Fatal(ty, err)
	}
	id, batch, n, err := ParseData(p)
	if err != nil || id != 300 || n != 3 {
		t.Fatalf("id=%d n=%d err=%v", id, n, err)
	}
	var got []string
	entries.Each(batch, func(e []byte) { got = append(got, string(e)) })
	if len(got) != 3 || got[0] != "a" || got[1] != "" || got[2] != "ccc" {
		t.Fatalf("entries %q", got)
	}
}

func TestParseRejects(t *testing.T) {
	for name, p := range map[string][]byte{
		"no id":          {},
		"entry too long": append(protowire.AppendVarint(nil, 1), 5, 'a'),
		"bad varint":     {0xff},
	} {
		if _, _, _, err := ParseData(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseAck([]byte{1, 2}); err == nil {
		t.Error("ACK with trailing bytes accepted")
	}
	if _, err := ParsePing([]byte{1}); err == nil {
		t.Error("short PING accepted")
	}
}

func TestValidName(t *testing.T) {
	for s, want := range map[string]bool{"web-1.prod_a": true, "": false, "..": false, "a/b": false, "x y": false} {
		if ValidName(s) != want {
			t.Errorf("ValidName(%q) = %v", s, !want)
		}
	}
}

// FuzzPayloads: DATA, ACK and PING payloads from the network never panic
// the decoders, and an accepted DATA batch walks exactly its count.
func FuzzPayloads(f *testing.F) {
	f.Add(AppendData(nil, 7, batchOf("x", "yy"))[ipc.HeaderSize:])
	f.Add([]byte{0x80, 0x80, 0x80})
	f.Fuzz(func(t *testing.T, p []byte) {
		if _, batch, n, err := ParseData(p); err == nil {
			walked := 0
			entries.Each(batch, func([]byte) { walked++ })
			if walked != n {
				t.Fatalf("count %d, walked %d", n, walked)
			}
		}
		ParseAck(p)
		ParsePing(p)
	})
}
