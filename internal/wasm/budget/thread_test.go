package budget

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

// goShaped is a function (param i32) (result i32) shaped as Go compiles
// one: a loop around a br_table on local 0 picks the basic block to run,
// and each jump sets local 0 and branches to the loop. Block 0 adds 1 and
// jumps forward to block 2; block 1 adds 10 and jumps back to block 0;
// block 2 adds 100 and returns the sum. extra goes at the start of the
// function.
func goShaped(extra ...byte) []byte {
	code := append([]byte{}, extra...)
	code = append(code,
		0x02, 0x40, // block $exit
		0x03, 0x40, // loop $L
		0x02, 0x40, 0x02, 0x40, 0x02, 0x40, // block $b2, $b1, $b0
		0x20, 0x00, // local.get 0
		0x0e, 0x03, 0x00, 0x01, 0x02, 0x02, // br_table $b0 $b1 $b2, default $b2
		0x0b,                                     // end $b0: block 0
		0x20, 0x01, 0x41, 0x01, 0x6a, 0x21, 0x01, // acc += 1
		0x41, 0x02, 0x21, 0x00, 0x0c, 0x02, //       jump to block 2: forward
		0x0b,                                     // end $b1: block 1
		0x20, 0x01, 0x41, 0x0a, 0x6a, 0x21, 0x01, // acc += 10
		0x41, 0x00, 0x21, 0x00, 0x0c, 0x01, //       jump to block 0: backward
		0x0b,                                           // end $b2: block 2
		0x20, 0x01, 0x41, 0xe4, 0x00, 0x6a, 0x21, 0x01, // acc += 100
		0x0c, 0x01, // br $exit
		0x0b, 0x0b, // end $L, end $exit
		0x20, 0x01, // local.get 1
		0x0b)
	body := append([]byte{1, 1, 0x7f}, code...) // one i32 local: acc
	return module(
		[]byte{1, 1, 0x60, 1, 0x7f, 1, 0x7f}, // type: (i32) -> (i32)
		[]byte{3, 1, 0},
		[]byte{5, 1, 0x00, 0x01},
		[]byte{7, 1, 1, 'f', 0, 0},
		append([]byte{10, 1, byte(len(body))}, body...),
	)
}

// TestThreadJumps: the rewrite turns a forward jump through Go's dispatch
// loop into a direct branch, keeps the backward one, tests for block 0
// before the br_table, and the function computes what it did for every
// entry block. A function that reads local 0 anywhere else is not
// threaded (but still gets the test for block 0).
func TestThreadJumps(t *testing.T) {
	// i32.const K; local.set 0; br $L, with the budget a loop check
	// before the br (on local 2: after the parameter and acc).
	jump := func(k, depth byte, budget bool) []byte {
		b := []byte{0x41, k, 0x21, 0x00}
		if budget {
			b = append(b, loopCheckCode(checkCode(0), 2)...)
		}
		return append(b, 0x0c, depth)
	}
	tests := []struct {
		name     string
		bin      []byte
		threaded bool
	}{
		{"go-shaped", goShaped(), true},
		{"local 0 read elsewhere", goShaped(0x20, 0x00, 0x1a), false}, // local.get 0; drop
	}
	// A wrong branch can make an endless loop: calls end with ctx.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(true))
	defer rt.Close(context.Background())
	for _, tc := range tests {
		for rw, rewrite := range map[string]func([]byte) ([]byte, error){"budget": Instrument, "thread only": ThreadOnly} {
			t.Run(tc.name+"/"+rw, func(t *testing.T) {
				out, err := rewrite(tc.bin)
				if err != nil {
					t.Fatal(err)
				}
				if checks := bytes.Contains(out, checkCode(0)); checks != (rw == "budget") {
					t.Fatalf("budget checks inserted = %v", checks)
				}
				forward, backward := jump(2, 2, rw == "budget"), jump(0, 1, rw == "budget")
				if got := !bytes.Contains(out, forward); got != tc.threaded {
					t.Fatalf("forward jump threaded = %v, want %v", got, tc.threaded)
				}
				if !bytes.Contains(out, backward) {
					t.Fatal("the backward jump was rewritten, or has no loop check")
				}
				// local.get 0; i32.eqz; br_if 0 (to block 0); local.get 0; br_table
				if !bytes.Contains(out, []byte{0x20, 0x00, 0x45, 0x0d, 0x00, 0x20, 0x00, 0x0e}) {
					t.Fatal("no fast path for block 0 before the dispatch")
				}
				before, err := rt.Instantiate(ctx, tc.bin)
				if err != nil {
					t.Fatal(err)
				}
				defer before.Close(ctx)
				after, err := rt.Instantiate(ctx, out)
				if err != nil {
					t.Fatalf("the rewritten module does not instantiate: %v", err)
				}
				defer after.Close(ctx)
				for pc, want := range map[uint64]uint64{0: 101, 1: 111, 2: 100, 7: 100} {
					b, err1 := before.ExportedFunction("f").Call(ctx, pc)
					a, err2 := after.ExportedFunction("f").Call(ctx, pc)
					if err1 != nil || err2 != nil || b[0] != want || a[0] != want {
						t.Errorf("f(%d) = %v (%v) before, %v (%v) after; want %d", pc, b, err1, a, err2, want)
					}
				}
			})
		}
	}
}
