// Package budget rewrites a WebAssembly module before wazero compiles it,
// so that the host can stop a call that runs past its time budget
// cheaply, and guards wazero against modules whose declared sizes would
// make it allocate far more than the module's bytes. By concern:
//
//   - binary.go reads the binary format. CheckSizes, the size guard, runs
//     on every module Load is given, rewritten or not.
//   - instrument.go is the time budget. Instrument adds a stop flag,
//     exported as StopExport, and checks of it at every function entry
//     and before every branch back to a loop: once the host sets the
//     flag, the running call traps within a bounded number of function
//     entries and loop iterations, and the checks let the Go scheduler
//     and garbage collector in as they go.
//   - thread.go threads the jumps of Go's dispatch loops: a speed
//     optimisation that changes nothing the code does, done by Instrument
//     and, alone, by ThreadOnly.
//
// Both rewrites refuse a module they cannot rewrite safely (an instruction
// they do not know, no memory, an index that the additions would make
// valid); Load then runs it with wazero's own checks, or as it is.
//
// # When to delete it
//
// The budget is done here only because wazero's own interruption,
// RuntimeConfig.WithCloseOnContextDone, leaves the compiled code for Go
// at every loop back-edge to ask whether the call was cancelled, which
// costs a multiple of the plugin's own time on tight loops (wazero issue
// #2466; BENCHMARKS.md has the figures). It also checks only at
// loops, so a call tree that recurses without looping is never stopped
// (TestBudgetStopsRecursion). As of wazero v1.12.0, the newest release
// and the version go.mod requires when this was checked (December 2026),
// both held: its compiler still calls the checkModuleExitCode trampoline
// unconditionally at every loop header; issue #2466 was open, and the
// pull requests that would make the check cheap (#2482, a check every
// Nth iteration; #2533, the closed state tested inline, with checks for
// code that does not loop) were not merged.
//
// When a released wazero's interruption costs a Go plugin about what
// Instrument's checks do (BENCHMARKS.md, the time budget) and stops a
// call that recurses without looping, delete instrument.go and compile
// every module with WithCloseOnContextDone (internal/wasm, Load). Keep
// CheckSizes whatever wazero does about interruption: it guards against
// allocation, not time. Decide on thread.go on its own (it says how to
// remove it): it speeds up Go plugins however they are stopped.
package budget
