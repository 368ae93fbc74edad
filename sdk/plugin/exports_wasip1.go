//go:build wasip1

package plugin

import (
	"encoding/json"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// The ABI's exports (docs/plugin-abi.md). Buffers handed to the host are
// package-level so that they stay referenced while the host reads them.

// Status codes.
const (
	statusOK        = 0
	statusRetry     = 1
	statusInvalid   = 2
	statusInternal  = 3
	statusPending   = 4
	statusUnchanged = 5 // logtk_format: the output is the input (ABI 2)
)

var (
	inBuf  []byte // the host writes call input here (logtk_alloc)
	outBuf []byte // results and error messages (logtk_result)
	result []byte // the slice of outBuf the last call produced
	fmtBuf []byte // FormatBatch output, reused
)

func ptr(b []byte) uint32 {
	if cap(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

//go:wasmexport logtk_abi_version
func abiVersion() uint32 { return ABIVersion }

//go:wasmexport logtk_alloc
func alloc(size uint32) uint32 {
	if cap(inBuf) == 0 || int(size) > cap(inBuf) {
		inBuf = make([]byte, max(int(size), 64, 2*cap(inBuf)))
		// A grown heap can leave the Go GC mid-cycle across calls, which
		// slows every later call; finish the cycle now.
		runtime.GC()
	}
	inBuf = inBuf[:size]
	return ptr(inBuf)
}

//go:wasmexport logtk_result
func resultPtr() uint64 {
	return uint64(ptr(result))<<32 | uint64(len(result))
}

func setResult(b []byte) { result = b }

func fail(status uint32, err error) uint32 {
	outBuf = append(outBuf[:0], err.Error()...)
	setResult(outBuf)
	return status
}

func errStatus(err error) uint32 {
	if IsRetry(err) {
		return fail(statusRetry, err)
	}
	return fail(statusInternal, err)
}

//go:wasmexport logtk_info
func info() uint32 {
	b, err := json.Marshal(registered.info)
	if err != nil {
		return fail(statusInternal, err)
	}
	if registered.info.Kind == "" {
		return fail(statusInvalid, fmt.Errorf("plugin registered nothing: call plugin.RegisterFormatter or RegisterTransport from init"))
	}
	outBuf = append(outBuf[:0], b...)
	setResult(outBuf)
	return statusOK
}

func current() any {
	if registered.formatter != nil {
		return registered.formatter
	}
	return registered.transport
}

//go:wasmexport logtk_configure
func configure(p, n uint32) uint32 {
	c, ok := current().(Configurer)
	setResult(nil)
	if !ok {
		return statusOK
	}
	if err := c.Configure(input(p, n)); err != nil {
		return fail(statusInvalid, err)
	}
	return statusOK
}

// input returns the call's input, which the host wrote into inBuf.
func input(p, n uint32) []byte {
	if n == 0 {
		return nil
	}
	if p != ptr(inBuf) || int(n) > len(inBuf) {
		panic("logtk plugin ABI: input not in the buffer returned by logtk_alloc")
	}
	return inBuf[:n]
}

//go:wasmexport logtk_format
func format(p, n uint32) uint32 {
	f := registered.formatter
	if f == nil {
		return fail(statusInvalid, fmt.Errorf("not a format plugin"))
	}
	if pt, ok := f.(PassThroughFormatter); ok && pt.PassThrough() {
		// The host forwards its own batch: the plugin neither reads nor
		// copies it.
		setResult(nil)
		return statusUnchanged
	}
	in := input(p, n)
	out, err := FormatBatch(f, fmtBuf[:0], in)
	grown := cap(out) > cap(fmtBuf)
	fmtBuf = out
	if grown {
		runtime.GC()
	}
	if err != nil {
		// A record that cannot be formatted is bad input (status 2): the
		// host keeps this instance and isolates the record. A failure of
		// the plugin itself (a panic, out of memory) traps.
		if IsRetry(err) {
			return fail(statusRetry, err)
		}
		return fail(statusInvalid, err)
	}
	setResult(fmtBuf)
	return statusOK
}

//go:wasmexport logtk_open
func open() uint32 {
	setResult(nil)
	if t := registered.transport; t != nil {
		if err := t.Open(); err != nil {
			return errStatus(err)
		}
	}
	return statusOK
}

//go:wasmexport logtk_write
func write(p, n uint32) uint32 {
	t := registered.transport
	setResult(nil)
	if t == nil {
		return fail(statusInvalid, fmt.Errorf("not a transport plugin"))
	}
	in := input(p, n)
	id, k := protowire.ConsumeVarint(in)
	if k < 0 {
		return fail(statusInvalid, fmt.Errorf("write input without a batch id"))
	}
	in = in[k:]
	var marks []Mark
	if keepingMarks {
		m, k := protowire.ConsumeBytes(in)
		if k < 0 {
			return fail(statusInvalid, fmt.Errorf("write input without the batch's marks"))
		}
		var err error
		if len(m) > 0 {
			// A fresh slice: a transport may keep a batch's marks until
			// it is acknowledged.
			if marks, err = ParseMarks(nil, m); err != nil {
				return fail(statusInvalid, err)
			}
		}
		in = in[k:]
	}
	b, err := NewBatch(id, in)
	if err != nil {
		return fail(statusInvalid, err)
	}
	b.marks = marks
	if at, ok := t.(AsyncTransport); ok {
		if err := at.WriteAsync(b); err != nil {
			return errStatus(err)
		}
		return statusPending
	}
	if err := t.Write(b); err != nil {
		return errStatus(err)
	}
	return statusOK
}

// keepingMarks: the host called logtk_marks and the transport keeps
// marks, so write inputs carry them.
var (
	keepingMarks bool
	marksBuf     []byte
)

//go:wasmexport logtk_marks
func keepMarks() uint32 {
	setResult(nil)
	mk, ok := registered.transport.(MarkKeeper)
	if !ok {
		return fail(statusInvalid, fmt.Errorf("this transport does not keep marks"))
	}
	held, err := mk.Marks()
	if err != nil {
		return errStatus(err)
	}
	marksBuf = AppendMarks(marksBuf[:0], held)
	keepingMarks = true
	setResult(marksBuf)
	return statusOK
}

var pollBuf []byte

//go:wasmexport logtk_poll
func poll(timeoutMillis uint32) uint32 {
	setResult(nil)
	at, ok := registered.transport.(AsyncTransport)
	if !ok {
		return statusOK // a synchronous transport has nothing on its way
	}
	ids, err := at.Poll(time.Duration(timeoutMillis) * time.Millisecond)
	if err != nil {
		return errStatus(err)
	}
	pollBuf = pollBuf[:0]
	for _, id := range ids {
		pollBuf = protowire.AppendVarint(pollBuf, id)
	}
	setResult(pollBuf)
	return statusOK
}

//go:wasmexport logtk_flush
func flush() uint32 {
	setResult(nil)
	if t := registered.transport; t != nil {
		if err := t.Flush(); err != nil {
			return errStatus(err)
		}
	}
	return statusOK
}

//go:wasmexport logtk_close
func closePlugin() uint32 {
	setResult(nil)
	if t := registered.transport; t != nil {
		if err := t.Close(); err != nil {
			return errStatus(err)
		}
	}
	return statusOK
}
