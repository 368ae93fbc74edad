package wire

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/logtk/logtk/internal/ipc"
)

// The framing is the IPC protocol's, byte for byte: a 4-byte little-endian
// length (the type byte plus the payload), the type, the payload. The
// functions here do it with wire frame types, over internal/ipc's codec.

// HeaderSize is the size of a frame header: length (4) and type (1).
const HeaderSize = ipc.HeaderSize

// AppendHeader appends the header of a frame of type t with a payload of
// n bytes; the payload is appended after it.
func AppendHeader(dst []byte, t Type, n int) []byte {
	return ipc.AppendHeader(dst, ipc.Type(t), n)
}

// AppendFrame appends a whole frame of type t.
func AppendFrame(dst []byte, t Type, payload []byte) []byte {
	return ipc.AppendFrame(dst, ipc.Type(t), payload)
}

// FrameError is a frame that cannot be taken: its length is zero, or its
// payload is over the Reader's limit.
type FrameError struct {
	Offset int64 // stream offset of the frame's first byte
	Type   Type
	Length uint32 // the declared length (type byte and payload)
	Reason string
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("wire: frame at offset %d (type %s, declared length %d): %s", e.Offset, e.Type, e.Length, e.Reason)
}

// ErrTruncated is wrapped by the error of a stream that ends inside a
// frame.
var ErrTruncated = errors.New("wire: stream ended inside a frame")

// Reader reads wire frames from a stream. It is not safe for concurrent
// use.
type Reader struct {
	r *ipc.Reader
}

// NewReader returns a Reader that accepts payloads of at most maxPayload
// bytes (DefaultMaxFrameBytes if maxPayload <= 0). A larger frame is
// skipped and reported as a *FrameError, unless RefuseOversized is set.
func NewReader(r io.Reader, maxPayload int) *Reader {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxFrameBytes
	}
	return &Reader{r: ipc.NewReader(r, maxPayload)}
}

// RefuseOversized makes Next report an oversized frame at once, from its
// length prefix, without reading its payload: for a peer that is
// disconnected for it rather than skipped (a peer could declare
// gigabytes). The stream is then unusable.
func (r *Reader) RefuseOversized() { r.r.RefuseOversized() }

// Next returns the next frame. The payload is valid until the next call.
//
// At a clean end of stream it returns io.EOF. If the stream ends inside a
// frame it returns an error wrapping ErrTruncated. A frame of length zero
// or over the limit is reported as a *FrameError; unless RefuseOversized
// is set it is consumed, and Next may be called again. Any other error is
// from the underlying reader.
func (r *Reader) Next() (Type, []byte, error) {
	t, p, err := r.r.Next()
	if err != nil {
		return 0, nil, fromIPC(err)
	}
	return Type(t), p, nil
}

// fromIPC restates internal/ipc's framing errors in wire terms: its
// frame types named as wire frames.
func fromIPC(err error) error {
	var fe *ipc.FrameError
	switch {
	case errors.As(err, &fe):
		return &FrameError{Offset: fe.Offset, Type: Type(fe.Type), Length: fe.Length, Reason: fe.Reason}
	case errors.Is(err, ipc.ErrTruncated):
		detail := strings.TrimPrefix(strings.TrimPrefix(err.Error(), ipc.ErrTruncated.Error()), ": ")
		if detail == "" {
			return ErrTruncated
		}
		return fmt.Errorf("%w: %s", ErrTruncated, detail)
	}
	return err
}
