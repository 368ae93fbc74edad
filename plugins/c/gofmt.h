/*
 * gofmt.h: what the reference formatters write, written as Go writes it,
 * for the C builds of the text and JSON plugins (plugins/c/text.c,
 * plugins/c/json.c). Each function here gives the bytes of the Go code
 * named beside it, byte for byte: the differential tests and the fuzz
 * target of plugins/builtin hold every one to that on sample, mutated
 * and random records.
 *
 *   go_put_float        strconv.AppendFloat(b, f, 'g', -1, 64)
 *   go_put_time         textfmt.TimeCache.Append (RFC 3339, UTC)
 *   go_put_duration     time.Duration.String
 *   go_put_base64       base64.StdEncoding.AppendEncode
 *   go_put_quoted       strconv.AppendQuote
 *   go_put_json_string  the JSON formatter's appendString
 *   go_decode_rune      utf8.DecodeRune
 *
 * They write through a cursor: go_put_* writes at o and returns the
 * position after what it wrote, and the caller has made room first
 * (go_room) for the most each may write, which its comment gives. One
 * check for room per field instead of one per byte or per piece: in
 * Wasm each call, each check and each turn of a loop is dear. For the
 * same reason strings are read and written eight bytes at a time, past
 * their ends: go_room leaves GO_SLACK bytes more than asked for, and
 * every string read lies in a buffer with as many bytes after it (the
 * record's, LOGTK_SLACK; a logtk_buf's, which go_room also pads).
 *
 * The shortest float formatting is the Dragonbox algorithm (Junekey
 * Jeon) as Go's internal/strconv/ftoadbox.go writes it; that file is
 * Copyright 2025 The Go Authors, under a BSD-style licence: the
 * LICENSE file of the Go distribution.
 */
#ifndef LOGTK_GOFMT_H
#define LOGTK_GOFMT_H

#include "../../sdk/c/logtk.h"
#include "tables.h"

/* go_room makes room for n more bytes in b and returns where they go
 * (the caller sets b->len past what it wrote: go_done), or NULL when
 * memory ran out. */
__attribute__((noinline)) static uint8_t *go_grow_(logtk_buf *b, uint32_t n) {
	if (logtk_buf_grow(b, n))
		return NULL;
	return b->p + b->len;
}

#define GO_SLACK 16

static inline uint8_t *go_room(logtk_buf *b, uint64_t n) {
	n += GO_SLACK;
	if (n > 0x7fffffff)
		return NULL;
	if (b->cap - b->len >= n)
		return b->p + b->len;
	return go_grow_(b, (uint32_t)n);
}

static inline void go_done(logtk_buf *b, const uint8_t *o) { b->len = (uint32_t)(o - b->p); }

/* GO_PUT_LIT writes a string literal (a copy of constant size, which the
 * compiler makes a few stores). */
#define GO_PUT_LIT(o, s) (memcpy((o), (s), sizeof(s) - 1), (o) + sizeof(s) - 1)

/* go_put_bytes copies n bytes, eight at a time (reading and writing up
 * to 7 past them). Up to 16 without a loop: each trip round a loop
 * costs a check of the time budget. */
static inline uint8_t *go_put_bytes(uint8_t *o, const uint8_t *s, uint32_t n) {
	uint64_t x, y;
	if (n - 1 < 8) {
		memcpy(&x, s, 8);
		memcpy(o, &x, 8);
		return o + n;
	}
	if (n - 1 < 16) {
		memcpy(&x, s, 8);
		memcpy(&y, s + 8, 8);
		memcpy(o, &x, 8);
		memcpy(o + 8, &y, 8);
		return o + n;
	}
	for (uint32_t i = 0; i < n; i += 8) {
		uint64_t x;
		memcpy(&x, s + i, 8);
		memcpy(o + i, &x, 8);
	}
	return o + n;
}

static const char go_digits2[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Division of 32-bit numbers by 10 and 100 as a multiplication and a
 * shift, exact for every uint32 (checked exhaustively): the compiler
 * leaves a division by a constant to Wasm's div instruction, which is
 * many times dearer. */
static inline uint32_t go_div10(uint32_t x) { return (uint32_t)(((uint64_t)x * 0xCCCCCCCDULL) >> 35); }
static inline uint32_t go_div100(uint32_t x) { return (uint32_t)(((uint64_t)x * 0x51EB851FULL) >> 37); }

/* go_divmod10 divides *u by 10 and returns the remainder. */
static inline uint32_t go_divmod10(uint64_t *u) {
	uint64_t v = *u;
	if (v >> 32 == 0) {
		uint32_t q = go_div10((uint32_t)v);
		*u = q;
		return (uint32_t)v - q * 10;
	}
	*u = v / 10;
	return (uint32_t)(v % 10);
}

/* go_put_digits32 writes v in decimal as n digits (1-10; leading
 * zeros when v has fewer), writing 16 bytes at o. No loop: in Wasm each
 * turn of one costs a check of the time budget. */
static inline uint8_t *go_put_digits32(uint8_t *o, uint32_t v, int n) {
	uint8_t t[32];
	for (int i = 8; i >= 0; i -= 2) { /* unrolled by the compiler */
		uint32_t q = go_div100(v);
		memcpy(t + i, go_digits2 + 2 * (v - q * 100), 2);
		v = q;
	}
	memcpy(o, t + 10 - n, 16);
	return o + n;
}

/* go_ndigits32 is how many decimal digits v has. */
static inline int go_ndigits32(uint32_t v) {
	return 1 + (v >= 10) + (v >= 100) + (v >= 1000) + (v >= 10000) + (v >= 100000) + (v >= 1000000) + (v >= 10000000) +
	       (v >= 100000000) + (v >= 1000000000);
}

/* go_tz32 is how many decimal zeros end v (v > 0, below 10^9): v
 * divides by 10^k when its product with the inverse of 5^k, rotated by
 * k, is at most (2^32-1)/10^k. */
static inline int go_tz32(uint32_t v) {
	int p = 0;
	uint32_t d;
#define GO_ROTR32(x, k) ((x) >> (k) | (x) << (32 - (k)))
	if ((d = v * 0x22e90e21u, d = GO_ROTR32(d, 8)) <= 0x2au) {
		v = d;
		p += 8;
	}
	if ((d = v * 0x3afb7e91u, d = GO_ROTR32(d, 4)) <= 0x68db8u) {
		v = d;
		p += 4;
	}
	if ((d = v * 0xc28f5c29u, d = GO_ROTR32(d, 2)) <= 0x28f5c28u) {
		v = d;
		p += 2;
	}
	if ((d = v * 0xcccccccdu, d = GO_ROTR32(d, 1)) <= 0x19999999u)
		p += 1;
#undef GO_ROTR32
	return p;
}

typedef struct {
	uint64_t hi, lo;
} go_uint128;

/* go_umul128 is the 128-bit product x*y from 32-bit halves: in Wasm,
 * where __int128 arithmetic is a call into the compiler's runtime. */
static inline go_uint128 go_umul128(uint64_t x, uint64_t y) {
	uint64_t a = x >> 32, b = (uint32_t)x, c = y >> 32, d = (uint32_t)y;
	uint64_t ac = a * c, bc = b * c, ad = a * d, bd = b * d;
	uint64_t mid = (bd >> 32) + (uint32_t)ad + (uint32_t)bc;
	go_uint128 r = {ac + (mid >> 32) + (ad >> 32) + (bc >> 32), (mid << 32) | (uint32_t)bd};
	return r;
}

/* go_div1e9 is n / 10^9, as a multiplication: (n >> 9) / 1953125 with
 * the magic number the Granlund-Montgomery bound proves exact for every
 * 55-bit numerator. */
static inline uint64_t go_div1e9(uint64_t n) { return go_umul128(n >> 9, 0x44b82fa09b5a53ULL).hi >> 11; }

/* go_put_small writes v < 10000 in decimal, from two digit pairs at
 * most: the usual number of a record (an index, a count, a status) needs
 * none of go_put_digits32's five. */
static inline uint8_t *go_put_small(uint8_t *o, uint32_t v) {
	if (v < 10) {
		*o = (uint8_t)('0' + v);
		return o + 1;
	}
	if (v < 100) {
		memcpy(o, go_digits2 + 2 * v, 2);
		return o + 2;
	}
	uint32_t q = go_div100(v), r = v - q * 100;
	if (v < 1000) {
		*o = (uint8_t)('0' + q);
		memcpy(o + 1, go_digits2 + 2 * r, 2);
		return o + 3;
	}
	memcpy(o, go_digits2 + 2 * q, 2);
	memcpy(o + 2, go_digits2 + 2 * r, 2);
	return o + 4;
}

/* go_put_uint writes v in decimal: at most 20 bytes. */
static inline uint8_t *go_put_uint(uint8_t *o, uint64_t v) {
	if (v < 10000)
		return go_put_small(o, (uint32_t)v);
	if (v < 1000000000)
		return go_put_digits32(o, (uint32_t)v, go_ndigits32((uint32_t)v));
	uint64_t hi = go_div1e9(v);
	uint32_t lo = (uint32_t)(v - hi * 1000000000);
	if (hi < 1000000000) {
		o = go_put_digits32(o, (uint32_t)hi, go_ndigits32((uint32_t)hi));
	} else {
		uint32_t top = (uint32_t)go_div1e9(hi), mid = (uint32_t)(hi - (uint64_t)top * 1000000000);
		o = go_put_digits32(o, top, go_ndigits32(top));
		o = go_put_digits32(o, mid, 9);
	}
	return go_put_digits32(o, lo, 9);
}

/* go_put_int writes v in decimal: at most 20 bytes. */
static inline uint8_t *go_put_int(uint8_t *o, int64_t v) {
	if (v < 0) {
		*o++ = '-';
		return go_put_uint(o, (uint64_t)0 - (uint64_t)v);
	}
	return go_put_uint(o, (uint64_t)v);
}

/* ---- Floats ---- */

/* go_rotr is a 64-bit rotation right. */
static inline uint64_t go_rotr(uint64_t x, int k) { return x >> k | x << (64 - k); }

/* go_trim_zeros is internal/strconv's trimZeros: x without its trailing
 * decimal zeros, and how many there were. A number divides by 10^k when
 * its product with the inverse of 5^k, rotated by k, is small: a
 * multiplication, where a division is dear (Wasm has no wide multiply
 * for the compiler to divide by a constant with). */
static inline uint64_t go_trim_zeros(uint64_t x, int *zeros) {
	const uint64_t m8 = 0xc767074b22e90e21ULL, le8 = UINT64_MAX / 100000000;
	const uint64_t m4 = 0xd288ce703afb7e91ULL, le4 = UINT64_MAX / 10000;
	const uint64_t m2 = 0x8f5c28f5c28f5c29ULL, le2 = UINT64_MAX / 100;
	const uint64_t m1 = 0xcccccccccccccccdULL, le1 = UINT64_MAX / 10;
	int p = 0;
	uint64_t d;
	while ((d = go_rotr(x * m8, 8)) <= le8) {
		x = d;
		p += 8;
	}
	if ((d = go_rotr(x * m4, 4)) <= le4) {
		x = d;
		p += 4;
	}
	if ((d = go_rotr(x * m2, 2)) <= le2) {
		x = d;
		p += 2;
	}
	if ((d = go_rotr(x * m1, 1)) <= le1) {
		x = d;
		p += 1;
	}
	*zeros = p;
	return x;
}

static inline int go_mul_log10_2(int x) { return (x * 78913) >> 18; }
static inline int go_mul_log2_10(int x) { return (x * 108853) >> 15; }
static inline int go_mul_log10_2_minus_log10_4_over_3(int e) { return (e * 631305 - 261663) >> 21; }


/* dboxPow64: φ̃k and β. */
static inline go_uint128 go_dbox_pow(int k, int e, int *beta) {
	go_uint128 phi = {go_pow10[k - GO_POW10_MIN][0], go_pow10[k - GO_POW10_MIN][1]};
	if (k < 0 || k > 55)
		phi.lo++;
	*beta = e + 1 + go_mul_log2_10(k) - 1;
	return phi;
}

/* umul192Upper128 and umul192Lower128. */
static inline go_uint128 go_umul192_upper128(uint64_t x, go_uint128 y) {
	go_uint128 r = go_umul128(x, y.hi);
	uint64_t t = go_umul128(x, y.lo).hi;
	r.lo += t;
	if (r.lo < t)
		r.hi++;
	return r;
}

static inline go_uint128 go_umul192_lower128(uint64_t x, go_uint128 y) {
	uint64_t high = x * y.hi;
	go_uint128 hl = go_umul128(x, y.lo);
	go_uint128 o = {high + hl.hi, hl.lo};
	return o;
}

static inline void go_dbox_parity(uint64_t mant2, go_uint128 phi, int beta, int *parity, int *isint) {
	go_uint128 r = go_umul192_lower128(mant2, phi);
	*parity = ((r.hi >> (64 - beta)) & 1) != 0;
	*isint = ((r.hi << beta) | (r.lo >> (64 - beta))) == 0;
}

/* go_dbox returns the shortest decimal digits of the finite non-zero
 * float with binary significand mant and exponent exp (mant * 2^exp),
 * and sets *e10 to their decimal exponent: the value is digits*10^e10.
 * It is dboxFtoa64. */
static inline uint64_t go_dbox(uint64_t mant, int exp, int denorm, int *e10) {
	if (mant == (uint64_t)1 << 52 && !denorm) {
		int k0 = -go_mul_log10_2_minus_log10_4_over_3(exp);
		int beta;
		go_uint128 phi = go_dbox_pow(k0, exp, &beta);
		uint64_t xi = (phi.hi - (phi.hi >> (52 + 2))) >> (64 - 52 - 1 - beta);
		uint64_t zi = (phi.hi + (phi.hi >> (52 + 1))) >> (64 - 52 - 1 - beta);
		if (exp != 2 && exp != 3)
			xi++;
		uint64_t q = zi / 10;
		if (xi <= q * 10) {
			int zeros;
			q = go_trim_zeros(q, &zeros);
			*e10 = -k0 + 1 + zeros;
			return q;
		}
		uint64_t yru = ((phi.hi >> (128 / 2 - 52 - 2 - beta)) + 1) / 2;
		if (exp == -77 && yru % 2 != 0)
			yru--;
		else if (yru < xi)
			yru++;
		*e10 = -k0;
		return yru;
	}
	enum { KAPPA = 2, P10K = 100, P10K1 = 1000 };
	int k0 = -go_mul_log10_2(exp);
	int beta;
	go_uint128 phi = go_dbox_pow(KAPPA + k0, exp, &beta);
	go_uint128 zr = go_umul192_upper128((mant * 2 + 1) << beta, phi);
	uint64_t zi = zr.hi;
	int exact = zr.lo == 0;
	uint64_t s = zi / P10K1;
	uint32_t r = (uint32_t)(zi % P10K1);
	uint32_t delta = (uint32_t)(phi.hi >> (64 - 1 - beta));
	if (r < delta) {
		if (r != 0 || !exact || mant % 2 == 0) {
			int zeros;
			s = go_trim_zeros(s, &zeros);
			*e10 = -k0 + 1 + zeros;
			return s;
		}
		s--;
		r = P10K * 10;
	} else if (r == delta) {
		int parity, isint;
		go_dbox_parity(mant * 2 - 1, phi, beta, &parity, &isint);
		if (parity || (isint && mant % 2 == 0)) {
			int zeros;
			s = go_trim_zeros(s, &zeros);
			*e10 = -k0 + 1 + zeros;
			return s;
		}
	}
	uint32_t D = r + P10K / 2 - delta / 2;
	uint32_t t = D / P10K, rho = D % P10K;
	uint64_t yru = 10 * s + t;
	if (rho == 0) {
		int parity, isint;
		go_dbox_parity(mant * 2, phi, beta, &parity, &isint);
		if (parity != ((D - P10K / 2) % 2 != 0) || (isint && yru % 2 != 0))
			yru--;
	}
	*e10 = -k0;
	return yru;
}

/* go_put_float writes f as strconv.AppendFloat(b, f, 'g', -1, 64): at
 * most 24 bytes (room for 32). */
#define GO_FLOAT_MAX 32
static inline uint8_t *go_put_float(uint8_t *o, double f) {
	uint64_t bits;
	memcpy(&bits, &f, 8);
	int neg = (int)(bits >> 63);
	int exp = (int)(bits >> 52) & 0x7ff;
	uint64_t mant = bits & (((uint64_t)1 << 52) - 1);
	int denorm = 0;
	if (exp == 0x7ff)
		return mant ? GO_PUT_LIT(o, "NaN") : neg ? GO_PUT_LIT(o, "-Inf") : GO_PUT_LIT(o, "+Inf");
	if (exp == 0) {
		exp++;
		denorm = 1;
	} else {
		mant |= (uint64_t)1 << 52;
	}
	exp += -1023;
	if (neg)
		*o++ = '-';
	if (mant == 0) {
		*o++ = '0';
		return o;
	}
	int e10;
	uint64_t m;
	if (exp >= 0 && exp < 53 && (mant & (((uint64_t)1 << (52 - exp)) - 1)) == 0) {
		/* An integer below 2^53: its own digits are the shortest that
		 * round trip, less trailing zeros (a neighbour is at most 1
		 * away, a shorter decimal at least 10). */
		int zeros;
		m = go_trim_zeros(mant >> (52 - exp), &zeros);
		e10 = zeros;
	} else {
		m = go_dbox(mant, exp - 52, denorm, &e10);
	}
	/* At most 17 digits: a high part and eight low ones, each in 32
	 * bits. */
	uint8_t d[40];
	int nd;
	if (m < 100000000) {
		nd = go_ndigits32((uint32_t)m);
		go_put_digits32(d, (uint32_t)m, nd);
	} else {
		uint32_t hi = (uint32_t)go_div1e9(m * 10), lo = (uint32_t)(m - (uint64_t)hi * 100000000); /* m < 10^17 */
		int nh = go_ndigits32(hi);
		go_put_digits32(d, hi, nh);
		go_put_digits32(d + nh, lo, 8);
		nd = nh + 8;
	}
	int dp = nd + e10; /* digits before the decimal point */
	int x = dp - 1;
	if (x < -4 || x >= 6) {
		/* formatDigits' %e: shortest 'g' decides with precision 6. */
		*o++ = (uint8_t)d[0];
		if (nd > 1) {
			*o++ = '.';
			go_put_bytes(o, d + 1, (uint32_t)(nd - 1));
			o += nd - 1;
		}
		*o++ = 'e';
		*o++ = x < 0 ? '-' : '+';
		if (x < 0)
			x = -x;
		if (x < 10) {
			*o++ = '0';
			*o++ = (uint8_t)('0' + x);
		} else if (x < 100) {
			*o++ = (uint8_t)('0' + x / 10);
			*o++ = (uint8_t)('0' + x % 10);
		} else {
			*o++ = (uint8_t)('0' + x / 100);
			*o++ = (uint8_t)('0' + x / 10 % 10);
			*o++ = (uint8_t)('0' + x % 10);
		}
		return o;
	}
	/* %f: at most 21 digits before the point, 4 zeros and 17 digits
	 * after it. */
	if (dp > 0) {
		int m = nd < dp ? nd : dp;
		go_put_bytes(o, d, (uint32_t)m);
		o += m;
		for (; m < dp; m++)
			*o++ = '0';
	} else {
		*o++ = '0';
	}
	if (nd > dp) {
		*o++ = '.';
		for (int i = 0; i < nd - dp; i++) {
			int j = dp + i;
			*o++ = (uint8_t)(j >= 0 ? d[j] : '0');
		}
	}
	return o;
}

/* ---- Text ---- */

static const char go_hex[] = "0123456789abcdef";

/* go_decode_rune is utf8.DecodeRune on p[0:n], n > 0: the rune and its
 * size, or U+FFFD and 1 for an invalid or cut short sequence. */
static inline int32_t go_decode_rune(const uint8_t *p, uint32_t n, uint32_t *size) {
	uint8_t c = p[0];
	*size = 1;
	if (c < 0x80)
		return c;
	uint8_t lo = 0x80, hi = 0xbf;
	uint32_t need;
	int32_t r;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
		r = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		r = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0;
		if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		r = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;
		if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0xfffd;
	}
	if (n < need || p[1] < lo || p[1] > hi)
		return 0xfffd;
	r = r << 6 | (p[1] & 0x3f);
	for (uint32_t i = 2; i < need; i++) {
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0xfffd;
		r = r << 6 | (p[i] & 0x3f);
	}
	*size = need;
	return r;
}

/* go_is_print is strconv.IsPrint. */
static inline int go_is_print(int32_t r) {
	if (r <= 0xff)
		return (r >= 0x20 && r <= 0x7e) || (r >= 0xa1 && r <= 0xff && r != 0xad);
	uint32_t lo = 0, hi = sizeof go_print / sizeof go_print[0];
	while (lo < hi) {
		uint32_t m = (lo + hi) / 2;
		if ((uint32_t)r > go_print[m][1])
			lo = m + 1;
		else
			hi = m;
	}
	return lo < sizeof go_print / sizeof go_print[0] && (uint32_t)r >= go_print[lo][0];
}

/* SWAR tests of eight bytes at once: a byte of x below n (n <= 128; exact
 * when x has no byte from 0x80), and a byte of x equal to c. Each gives
 * a non-zero word when there is one. */
#define GO_ONES 0x0101010101010101ULL
#define GO_HIGHS 0x8080808080808080ULL
static inline uint64_t go_any_below(uint64_t x, uint8_t n) { return (x - GO_ONES * n) & ~x & GO_HIGHS; }
static inline uint64_t go_any_equal(uint64_t x, uint8_t c) {
	uint64_t y = x ^ (GO_ONES * c);
	return (y - GO_ONES) & ~y & GO_HIGHS;
}

/* go_word8 is the first n (1-8) of the eight bytes at s, the rest 'a'
 * (a byte none of the tests below flags): a string's last, short word.
 * It reads eight bytes (the buffers' slack covers the rest). */
static inline uint64_t go_word8(const uint8_t *s, uint32_t n) {
	uint64_t x;
	memcpy(&x, s, 8);
	if (n < 8) {
		uint64_t keep = ((uint64_t)1 << (8 * n)) - 1;
		x = (x & keep) | (0x6161616161616161ULL & ~keep);
	}
	return x;
}

/* go_plain8 says whether the first n (1-8) of the eight bytes at s are
 * all printable ASCII other than '"' and '\\': what both JSON and Go
 * strings hold as they are (Go's also escape 0x7f). go_plain8_bad
 * flags the bytes that are not (the high bit of the lowest flagged byte
 * is exact; those above it may be wrong). */
static inline uint64_t go_plain8_bad(const uint8_t *s, uint32_t n, int del) {
	uint64_t x = go_word8(s, n);
	uint64_t bad = (x & GO_HIGHS) | go_any_below(x, 0x20) | go_any_equal(x, '"') | go_any_equal(x, '\\');
	if (del)
		bad |= go_any_equal(x, 0x7f);
	return bad;
}
static inline int go_plain8(const uint8_t *s, uint32_t n, int del) { return go_plain8_bad(s, n, del) == 0; }

/* go_shown8 says whether the first n (1-8) of the eight bytes at s are
 * all printable ASCII, quotes and backslashes included: what text shows
 * as it is. go_shown8_bad flags the bytes that are not, as
 * go_plain8_bad does. */
static inline uint64_t go_shown8_bad(const uint8_t *s, uint32_t n) {
	uint64_t x = go_word8(s, n);
	return (x & GO_HIGHS) | go_any_below(x, 0x20) | go_any_equal(x, 0x7f);
}
static inline int go_shown8(const uint8_t *s, uint32_t n) { return go_shown8_bad(s, n) == 0; }

/* go_acted_on is textfmt's actedOn: a rune a terminal acts on rather
 * than shows (C1 controls, bidirectional controls, the line and
 * paragraph separators). */
static inline int go_acted_on(int32_t r) {
	return (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e ||
	       r == 0x200f || r == 0x061c || r == 0x2028 || r == 0x2029;
}

/* go_put_escaped_ writes the inside of strconv.AppendQuote(s) or, with
 * text set, textfmt's appendText(s) (the same escapes, but '"', '\\'
 * and the tab as they are): at most 4n bytes (\xff for a byte,
 * \U0010ffff for four). Runs of printable ASCII are copied as they are,
 * eight bytes at a time. */
static inline uint8_t *go_put_escaped_(uint8_t *o, const uint8_t *s, uint32_t n, int text) {
	uint32_t i = 0;
	while (i < n) {
		uint32_t k = n - i < 8 ? n - i : 8;
		uint64_t bad = text ? go_shown8_bad(s + i, k) : go_plain8_bad(s + i, k, 1);
		if (!bad) {
			memcpy(o, s + i, 8);
			o += k;
			i += k;
			continue;
		}
		/* The bytes before the first to escape (the lowest flagged
		 * byte is exact) as they are, then that one: a trip round the
		 * loop costs a check of the time budget. */
		uint32_t run = (uint32_t)__builtin_ctzll(bad) >> 3;
		memcpy(o, s + i, 8);
		o += run;
		i += run;
		uint8_t c = s[i];
		if (c >= 0x80) {
			uint32_t size;
			int32_t r = go_decode_rune(s + i, n - i, &size);
			if (r == 0xfffd && size == 1) {
				*o++ = '\\';
				*o++ = 'x';
				*o++ = (uint8_t)go_hex[c >> 4];
				*o++ = (uint8_t)go_hex[c & 15];
			} else if (text ? !go_acted_on(r) : go_is_print(r)) {
				for (uint32_t k = 0; k < size; k++)
					*o++ = s[i + k];
			} else if (r < 0x10000) {
				*o++ = '\\';
				*o++ = 'u';
				for (int k = 12; k >= 0; k -= 4)
					*o++ = (uint8_t)go_hex[r >> k & 15];
			} else {
				*o++ = '\\';
				*o++ = 'U';
				for (int k = 28; k >= 0; k -= 4)
					*o++ = (uint8_t)go_hex[r >> k & 15];
			}
			i += size;
			continue;
		}
		i++;
		if ((c >= ' ' && c != 0x7f && c != '"' && c != '\\') || (text && (c == '"' || c == '\\' || c == '\t'))) {
			*o++ = c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"': case '\\': *o++ = c; break;
		case '\a': *o++ = 'a'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		case '\v': *o++ = 'v'; break;
		default:
			*o++ = 'x';
			*o++ = (uint8_t)go_hex[c >> 4];
			*o++ = (uint8_t)go_hex[c & 15];
		}
	}
	return o;
}

static inline uint8_t *go_put_quoted_inner(uint8_t *o, const uint8_t *s, uint32_t n) { return go_put_escaped_(o, s, n, 0); }

/* go_put_text writes textfmt's appendText(s): text shown as it is but
 * for what a terminal would act on (controls but the tab, DEL, invalid
 * UTF-8, runes strconv.IsPrint refuses), escaped as strconv.Quote
 * escapes them: at most 4n bytes. */
static inline uint8_t *go_put_text(uint8_t *o, const uint8_t *s, uint32_t n) { return go_put_escaped_(o, s, n, 1); }

/* go_put_quoted writes strconv.AppendQuote(s): at most 4n+2 bytes. */
static inline uint8_t *go_put_quoted(uint8_t *o, const uint8_t *s, uint32_t n) {
	*o++ = '"';
	o = go_put_quoted_inner(o, s, n);
	*o++ = '"';
	return o;
}

/* go_put_json_string writes s as a JSON string, as the Go JSON
 * formatter's appendString does (encoding/json's escapes without HTML
 * escaping, invalid UTF-8 replaced): at most 6n+2 bytes. */
static inline uint8_t *go_put_json_string(uint8_t *o, const uint8_t *s, uint32_t n) {
	*o++ = '"';
	uint32_t i = 0;
	while (i < n) {
		uint32_t k = n - i < 8 ? n - i : 8;
		if (go_plain8(s + i, k, 0)) {
			memcpy(o, s + i, 8);
			o += k;
			i += k;
			continue;
		}
		uint8_t c = s[i];
		if (c >= 0x80) {
			uint32_t size;
			int32_t r = go_decode_rune(s + i, n - i, &size);
			if (r == 0xfffd && size == 1) {
				o = GO_PUT_LIT(o, "\\ufffd");
			} else if (r == 0x2028 || r == 0x2029) {
				o = GO_PUT_LIT(o, "\\u202");
				*o++ = (uint8_t)go_hex[r & 15];
			} else {
				for (uint32_t k = 0; k < size; k++)
					*o++ = s[i + k];
			}
			i += size;
			continue;
		}
		i++;
		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"': case '\\': *o++ = c; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = (uint8_t)go_hex[c >> 4];
			*o++ = (uint8_t)go_hex[c & 15];
		}
	}
	*o++ = '"';
	return o;
}

/* go_json_string_len is the length go_put_json_string writes for s,
 * exactly: for a large string, where reserving six bytes a byte would
 * ask for far more memory than the string needs. */
static inline uint64_t go_json_string_len(const uint8_t *s, uint32_t n) {
	uint64_t out = 2;
	for (uint32_t i = 0; i < n;) {
		uint8_t c = s[i];
		if (c >= 0x80) {
			uint32_t size;
			int32_t r = go_decode_rune(s + i, n - i, &size);
			out += (r == 0xfffd && size == 1) || r == 0x2028 || r == 0x2029 ? 6 : size;
			i += size;
			continue;
		}
		i++;
		if (c >= 0x20 && c != '"' && c != '\\')
			out++;
		else if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t')
			out += 2;
		else
			out += 6;
	}
	return out;
}

/* go_escaped_len_ is the length go_put_escaped_ writes for s, exactly. */
static inline uint64_t go_escaped_len_(const uint8_t *s, uint32_t n, int text) {
	uint64_t out = 0;
	for (uint32_t i = 0; i < n;) {
		uint8_t c = s[i];
		if (c >= 0x80) {
			uint32_t size;
			int32_t r = go_decode_rune(s + i, n - i, &size);
			if (r == 0xfffd && size == 1)
				out += 4;
			else if (text ? !go_acted_on(r) : go_is_print(r))
				out += size;
			else
				out += r < 0x10000 ? 6 : 10;
			i += size;
			continue;
		}
		i++;
		if ((c >= ' ' && c != 0x7f && c != '"' && c != '\\') || (text && (c == '"' || c == '\\' || c == '\t')))
			out++;
		else if (c == '"' || c == '\\' || c == '\a' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t' || c == '\v')
			out += 2;
		else
			out += 4;
	}
	return out;
}

/* go_quoted_len is the length go_put_quoted writes for s, exactly. */
static inline uint64_t go_quoted_len(const uint8_t *s, uint32_t n) { return go_escaped_len_(s, n, 0) + 2; }

/* go_text_len is the length go_put_text writes for s, exactly. */
static inline uint64_t go_text_len(const uint8_t *s, uint32_t n) { return go_escaped_len_(s, n, 1); }

/* go_base64_len is the length of base64.StdEncoding's encoding of n
 * bytes. */
static inline uint64_t go_base64_len(uint32_t n) { return ((uint64_t)n + 2) / 3 * 4; }

/* go_put_base64 writes base64.StdEncoding.AppendEncode(s):
 * go_base64_len(n) bytes. */
static inline uint8_t *go_put_base64(uint8_t *o, const uint8_t *s, uint32_t n) {
	static const char enc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*o++ = (uint8_t)enc[v >> 18 & 63];
		*o++ = (uint8_t)enc[v >> 12 & 63];
		*o++ = (uint8_t)enc[v >> 6 & 63];
		*o++ = (uint8_t)enc[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)s[i] << 16;
		*o++ = (uint8_t)enc[v >> 18 & 63];
		*o++ = (uint8_t)enc[v >> 12 & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
		*o++ = (uint8_t)enc[v >> 18 & 63];
		*o++ = (uint8_t)enc[v >> 12 & 63];
		*o++ = (uint8_t)enc[v >> 6 & 63];
		*o++ = '=';
	}
	return o;
}

/* go_put_duration writes time.Duration(d).String(): at most 32 bytes
 * ("-2562047h47m16.854775808s"). */
static inline uint8_t *go_put_duration(uint8_t *o, int64_t d) {
	uint8_t buf[40]; /* 32, and room for go_put_bytes to read past */
	int w = 32;
	uint64_t u = (uint64_t)d;
	int neg = d < 0;
	if (neg)
		u = (uint64_t)0 - u;
	/* fmtFrac: the fraction of prec digits, trailing zeros dropped;
	 * fmtInt: an integer. */
#define GO_FRAC(prec)                                               \
	do {                                                        \
		int print_ = 0;                                     \
		for (int i_ = 0; i_ < (prec); i_++) {               \
			uint32_t digit_ = go_divmod10(&u);          \
			print_ = print_ || digit_ != 0;             \
			if (print_)                                 \
				buf[--w] = (uint8_t)('0' + digit_); \
		}                                                   \
		if (print_)                                         \
			buf[--w] = '.';                             \
	} while (0)
#define GO_INT(v)                                            \
	do {                                                 \
		uint64_t v_ = (v);                           \
		if (v_ == 0)                                 \
			buf[--w] = '0';                      \
		while (v_ > 0)                               \
			buf[--w] = (uint8_t)('0' + go_divmod10(&v_)); \
	} while (0)
	if (u < 1000000000) {
		int prec = 0;
		buf[--w] = 's';
		w--;
		if (u == 0) {
			buf[w] = '0';
			return go_put_bytes(o, buf + w, (uint32_t)(32 - w));
		} else if (u < 1000) {
			buf[w] = 'n';
		} else if (u < 1000000) {
			prec = 3;
			w--;
			buf[w] = 0xc2; /* µ */
			buf[w + 1] = 0xb5;
		} else {
			prec = 6;
			buf[w] = 'm';
		}
		GO_FRAC(prec);
		GO_INT(u);
	} else {
		buf[--w] = 's';
		GO_FRAC(9);
		GO_INT(u % 60);
		u /= 60;
		if (u > 0) {
			buf[--w] = 'm';
			GO_INT(u % 60);
			u /= 60;
			if (u > 0) {
				buf[--w] = 'h';
				GO_INT(u);
			}
		}
	}
#undef GO_FRAC
#undef GO_INT
	if (neg)
		buf[--w] = '-';
	return go_put_bytes(o, buf + w, (uint32_t)(32 - w));
}

/* ---- Times: textfmt.TimeCache ---- */

typedef struct {
	int64_t secs;
	int64_t base; /* secs * 10^9: the second's first nanosecond */
	int ok;
	uint8_t text[19]; /* 2006-01-02T15:04:05 */
} go_time_slot;

typedef struct {
	go_time_slot slots[4];
} go_time_cache;

/* go_civil: days since 1970-01-01 to a proleptic Gregorian date. */
static inline void go_civil(int64_t days, int64_t *y, int64_t *m, int64_t *d) {
	int64_t z = days + 719468;
	int64_t era = z / 146097;
	if (z < 0 && z % 146097 != 0)
		era--;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yoe + era * 400 + (*m <= 2);
}

static inline void go_date_time(uint8_t t[19], int64_t secs) {
	int64_t days = secs / 86400, sod = secs % 86400;
	if (sod < 0) {
		days--;
		sod += 86400;
	}
	int64_t y, m, d;
	go_civil(days, &y, &m, &d);
	t[0] = (uint8_t)('0' + y / 1000);
	t[1] = (uint8_t)('0' + y / 100 % 10);
	t[2] = (uint8_t)('0' + y / 10 % 10);
	t[3] = (uint8_t)('0' + y % 10);
	t[4] = '-';
	t[5] = (uint8_t)('0' + m / 10);
	t[6] = (uint8_t)('0' + m % 10);
	t[7] = '-';
	t[8] = (uint8_t)('0' + d / 10);
	t[9] = (uint8_t)('0' + d % 10);
	t[10] = 'T';
	t[11] = (uint8_t)('0' + sod / 36000);
	t[12] = (uint8_t)('0' + sod / 3600 % 10);
	t[13] = ':';
	t[14] = (uint8_t)('0' + sod % 3600 / 600);
	t[15] = (uint8_t)('0' + sod % 3600 / 60 % 10);
	t[16] = ':';
	t[17] = (uint8_t)('0' + sod % 60 / 10);
	t[18] = (uint8_t)('0' + sod % 10);
}

/* go_put_time writes the UTC time unix_nano as RFC 3339 with digits
 * (0-9) fractional digits, or with trim as time.RFC3339Nano does: at
 * most 30 bytes. Every int64 of nanoseconds falls in the years
 * 1677-2262, so the four-digit year always holds. */
static inline uint8_t *go_put_time(uint8_t *o, go_time_cache *c, int64_t unix_nano, int digits, int trim) {
	/* A second the cache holds is found without dividing (a 64-bit
	 * division is dear in Wasm): the nanoseconds since its start. */
	go_time_slot *s = 0;
	uint32_t ns = 0;
	for (int i = 0; i < 4; i++) {
		uint64_t since = (uint64_t)unix_nano - (uint64_t)c->slots[i].base;
		if (c->slots[i].ok && since < 1000000000) {
			s = &c->slots[i];
			ns = (uint32_t)since;
			break;
		}
	}
	if (!s) {
		int64_t secs = unix_nano / 1000000000, rem = unix_nano % 1000000000;
		if (rem < 0) {
			secs--;
			rem += 1000000000;
		}
		s = &c->slots[secs & 3];
		go_date_time(s->text, secs);
		s->secs = secs;
		s->base = (int64_t)((uint64_t)secs * 1000000000);
		/* The first and last seconds of the int64 range do not fit
		 * in it whole (the first starts before it, the last ends
		 * after it, where unsigned arithmetic wraps to the first):
		 * they are written, never looked up. */
		s->ok = secs >= -9223372036 && secs <= 9223372035;
		ns = (uint32_t)rem;
	}
	memcpy(o, s->text, 19);
	o += 19;
	if (trim)
		digits = ns == 0 ? 0 : 9 - go_tz32(ns);
	if (digits > 0) {
		*o++ = '.';
		go_put_digits32(o, ns, 9);
		o += digits;
	}
	*o++ = 'Z';
	return o;
}

/* ---- Levels ---- */

/* go_level_index: trace, debug, info, notice, warn, error, fatal, or 7
 * for a level below trace. */
static inline int go_level_index(int32_t l) {
	if (l >= LOGTK_FATAL) return 6;
	if (l >= LOGTK_ERROR) return 5;
	if (l >= LOGTK_WARN) return 4;
	if (l >= LOGTK_NOTICE) return 3;
	if (l >= LOGTK_INFO) return 2;
	if (l >= LOGTK_DEBUG) return 1;
	if (l >= LOGTK_TRACE) return 0;
	return 7;
}

static const char go_level_names[8][6] = {"TRACE", "DEBUG", "INFO ", "NOTE ", "WARN ", "ERROR", "FATAL", "?????"};

/* go_parse_duration parses as time.ParseDuration: 0 with *d set, or -1
 * (the string is not a duration: its form, an unknown unit, or past
 * int64 nanoseconds). */
static inline int go_parse_duration(const uint8_t *s, uint32_t n, int64_t *d) {
	const uint8_t *end = s + n;
	uint64_t total = 0;
	int neg = 0;
	if (s < end && (*s == '-' || *s == '+')) {
		neg = *s == '-';
		s++;
	}
	if (end - s == 1 && *s == '0') {
		*d = 0;
		return 0;
	}
	if (s == end)
		return -1;
	while (s < end) {
		uint64_t v = 0, f = 0;
		double scale = 1;
		if (!(*s == '.' || (*s >= '0' && *s <= '9')))
			return -1;
		const uint8_t *at = s;
		for (; s < end && *s >= '0' && *s <= '9'; s++) {
			if (v > (1ULL << 63) / 10)
				return -1;
			v = v * 10 + (uint64_t)(*s - '0');
			if (v > 1ULL << 63)
				return -1;
		}
		int pre = s != at, post = 0;
		if (s < end && *s == '.') {
			s++;
			at = s;
			int overflow = 0;
			for (; s < end && *s >= '0' && *s <= '9'; s++) {
				if (overflow)
					continue;
				if (f > ((1ULL << 63) - 1) / 10) {
					overflow = 1;
					continue;
				}
				uint64_t y = f * 10 + (uint64_t)(*s - '0');
				if (y > 1ULL << 63) {
					overflow = 1;
					continue;
				}
				f = y;
				scale *= 10;
			}
			post = s != at;
		}
		if (!pre && !post)
			return -1;
		const uint8_t *u = s;
		while (s < end && !(*s == '.' || (*s >= '0' && *s <= '9')))
			s++;
		size_t ul = (size_t)(s - u);
		uint64_t unit;
#define GO_UNIT(name) (ul == sizeof(name) - 1 && !memcmp(u, name, ul))
		if (GO_UNIT("ns")) unit = 1;
		else if (GO_UNIT("us") || GO_UNIT("\xc2\xb5s") || GO_UNIT("\xce\xbcs")) unit = 1000;
		else if (GO_UNIT("ms")) unit = 1000000;
		else if (GO_UNIT("s")) unit = 1000000000ULL;
		else if (GO_UNIT("m")) unit = 60000000000ULL;
		else if (GO_UNIT("h")) unit = 3600000000000ULL;
		else return -1; /* missing or unknown */
#undef GO_UNIT
		if (v > (1ULL << 63) / unit)
			return -1;
		v *= unit;
		if (f > 0) {
			v += (uint64_t)((double)f * ((double)unit / scale));
			if (v > 1ULL << 63)
				return -1;
		}
		total += v;
		if (total > 1ULL << 63)
			return -1;
	}
	if (neg) {
		*d = (int64_t)((uint64_t)0 - total);
		return 0;
	}
	if (total > (1ULL << 63) - 1)
		return -1;
	*d = (int64_t)total;
	return 0;
}

#endif /* LOGTK_GOFMT_H */
