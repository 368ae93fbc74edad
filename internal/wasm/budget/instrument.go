package budget

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// The time budget, done inline.
//
// wazero enforces a context deadline (WithCloseOnContextDone) by leaving
// the compiled code for Go at every loop back-edge to ask whether the call
// was cancelled. Go compiled to Wasm loops per byte in many places, so
// that costs a Go plugin several times its own time (wazero issue #2466;
// the package comment says when this package can go).
//
// Instead, Instrument rewrites the module: it adds two mutable i32
// globals, a stop flag (exported as StopExport) and a countdown. At the
// start of every function it inserts the check:
//
//	countdown -= 1
//	if countdown == 0 {
//	  countdown = checkEvery
//	  drop(memory.grow(0))   // leaves the compiled code for Go, a moment
//	  if stop { unreachable }
//	}
//
// and before every branch back to a loop the loop check, on an i32 local
// it adds to the function (zero at each call):
//
//	n += 1
//	if n % loopEvery == 0 { the check }
//
// A local lives in a register in wazero's code, where a global is a load
// or a store, and Go's Wasm code branches back to its dispatch loop for
// every loop iteration, more often than it calls: the loop check counts
// in a local for that, and is cheaper than a check at every loop header
// (BENCHMARKS.md, the time budget, has the figures).
//
// The host clears the flag before an operation and sets it from a timer
// when the operation's budget runs out (or its context is cancelled): the
// running code traps within checkEvery calls or runs of loopEvery
// iterations of one call's loops (a call that returns before loopEvery
// iterations counts as one). The exit through memory.grow(0), which
// changes nothing, matters as much: Go cannot preempt compiled Wasm code,
// and a garbage collection waiting for a goroutine stuck in a Wasm loop
// would stop the whole host (with it the timer that sets the flag).
//
// The same pass threads the jumps of Go's dispatch loops and tests for
// their entry block before the br_table (thread.go), which changes
// nothing the code does.
//
// The rewrite decodes every instruction. A module using an instruction it
// does not know (SIMD, threads, exceptions, tail calls), without a memory,
// or whose code already names a global or local index that does not
// exist (which the new global or local would make valid: a plugin could

// wazero's checks instead.

// checkEvery is how many function checks pass between two tests of the
// stop flag: one for every call, and one for every loopEvery iterations
// of a call's loops.
const checkEvery = 1024

// loopEvery is how many iterations of a function's loops, within one call
// of it, count as one call. A power of two, under 64 (it is an i32.const
// of one byte).
const loopEvery = 32

// StopExport is the export name of the stop flag, a mutable i32 global
// of an instrumented module: once the host sets it to non-zero, the call
// in progress traps (unreachable) at its next test of the flag.
const StopExport = "logtk_stop_flag"

var errUninstrumentable = errors.New("wasm: module not rewritable for the inline time budget")

// checkCode is the function check, inserted at function entries and in
// the loop check, for the stop flag and countdown globals stop and
// stop+1.
func checkCode(stop uint32) []byte {
	every := sleb32(checkEvery)
	g := func(op byte, idx uint32) []byte { return binary.AppendUvarint([]byte{op}, uint64(idx)) }
	var b []byte
	b = append(b, g(0x23, stop+1)...)           // global.get $countdown
	b = append(b, 0x41, 0x01, 0x6b)             // i32.const 1; i32.sub
	b = append(b, g(0x24, stop+1)...)           // global.set $countdown
	b = append(b, g(0x23, stop+1)...)           // global.get $countdown
	b = append(b, 0x45, 0x04, 0x40)             // i32.eqz; if
	b = append(append(b, 0x41), every...)       //   i32.const checkEvery
	b = append(b, g(0x24, stop+1)...)           //   global.set $countdown
	b = append(b, 0x41, 0x00, 0x40, 0x00, 0x1a) //   memory.grow(0); drop
	b = append(b, g(0x23, stop)...)             //   global.get $stop
	b = append(b, 0x04, 0x40, 0x00, 0x0b)       //   if unreachable end
	return append(b, 0x0b)                      // end
}

// loopCheckCode is the loop check, inserted before every branch back to
// a loop: it counts the iterations of the function's loops in the local n
// and every loopEvery of them runs the function check, check.
func loopCheckCode(check []byte, n uint32) []byte {
	var b []byte
	b = binary.AppendUvarint(append(b, 0x20), uint64(n)) // local.get $n
	b = append(b, 0x41, 0x01, 0x6a)                      // i32.const 1; i32.add
	b = binary.AppendUvarint(append(b, 0x22), uint64(n)) // local.tee $n
	b = append(b, 0x41, loopEvery-1, 0x71)               // i32.const loopEvery-1; i32.and
	b = append(b, 0x45, 0x04, 0x40)                      // i32.eqz; if
	b = append(b, check...)                              //   the function check
	return append(b, 0x0b)                               // end
}

// Instrument returns the module with the stop flag (exported as
// StopExport) and its checks, its jumps threaded as ThreadOnly does. A
// module it cannot rewrite safely, it refuses with an error, and the
// module should then run with wazero's own checks.
func Instrument(bin []byte) ([]byte, error) { return rewrite(bin, true) }

func rewrite(bin []byte, budget bool) ([]byte, error) {
	if len(bin) < 8 || !bytes.Equal(bin[:8], []byte{0, 'a', 's', 'm', 1, 0, 0, 0}) {
		return nil, fmt.Errorf("%w: not a WebAssembly 1.0 binary", errUninstrumentable)
	}
	var secs []section
	r := reader{b: bin[8:]}
	for !r.done() {
		id := r.byte()
		n := r.u32()
		p := r.bytes(int(n))
		if r.err != nil {
			return nil, fmt.Errorf("%w: %v", errUninstrumentable, r.err)
		}
		secs = append(secs, section{id, p})
	}
	// Count the globals (imported ones come first in the index space) and
	// look for a memory.
	var globals uint32
	hasMemory := false
	for _, s := range secs {
		switch s.id {
		case 2: // import
			g, mem, err := imports(s.payload)
			if err != nil {
				return nil, fmt.Errorf("%w: import section: %v", errUninstrumentable, err)
			}
			globals += g
			hasMemory = hasMemory || mem
		case 5: // memory: a section may declare none
			sr := reader{b: s.payload}
			hasMemory = hasMemory || sr.u32() > 0
		case 6: // global
			sr := reader{b: s.payload}
			globals += sr.u32()
		case 7: // export
			if bytes.Contains(s.payload, []byte(StopExport)) {
				return nil, fmt.Errorf("%w: the module exports %s itself", errUninstrumentable, StopExport)
			}
		}
	}
	stop := globals
	params, err := paramCounts(secs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUninstrumentable, err)
	}
	if !hasMemory {
		return nil, fmt.Errorf("%w: the module has no memory", errUninstrumentable)
	}
	// The checks add about a tenth to the code (a Go plugin's): room for
	// that and more up front, instead of growing the copy as it goes.
	out := make([]byte, 0, len(bin)+len(bin)/4)
	out = append(out, bin[:8]...)
	emit := func(id byte, p []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(p)))
		out = append(out, p...)
	}
	if !budget {
		for _, s := range secs {
			p := s.payload
			if s.id == 10 {
				var err error
				if p, err = instrumentCode(p, stop, nil, params); err != nil {
					return nil, err
				}
			}
			emit(s.id, p)
		}
		return out, nil
	}
	// The stop flag (mut i32 = 0) and the countdown (mut i32 = 1024).
	newGlobal := append([]byte{0x7f, 0x01, 0x41, 0x00, 0x0b, 0x7f, 0x01, 0x41}, append(sleb32(checkEvery), 0x0b)...)
	addedGlobal, addedExport := false, false
	order := func(id byte) int { // where standard sections go (datacount 12 sits before code 10)
		switch id {
		case 12:
			return 95
		case 10:
			return 100
		case 11:
			return 110
		}
		return int(id) * 10
	}
	for _, s := range secs {
		if s.id != 0 && !addedGlobal && order(s.id) > order(6) {
			emit(6, append([]byte{2}, newGlobal...))
			addedGlobal = true
		}
		if s.id != 0 && !addedExport && order(s.id) > order(7) {
			emit(7, append([]byte{1}, exportEntry(stop)...))
			addedExport = true
		}
		switch s.id {
		case 6:
			sr := reader{b: s.payload}
			n := sr.u32()
			p := binary.AppendUvarint(nil, uint64(n+2))
			p = append(p, sr.b...)
			emit(6, append(p, newGlobal...))
			addedGlobal = true
		case 7:
			sr := reader{b: s.payload}
			n := sr.u32()
			p := binary.AppendUvarint(nil, uint64(n+1))
			p = append(p, sr.b...)
			emit(7, append(p, exportEntry(stop)...))
			addedExport = true
		case 10:
			code, err := instrumentCode(s.payload, stop, checkCode(stop), params)
			if err != nil {
				return nil, err
			}
			emit(10, code)
		default:
			emit(s.id, s.payload)
		}
	}
	if !addedGlobal {
		emit(6, append([]byte{2}, newGlobal...))
	}
	if !addedExport {
		emit(7, append([]byte{1}, exportEntry(stop)...))
	}
	return out, nil
}

func exportEntry(global uint32) []byte {
	e := binary.AppendUvarint(nil, uint64(len(StopExport)))
	e = append(e, StopExport...)
	e = append(e, 0x03) // global
	return binary.AppendUvarint(e, uint64(global))
}

// paramCounts returns the number of parameters of each function the
// module defines, in the order of the code section.
func paramCounts(secs []section) ([]uint32, error) {
	var types, funcs []uint32
	for _, s := range secs {
		r := reader{b: s.payload}
		switch s.id {
		case 1: // type
			for range r.vec() {
				if r.byte() != 0x60 {
					r.fail("function type")
				}
				n := r.vec()
				for range n {
					r.valType()
				}
				for range r.vec() {
					r.valType()
				}
				types = append(types, n)
			}
		case 3: // function
			for range r.vec() {
				funcs = append(funcs, r.u32())
			}
		}
		if r.err != nil {
			return nil, fmt.Errorf("section %d: %v", s.id, r.err)
		}
	}
	params := make([]uint32, len(funcs))
	for i, t := range funcs {
		if int(t) >= len(types) {
			return nil, fmt.Errorf("function %d has type %d; the module has %d", i, t, len(types))
		}
		params[i] = types[t]
	}
	return params, nil
}

// instrumentCode rewrites the code section: with check (the function
// check, checkCode), the checks; always, the threaded jumps. params holds
// each function's parameter count.
func instrumentCode(p []byte, stop uint32, check []byte, params []uint32) ([]byte, error) {
	r := reader{b: p}
	n := r.u32()
	if int(n) != len(params) {
		return nil, fmt.Errorf("%w: %d function bodies for %d functions", errUninstrumentable, n, len(params))
	}
	out := binary.AppendUvarint(make([]byte, 0, len(p)+len(p)/4), uint64(n))
	for i := range n {
		size := r.u32()
		body := r.bytes(int(size))
		if r.err != nil {
			return nil, fmt.Errorf("%w: function %d: %v", errUninstrumentable, i, r.err)
		}
		nb, err := instrumentBody(body, stop, check, params[i])
		if err != nil {
			return nil, fmt.Errorf("%w: function %d: %v", errUninstrumentable, i, err)
		}
		out = binary.AppendUvarint(out, uint64(len(nb)))
		out = append(out, nb...)
	}
	if !r.done() || r.err != nil {
		return nil, fmt.Errorf("%w: code section has trailing bytes", errUninstrumentable)
	}
	return out, nil
}

// instrumentBody inserts the function check after the locals and the
// loop check before every branch back to a loop that remains (a threaded
// jump goes forward), its counter a local added after the function's; and
// it threads the jumps of Go's dispatch loop (threader). stop is the
// stop flag's global (the module's globals before it), check the
// function check, nil for no budget, and params the function's parameter
// count.
func instrumentBody(body []byte, stop uint32, check []byte, params uint32) ([]byte, error) {
	r := reader{b: body}
	// Every count is read with vec, which refuses one larger than the bytes
	// left: a few bytes declaring billions of entries would otherwise keep
	// this loop (and the host's Load) busy for seconds.
	groups := r.vec()
	afterCount := len(body) - len(r.b)
	locals := uint64(params)
	for range groups { // local declarations
		locals += uint64(r.u32())
		r.valType()
	}
	if r.err != nil {
		return nil, r.err
	}
	localsEnd := len(body) - len(r.b)
	// backs: the branches back to a loop, where loop checks go.
	var backs []int
	t := threader{control: control{ctl: []int32{0}, loops: []bool{false}, empty: []bool{false}}} // id 0: the body
	for !r.done() {
		at := len(body) - len(r.b)
		op := r.byte()
		var imm int64 // local index, or i32.const's value
		switch {
		case op == 0x02 || op == 0x04: // block, if
			empty := len(r.b) > 0 && r.b[0] == 0x40
			r.blockType()
			t.push(false, empty)
		case op == 0x03: // loop
			r.blockType()
			t.push(true, false)
		case op == 0x0b: // end
			t.pop()
		case op == 0x0c: // br
			d := r.u32()
			if t.toLoop(d) {
				backs = append(backs, at)
			}
			t.br(d, len(body)-len(r.b))
		case op == 0x0d: // br_if
			d := r.u32()
			if t.toLoop(d) {
				backs = append(backs, at)
			}
			t.branch(d)
		case op == 0x0e: // br_table
			n := r.vec()
			labels := make([]uint32, 0, min(n, 1024))
			for range n {
				labels = append(labels, r.u32())
			}
			labels = append(labels, r.u32())
			if slices.ContainsFunc(labels, t.toLoop) {
				backs = append(backs, at)
			}
			t.brTable(labels)
		case op == 0x10: // call
			r.u32()
		case op == 0x11: // call_indirect
			r.u32()
			r.u32()
		case op == 0x1c: // select t*
			for range r.vec() {
				r.valType()
			}
		case op >= 0x20 && op <= 0x22: // local.get/set/tee
			imm = int64(r.u32())
			if uint64(imm) >= locals {
				// The loop counter would make it valid: the plugin
				// could reset the counter and loop unchecked.
				return nil, fmt.Errorf("names local %d; the function has %d", imm, locals)
			}
			if op == 0x20 && imm == 0 {
				t.gets0++
			}
		case op == 0x23 || op == 0x24: // global.get/set
			if g := r.u32(); g >= stop {
				return nil, fmt.Errorf("names global %d; the module has %d", g, stop)
			}
		case op == 0x25 || op == 0x26: // table.get/set
			r.u32()
		case op >= 0x28 && op <= 0x3e: // loads and stores: align, offset
			r.u32()
			r.u64()
		case op == 0x3f || op == 0x40: // memory.size/grow
			r.byte()
		case op == 0x41: // i32.const
			imm = r.s32()
		case op == 0x42: // i64.const
			r.s64()
		case op == 0x43:
			r.bytes(4)
		case op == 0x44:
			r.bytes(8)
		case op == 0xd0: // ref.null t
			r.byte()
		case op == 0xd2: // ref.func
			r.u32()
		case op == 0xfc:
			switch sub := r.u32(); {
			case sub <= 7: // saturating truncations
			case sub == 8: // memory.init
				r.u32()
				r.byte()
			case sub == 9, sub == 13, sub == 15, sub == 16, sub == 17: // data.drop, elem.drop, table.grow/size/fill
				r.u32()
			case sub == 10: // memory.copy
				r.byte()
				r.byte()
			case sub == 11: // memory.fill
				r.byte()
			case sub == 12, sub == 14: // table.init, table.copy
				r.u32()
				r.u32()
			default:
				return nil, fmt.Errorf("unknown instruction 0xfc %d", sub)
			}
		case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0f || op == 0x1a || op == 0x1b || op == 0xd1:
			// unreachable, nop, else, return, drop, select, ref.is_null
		case op >= 0x45 && op <= 0xc4: // numeric instructions without immediates
		default:
			return nil, fmt.Errorf("unknown instruction 0x%02x", op)
		}
		if r.err != nil {
			return nil, r.err
		}
		t.prev[1], t.prev[0] = t.prev[0], instr{op: op, at: at, imm: imm}
		switch op {
		case 0x03:
			t.inLoop = 0
		case 0x02:
		default:
			t.inLoop++
		}
	}
	threaded := t.threaded()
	edits := make([]edit, 0, len(backs)+len(threaded)+3)
	if check != nil {
		edits = append(edits, edit{from: localsEnd, to: localsEnd, code: check})
		// A threaded jump no longer goes back: it needs no check. Both
		// lists are in the order of the code, and the jumps do not
		// overlap.
		j := 0
		backs = slices.DeleteFunc(backs, func(at int) bool {
			for j < len(threaded) && threaded[j].to <= at {
				j++
			}
			return j < len(threaded) && threaded[j].from <= at
		})
		if len(backs) > 0 {
			if locals >= maxLocals {
				return nil, fmt.Errorf("%d locals, no room for the loop counter", locals)
			}
			// The declarations again, with one group more: 1 x i32.
			decl := binary.AppendUvarint(nil, uint64(groups)+1)
			decl = append(decl, body[afterCount:localsEnd]...)
			edits = append(edits, edit{from: 0, to: localsEnd, code: append(decl, 0x01, 0x7f)})
			loopCheck := loopCheckCode(check, uint32(locals))
			for _, at := range backs {
				edits = append(edits, edit{from: at, to: at, code: loopCheck})
			}
		}
	}
	if fast := t.entryFast(); fast != nil {
		edits = append(edits, edit{from: t.dispatchAt, to: t.dispatchAt, code: fast})
	}
	edits = append(edits, threaded...)
	slices.SortStableFunc(edits, func(a, b edit) int { return cmp.Compare(a.from, b.from) })
	out := make([]byte, 0, len(body)+len(backs)*64+64)
	last := 0 // start of what is not yet copied
	for _, e := range edits {
		out = append(out, body[last:e.from]...)
		if e.code != nil {
			out = append(out, e.code...)
		} else {
			out = binary.AppendUvarint(append(out, 0x0c), uint64(e.depth)) // br
		}
		last = e.to
	}
	return append(out, body[last:]...), nil
}

// edit replaces body[from:to] with code, or with a br of depth when code
// is nil.
type edit struct {
	from, to, depth int
	code            []byte
}

// control follows the control structure of one function body: the
// blocks, loops and ifs around each instruction, and where a branch goes.
type control struct {
	ctl   []int32 // ids of the enclosing blocks, loops and ifs
	loops []bool  // whether each id is a loop
	empty []bool  // whether each id is a block without results
}

func (c *control) push(loop, empty bool) {
	c.ctl = append(c.ctl, int32(len(c.loops)))
	c.loops = append(c.loops, loop)
	c.empty = append(c.empty, empty)
}

func (c *control) pop() {
	if len(c.ctl) > 0 {
		c.ctl = c.ctl[:len(c.ctl)-1]
	}
}

// toLoop reports whether a branch of depth d goes back to a loop.
func (c *control) toLoop(d uint32) bool {
	id := c.target(d)
	return id >= 0 && c.loops[id]
}

// target returns the id a branch of depth d goes to, -1 if none.
func (c *control) target(d uint32) int32 {
	if int64(d) >= int64(len(c.ctl)) {
		return -1
	}
	return c.ctl[len(c.ctl)-1-int(d)]
}
