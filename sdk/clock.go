package sdk

import (
	"sync/atomic"
	"time"
)

// A record's time costs one read of a clock instead of time.Now's two.
// time.Now reads the wall clock and the monotonic clock, each a vDSO call
// (a large part of a log call: BENCHMARKS.md). The SDK reads
// the wall clock once every clockRebase and gives each record that reading
// plus the monotonic time elapsed since it (time.Since reads only the
// monotonic clock).
//
// The two clocks run at the same rate: when NTP corrects the clock's
// frequency the kernel slews both. They part only when the wall clock is
// stepped (settimeofday, an NTP step, a virtual machine resumed); record
// times follow such a step within clockRebase, as they would follow it at
// once with time.Now.
const clockRebase = 100 * time.Millisecond

type clockBase struct {
	t    time.Time // carries a monotonic reading
	wall int64     // t in Unix nanoseconds
}

var clock atomic.Pointer[clockBase]

// now returns the current time in Unix nanoseconds, as described above.
func now() int64 {
	b := clock.Load()
	if b != nil {
		if d := time.Since(b.t); d < clockRebase {
			return b.wall + int64(d)
		}
	}
	return rebaseClock(b, time.Now())
}

// clockJitter is how far behind the previous base's reckoning a new reading
// of the wall clock may be and still be taken for the jitter of reading two
// clocks (time.Now reads the wall clock a few nanoseconds before the
// monotonic one) rather than a step back of the wall clock.
const clockJitter = int64(time.Millisecond)

// rebaseClock makes t the new base, replacing old (nil at the first call),
// and returns its time. Times do not go backwards across a rebase unless
// the wall clock was stepped back by more than clockJitter.
func rebaseClock(old *clockBase, t time.Time) int64 {
	w := t.UnixNano()
	if old != nil {
		if p := old.wall + int64(t.Sub(old.t)); p > w && p-w < clockJitter {
			w = p
		}
	}
	// Another goroutine may have rebased first; its base is as good.
	clock.CompareAndSwap(old, &clockBase{t, w})
	return w
}
