package plugintest

import (
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	irecord "github.com/logtk/logtk/internal/record"
)

// RandomRecord returns an encoded record made from rng: random fields,
// a caller and the host's and the log server's stamps or not, and
// attributes of every kind nested up to three groups deep (empty groups
// too), with keys and strings full of what a formatter must escape:
// quotes, backslashes, '=', spaces, control bytes, multi-line text,
// non-printing and four-byte runes, invalid UTF-8 (which a record the
// host validated never holds), and floats at the edges (NaN, ±Inf, -0,
// subnormals, random bits). The same rng state gives the same record:
// for differential tests of a plugin against a reference.
func RandomRecord(rng *rand.Rand) []byte {
	str := func() string {
		alphabet := []string{"a", "Z", "0", "9", " ", "=", `"`, `\`, "\n", "\r", "\t", "\x00", "\x07", "\x1b", "\x1f", "\x7f",
			"é", "日本", "✓", "😀", "\u0085", "\u00a0", "\u00ad", "\u200b", "\u2028", "\u2029", "\ufeff", "\ufffd", "\ue000", "\U0010ffff",
			"\xff", "\xc3", "\xed\xa0\x80", ".", "-", "_", "/", ":", "#", "[", "}"}
		var s []byte
		for range rng.IntN(14) {
			s = append(s, alphabet[rng.IntN(len(alphabet))]...)
		}
		return string(s)
	}
	var attr func(depth int) slog.Attr
	attr = func(depth int) slog.Attr {
		k := str()
		switch rng.IntN(11) {
		case 0:
			return slog.String(k, str())
		case 1:
			return slog.Int64(k, int64(rng.Uint64()))
		case 2:
			return slog.Uint64(k, rng.Uint64()>>(rng.IntN(4)*16))
		case 3:
			f := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1), 5e-324, 1e-310, 2.2250738585072014e-308,
				math.MaxFloat64, 0.1, 0.25, 1e21, 1e20, 123456, 1234567, 1e-5, 1e-4, 9007199254740993, 123456789.125, -3.5}
			if rng.IntN(2) == 0 {
				return slog.Float64(k, f[rng.IntN(len(f))])
			}
			return slog.Float64(k, math.Float64frombits(rng.Uint64()))
		case 4:
			return slog.Bool(k, rng.IntN(2) == 0)
		case 5:
			d := []time.Duration{0, 1, 999, 1000, 1500, 999999, 1000000, 1234567890, -1, math.MinInt64, math.MaxInt64}
			if rng.IntN(2) == 0 {
				return slog.Duration(k, d[rng.IntN(len(d))])
			}
			return slog.Duration(k, time.Duration(rng.Int64()-math.MaxInt64/2)>>(rng.IntN(6)*10))
		case 6:
			return slog.Time(k, time.Unix(0, rng.Int64()-math.MaxInt64/2*int64(rng.IntN(2))))
		case 7:
			b := make([]byte, rng.IntN(9))
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
			return slog.Any(k, b)
		case 8:
			// A multi-line value, as a stack trace.
			return slog.String(k, str()+"\n"+str()+"\n\n"+str())
		default:
			if depth > 2 {
				return slog.String(k, str())
			}
			var g []any
			for range rng.IntN(4) {
				g = append(g, attr(depth+1))
			}
			return slog.Group(k, g...)
		}
	}
	levels := []int32{0, 1, 3, 5, 9, 10, 12, 13, 17, 21, 24, -1}
	msg := str()
	if rng.IntN(5) == 0 {
		msg += "\n" + str() + "\n"
	}
	b := irecord.AppendHeadNanos(nil, rng.Int64N(1<<62)*int64(rng.IntN(2)), levels[rng.IntN(len(levels))], msg, str())
	if rng.IntN(4) == 0 {
		b = irecord.AppendCaller(b, str(), rng.IntN(100000), str())
	}
	for range rng.IntN(6) {
		b = irecord.AppendAttr(b, attr(0))
	}
	if rng.IntN(3) > 0 {
		b = append(b, irecord.AppendStampOrigin(nil, str(), uint32(rng.IntN(8)), rng.Int64N(1<<20)-int64(rng.IntN(2)), uint32(rng.IntN(5)))...)
		b = irecord.AppendStampArrival(b, rng.Uint64()>>(rng.IntN(2)*63), int32(rng.IntN(6)), rng.Int64())
	}
	if rng.IntN(4) == 0 {
		b = irecord.AppendServerStamp(b, str(), str(), str())
	}
	return b
}
