package sdk

import (
	"testing"
	"time"
)

// TestClock: over several rebases, every reading lies between time.Now
// just before and just after it (within the jitter allowance) and no
// reading is earlier than the one before.
func TestClock(t *testing.T) {
	start := clock.Load()
	rebases := 0
	var last int64
	deadline := time.Now().Add(10 * time.Second)
	for prev := start; rebases < 3; {
		before := time.Now().UnixNano()
		n := now()
		after := time.Now().UnixNano()
		if n < before-clockJitter || n > after+clockJitter {
			t.Fatalf("now() = %d, not within [%d, %d] (time.Now before and after)", n, before, after)
		}
		if n < last {
			t.Fatalf("now() went back from %d to %d", last, n)
		}
		last = n
		if b := clock.Load(); b != prev {
			rebases++
			prev = b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rebases in 10 s (one every %v expected)", rebases, clockRebase)
		}
	}
}

func TestRebaseClock(t *testing.T) {
	t0 := time.Now()
	for _, tc := range []struct {
		name   string
		ahead  time.Duration // how far the old base's wall time is ahead of the clock
		follow bool          // the new base takes the wall clock's reading
	}{
		{"in step", 0, true},
		{"behind", -time.Second, true}, // the clock was stepped forward
		{"jitter", 500 * time.Microsecond, false},
		{"step back", 10 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := &clockBase{t0, t0.UnixNano() + int64(tc.ahead)}
			clock.Store(old)
			t1 := t0.Add(50 * time.Millisecond)
			got := rebaseClock(old, t1)
			want := t1.UnixNano()
			if !tc.follow {
				want = old.wall + int64(50*time.Millisecond)
			}
			if got != want {
				t.Errorf("rebaseClock = %d, want %d (%+d ns off)", got, want, got-want)
			}
			if b := clock.Load(); b == old || b.wall != got || b.t != t1 {
				t.Errorf("the new base is %+v, want time %d at %v", b, got, t1)
			}
		})
	}
	clock.Store(nil)
}
