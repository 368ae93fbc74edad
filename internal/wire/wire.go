// Package wire implements the framing and payloads of the logtk wire
// protocol v1 (docs/wire-protocol.md), shared by the network transport's
// host side and the log server.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/internal/entries"
)

// ProtocolVersion is the wire protocol version this package speaks.
const ProtocolVersion = 1

// Type is a wire frame type. It is the wire protocol's own: the IPC
// protocol (internal/ipc) frames the same way but gives the same bytes
// other meanings, so a wire frame is never named by an ipc.Type.
type Type byte

// Frame types.
const (
	TypeAuth    Type = 0x01 // client: Auth
	TypeWelcome Type = 0x02 // server: ServerWelcome
	TypeData    Type = 0x03 // client: uvarint batch id, then the batch
	TypeAck     Type = 0x04 // server: uvarint batch id
	TypePing    Type = 0x05 // either: 8 bytes, echoed by PONG
	TypePong    Type = 0x06 // either: the PING's 8 bytes
	TypeClose   Type = 0x07 // either: Close, then the connection closes
)

// String names a frame type as docs/wire-protocol.md does: "AUTH",
// "WELCOME", "DATA", "ACK", "PING", "PONG", "CLOSE", and for any other
// byte "unknown (0xNN)".
func (t Type) String() string {
	switch t {
	case TypeAuth:
		return "AUTH"
	case TypeWelcome:
		return "WELCOME"
	case TypeData:
		return "DATA"
	case TypeAck:
		return "ACK"
	case TypePing:
		return "PING"
	case TypePong:
		return "PONG"
	case TypeClose:
		return "CLOSE"
	}
	return fmt.Sprintf("unknown (0x%02x)", byte(t))
}

// Close codes.
const (
	CloseNormal              = 1000
	CloseShutdown            = 1001 // the server is shutting down; reconnect later
	CloseAuthFailed          = 4001 // wrong or missing token
	CloseVersion             = 4002 // unsupported protocol version
	CloseFrameTooLarge       = 4003
	CloseMalformed           = 4004 // a frame that does not parse
	CloseTooManyInFlight     = 4005
	CloseTimeout             = 4006 // no complete frame within the deadline (auth, heartbeat)
	CloseTooManyConns        = 4007
	CloseReplaced            = 4008 // a newer connection of the same sender took over
	CloseBadIdentity         = 4009 // sender or application name not allowed
	CloseStorage             = 4010 // the server cannot store; reconnect later
	CloseTooManyApplications = 4011 // the server has too many applications open, all busy; reconnect later
)

// Defaults the server announces unless configured otherwise.
const (
	DefaultMaxFrameBytes = 4 << 20
	DefaultMaxInFlight   = 32
	DefaultHeartbeat     = 5000 // milliseconds
)

// Limits on AUTH, the one frame a server reads from a peer it does not
// know yet. MaxAuthBytes bounds its payload: a server refuses a larger
// AUTH (CLOSE 4003) from its length prefix, before reading it, so an
// unauthenticated peer holds at most this much of the server's memory.
// It leaves room for every field at its largest: a token of MaxTokenBytes,
// sender and application of 128 characters, a 253-character host name and
// a format name, 1564 bytes with the protobuf tags and lengths.
const (
	MaxAuthBytes  = 4096
	MaxTokenBytes = 1024
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// ValidName reports whether s may be a sender or application name: it
// becomes a directory or file name on the server.
func ValidName(s string) bool { return nameRE.MatchString(s) && s != "." && s != ".." }

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,253}$`)

// ValidHostname reports whether s may be AUTH's hostname: empty (none
// given), or 1-253 characters of [A-Za-z0-9._-].
func ValidHostname(s string) bool { return s == "" || hostnameRE.MatchString(s) }

// AppendData appends a DATA frame for batch (encoded entries).
func AppendData(dst []byte, batchID uint64, batch []byte) []byte {
	n := protowire.SizeVarint(batchID) + len(batch)
	dst = AppendHeader(dst, TypeData, n)
	dst = protowire.AppendVarint(dst, batchID)
	return append(dst, batch...)
}

// ErrMalformed is wrapped by the payload decoders' errors.
var ErrMalformed = errors.New("malformed payload")

// ParseData splits a DATA payload into the batch id and the batch, and
// checks that the batch is well-formed entries, returning how many.
func ParseData(p []byte) (id uint64, batch []byte, count int, err error) {
	id, n := protowire.ConsumeVarint(p)
	if n < 0 {
		return 0, nil, 0, fmt.Errorf("%w: DATA without a batch id", ErrMalformed)
	}
	batch = p[n:]
	count, ok := entries.Count(batch)
	if !ok {
		return 0, nil, 0, fmt.Errorf("%w: DATA batch %d: entry %d runs past the frame", ErrMalformed, id, count)
	}
	return id, batch, count, nil
}

// AppendAck appends an ACK frame.
func AppendAck(dst []byte, batchID uint64) []byte {
	dst = AppendHeader(dst, TypeAck, protowire.SizeVarint(batchID))
	return protowire.AppendVarint(dst, batchID)
}

// ParseAck reads an ACK payload.
func ParseAck(p []byte) (uint64, error) {
	id, n := protowire.ConsumeVarint(p)
	if n < 0 || n != len(p) {
		return 0, fmt.Errorf("%w: ACK", ErrMalformed)
	}
	return id, nil
}

// AppendPing appends a PING (or, with TypePong, a PONG) frame.
func AppendPing(dst []byte, t Type, nonce uint64) []byte {
	dst = AppendHeader(dst, t, 8)
	return binary.LittleEndian.AppendUint64(dst, nonce)
}

// ParsePing reads a PING or PONG payload.
func ParsePing(p []byte) (uint64, error) {
	if len(p) != 8 {
		return 0, fmt.Errorf("%w: PING/PONG of %d bytes, want 8", ErrMalformed, len(p))
	}
	return binary.LittleEndian.Uint64(p), nil
}
