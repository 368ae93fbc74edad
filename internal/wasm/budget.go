package wasm

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
// that costs 4-5x on the reference formatters (wazero issue #2466).
//
// Instead, Load rewrites the module: it adds two mutable i32 globals, a
// stop flag (exported as stopExport) and a countdown. At the start of
// every function it inserts the check:
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
// or a store: Go's Wasm code branches back to its dispatch loop for every
// loop iteration (~300 times a record in the text formatter, against
// ~100 calls), and the loop check made the reference formatters 6-12%
// faster than the check at every loop header it replaced.
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
// their entry block before the br_table (see threader below), which
// changes nothing the code does.
//
// The rewrite decodes every instruction. A module using an instruction it
// does not know (SIMD, threads, exceptions, tail calls), without a memory,
// or whose code already names a global or local index that does not
// exist (which the new global or local would make valid: a plugin could
// clear its own stop flag or loop counter) is not rewritten; it runs with
// wazero's checks instead.

// checkEvery is how many function checks pass between two tests of the
// stop flag: one for every call, and one for every loopEvery iterations
// of a call's loops.
const checkEvery = 1024

// loopEvery is how many iterations of a function's loops, within one call
// of it, count as one call. A power of two, under 64 (it is an i32.const
// of one byte).
const loopEvery = 32

// stopExport is the export name of the stop flag.
const stopExport = "logtk_stop_flag"

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

type section struct {
	id      byte
	payload []byte
}

// maxLocals bounds the locals a function may declare (as browsers do).
const maxLocals = 50_000

// checkSizes walks the structure of every section and refuses a binary
// in which a vector declares more entries than the bytes that follow can
// hold, or a function declares more than maxLocals locals: wazero
// allocates for declared counts before it reads the entries, so a module
// of a few bytes could make the host allocate gigabytes and die. What it
// lets through, wazero still validates.
func checkSizes(bin []byte) error {
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

// instrumentBudget returns the module with the stop flag and its checks.
func instrumentBudget(bin []byte) ([]byte, error) { return rewrite(bin, true) }

// threadOnly is the rewrite without the budget: it only threads jumps
// (for modules run with call_timeout "off").
func threadOnly(bin []byte) ([]byte, error) { return rewrite(bin, false) }

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
			if bytes.Contains(s.payload, []byte(stopExport)) {
				return nil, fmt.Errorf("%w: the module exports %s itself", errUninstrumentable, stopExport)
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
	e := binary.AppendUvarint(nil, uint64(len(stopExport)))
	e = append(e, stopExport...)
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
	t := threader{ctl: []int32{0}, loops: []bool{false}, empty: []bool{false}} // id 0: the body
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

// Threading the jumps of Go's Wasm code.
//
// Go compiles each function to a loop around a br_table on local 0, the
// index of the basic block to run: the loop's nested blocks end where
// each basic block's code begins, and a jump to block K is
//
//	i32.const K; local.set 0; br $loop
//
// so that every jump, even to the next block, goes through the br_table
// (an indirect jump in the compiled code). A jump forward lands at the end
// of a block that still encloses the jump, and a br to that block goes
// there directly: instrumentBody turns such a jump into that br, and
// leaves backward jumps (loops) to the dispatch, since Wasm branches
// backward only to the start of a loop. About 70% of a Go plugin's jumps
// are threaded; the reference formatters run 12-20% faster for it.
//
// The rewrite is safe when local 0 is read only by the dispatch (the
// skipped local.set is then never observed), every branch to the loop
// sets local 0 just before it, and the dispatch's targets are blocks
// without results. A function that does not have exactly this
// shape is left as it is. Forward jumps cannot form a loop: the branches
// back to a loop that remain, with their loop checks, still close every
// loop.

// instr is a decoded instruction: its opcode, offset and immediate.
type instr struct {
	op  byte
	at  int
	imm int64
}

// threader follows the control structure of one function body.
type threader struct {
	ctl     []int32 // ids of the enclosing blocks, loops and ifs
	loops   []bool  // whether each id is a loop
	empty   []bool  // whether each id is a block without results
	gets0   int     // local.get 0 instructions
	loop    int32   // the dispatch loop's id, 0 before the dispatch
	targets []int32 // the dispatch's target ids; the last is the default
	unsafe  bool
	prev    [2]instr // the last two instructions, the last first
	// inLoop counts the instructions since the last loop began, blocks
	// not counted: the dispatch is loop, block*, local.get 0, br_table.
	inLoop int
	jumps  []edit
	// dispatchAt is where the dispatch's local.get 0 is, label0 the
	// br_table's label for block 0.
	dispatchAt int
	label0     uint32
}

func (t *threader) push(loop, empty bool) {
	t.ctl = append(t.ctl, int32(len(t.loops)))
	t.loops = append(t.loops, loop)
	t.empty = append(t.empty, empty)
}

func (t *threader) pop() {
	if len(t.ctl) > 0 {
		t.ctl = t.ctl[:len(t.ctl)-1]
	}
}

// toLoop reports whether a branch of depth d goes back to a loop.
func (t *threader) toLoop(d uint32) bool {
	id := t.target(d)
	return id >= 0 && t.loops[id]
}

// target returns the id a branch of depth d goes to, -1 if none.
func (t *threader) target(d uint32) int32 {
	if int64(d) >= int64(len(t.ctl)) {
		return -1
	}
	return t.ctl[len(t.ctl)-1-int(d)]
}

// branch notes a br_if or br_table label: one that goes to the dispatch
// loop without setting local 0 just before makes the function unsafe.
func (t *threader) branch(d uint32) {
	if id := t.target(d); id < 0 || (t.loop != 0 && id == t.loop) {
		t.unsafe = true
	}
}

func (t *threader) brTable(labels []uint32) {
	if t.loop != 0 || t.prev[0].op != 0x20 || t.prev[0].imm != 0 || t.inLoop != 1 {
		for _, l := range labels {
			t.branch(l)
		}
		return
	}
	// The dispatch: the loop is the nearest one around it.
	loop := int32(0)
	for i := len(t.ctl) - 1; i >= 0 && loop == 0; i-- {
		if t.loops[t.ctl[i]] {
			loop = t.ctl[i]
		}
	}
	var targets []int32
	for _, l := range labels {
		// A jump lands where the dispatch lands only if nothing is
		// carried there: each target is a block without results.
		id := t.target(l)
		if loop == 0 || id < 0 || id == loop || !t.empty[id] {
			t.unsafe = true
			return
		}
		targets = append(targets, id)
	}
	t.loop, t.targets = loop, targets
	t.dispatchAt, t.label0 = t.prev[0].at, labels[0]
}

// br notes a br of depth d ending at end: a jump through the dispatch
// loop to a block that encloses it is threaded.
func (t *threader) br(d uint32, end int) {
	if t.unsafe {
		return
	}
	id := t.target(d)
	if id < 0 || t.loop == 0 || id != t.loop {
		t.branch(d)
		return
	}
	set, k := t.prev[0], t.prev[1]
	if set.op != 0x21 || set.imm != 0 || k.op != 0x41 {
		t.unsafe = true
		return
	}
	// br_table takes its index as an unsigned i32; past the labels, the
	// default.
	to := t.targets[len(t.targets)-1]
	if i := uint32(k.imm); uint64(i) < uint64(len(t.targets)-1) {
		to = t.targets[i]
	}
	for j := len(t.ctl) - 1; j >= 0; j-- {
		if t.ctl[j] == to {
			t.jumps = append(t.jumps, edit{from: k.at, to: end, depth: len(t.ctl) - 1 - j})
			return
		}
	}
}

// threaded returns the jumps to rewrite: none unless the function has
// the shape that makes it safe.
func (t *threader) threaded() []edit {
	if t.unsafe || t.loop == 0 || t.gets0 != 1 {
		return nil
	}
	return t.jumps
}

// entryFast returns the code that goes before the dispatch's
// local.get 0, nil if there is no dispatch:
//
//	local.get 0; i32.eqz; br_if label0
//
// Every call of a Go function but a resumption enters its dispatch with
// local 0 = 0 (block 0, the function's start), and so goes through the
// br_table once per call. The br_if goes where the br_table would for 0,
// with the same (no) values, so it changes nothing the code does; a
// compare and a branch instead of the br_table's indirect jump make the
// reference formatters 5-13% faster (Go's Wasm code makes one call every
// 30-50 ns). Backward jumps tested the same way before the br_table
// (compares for each function's loop heads) made no difference, and were
// dropped.
func (t *threader) entryFast() []byte {
	if t.loop == 0 {
		return nil
	}
	return binary.AppendUvarint([]byte{0x20, 0x00, 0x45, 0x0d}, uint64(t.label0))
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
