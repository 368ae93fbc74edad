package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
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
	r := NewReader(bytes.NewReader(frame), 0)
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

// Wire frame types are named as docs/wire-protocol.md names them, not as
// the IPC protocol names the same bytes.
func TestTypeString(t *testing.T) {
	for ty, want := range map[Type]string{
		TypeAuth: "AUTH", TypeWelcome: "WELCOME", TypeData: "DATA", TypeAck: "ACK",
		TypePing: "PING", TypePong: "PONG", TypeClose: "CLOSE", 0: "unknown (0x00)", 0x83: "unknown (0x83)",
	} {
		if got := ty.String(); got != want {
			t.Errorf("Type(0x%02x).String() = %q, want %q", byte(ty), got, want)
		}
	}
}

// The wire framing is the IPC framing byte for byte.
func TestFramingIsIPCs(t *testing.T) {
	for ty := range Type(0x08) {
		payload := []byte("payload")
		got := AppendFrame([]byte("x"), ty, payload)
		want := ipc.AppendFrame([]byte("x"), ipc.Type(ty), payload)
		if !bytes.Equal(got, want) {
			t.Errorf("AppendFrame(%s) = %x, want %x", ty, got, want)
		}
		if h := AppendHeader(nil, ty, len(payload)); !bytes.Equal(h, want[1:1+HeaderSize]) {
			t.Errorf("AppendHeader(%s) = %x, want %x", ty, h, want[1:1+HeaderSize])
		}
	}
	if !bytes.Equal(AppendPing(nil, TypePong, 9), ipc.AppendFrame(nil, ipc.Type(TypePong), []byte{9, 0, 0, 0, 0, 0, 0, 0})) {
		t.Error("PONG frame differs from its IPC framing")
	}
}

func TestReader(t *testing.T) {
	var stream []byte
	stream = AppendFrame(stream, TypeWelcome, []byte("w"))
	stream = AppendFrame(stream, TypeData, make([]byte, 100)) // over the limit: skipped
	stream = AppendAck(stream, 5)
	stream = append(AppendHeader(stream, TypeAck, 3), 1) // ends inside the frame: 1 of its 3 bytes
	r := NewReader(bytes.NewReader(stream), 10)
	if ty, p, err := r.Next(); err != nil || ty != TypeWelcome || string(p) != "w" {
		t.Fatalf("first frame: %s %q %v", ty, p, err)
	}
	_, _, err := r.Next()
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Type != TypeData || fe.Length != 101 || !strings.Contains(err.Error(), "type DATA") {
		t.Fatalf("oversized frame: %v", err)
	}
	if ty, p, err := r.Next(); err != nil || ty != TypeAck {
		t.Fatalf("frame after the skipped one: %s %v", ty, err)
	} else if id, err := ParseAck(p); err != nil || id != 5 {
		t.Fatalf("ACK %d %v", id, err)
	}
	if _, _, err := r.Next(); !errors.Is(err, ErrTruncated) || !strings.HasPrefix(err.Error(), "wire: ") {
		t.Fatalf("truncated frame: %v", err)
	}

	r = NewReader(bytes.NewReader(AppendFrame(nil, TypeData, make([]byte, 100))), 10)
	r.RefuseOversized()
	if _, _, err := r.Next(); !errors.As(err, &fe) || fe.Type != TypeData {
		t.Fatalf("refused oversized frame: %v", err)
	}
	if _, _, err := NewReader(bytes.NewReader(nil), 0).Next(); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF", err)
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
	f.Add(AppendData(nil, 7, batchOf("x", "yy"))[HeaderSize:])
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
