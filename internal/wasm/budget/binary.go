package budget

// The WebAssembly binary format, read for the rewrite and for CheckSizes,
// the size guard Load runs on every module before wazero sees it.

import (
	"encoding/binary"
	"errors"
	"fmt"
)

type section struct {
	id      byte
	payload []byte
}

// maxLocals bounds the locals a function may declare (as browsers do).
const maxLocals = 50_000

// CheckSizes walks the structure of every section and refuses a binary
// in which a vector declares more entries than the bytes that follow can
// hold, or a function declares more than maxLocals locals: wazero
// allocates for declared counts before it reads the entries, so a module
// of a few bytes could make the host allocate gigabytes and die. What it
// lets through, wazero still validates.
func CheckSizes(bin []byte) error {
	if len(bin) < 8 {
		return errors.New("too short for a WebAssembly module")
	}
	r := reader{b: bin[8:]}
	for !r.done() {
		id := r.byte()
		p := r.bytes(int(r.u32()))
		if r.err != nil {
			return fmt.Errorf("section %d: %v", id, r.err)
		}
		if err := checkSection(id, p); err != nil {
			return fmt.Errorf("section %d: %w", id, err)
		}
	}
	return nil
}

func checkSection(id byte, p []byte) error {
	r := &reader{b: p}
	switch id {
	case 0: // custom: only the name section is read by wazero
		if string(r.bytes(int(r.u32()))) == "name" {
			for !r.done() {
				sub := r.byte()
				sr := &reader{b: r.bytes(int(r.u32()))}
				switch sub {
				case 0:
					sr.name()
				case 1:
					sr.nameMap()
				case 2:
					for range sr.vec() {
						sr.u32()
						sr.nameMap()
					}
				}
				if sr.err != nil {
					return sr.err
				}
			}
		}
		return r.err
	case 1: // types
		for range r.vec() {
			r.byte()
			r.bytes(int(r.vec()))
			r.bytes(int(r.vec()))
		}
	case 3: // functions
		for range r.vec() {
			r.u32()
		}
	case 4: // tables
		for range r.vec() {
			r.byte()
			r.limits()
		}
	case 5: // memories
		for range r.vec() {
			r.limits()
		}
	case 6: // globals
		for range r.vec() {
			r.byte()
			r.byte()
			r.constExpr()
		}
	case 7: // exports
		for range r.vec() {
			r.name()
			r.byte()
			r.u32()
		}
	case 9: // elements
		for range r.vec() {
			flags := r.u32()
			if flags > 7 {
				return fmt.Errorf("element flags %d", flags)
			}
			if flags&2 != 0 && flags&1 == 0 {
				r.u32() // table index
			}
			if flags&1 == 0 {
				r.constExpr() // offset
			}
			if flags&3 != 0 {
				r.byte() // element kind or reference type
			}
			for range r.vec() {
				if flags&4 != 0 {
					r.constExpr()
				} else {
					r.u32()
				}
			}
		}
	case 10: // code
		for i := range r.vec() {
			br := &reader{b: r.bytes(int(r.u32()))}
			total := uint64(0)
			for range br.vec() {
				total += uint64(br.u32())
				br.byte()
			}
			if total > maxLocals {
				return fmt.Errorf("function %d declares %d locals (at most %d)", i, total, maxLocals)
			}
			if br.err != nil {
				return br.err
			}
		}
	case 11: // data
		for range r.vec() {
			switch flags := r.u32(); flags {
			case 0:
				r.constExpr()
			case 1:
			case 2:
				r.u32()
				r.constExpr()
			default:
				return fmt.Errorf("data flags %d", flags)
			}
			r.bytes(int(r.vec()))
		}
	}
	return r.err
}

// reader decodes the binary format; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) done() bool { return len(r.b) == 0 || r.err != nil }

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = errors.New(what)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail("unexpected end")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.fail("length past the end")
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) u64() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad LEB128")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) u32() uint32 {
	v := r.u64()
	if v > 1<<32-1 {
		r.fail("LEB128 over 32 bits")
		return 0
	}
	return uint32(v)
}

// s64 skips a signed LEB128 and reports whether it was negative.
func (r *reader) s64() (negative bool) {
	for i := 0; ; i++ {
		c := r.byte()
		if r.err != nil {
			return false
		}
		if c&0x80 == 0 {
			return c&0x40 != 0
		}
		if i >= 9 {
			r.fail("bad signed LEB128")
			return false
		}
	}
}

// s32 reads a signed LEB128 of at most 5 bytes (an i32.const).
func (r *reader) s32() int64 {
	var v int64
	for i := 0; ; i++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= int64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if c&0x40 != 0 {
				v |= -1 << (7 * (i + 1))
			}
			return int64(int32(v))
		}
		if i >= 4 {
			r.fail("bad signed LEB128")
			return 0
		}
	}
}

// blockType reads a block type: empty (0x40), a value type, or a type
// index (a signed LEB128).
func (r *reader) blockType() {
	if len(r.b) == 0 {
		r.fail("unexpected end")
		return
	}
	switch c := r.b[0]; {
	case c == 0x40 || isValType(c):
		r.b = r.b[1:]
	default:
		// A type index is a non-negative s33; other negative values are
		// the reference types of later proposals (0x63, 0x64 and a heap
		// type), whose immediates this reader does not know.
		if r.s64() {
			r.fail(fmt.Sprintf("block type %#x", c))
		}
	}
}

// isValType reports whether c is one of the one-byte value types of
// WebAssembly 2.0 (numbers, v128, funcref, externref).
func isValType(c byte) bool {
	return c == 0x7f || c == 0x7e || c == 0x7d || c == 0x7c || c == 0x7b || c == 0x70 || c == 0x6f
}

// valType reads a value type, refusing the multi-byte ones of later
// proposals (typed function references: 0x63/0x64 and a heap type), which
// wazero may accept but this reader would misread.
func (r *reader) valType() {
	if c := r.byte(); r.err == nil && !isValType(c) {
		r.fail(fmt.Sprintf("value type %#x", c))
	}
}

func (r *reader) name() { r.bytes(int(r.u32())) }

// vec reads a vector's length, refusing one longer than the bytes left
// (every entry takes at least one).
func (r *reader) vec() uint32 {
	n := r.u32()
	if int(n) > len(r.b) {
		r.fail(fmt.Sprintf("declares %d entries in %d bytes", n, len(r.b)))
		return 0
	}
	return n
}

func (r *reader) nameMap() {
	for range r.vec() {
		r.u32()
		r.name()
	}
}

// constExpr reads a constant expression up to its end.
func (r *reader) constExpr() {
	for !r.done() {
		switch op := r.byte(); op {
		case 0x0b:
			return
		case 0x41, 0x42:
			r.s64()
		case 0x43:
			r.bytes(4)
		case 0x44:
			r.bytes(8)
		case 0x23, 0xd2:
			r.u32()
		case 0xd0:
			r.byte()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constant arithmetic
		default:
			r.fail(fmt.Sprintf("instruction 0x%02x in a constant expression", op))
		}
	}
	r.fail("constant expression without end")
}

func (r *reader) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
}

// imports reads an import section: how many globals it imports and
// whether it imports a memory.
func imports(p []byte) (globals uint32, memory bool, err error) {
	r := reader{b: p}
	for range r.vec() {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0:
			r.u32()
		case 1:
			r.byte()
			r.limits()
		case 2:
			r.limits()
			memory = true
		case 3:
			r.byte()
			r.byte()
			globals++
		default:
			return 0, false, fmt.Errorf("import kind %d", kind)
		}
	}
	return globals, memory, r.err
}

// sleb32 encodes v as a signed LEB128 (the immediate of i32.const).
func sleb32(v int32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
