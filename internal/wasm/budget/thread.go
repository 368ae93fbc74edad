package budget

import "encoding/binary"

// Threading the jumps of Go's Wasm code: a speed optimisation,
// independent of the security checks (the time budget and CheckSizes).
// Instrument threads a module's jumps as it adds the budget's checks, and
// ThreadOnly threads them alone, for modules run without a budget
// (call_timeout "off"). The budget does not rely on it; it relies only
// on the threader never making a jump backward, so that every loop still
// closes through a branch back to a loop, where the loop check is.
//
// To remove it: in instrumentBody, follow the body with a plain control
// instead of a threader and drop what only the threader uses (t.br,
// t.branch, t.brTable, the count of local.get 0, t.prev and t.inLoop),
// the threaded jumps (every branch back to a loop then keeps its check)
// and the entryFast edit; delete this file and its tests (thread_test.go,
// TestThreadsGoCode, the ThreadOnly leg of FuzzInstrumentBudget) and
// rewrite's path without the budget; and have Load (internal/wasm)
// compile a module run with call_timeout "off" as it is, where it now
// calls ThreadOnly.
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
// backward only to the start of a loop.
//
// The rewrite is safe when local 0 is read only by the dispatch (the
// skipped local.set is then never observed), every branch to the loop
// sets local 0 just before it, and the dispatch's targets are blocks
// without results. A function that does not have exactly this
// shape is left as it is. Forward jumps cannot form a loop: the branches
// back to a loop that remain, with their loop checks, still close every
// loop.

// ThreadOnly is the rewrite without the budget: it only threads jumps
// (for modules run with call_timeout "off"). It refuses what Instrument
// refuses.
func ThreadOnly(bin []byte) ([]byte, error) { return rewrite(bin, false) }

// instr is a decoded instruction: its opcode, offset and immediate.
type instr struct {
	op  byte
	at  int
	imm int64
}

// threader follows one function body for the jumps to thread.
type threader struct {
	control
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
// compare and a branch instead of the br_table's indirect jump, on a
// path taken at every call. (Testing for each function's loop heads the
// same way was tried, and dropped: BENCHMARKS.md.)
func (t *threader) entryFast() []byte {
	if t.loop == 0 {
		return nil
	}
	return binary.AppendUvarint([]byte{0x20, 0x00, 0x45, 0x0d}, uint64(t.label0))
}
