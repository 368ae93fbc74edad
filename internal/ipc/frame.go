// Package ipc implements the framing of the worker <-> host channel specified
// in docs/ipc.md: a 4-byte little-endian length, a 1-byte frame type and a
// payload. Both the worker SDK and the host use it.
package ipc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ProtocolVersion is the IPC protocol version this package speaks.
const ProtocolVersion = 1

// Environment variables through which the host announces the channel.
const (
	// EnvFD names the inherited file descriptor of the worker's end of the
	// channel (a connected AF_UNIX SOCK_STREAM socket).
	EnvFD = "LOGTK_IPC_FD"
	// EnvRingFD, when present, names the inherited file descriptor of a
	// sealed memfd holding the worker's shared-memory record ring (see
	// internal/shmring and docs/ipc.md). Optional: a worker may ignore it.
	EnvRingFD = "LOGTK_RING_FD"
	// EnvWorker, EnvIndex and EnvIncarnation are informational.
	EnvWorker      = "LOGTK_WORKER"
	EnvIndex       = "LOGTK_WORKER_INDEX"
	EnvIncarnation = "LOGTK_INCARNATION"
)

// Type is a frame type. Worker-to-host types have the high bit clear,
// host-to-worker types have it set.
type Type byte

const (
	TypeHello   Type = 0x01 // worker -> host: Hello
	TypeRecord  Type = 0x02 // worker -> host: one Record
	TypeMessage Type = 0x03 // worker -> host: custom payload
	TypeGoodbye Type = 0x04 // either way: Goodbye, then close
	// Ring protocol (only from workers that use the shared-memory ring).
	TypeRecordAt Type = 0x05 // worker -> host: uint64 LE ring position, then one Record
	TypeDoorbell Type = 0x06 // worker -> host: empty; the ring has records for a sleeping host
	TypeBarrier  Type = 0x07 // ring entry only: uint64 LE count of RECORD_AT frames sent before it

	TypeWelcome     Type = 0x81 // host -> worker: Welcome
	TypeHostMessage Type = 0x83 // host -> worker: custom payload
	TypeHostGoodbye Type = 0x84 // host -> worker: Goodbye, then close
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeRecord:
		return "record"
	case TypeMessage:
		return "message"
	case TypeGoodbye, TypeHostGoodbye:
		return "goodbye"
	case TypeRecordAt:
		return "record-at"
	case TypeDoorbell:
		return "doorbell"
	case TypeBarrier:
		return "barrier"
	case TypeWelcome:
		return "welcome"
	case TypeHostMessage:
		return "host-message"
	}
	return fmt.Sprintf("unknown(0x%02x)", byte(t))
}

// HeaderSize is the size of a frame header: length (4) and type (1).
const HeaderSize = 5

// DefaultMaxPayload is the largest payload a host accepts unless configured
// otherwise.
const DefaultMaxPayload = 1 << 20

// AppendHeader appends the header of a frame of type t with a payload of n
// bytes.
func AppendHeader(dst []byte, t Type, n int) []byte {
	return append(binary.LittleEndian.AppendUint32(dst, uint32(n+1)), byte(t))
}

// AppendFrame appends a whole frame.
func AppendFrame(dst []byte, t Type, payload []byte) []byte {
	return append(AppendHeader(dst, t, len(payload)), payload...)
}

// PatchHeader writes the header of a frame whose payload was appended after a
// header placeholder at frame[0:HeaderSize]. It lets an encoder write the
// payload in place without knowing its size in advance.
func PatchHeader(frame []byte, t Type) {
	binary.LittleEndian.PutUint32(frame, uint32(len(frame)-HeaderSize+1))
	frame[4] = byte(t)
}

// FrameError is a recoverable framing error: the reader skipped the offending
// frame and is positioned at the next one.
type FrameError struct {
	Offset int64 // stream offset of the frame's first byte
	Type   Type
	Length uint32 // the declared length
	Reason string
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("ipc: frame at offset %d (type %s, declared length %d): %s", e.Offset, e.Type, e.Length, e.Reason)
}

// ErrTruncated is returned when the stream ends inside a frame.
var ErrTruncated = errors.New("ipc: stream ended inside a frame")

// Reader reads frames from a stream. It is not safe for concurrent use.
type Reader struct {
	r      *bufio.Reader
	max    int
	off    int64
	buf    []byte
	hdr    [4]byte // here, not on Next's stack: io.ReadFull would move it to the heap on every call
	noSkip bool
}

// RefuseOversized makes Next report an oversized frame at once, without
// reading its payload, for peers that get disconnected for it rather than
// skipped (a network peer could declare gigabytes). The stream is then
// unusable.
func (r *Reader) RefuseOversized() { r.noSkip = true }

// NewReader returns a Reader that accepts payloads of at most maxPayload
// bytes. Larger frames are skipped and reported as a *FrameError.
func NewReader(r io.Reader, maxPayload int) *Reader {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), max: maxPayload}
}

// Buffered returns how many bytes are read from the stream but not yet
// consumed: a writer can batch its replies while more input is waiting.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// FrameBuffered reports whether a whole frame is read from the stream and
// waiting: Next will then return without blocking.
func (r *Reader) FrameBuffered() bool {
	if r.r.Buffered() < 4 {
		return false
	}
	hdr, _ := r.r.Peek(4)
	return int64(r.r.Buffered()) >= 4+int64(binary.LittleEndian.Uint32(hdr))
}

// Offset returns the number of bytes consumed so far.
func (r *Reader) Offset() int64 { return r.off }

// Next returns the next frame. The payload is valid until the next call.
//
// At a clean end of stream it returns io.EOF. If the stream ends inside a
// frame it returns an error wrapping ErrTruncated. A frame that is too large
// or has length zero is consumed and reported as a *FrameError; the reader
// stays in sync and Next may be called again. Any other error is from the
// underlying reader.
func (r *Reader) Next() (Type, []byte, error) {
	start := r.off
	hdr := r.hdr[:]
	n, err := io.ReadFull(r.r, hdr)
	r.off += int64(n)
	if err != nil {
		if err == io.EOF {
			return 0, nil, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return 0, nil, fmt.Errorf("%w: %d of 4 length bytes at offset %d", ErrTruncated, n, start)
		}
		return 0, nil, err
	}
	length := binary.LittleEndian.Uint32(hdr)
	if length == 0 {
		return 0, nil, &FrameError{Offset: start, Length: 0, Reason: "zero length (a frame has at least its type byte)"}
	}
	tb, err := r.r.ReadByte()
	if err != nil {
		return 0, nil, r.eofInFrame(err, start, length)
	}
	r.off++
	t := Type(tb)
	plen := int64(length) - 1
	if plen > int64(r.max) && r.noSkip {
		return 0, nil, &FrameError{Offset: start, Type: t, Length: length,
			Reason: fmt.Sprintf("payload of %d bytes exceeds the limit of %d", plen, r.max)}
	}
	if plen > int64(r.max) {
		d, err := r.r.Discard(int(plen))
		r.off += int64(d)
		if err != nil {
			return 0, nil, r.eofInFrame(err, start, length)
		}
		return 0, nil, &FrameError{Offset: start, Type: t, Length: length,
			Reason: fmt.Sprintf("payload of %d bytes exceeds the limit of %d; frame skipped", plen, r.max)}
	}
	if cap(r.buf) < int(plen) {
		r.buf = make([]byte, plen, max(int(plen), 4096))
	}
	r.buf = r.buf[:plen]
	n, err = io.ReadFull(r.r, r.buf)
	r.off += int64(n)
	if err != nil {
		return 0, nil, r.eofInFrame(err, start, length)
	}
	return t, r.buf, nil
}

func (r *Reader) eofInFrame(err error, start int64, length uint32) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: frame at offset %d declared %d bytes, stream ended at offset %d", ErrTruncated, start, length, r.off)
	}
	return err
}
