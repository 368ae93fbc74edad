package wasm

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
// function entries and loop headers, compiles, and stops a loop when the
// flag is set; modules it cannot rewrite safely are refused.
func TestInstrumentBudget(t *testing.T) {
	ctx := context.Background()
	// loop (br 0) end end: an endless loop.
	endless := oneFunc(0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b)
	out, err := instrumentBudget(endless)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(out, checkCode(0)); n != 2 {
		t.Fatalf("%d checks inserted, want 2 (entry and loop)", n)
	}
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, out)
	if err != nil {
		t.Fatalf("the rewritten module does not instantiate: %v", err)
	}
	stop := mod.ExportedGlobal(stopExport)
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
		"SIMD":                            oneFunc(0xfd, 0x0c, 0x0b),
		"typed reference local":           oneBody([]byte{1, 1, 0x64, 0x00, 0x0b}), // (local (ref 0))
		"typed reference block type":      oneFunc(0x02, 0x64, 0x00, 0x0b, 0x0b),   // block (result (ref 0))
		"truncated":                       endless[:len(endless)-3],
		"no memory":                       module([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0}, []byte{10, 4, 1, 2, 0, 0x0b}),
		"a memory section of none":        module([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0}, []byte{5, 0}, []byte{10, 4, 1, 2, 0, 0x0b}), // found by FuzzInstrumentBudget
		"not wasm":                        []byte("hello, world"),
	} {
		if _, err := instrumentBudget(bin); !errors.Is(err, errUninstrumentable) {
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
		_, err := instrumentBudget(bin)
		if !errors.Is(err, errUninstrumentable) || !strings.Contains(err.Error(), "declares") {
			t.Errorf("%s: err = %v, want the count refused", name, err)
		}
	}
}

// FuzzInstrumentBudget: any bytes are refused or rewritten without a
// panic, and a module wazero accepts stays one wazero accepts.
func FuzzInstrumentBudget(f *testing.F) {
	f.Add(oneFunc(0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b))
	f.Add(oneFunc(0x41, 0x05, 0x1a, 0x0b))
	f.Add(oneFunc(0x02, 0x40, 0x03, 0x7f, 0x41, 0x01, 0x0b, 0x1a, 0x0b, 0x0b))
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	f.Cleanup(func() { rt.Close(ctx) })
	f.Fuzz(func(t *testing.T, bin []byte) {
		if checkSizes(bin) != nil {
			return // Load refuses it before wazero sees it
		}
		out, err := instrumentBudget(bin)
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
	})
}

// TestLoadRefusesAllocationBombs: modules of a few bytes that declare
// huge vectors (which wazero would allocate before reading them) are
// refused with an error, not an out-of-memory crash of the host.
func TestLoadRefusesAllocationBombs(t *testing.T) {
	ctx := context.Background()
	for name, bin := range map[string][]byte{
		"268M globals": []byte("\x00asm\x01\x00\x00\x00\x06\x04\xe0\xff\xff\xff\x05\x04\x00000"),
		"4G locals": module([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0},
			[]byte{10, 1, 8, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x7f, 0x0b}),
		"4G parameters":     module([]byte{1, 1, 0x60, 0xff, 0xff, 0xff, 0xff, 0x0f, 0}),
		"4G function names": module([]byte{0, 4, 'n', 'a', 'm', 'e', 1, 6, 0xff, 0xff, 0xff, 0xff, 0x0f, 0}),
	} {
		_, err := Load(ctx, bin, Options{Name: name})
		if err == nil || !strings.Contains(err.Error(), "not a valid WebAssembly module") {
			t.Errorf("%s: Load = %v, want a refusal", name, err)
		}
	}
}
