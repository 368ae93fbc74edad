// Package plugin is the SDK for writing logtk format and transport plugins
// in Go. A plugin implements Formatter or Transport (and optionally
// Configurer), registers it in an init function and is built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o myplugin.wasm .
//
// The SDK implements the plugin ABI (docs/plugin-abi.md): buffers,
// pointers, batching and error codes are its business, not the plugin's.
// The same plugin code also compiles natively, which is how its tests and
// benchmarks can run without Wasm.
//
//	func init() {
//		plugin.RegisterFormatter(plugin.Info{Name: "upper", Version: "1.0.0"}, &upper{})
//	}
//
//	type upper struct{}
//
//	func (*upper) Format(dst []byte, r *plugin.Record) ([]byte, error) {
//		return append(bytes.ToUpper(append(dst, r.Message...)), '\n'), nil
//	}
//
// # Records
//
// A formatter reads each record through a *Record, which is
// record.Record: package github.com/logtk/logtk/record documents what a
// record holds and what reading one guarantees (its bytes are valid only
// during the call), and github.com/logtk/logtk/record/textfmt renders one
// as text. This package gives the names a plugin uses most (Record, Attr,
// LevelWarn, KindString ...) aliases of its own.
//
// # Threading
//
// The host never calls one plugin instance concurrently: a plugin needs no
// locks. It may run several instances of the same module at once, each
// with its own memory.
package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/record"
)

// ABIVersion is the plugin ABI version this SDK implements
// (docs/plugin-abi.md).
const ABIVersion = 2

// Record is record.Record (package github.com/logtk/logtk/record, which
// documents its fields and methods): a read-only view of one encoded
// logtk.v1.Record. Its byte slices point into the batch the host sent and
// are valid only during the call that passed it; copy what must outlive
// the call.
type Record = record.Record

// Attr is record.Attr: a read-only view of one attribute of a Record,
// filled by record.AttrIter.Next.
type Attr = record.Attr

// Attribute kinds, the values of Attr.Kind: record.KindString and the
// others, under the names a plugin has used.
const (
	KindString   = record.KindString
	KindInt      = record.KindInt
	KindUint     = record.KindUint
	KindFloat    = record.KindFloat
	KindBool     = record.KindBool
	KindBytes    = record.KindBytes
	KindTime     = record.KindTime
	KindDuration = record.KindDuration
	KindGroup    = record.KindGroup
)

// Levels as they appear in Record.Level (OpenTelemetry severity numbers):
// record.LevelTrace and the others.
const (
	LevelTrace  = record.LevelTrace
	LevelDebug  = record.LevelDebug
	LevelInfo   = record.LevelInfo
	LevelNotice = record.LevelNotice
	LevelWarn   = record.LevelWarn
	LevelError  = record.LevelError
	LevelFatal  = record.LevelFatal
)

// Sources as they appear in Record.Source: record.SourceSDK and the
// others.
const (
	SourceSDK    = record.SourceSDK
	SourceStdout = record.SourceStdout
	SourceStderr = record.SourceStderr
	SourceHost   = record.SourceHost
)

// Formatter turns records into bytes for a transport.
type Formatter interface {
	// Format appends the formatted form of r to dst and returns it.
	// Appending nothing drops the record from this pipeline on purpose (a
	// filter); an error fails the whole batch (status 2, invalid input):
	// the host gives it again in halves until the records that fail are
	// alone, and dead-letters those. Retry(err) asks for the same batch
	// again a little later.
	Format(dst []byte, r *Record) ([]byte, error)
}

// BatchFormatter is implemented by formatters that can do better than one
// Format call per record. FormatBatch appends to dst the formatted batch
// for an encoded record batch (docs/plugin-abi.md: exactly one entry per
// record, in order) and returns ok; returning ok false makes the SDK fall
// back to Format for each record.
type BatchFormatter interface {
	FormatBatch(dst, records []byte) (out []byte, ok bool, err error)
}

// PassThroughFormatter is implemented by formatters whose output can be
// their input unchanged: the protobuf formatter with logtk's own schema.
// When PassThrough reports true, FormatBatch appends the batch as it is
// (one copy, no parsing), and the exported format call answers
// "unchanged" (docs/plugin-abi.md, status 5) without reading the batch:
// the host forwards the batch it sent.
type PassThroughFormatter interface {
	PassThrough() bool
}

// Transport delivers formatted records.
type Transport interface {
	// Open acquires resources (files, connections). It runs once, after
	// Configure.
	Open() error
	// Write delivers a batch. Returning nil means every entry is
	// delivered as durably as the transport promises; the host then
	// forgets the batch. Return Retry(err) for a transient failure: the
	// host retries the same batch later. Any other error is permanent.
	Write(batch *Batch) error
	// Flush makes everything written so far durable.
	Flush() error
	// Close releases resources. No call follows it.
	Close() error
}

// AsyncTransport is implemented by transports that can have several
// batches on their way at once (a network transport waiting for a remote
// acknowledgement). The host calls WriteAsync for up to its in-flight
// limit of batches and Poll to learn which were acknowledged:
//
//   - WriteAsync returns nil when the batch is on its way (not yet
//     delivered), or an error as Write does.
//   - Poll waits up to timeout and returns the ids of batches delivered
//     since the last Poll (possibly none). An error (Retry for transient)
//     means every batch still on its way may be lost: the host sends them
//     all again, in order, with their ids.
//
// The host still forgets a batch only when Poll has reported it.
type AsyncTransport interface {
	Transport
	WriteAsync(batch *Batch) error
	Poll(timeout time.Duration) ([]uint64, error)
}

// Configurer is implemented by plugins that take configuration. Configure
// receives the plugin's config block as JSON, already checked by the host
// against Info.Config, and runs before any other call. It must not do I/O:
// `logtk-host validate` calls it too.
type Configurer interface {
	Configure(config []byte) error
}

// FieldType is the type of one configuration field.
type FieldType string

// Field types. A "file" field is a path in plugins.hcl; the host reads the
// file and the plugin receives its contents, base64-encoded in the JSON as
// Go's encoding/json does for []byte, so the plugin needs no filesystem
// access for it.
const (
	TypeString     FieldType = "string"
	TypeNumber     FieldType = "number"
	TypeBool       FieldType = "bool"
	TypeStringList FieldType = "list(string)"
	TypeStringMap  FieldType = "map(string)"
	TypeFile       FieldType = "file"
	// TypePath is a string naming a path; the host makes a relative path
	// absolute against the configuration file's directory, which is where
	// the user expects it (the plugin sees granted directories at their
	// host paths).
	TypePath FieldType = "path"
)

// Field declares one configuration field.
type Field struct {
	Name     string    `json:"name"`
	Type     FieldType `json:"type"`
	Required bool      `json:"required,omitempty"`
	Doc      string    `json:"doc,omitempty"`
}

// Info describes a plugin to the host.
type Info struct {
	Name    string  `json:"name"`
	Version string  `json:"version"`
	Kind    string  `json:"kind"` // "format" or "transport"; set by Register*
	Config  []Field `json:"config,omitempty"`
	ABI     int     `json:"abi"` // set by Register*
}

// Batch is a sequence of formatted entries handed to a Transport.
type Batch struct {
	id    uint64
	data  []byte
	n     int
	marks []Mark
}

// NewBatch wraps encoded batch data (see the ABI document) with id. It
// exists for native tests of a Transport.
func NewBatch(id uint64, data []byte) (*Batch, error) {
	n, err := countEntries(data)
	if err != nil {
		return nil, err
	}
	return &Batch{id: id, data: data, n: n}, nil
}

// NewMarkedBatch is NewBatch with the batch's marks (MarkKeeper), for
// native tests of a MarkKeeper.
func NewMarkedBatch(id uint64, marks []Mark, data []byte) (*Batch, error) {
	b, err := NewBatch(id, data)
	if err != nil {
		return nil, err
	}
	b.marks = marks
	return b, nil
}

// ID identifies the batch: distinct and increasing per transport, the same
// when the host retries the batch. A network transport sends it so that
// the receiver can drop a retransmission.
func (b *Batch) ID() uint64 { return b.id }

// Len returns the number of entries.
func (b *Batch) Len() int { return b.n }

// Each calls fn for each entry in order until fn returns false. Entries are
// valid only during the call to Write.
func (b *Batch) Each(fn func(entry []byte) bool) {
	entries.EachWhile(b.data, fn)
}

// Bytes returns the encoded batch.
func (b *Batch) Bytes() []byte { return b.data }

var errRetry = errors.New("retry")

type retryErr struct{ err error }

func (e retryErr) Error() string { return e.err.Error() }
func (e retryErr) Unwrap() error { return e.err }
func (e retryErr) Is(t error) bool {
	return t == errRetry
}

// Retry marks err as transient: the host retries the batch.
func Retry(err error) error { return retryErr{err} }

// IsRetry reports whether err was marked by Retry.
func IsRetry(err error) bool { return errors.Is(err, errRetry) }

var registered struct {
	info      Info
	formatter Formatter
	transport Transport
}

// RegisterFormatter makes f the plugin's formatter. Call it once, from init.
func RegisterFormatter(info Info, f Formatter) {
	register(info, "format")
	registered.formatter = f
}

// RegisterTransport makes t the plugin's transport. Call it once, from init.
func RegisterTransport(info Info, t Transport) {
	register(info, "transport")
	registered.transport = t
}

func register(info Info, kind string) {
	if registered.info.Kind != "" {
		panic(fmt.Sprintf("plugin: %s %q registered twice", kind, info.Name))
	}
	info.Kind, info.ABI = kind, ABIVersion
	registered.info = info
}

// DecodeConfig is a helper for Configure: it decodes the JSON config into v.
func DecodeConfig(config []byte, v any) error {
	if len(config) == 0 {
		return nil
	}
	return json.Unmarshal(config, v)
}
