package budget

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

// module assembles a binary from sections (id, payload).
func module(secs ...[]byte) []byte {
	b := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	for _, s := range secs {
		b = append(b, s[0])
		b = binary.AppendUvarint(b, uint64(len(s)-1))
		b = append(b, s[1:]...)
	}
	return b
}

// oneFunc is a module with one function () -> () whose body is code,
// exported as "f".
func oneFunc(code ...byte) []byte {
	return oneBody(append([]byte{0}, code...)) // no locals
}

// oneBody is oneFunc with the locals declarations given in body.
func oneBody(body []byte) []byte {
	return module(
		[]byte{1, 1, 0x60, 0, 0},                        // type: () -> ()
		[]byte{3, 1, 0},                                 // function 0: type 0
		[]byte{5, 1, 0x00, 0x01},                        // memory: one, min 1 page
		[]byte{7, 1, 1, 'f', 0, 0},                      // export "f" = func 0
		append([]byte{10, 1, byte(len(body))}, body...), // code
	)
}

// TestInstrumentBudget: the rewritten module checks the stop flag at its
// function entries and before branches back to loops, compiles, and stops
// a loop when the flag is set; modules it cannot rewrite safely are
// refused.
func TestInstrumentBudget(t *testing.T) {
	ctx := context.Background()
	// loop (br 0) end end: an endless loop.
	endless := oneFunc(0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b)
	// A check at the entry of every function, and a loop check before
	// every branch back to a loop (on a local added after the function's
	// own).
	for _, tc := range []struct {
		name  string
		bin   []byte
		backs int
		tmp   uint32
	}{
		{"starts with a loop", endless, 1, 0},
		{"a block and local.set before the loop", oneBody([]byte{1, 1, 0x7f, 0x41, 0x01, 0x21, 0x00, 0x02, 0x40, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, 0x0b}), 1, 1},
		{"nested loops, the inner one repeating", oneFunc(0x03, 0x40, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, 0x0b), 1, 0},
		{"a call before the loop", oneFunc(0x10, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b), 1, 0},
		{"a call inside the loop", oneFunc(0x03, 0x40, 0x10, 0x00, 0x0c, 0x00, 0x0b, 0x0b), 1, 0},
		{"a branch out of a block, then the loop", oneFunc(0x02, 0x40, 0x41, 0x00, 0x0d, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, 0x0b), 1, 0},
		{"br_if back to the loop", oneFunc(0x03, 0x40, 0x41, 0x00, 0x0d, 0x00, 0x0b, 0x0b), 1, 0},
		{"br_table with the loop among its labels", oneFunc(0x02, 0x40, 0x03, 0x40, 0x41, 0x01, 0x0e, 0x01, 0x00, 0x01, 0x0b, 0x0b, 0x0b), 1, 0},
		{"a loop that does not repeat", oneFunc(0x03, 0x40, 0x0b, 0x0b), 0, 0},
		{"a call, no loop", oneFunc(0x10, 0x00, 0x0b), 0, 0},
		{"neither call nor loop", oneFunc(0x41, 0x05, 0x1a, 0x0b), 0, 0},
	} {
		out, err := Instrument(tc.bin)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n := bytes.Count(out, checkCode(0)); n != 1+tc.backs {
			t.Errorf("%s: %d checks, want %d (the entry's, and one in each loop check)", tc.name, n, 1+tc.backs)
		}
		if n := bytes.Count(out, loopCheckCode(checkCode(0), tc.tmp)); n != tc.backs {
			t.Errorf("%s: %d loop checks, want %d", tc.name, n, tc.backs)
		}
		rt := wazero.NewRuntime(ctx)
		if _, err := rt.CompileModule(ctx, out); err != nil {
			t.Errorf("%s: the rewritten module does not compile: %v", tc.name, err)
		}
		rt.Close(ctx)
	}
	out, err := Instrument(endless)
	if err != nil {
		t.Fatal(err)
	}
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, out)
	if err != nil {
		t.Fatalf("the rewritten module does not instantiate: %v", err)
	}
	stop := mod.ExportedGlobal(StopExport)
	if stop == nil {
		t.Fatal("no stop flag exported")
	}
	done := make(chan error, 1)
	go func() { _, err := mod.ExportedFunction("f").Call(ctx); done <- err }()
	// While the loop runs, a garbage collection (which must stop every
	// goroutine, the looping one too) completes: the loop leaves its
	// compiled code for Go now and then.
	gcDone := make(chan struct{})
	go func() { runtime.GC(); runtime.GC(); close(gcDone) }()
	select {
	case <-gcDone:
	case err := <-done:
		t.Fatalf("the loop ended before it was stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("a garbage collection could not stop the goroutine running the loop")
	}
	stop.(interface{ Set(uint64) }).Set(1)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("the loop ended with %v, want the unreachable trap", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("setting the stop flag did not stop the loop")
	}

	for name, bin := range map[string][]byte{
		"names a global it does not have": oneFunc(0x23, 0x00, 0x1a, 0x0b), // global.get 0; drop
		// loop; local.set 0 (of 0); br 0: with the loop counter added as
		// local 0, this would reset it at every iteration.
		"names a local it does not have": oneFunc(0x03, 0x40, 0x41, 0x00, 0x21, 0x00, 0x0c, 0x00, 0x0b, 0x0b),
		"SIMD":                           oneFunc(0xfd, 0x0c, 0x0b),
		"typed reference local":          oneBody([]byte{1, 1, 0x64, 0x00, 0x0b}), // (local (ref 0))
		"typed reference block type":     oneFunc(0x02, 0x64, 0x00, 0x0b, 0x0b),   // block (result (ref 0))
		"truncated":                      endless[:len(endless)-3],
		"no memory":                      module([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0}, []byte{10, 4, 1, 2, 0, 0x0b}),
		"a memory section of none":       module([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0}, []byte{5, 0}, []byte{10, 4, 1, 2, 0, 0x0b}), // found by FuzzInstrumentBudget
		"not wasm":                       []byte("hello, world"),
	} {
		if _, err := Instrument(bin); !errors.Is(err, errUninstrumentable) {
			t.Errorf("%s: err = %v, want errUninstrumentable", name, err)
		}
	}
}

// TestInstrumentRefusesHugeCounts: a count in a function body larger than
// the bytes left is refused at once. Reading each of the 3 billion
// entries that 5 bytes can declare kept Load busy for seconds (found by
// FuzzInstrumentBudget: the fuzzing engine took the worker for hung).
func TestInstrumentRefusesHugeCounts(t *testing.T) {
	huge := []byte{0xba, 0xba, 0xba, 0xba, 0x0b} // ~3 billion
	for name, bin := range map[string][]byte{
		"select types":       oneFunc(append(append([]byte{0x41, 0, 0x41, 0, 0x41, 0, 0x1c}, huge...), 0x0b)...),
		"br_table targets":   oneFunc(append(append([]byte{0x41, 0, 0x0e}, huge...), 0, 0x0b)...),
		"local declarations": oneBody(append(append([]byte{}, huge...), 0x0b)),
	} {
		_, err := Instrument(bin)
		if !errors.Is(err, errUninstrumentable) || !strings.Contains(err.Error(), "declares") {
			t.Errorf("%s: err = %v, want the count refused", name, err)
		}
	}
}

// TestBudgetStopsRecursion: a function that recurses without a loop (2^60
// calls, each making two more) is stopped by the checks at its entries.
func TestBudgetStopsRecursion(t *testing.T) {
	// f(n): if n { f(n-1); f(n-1) }
	body := []byte{0, 0x20, 0x00, 0x04, 0x40, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x00, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x00, 0x0b, 0x0b}
	bin := module(
		[]byte{1, 1, 0x60, 1, 0x7f, 0}, // type: (i32) -> ()
		[]byte{3, 1, 0},
		[]byte{5, 1, 0x00, 0x01},
		[]byte{7, 1, 1, 'f', 0, 0},
		append([]byte{10, 1, byte(len(body))}, body...),
	)
	out, err := Instrument(bin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	mod, err := rt.Instantiate(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	// The flag set first: the call must trap at the first test of it,
	// within checkEvery calls. Nothing else would stop it (wazero's own
	// checks are at loops), so a failure leaves the call running and
	// the runtime open.
	mod.ExportedGlobal(StopExport).(interface{ Set(uint64) }).Set(1)
	done := make(chan error, 1)
	go func() { _, err := mod.ExportedFunction("f").Call(ctx, 60); done <- err }()
	select {
	case err := <-done:
		rt.Close(ctx)
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("the recursion ended with %v, want the unreachable trap", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stop flag did not stop the recursion")
	}
}

// FuzzInstrumentBudget: any bytes are refused or rewritten without a
// panic, and a module wazero accepts stays one wazero accepts, with the
// budget and without (ThreadOnly).
func FuzzInstrumentBudget(f *testing.F) {
	f.Add(oneFunc(0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b))
	f.Add(oneFunc(0x41, 0x05, 0x1a, 0x0b))
	f.Add(oneFunc(0x02, 0x40, 0x03, 0x7f, 0x41, 0x01, 0x0b, 0x1a, 0x0b, 0x0b))
	f.Add(goShaped())
	f.Add(oneFunc(0x03, 0x40, 0x41, 0x00, 0x0d, 0x00, 0x0b, 0x0b))                                    // br_if back to a loop
	f.Add(oneFunc(0x02, 0x40, 0x03, 0x40, 0x41, 0x01, 0x0e, 0x01, 0x00, 0x01, 0x0b, 0x0b, 0x0b))      // br_table with a loop label
	f.Add(oneBody([]byte{2, 1, 0x7f, 2, 0x7e, 0x03, 0x40, 0x20, 0x02, 0x50, 0x0d, 0x00, 0x0b, 0x0b})) // locals of two types, a loop
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	f.Cleanup(func() { rt.Close(ctx) })
	f.Fuzz(func(t *testing.T, bin []byte) {
		if CheckSizes(bin) != nil {
			return // Load refuses it before wazero sees it
		}
		out, err := Instrument(bin)
		if err != nil {
			return
		}
		cm, err := rt.CompileModule(ctx, bin)
		if err != nil {
			return // invalid before: no promise
		}
		cm.Close(ctx)
		cm2, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("valid module no longer compiles after the rewrite: %v", err)
		}
		cm2.Close(ctx)
		thr, err := ThreadOnly(bin)
		if err != nil {
			t.Fatalf("rewritten with the budget but not without: %v", err)
		}
		cm3, err := rt.CompileModule(ctx, thr)
		if err != nil {
			t.Fatalf("valid module no longer compiles after threading: %v", err)
		}
		cm3.Close(ctx)
	})
}
