package ipc

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestReader(t *testing.T) {
	frame := func(ty Type, p string) []byte { return AppendFrame(nil, ty, []byte(p)) }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	type want struct {
		t       Type
		payload string
		err     string // substring; "" for none
	}
	tests := []struct {
		name  string
		input []byte
		max   int
		want  []want
	}{
		{name: "empty stream", input: nil, want: []want{{err: "EOF"}}},
		{name: "one frame", input: frame(TypeRecord, "abc"), want: []want{{TypeRecord, "abc", ""}, {err: "EOF"}}},
		{name: "empty payload", input: frame(TypeGoodbye, ""), want: []want{{TypeGoodbye, "", ""}, {err: "EOF"}}},
		{name: "two frames", input: cat(frame(TypeHello, "h"), frame(TypeMessage, "m")),
			want: []want{{TypeHello, "h", ""}, {TypeMessage, "m", ""}, {err: "EOF"}}},
		{name: "oversized frame is skipped, stream stays in sync", max: 4,
			input: cat(frame(TypeRecord, "too large"), frame(TypeRecord, "ok")),
			want:  []want{{err: "payload of 9 bytes exceeds the limit of 4"}, {TypeRecord, "ok", ""}, {err: "EOF"}}},
		{name: "zero length", input: cat([]byte{0, 0, 0, 0}, frame(TypeRecord, "x")),
			want: []want{{err: "zero length"}, {TypeRecord, "x", ""}, {err: "EOF"}}},
		{name: "truncated header", input: []byte{1, 0}, want: []want{{err: "2 of 4 length bytes"}}},
		{name: "truncated payload", input: frame(TypeRecord, "abcdef")[:8], want: []want{{err: "stream ended inside a frame"}}},
		{name: "type byte missing", input: []byte{5, 0, 0, 0}, want: []want{{err: "stream ended inside a frame"}}},
		{name: "huge declared length", input: []byte{0xff, 0xff, 0xff, 0xff, 2, 1, 2},
			want: []want{{err: "stream ended inside a frame"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.input), tc.max)
			for i, w := range tc.want {
				ty, p, err := r.Next()
				if w.err != "" {
					if err == nil || !bytes.Contains([]byte(err.Error()), []byte(w.err)) {
						t.Fatalf("step %d: err = %v, want containing %q", i, err, w.err)
					}
					continue
				}
				if err != nil || ty != w.t || string(p) != w.payload {
					t.Fatalf("step %d: got (%v, %q, %v), want (%v, %q)", i, ty, p, err, w.t, w.payload)
				}
			}
		})
	}
}

func TestPatchHeader(t *testing.T) {
	b := append(make([]byte, HeaderSize), "payload"...)
	PatchHeader(b, TypeRecord)
	if !bytes.Equal(b, AppendFrame(nil, TypeRecord, []byte("payload"))) {
		t.Fatalf("PatchHeader = %x", b)
	}
}

// FuzzReader feeds arbitrary bytes to the frame decoder: it must never
// panic, never return a payload larger than the limit, and account for
// every byte it consumed.
func FuzzReader(f *testing.F) {
	f.Add(AppendFrame(nil, TypeRecord, []byte("hello")))
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 2})
	f.Add(append(AppendFrame(nil, TypeHello, nil), AppendFrame(nil, TypeRecord, bytes.Repeat([]byte{1}, 100))...))
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 64
		r := NewReader(bytes.NewReader(data), max)
		for range 1000 {
			_, p, err := r.Next()
			if len(p) > max {
				t.Fatalf("payload of %d bytes over the limit", len(p))
			}
			if r.Offset() > int64(len(data)) {
				t.Fatalf("offset %d past the input (%d)", r.Offset(), len(data))
			}
			var fe *FrameError
			if err == io.EOF || (err != nil && !errors.As(err, &fe)) {
				return
			}
		}
	})
}
