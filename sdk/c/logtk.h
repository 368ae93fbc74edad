/*
 * logtk.h: write a logtk plugin, format or transport, in C
 * (docs/plugin-abi.md).
 *
 * One header, no library: the record view, attribute iteration, output
 * buffers, and (with LOGTK_FORMATTER or LOGTK_TRANSPORT defined before
 * including it) every export of the plugin ABI, calling functions the
 * plugin defines. A formatter defines three:
 *
 *   const char *logtk_plugin_info(void);
 *       the info JSON: {"name":..., "version":..., "kind":"format",
 *       "abi":2, "config":[...]}
 *   int logtk_plugin_configure(const uint8_t *json, uint32_t n, logtk_buf *err);
 *       the config block as JSON ({} or n == 0 when it sets nothing);
 *       0, or LOGTK_INVALID with a message appended to err
 *   int logtk_plugin_format(const logtk_record *r, logtk_buf *out);
 *       append r's formatted bytes to out (nothing: the record is
 *       filtered out); 0, or LOGTK_INVALID / LOGTK_INTERNAL, with a
 *       message set by logtk_format_error (any other status counts as
 *       LOGTK_INTERNAL)
 *
 * and, with LOGTK_PASSTHROUGH defined too, a fourth:
 *
 *   int logtk_plugin_passthrough(void);
 *       1 when the formatted batch is the batch itself (logtk's own
 *       logtk.v1.Record): the plugin then answers status 5 and the host
 *       forwards its bytes without a copy
 *
 * A transport (LOGTK_TRANSPORT) defines logtk_plugin_info and
 * logtk_plugin_configure as a formatter does, and
 *
 *   int logtk_plugin_open(logtk_buf *err);
 *   int logtk_plugin_write(logtk_batch *b, logtk_buf *err);
 *       deliver the batch (b->id, and its entries by logtk_entry_next)
 *   int logtk_plugin_flush(logtk_buf *err);
 *   int logtk_plugin_close(logtk_buf *err);
 *
 * each 0, or a status (LOGTK_RETRY for a failure that may pass) with a
 * message appended to err (status 3 dead-letters the batch at once;
 * LOGTK_RETRY sends it again). Every entry reaches the plugin, empty
 * ones too (a record the formatter filtered out). Two more are
 * optional:
 *
 *   with LOGTK_MARKS: int logtk_plugin_marks(logtk_buf *marks, logtk_buf *err);
 *       the marks of what the transport holds (logtk_buf_mark); after
 *       it answered 0, each batch's marks are in b->marks
 *       (logtk_mark_next)
 *   with LOGTK_ASYNC: int logtk_plugin_poll(uint32_t timeout_ms, logtk_buf *ids, logtk_buf *err);
 *       the ids of batches delivered since (logtk_buf_uvarint), waiting
 *       up to timeout_ms for one; logtk_plugin_write may then answer
 *       LOGTK_PENDING
 *
 * logtk_config_read reads the configuration's JSON into declared
 * fields (strings, numbers, booleans, or any value as its JSON text), as
 * a Go plugin's encoding/json reads it into a struct; the built-in
 * plugins read theirs with it.
 *
 * The host's imports (logtk_log, logtk_net_*) are declared below; a
 * module imports only those it calls. plugins/c/file.c (marks) and
 * plugins/c/network.c (both, and the network) are transports written
 * with this header.
 *
 * Records come validated by the host (docs/ipc.md): their strings are
 * UTF-8 and their fields well-formed, so the readers below meet
 * malformed input only from a host that is not logtk's. The record's
 * buffer and every logtk_buf hold LOGTK_SLACK readable bytes past their
 * ends, and the readers use them (logtk_field reads eight bytes at a
 * time): call logtk_field only on bytes inside such a buffer, not on a
 * stack array or a string literal.
 *
 * Build (Debian: apt-get install clang-14 lld-14 wasi-libc
 * libclang-rt-14-dev-wasm32):
 *
 *   clang-14 --target=wasm32-wasi -O2 -mexec-model=reactor -Wl,--strip-all -o p.wasm p.c
 *
 * (--strip-all drops the debug sections Debian's wasi-libc carries:
 * about 100 KB.) Keep the C file out of a directory with Go files: Go
 * refuses C sources in a package built without cgo (examples/clogfmt
 * keeps its source in plugin/).
 *
 * Keep to the WebAssembly MVP (no -msimd128, -pthread...) for the host's
 * fast time budget. Out of memory (malloc returning NULL) is answered
 * with status 3, never a trap: for a formatter the host then retries
 * the batch with a new instance; a transport's status 3 dead-letters the
 * batch, so a transport that may run short answers LOGTK_RETRY itself.
 */
#ifndef LOGTK_H
#define LOGTK_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Status codes (docs/plugin-abi.md, Exports). */
enum { LOGTK_OK = 0, LOGTK_RETRY = 1, LOGTK_INVALID = 2, LOGTK_INTERNAL = 3, LOGTK_PENDING = 4 };

/* Levels: OpenTelemetry severity numbers. */
enum {
	LOGTK_TRACE = 1, LOGTK_DEBUG = 5, LOGTK_INFO = 9, LOGTK_NOTICE = 10,
	LOGTK_WARN = 13, LOGTK_ERROR = 17, LOGTK_FATAL = 21
};

/* Sources (field 21). */
enum { LOGTK_SDK = 1, LOGTK_STDOUT = 2, LOGTK_STDERR = 3, LOGTK_HOST = 4 };

/* Bytes inside the record being formatted: valid during the call. */
typedef struct {
	const uint8_t *p;
	uint32_t n;
} logtk_bytes;

/* A view of one encoded logtk.v1.Record (proto/logtk/v1/record.proto).
 * Absent fields are zero or empty; of a field given twice the last
 * counts, as in protobuf. */
typedef struct {
	int64_t time_unix_nano;
	int32_t level;
	logtk_bytes message, logger;
	logtk_bytes caller; /* the encoded logtk.v1.Caller: logtk_caller_parse */
	logtk_bytes worker;
	uint32_t worker_index;
	int64_t pid;
	uint32_t incarnation;
	uint64_t seq;
	int32_t source;
	int64_t received_unix_nano;
	logtk_bytes sender, hostname, application;
	logtk_bytes raw; /* the whole record: logtk_attrs walks it */
	/* Where its attributes lie: from the first to the end of the last
	 * (set by logtk_record_parse; the walk needs nothing else). */
	const uint8_t *attrs_from_, *attrs_to_;
} logtk_record;

/* Attribute kinds: the Attr value field numbers. */
enum {
	LOGTK_STRING = 2, LOGTK_INT = 3, LOGTK_UINT = 4, LOGTK_FLOAT = 5,
	LOGTK_BOOL = 6, LOGTK_BYTES = 7, LOGTK_TIME = 8, LOGTK_DURATION = 9,
	LOGTK_GROUP = 10
};

/* One attribute. key and data point into the record. i holds INT, TIME
 * (Unix nanoseconds), DURATION (nanoseconds) and BOOL (0 or 1); u UINT;
 * f FLOAT; data STRING, BYTES and GROUP (the encoded group). kind 0 is
 * a key with no value (a Go nil). Keys may repeat, as in the record. */
typedef struct {
	logtk_bytes key;
	int kind;
	logtk_bytes data;
	int64_t i;
	uint64_t u;
	double f;
} logtk_attr;

/* Iterates the attributes of a record, or of a group. */
typedef struct {
	const uint8_t *p, *end;
	uint32_t field; /* 4 in a record, 1 in a group */
} logtk_attrs_iter;

/* LOGTK_SLACK: the record's buffer and every logtk_buf hold this many
 * bytes past their ends, so that code reading eight bytes at a time may
 * read past the end of a string. */
#define LOGTK_SLACK 16

/* An output buffer. logtk_buf_* return 0, or -1 when memory ran out
 * (the buffer is left as it was). */
typedef struct {
	uint8_t *p;
	uint32_t len, cap;
} logtk_buf;

static inline int logtk_buf_grow(logtk_buf *b, uint32_t more) {
	if (b->cap - b->len >= more)
		return 0;
	uint64_t want = (uint64_t)b->len + more;
	if (want > 0x7fffffff)
		return -1;
	uint32_t cap = b->cap ? b->cap : 256;
	while (cap < want)
		cap *= 2;
	uint8_t *p = (uint8_t *)realloc(b->p, (size_t)cap + LOGTK_SLACK);
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

static inline int logtk_buf_append(logtk_buf *b, const void *p, uint32_t n) {
	if (n == 0)
		return 0;
	if (logtk_buf_grow(b, n))
		return -1;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static inline int logtk_buf_str(logtk_buf *b, const char *s) { return logtk_buf_append(b, s, (uint32_t)strlen(s)); }

static inline int logtk_buf_bytes(logtk_buf *b, logtk_bytes v) { return logtk_buf_append(b, v.p, v.n); }

static inline int logtk_buf_byte(logtk_buf *b, uint8_t c) { return logtk_buf_append(b, &c, 1); }

/* Decimal integers. */
static inline int logtk_buf_uint(logtk_buf *b, uint64_t v) {
	char d[20];
	int i = 20;
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return logtk_buf_append(b, d + i, (uint32_t)(20 - i));
}

static inline int logtk_buf_int(logtk_buf *b, int64_t v) {
	if (v < 0) {
		if (logtk_buf_byte(b, '-'))
			return -1;
		return logtk_buf_uint(b, (uint64_t)0 - (uint64_t)v);
	}
	return logtk_buf_uint(b, (uint64_t)v);
}

/* logtk_uvarint_size is the length of v as an unsigned LEB128, without
 * a loop. */
static inline uint32_t logtk_uvarint_size(uint64_t v) { return 1 + (uint32_t)(63 - __builtin_clzll(v | 1)) / 7; }

/* logtk_buf_uvarint appends v as an unsigned LEB128 (protobuf's
 * varint). */
static inline int logtk_buf_uvarint(logtk_buf *b, uint64_t v) {
	uint8_t d[10];
	uint32_t n = 0;
	while (v >= 0x80) {
		d[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	d[n++] = (uint8_t)v;
	return logtk_buf_append(b, d, n);
}

/* logtk_utf8_valid says whether s is valid UTF-8, as Go's utf8.Valid:
 * no overlong forms, no surrogates, nothing past U+10FFFF. */
static inline int logtk_utf8_valid(const uint8_t *s, uint32_t n) {
	uint32_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		uint32_t k;
		uint8_t lo = 0x80, hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf)
			k = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			if (c == 0xe0) lo = 0xa0;
			if (c == 0xed) hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			if (c == 0xf0) lo = 0x90;
			if (c == 0xf4) hi = 0x8f;
		} else
			return 0;
		if (n - i - 1 < k || s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (uint32_t j = 2; j <= k; j++)
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
		i += k + 1;
	}
	return 1;
}

/* Protobuf reading, exactly as the Go SDK's record package reads it, so
 * that a C plugin sees what a Go one sees. Each returns the position
 * after what it read, or NULL when the input is malformed. */

/* logtk_varint reads a varint: at most 10 bytes, the tenth at most 1. */
static inline const uint8_t *logtk_varint(const uint8_t *p, const uint8_t *end, uint64_t *v) {
	if (end - p >= 8) {
		/* Up to eight bytes at once, without a loop: the bytes up to
		 * the first without its high bit, their 7-bit groups packed. */
		uint64_t w, stops;
		memcpy(&w, p, 8);
		if ((stops = ~w & 0x8080808080808080ULL)) {
			uint32_t n = ((uint32_t)__builtin_ctzll(stops) + 1) / 8; /* 1..8 */
			uint64_t x = w & (~(uint64_t)0 >> (64 - 8 * n)) & 0x7f7f7f7f7f7f7f7fULL;
			x = (x & 0x007f007f007f007fULL) | (x & 0x7f007f007f007f00ULL) >> 1;
			x = (x & 0x00003fff00003fffULL) | (x & 0x3fff00003fff0000ULL) >> 2;
			x = (x & 0x000000000fffffffULL) | (x & 0x0fffffff00000000ULL) >> 4;
			*v = x;
			return p + n;
		}
	} else if (p < end && *p < 0x80) {
		*v = *p;
		return p + 1;
	}
	uint64_t x = 0;
	for (int i = 0; i < 10 && p < end; i++) {
		uint8_t c = *p++;
		if (i == 9 && c > 1)
			return NULL;
		x |= (uint64_t)(c & 0x7f) << (7 * i);
		if (c < 0x80) {
			*v = x;
			return p;
		}
	}
	return NULL;
}

/* logtk_field reads one field: its number (1..2^31-1), wire type,
 * varint, fixed64 or fixed32 value (v) and, for wire type 2, its bytes
 * (b). Groups (wire type 3) are read to their end and skipped; any
 * other wire type is malformed. It may read up to 7 bytes past end,
 * which must be readable: the record's buffer and every logtk_buf
 * hold LOGTK_SLACK bytes more. */
static const uint8_t *logtk_field_slow_(const uint8_t *p, const uint8_t *end, uint32_t *num, int *type, uint64_t *v, logtk_bytes *b);

__attribute__((always_inline)) static inline const uint8_t *logtk_field(const uint8_t *p, const uint8_t *end, uint32_t *num, int *type, uint64_t *v, logtk_bytes *b) {
	/* The usual field, inline: a tag of one or two bytes, and a
	 * one-byte varint or length, or a fixed64. Everything else (and
	 * anything malformed) takes the call. */
	if (end - p >= 3) {
		/* One load of the eight bytes at p: a Wasm compiler checks
		 * each access against the memory's bounds. */
		uint64_t w;
		memcpy(&w, p, 8);
		uint32_t t = (uint32_t)w & 0xff;
		const uint8_t *q = p + 1;
		if (t >= 0x80) {
			if (w & 0x8000)
				return logtk_field_slow_(p, end, num, type, v, b);
			t = (t & 0x7f) | ((uint32_t)w & 0x7f00) >> 1;
			q++;
			w >>= 8;
		}
		if (t >= 8) {
			uint32_t c = (uint32_t)(w >> 8) & 0xff;
			switch (t & 7) {
			case 0:
				if (c < 0x80) {
					*num = t >> 3;
					*type = 0;
					*v = c;
					return q + 1;
				}
				if (end - q >= 2 && !(w & 0x800000)) {
					*num = t >> 3;
					*type = 0;
					*v = (c & 0x7f) | (w >> 9 & 0x3f80);
					return q + 2;
				}
				break;
			case 2:
				if (c < 0x80 && c <= (uint32_t)(end - q - 1)) {
					*num = t >> 3;
					*type = 2;
					b->p = q + 1;
					b->n = c;
					return q + 1 + c;
				}
				break;
			case 1:
				if (end - q >= 8) {
					*num = t >> 3;
					*type = 1;
					memcpy(v, q, 8);
					return q + 8;
				}
				break;
			}
		}
	}
	return logtk_field_slow_(p, end, num, type, v, b);
}

__attribute__((noinline)) static const uint8_t *logtk_field_slow_(const uint8_t *p, const uint8_t *end, uint32_t *num, int *type, uint64_t *v, logtk_bytes *b) {
	uint64_t tag;
	if (!(p = logtk_varint(p, end, &tag)) || tag >> 3 < 1 || tag >> 3 > 0x7fffffff)
		return NULL;
	*num = (uint32_t)(tag >> 3);
	*type = (int)(tag & 7);
	switch (*type) {
	case 0:
		return logtk_varint(p, end, v);
	case 1:
		if (end - p < 8)
			return NULL;
		memcpy(v, p, 8);
		return p + 8;
	case 2: {
		uint64_t n;
		if (!(p = logtk_varint(p, end, &n)) || n > (uint64_t)(end - p))
			return NULL;
		b->p = p;
		b->n = (uint32_t)n;
		return p + n;
	}
	case 5: {
		uint32_t w;
		if (end - p < 4)
			return NULL;
		memcpy(&w, p, 4);
		*v = w;
		return p + 4;
	}
	case 3: {
		/* A group: fields up to the end group of the same number, as
		 * protowire.ConsumeFieldValue reads it, groups nested up to
		 * its limit (10,001 deep). The numbers of the groups open are
		 * kept on a stack, on the heap past 64. */
		uint32_t small[64], *stack = small;
		int depth = 0, cap = 64;
		stack[depth++] = *num;
#define LOGTK_GROUP_FAIL_()            \
	do {                           \
		if (stack != small)    \
			free(stack);   \
		return NULL;           \
	} while (0)
		while (depth > 0) {
			uint64_t t;
			if (!(p = logtk_varint(p, end, &t)) || t >> 3 < 1 || t >> 3 > 0x7fffffff)
				LOGTK_GROUP_FAIL_();
			uint32_t n = (uint32_t)(t >> 3);
			uint64_t x;
			switch (t & 7) {
			case 0: if (!(p = logtk_varint(p, end, &x))) LOGTK_GROUP_FAIL_(); break;
			case 1: if (end - p < 8) LOGTK_GROUP_FAIL_(); p += 8; break;
			case 5: if (end - p < 4) LOGTK_GROUP_FAIL_(); p += 4; break;
			case 2:
				if (!(p = logtk_varint(p, end, &x)) || x > (uint64_t)(end - p))
					LOGTK_GROUP_FAIL_();
				p += x;
				break;
			case 3:
				if (depth == 10001)
					LOGTK_GROUP_FAIL_();
				if (depth == cap) {
					uint32_t *ns = (uint32_t *)malloc(sizeof *ns * 10001);
					if (!ns)
						LOGTK_GROUP_FAIL_(); /* out of memory: the record is refused */
					memcpy(ns, stack, sizeof *ns * (size_t)depth);
					stack = ns;
					cap = 10001;
				}
				stack[depth++] = n;
				break;
			case 4:
				if (stack[--depth] != n)
					LOGTK_GROUP_FAIL_();
				break;
			default:
				LOGTK_GROUP_FAIL_();
			}
		}
		if (stack != small)
			free(stack);
		return p;
#undef LOGTK_GROUP_FAIL_
	}
	}
	return NULL;
}

/* logtk_record_parse fills r from the encoded record p[0:n]: 0, or -1
 * if it is malformed (the host validates records before a plugin sees
 * them). A known field with another wire type than its own is ignored,
 * as the Go SDK ignores it. */
static inline int logtk_record_parse(logtk_record *r, const uint8_t *p, uint32_t n) {
	/* Field by field: a memset of the whole is a call in Wasm. */
	logtk_bytes none = {0, 0};
	r->time_unix_nano = r->received_unix_nano = r->pid = 0;
	r->level = r->source = 0;
	r->worker_index = r->incarnation = 0;
	r->seq = 0;
	r->message = r->logger = r->caller = r->worker = none;
	r->sender = r->hostname = r->application = none;
	r->raw.p = p;
	r->raw.n = n;
	r->attrs_from_ = r->attrs_to_ = 0;
	const uint8_t *end = p + n;
	while (p < end) {
		uint32_t num;
		int type;
		uint64_t v = 0;
		logtk_bytes b = {0, 0};
		const uint8_t *at = p;
		if (!(p = logtk_field(p, end, &num, &type, &v, &b)))
			return -1;
		if (num == 4 && type == 2) {
			/* The attributes: walked again by logtk_attrs, from the
			 * first to the last, not through the fields after them. */
			if (!r->attrs_from_)
				r->attrs_from_ = at;
			r->attrs_to_ = p;
		} else if (type == 0) {
			switch (num) {
			case 2: r->level = (int32_t)v; break;
			case 17: r->worker_index = (uint32_t)v; break;
			case 18: r->pid = (int64_t)v; break;
			case 19: r->incarnation = (uint32_t)v; break;
			case 20: r->seq = v; break;
			case 21: r->source = (int32_t)v; break;
			}
		} else if (type == 1) {
			if (num == 1) r->time_unix_nano = (int64_t)v;
			if (num == 22) r->received_unix_nano = (int64_t)v;
		} else if (type == 2) {
			switch (num) {
			case 3: r->message = b; break;
			case 5: r->caller = b; break;
			case 6: r->logger = b; break;
			case 16: r->worker = b; break;
			case 23: r->sender = b; break;
			case 24: r->hostname = b; break;
			case 25: r->application = b; break;
			}
		}
	}
	return 0;
}

/* logtk_caller_parse reads a record's caller (file, line, function,
 * each empty or 0 if the caller does not say): 0, or -1 if the record
 * has none. Of a malformed caller it gives what precedes the fault, as
 * the Go SDK does. */
static inline int logtk_caller_parse(const logtk_record *r, logtk_bytes *file, uint32_t *line, logtk_bytes *function) {
	if (!r->caller.p)
		return -1;
	const uint8_t *p = r->caller.p, *end = p + r->caller.n;
	file->p = function->p = 0;
	file->n = function->n = 0;
	*line = 0;
	while (p < end) {
		uint32_t num;
		int type;
		uint64_t v = 0;
		logtk_bytes b = {0, 0};
		if (!(p = logtk_field(p, end, &num, &type, &v, &b)))
			break;
		if (num == 1 && type == 2) *file = b;
		if (num == 2 && type == 0) *line = (uint32_t)v;
		if (num == 3 && type == 2) *function = b;
	}
	return 0;
}

static inline void logtk_attrs(const logtk_record *r, logtk_attrs_iter *it) {
	it->p = r->attrs_from_;
	it->end = r->attrs_to_;
	it->field = 4;
}

static inline void logtk_group(const logtk_attr *a, logtk_attrs_iter *it) {
	it->p = a->data.p;
	it->end = a->data.p + a->data.n;
	it->field = 1;
}

/* logtk_attr_next sets a to the next attribute: 1, or 0 at the end. As
 * in the Go SDK, an attribute's field with another wire type than its
 * own is ignored, a malformed attribute is skipped, and reading stops at
 * a malformed field of the record or group (a record the host validated
 * has none of these). */
/* logtk_attr_usual_ reads the usual attribute without a loop: a key
 * with a one-byte tag and length, then nothing or one value field with a
 * one-byte tag (and length), ending the attribute. 1 if it was that;
 * 0 for anything else, which the general reading then reads. */
static inline int logtk_attr_usual_(const uint8_t *p, const uint8_t *end, logtk_attr *a) {
	if (end - p < 2 || p[0] != 0x0a || p[1] >= 0x80 || p[1] > end - p - 2)
		return 0;
	a->key.p = p + 2;
	a->key.n = p[1];
	a->data.p = 0;
	a->data.n = 0;
	a->i = 0;
	a->u = 0;
	a->f = 0;
	a->kind = 0;
	const uint8_t *q = p + 2 + p[1];
	if (q == end)
		return 1;
	uint8_t t = q[0];
	uint64_t x;
	switch (t) {
	case LOGTK_STRING << 3 | 2:
	case LOGTK_BYTES << 3 | 2:
	case LOGTK_GROUP << 3 | 2:
		if (end - q < 2 || q[1] >= 0x80 || q[1] != end - q - 2)
			return 0;
		a->kind = t >> 3;
		a->data.p = q + 2;
		a->data.n = q[1];
		return 1;
	case LOGTK_FLOAT << 3 | 1:
	case LOGTK_TIME << 3 | 1:
		if (end - q != 9)
			return 0;
		memcpy(&x, q + 1, 8);
		a->kind = t >> 3;
		if (t >> 3 == LOGTK_FLOAT)
			memcpy(&a->f, &x, 8);
		else
			a->i = (int64_t)x;
		return 1;
	case LOGTK_INT << 3:
	case LOGTK_UINT << 3:
	case LOGTK_BOOL << 3:
	case LOGTK_DURATION << 3:
		if (!(q = logtk_varint(q + 1, end, &x)) || q != end)
			return 0;
		a->kind = t >> 3;
		if (t >> 3 == LOGTK_UINT)
			a->u = x;
		else if (t >> 3 == LOGTK_BOOL)
			a->i = x != 0;
		else
			a->i = (int64_t)(x >> 1) ^ -(int64_t)(x & 1);
		return 1;
	}
	return 0;
}

__attribute__((always_inline)) static inline int logtk_attr_next(logtk_attrs_iter *it, logtk_attr *a) {
outer:
	while (it->p && it->p < it->end) {
		uint32_t num;
		int type;
		uint64_t v = 0;
		logtk_bytes b = {0, 0};
		if (!(it->p = logtk_field(it->p, it->end, &num, &type, &v, &b)))
			return 0;
		if (num != it->field || type != 2)
			continue;
		if (logtk_attr_usual_(b.p, b.p + b.n, a))
			return 1;
		memset(a, 0, sizeof *a);
		const uint8_t *p = b.p, *end = b.p + b.n;
		while (p < end) {
			logtk_bytes d = {0, 0};
			uint64_t x = 0;
			if (!(p = logtk_field(p, end, &num, &type, &x, &d)))
				goto outer;
			if (type == 0) {
				switch (num) {
				case LOGTK_INT:
				case LOGTK_DURATION: a->kind = (int)num; a->i = (int64_t)(x >> 1) ^ -(int64_t)(x & 1); break;
				case LOGTK_UINT: a->kind = LOGTK_UINT; a->u = x; break;
				case LOGTK_BOOL: a->kind = LOGTK_BOOL; a->i = x != 0; break;
				}
			} else if (type == 1) {
				if (num == LOGTK_FLOAT) {
					a->kind = LOGTK_FLOAT;
					memcpy(&a->f, &x, 8);
				} else if (num == LOGTK_TIME) {
					a->kind = LOGTK_TIME;
					a->i = (int64_t)x;
				}
			} else if (type == 2) {
				if (num == 1)
					a->key = d;
				else if (num == LOGTK_STRING || num == LOGTK_BYTES || num == LOGTK_GROUP) {
					a->kind = (int)num;
					a->data = d;
				}
			}
		}
		return 1;
	}
	return 0;
}


/* ---- The configuration ----
 *
 * logtk_config_read reads the configuration JSON (docs/plugin-abi.md:
 * an object of exactly the fields the block sets, or zero bytes) into
 * the fields a plugin declares, as a Go plugin's encoding/json would
 * read it into a struct: a member names a field case-insensitively (the
 * last of the same name counts), null leaves a field unset, a member of
 * no declared field is skipped, a value of the wrong kind is an error.
 *
 *   logtk_config_field f[] = {{.name = "theme", .type = LOGTK_CFG_STRING},
 *                             {.name = "max_bytes", .type = LOGTK_CFG_NUMBER}};
 *   int st = logtk_config_read(json, n, f, 2, err);
 *   ... f[0].set, f[0].str (decoded, NUL-terminated), logtk_config_number(&f[1])
 *   logtk_config_free(f, 2);
 *
 * A LOGTK_CFG_JSON field takes any value (a list(string), a
 * map(string)) as its JSON text, in raw, to read as the plugin likes. */
enum { LOGTK_CFG_STRING = 1, LOGTK_CFG_NUMBER, LOGTK_CFG_BOOL, LOGTK_CFG_JSON };

typedef struct {
	const char *name; /* the field's name in the info's "config" */
	int type;         /* LOGTK_CFG_* */
	int set;          /* the JSON gave it a value (not null) */
	logtk_buf str;    /* STRING: the decoded value (UTF-8, invalid bytes as U+FFFD), NUL-terminated */
	logtk_bytes raw;  /* NUMBER and JSON: the value's text, inside the input */
	int b;            /* BOOL: 0 or 1 */
} logtk_config_field;

/* logtk_rune_ is utf8.DecodeRune on p[0:n], n > 0: the rune and its
 * size, or U+FFFD and 1 for an invalid or cut short sequence. */
static inline int32_t logtk_rune_(const uint8_t *p, uint32_t n, uint32_t *size) {
	uint8_t c = p[0];
	*size = 1;
	if (c < 0x80)
		return c;
	uint32_t k = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	if (!k || n < k || !logtk_utf8_valid(p, k))
		return 0xfffd;
	int32_t r = c & (k == 2 ? 0x1f : k == 3 ? 0x0f : 0x07);
	for (uint32_t i = 1; i < k; i++)
		r = r << 6 | (p[i] & 0x3f);
	*size = k;
	return r;
}

typedef struct {
	const uint8_t *p, *end;
} logtk_cfg_in_;

static inline void logtk_cfg_space_(logtk_cfg_in_ *in) {
	while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
		in->p++;
}

static inline int logtk_cfg_hex4_(const uint8_t *p, uint32_t *v) {
	*v = 0;
	for (int i = 0; i < 4; i++) {
		uint8_t c = p[i];
		uint32_t d;
		if (c >= '0' && c <= '9') d = c - '0';
		else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
		else return -1;
		*v = *v << 4 | d;
	}
	return 0;
}

static inline int logtk_cfg_utf8_(logtk_buf *b, uint32_t r) {
	uint8_t e[4];
	uint32_t n;
	if (r < 0x80) {
		e[0] = (uint8_t)r;
		n = 1;
	} else if (r < 0x800) {
		e[0] = (uint8_t)(0xc0 | r >> 6);
		e[1] = (uint8_t)(0x80 | (r & 0x3f));
		n = 2;
	} else if (r < 0x10000) {
		e[0] = (uint8_t)(0xe0 | r >> 12);
		e[1] = (uint8_t)(0x80 | (r >> 6 & 0x3f));
		e[2] = (uint8_t)(0x80 | (r & 0x3f));
		n = 3;
	} else {
		e[0] = (uint8_t)(0xf0 | r >> 18);
		e[1] = (uint8_t)(0x80 | (r >> 12 & 0x3f));
		e[2] = (uint8_t)(0x80 | (r >> 6 & 0x3f));
		e[3] = (uint8_t)(0x80 | (r & 0x3f));
		n = 4;
	}
	return logtk_buf_append(b, e, n);
}

/* logtk_cfg_string_ reads a JSON string at in->p (its opening quote) into out
 * (NULL: skipped): 0, -1 malformed, -2 out of memory. Escapes as
 * encoding/json decodes them, a lone surrogate and invalid UTF-8 as
 * U+FFFD. */
static inline int logtk_cfg_string_(logtk_cfg_in_ *in, logtk_buf *out) {
	logtk_buf skip = {0, 0, 0};
	logtk_buf *b = out ? out : &skip;
	int e = 0;
	in->p++;
	while (in->p < in->end) {
		uint8_t c = *in->p;
		if (c == '"') {
			in->p++;
			free(skip.p);
			return e ? -2 : 0;
		}
		if (c < 0x20)
			break;
		if (c == '\\') {
			if (in->end - in->p < 2)
				break;
			uint8_t x = in->p[1];
			in->p += 2;
			const char *simple = 0;
			switch (x) {
			case '"': simple = "\""; break;
			case '\\': simple = "\\"; break;
			case '/': simple = "/"; break;
			case 'b': simple = "\b"; break;
			case 'f': simple = "\f"; break;
			case 'n': simple = "\n"; break;
			case 'r': simple = "\r"; break;
			case 't': simple = "\t"; break;
			case 'u': {
				uint32_t r;
				if (in->end - in->p < 4 || logtk_cfg_hex4_(in->p, &r))
					goto bad;
				in->p += 4;
				if (r >= 0xd800 && r < 0xdc00) {
					uint32_t r2;
					if (in->end - in->p >= 6 && in->p[0] == '\\' && in->p[1] == 'u' && !logtk_cfg_hex4_(in->p + 2, &r2) && r2 >= 0xdc00 && r2 < 0xe000) {
						in->p += 6;
						r = 0x10000 + ((r - 0xd800) << 10) + (r2 - 0xdc00);
					} else {
						r = 0xfffd;
					}
				} else if (r >= 0xdc00 && r < 0xe000) {
					r = 0xfffd;
				}
				e = e || logtk_cfg_utf8_(b, r);
				continue;
			}
			default:
				goto bad;
			}
			e = e || logtk_buf_byte(b, (uint8_t)simple[0]);
			continue;
		}
		if (c < 0x80) {
			e = e || logtk_buf_byte(b, c);
			in->p++;
			continue;
		}
		uint32_t size;
		int32_t r = logtk_rune_(in->p, (uint32_t)(in->end - in->p), &size);
		if (r == 0xfffd && size == 1)
			e = e || logtk_cfg_utf8_(b, 0xfffd);
		else
			e = e || logtk_buf_append(b, in->p, size);
		in->p += size;
	}
bad:
	free(skip.p);
	return -1;
}

/* logtk_cfg_skip_ skips one JSON value of any kind: 0 or -1 malformed. */
static inline int logtk_cfg_skip_(logtk_cfg_in_ *in, int depth) {
	logtk_cfg_space_(in);
	if (in->p >= in->end || depth > 64)
		return -1;
	uint8_t c = *in->p;
	if (c == '"')
		return logtk_cfg_string_(in, 0) ? -1 : 0;
	if (c == '{' || c == '[') {
		uint8_t close = c == '{' ? '}' : ']';
		in->p++;
		logtk_cfg_space_(in);
		if (in->p < in->end && *in->p == close) {
			in->p++;
			return 0;
		}
		for (;;) {
			if (c == '{') {
				logtk_cfg_space_(in);
				if (in->p >= in->end || *in->p != '"' || logtk_cfg_string_(in, 0))
					return -1;
				logtk_cfg_space_(in);
				if (in->p >= in->end || *in->p++ != ':')
					return -1;
			}
			if (logtk_cfg_skip_(in, depth + 1))
				return -1;
			logtk_cfg_space_(in);
			if (in->p >= in->end)
				return -1;
			if (*in->p == ',') {
				in->p++;
				continue;
			}
			if (*in->p++ == close)
				return 0;
			return -1;
		}
	}
	/* true, false, null, or a number as JSON writes one:
	 * -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
	for (int k = 0; k < 3; k++) {
		static const char *const lits[3] = {"true", "false", "null"};
		size_t l = strlen(lits[k]);
		if ((size_t)(in->end - in->p) >= l && !memcmp(in->p, lits[k], l)) {
			in->p += l;
			return 0;
		}
	}
#define LOGTK_CFG_DIGITS_(min)                                                          \
	do {                                                                     \
		const uint8_t *d_ = in->p;                                       \
		while (in->p < in->end && *in->p >= '0' && *in->p <= '9')        \
			in->p++;                                                 \
		if (in->p - d_ < (min))                                          \
			return -1;                                               \
	} while (0)
	if (in->p < in->end && *in->p == '-')
		in->p++;
	if (in->p < in->end && *in->p == '0')
		in->p++;
	else
		LOGTK_CFG_DIGITS_(1);
	if (in->p < in->end && *in->p == '.') {
		in->p++;
		LOGTK_CFG_DIGITS_(1);
	}
	if (in->p < in->end && (*in->p == 'e' || *in->p == 'E')) {
		in->p++;
		if (in->p < in->end && (*in->p == '+' || *in->p == '-'))
			in->p++;
		LOGTK_CFG_DIGITS_(1);
	}
#undef LOGTK_CFG_DIGITS_
	return 0;
}

static inline int logtk_cfg_fold_eq_(const uint8_t *a, uint32_t n, const char *b) {
	if (strlen(b) != n)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t x = a[i], y = (uint8_t)b[i];
		if (x >= 'A' && x <= 'Z') x = (uint8_t)(x + 32);
		if (y >= 'A' && y <= 'Z') y = (uint8_t)(y + 32);
		if (x != y)
			return 0;
	}
	return 1;
}

/* logtk_config_read reads json (n bytes) into the nf fields: 0, or
 * LOGTK_INVALID with a message in err (LOGTK_INTERNAL when memory ran
 * out). Fields it does not set keep set == 0. */
static inline int logtk_config_read(const uint8_t *json, uint32_t n, logtk_config_field *fields, int nfields, logtk_buf *err) {
	logtk_cfg_in_ in = {json, json + n};
	if (n == 0)
		return LOGTK_OK; /* nothing set; spaces alone are not JSON */
	logtk_cfg_space_(&in);
	if (in.p == in.end)
		goto bad;
	if (*in.p == 'n' && in.end - in.p >= 4 && !memcmp(in.p, "null", 4)) {
		in.p += 4;
		logtk_cfg_space_(&in);
		if (in.p == in.end)
			return LOGTK_OK;
		goto bad;
	}
	if (*in.p != '{') {
		logtk_buf_str(err, "config: want a JSON object");
		return LOGTK_INVALID;
	}
	in.p++;
	logtk_cfg_space_(&in);
	if (in.p < in.end && *in.p == '}') {
		in.p++;
	} else {
		logtk_buf key = {0, 0, 0};
		int done = 0;
		for (;;) {
			logtk_cfg_space_(&in);
			key.len = 0;
			if (in.p >= in.end || *in.p != '"')
				break;
			int st = logtk_cfg_string_(&in, &key);
			if (st == -2) {
				free(key.p);
				return LOGTK_INTERNAL;
			}
			if (st)
				break;
			logtk_cfg_space_(&in);
			if (in.p >= in.end || *in.p++ != ':')
				break;
			logtk_cfg_space_(&in);
			logtk_config_field *f = 0;
			for (int i = 0; i < nfields; i++)
				if (logtk_cfg_fold_eq_(key.p, key.len, fields[i].name))
					f = &fields[i];
			const uint8_t *at = in.p;
			uint8_t c = in.p < in.end ? *in.p : 0;
			const char *want = 0;
			if (!f) {
				if (logtk_cfg_skip_(&in, 0))
					break;
			} else if (in.end - in.p >= 4 && !memcmp(in.p, "null", 4)) {
				in.p += 4;
			} else if (f->type == LOGTK_CFG_STRING) {
				if (c != '"') {
					want = "a string";
				} else {
					f->str.len = 0;
					st = logtk_cfg_string_(&in, &f->str);
					if (st == 0 && logtk_buf_byte(&f->str, 0))
						st = -2;
					if (st == -2) {
						free(key.p);
						return LOGTK_INTERNAL;
					}
					if (st)
						break;
					f->str.len--;
					f->set = 1;
				}
			} else if (f->type == LOGTK_CFG_NUMBER && c != '-' && (c < '0' || c > '9')) {
				want = "a number";
			} else if (f->type == LOGTK_CFG_BOOL) {
				if (in.end - in.p >= 4 && !memcmp(in.p, "true", 4)) {
					in.p += 4;
					f->b = f->set = 1;
				} else if (in.end - in.p >= 5 && !memcmp(in.p, "false", 5)) {
					in.p += 5;
					f->b = 0;
					f->set = 1;
				} else {
					want = "true or false";
				}
			} else {
				/* A number or any JSON value: its text. */
				if (logtk_cfg_skip_(&in, 0))
					break;
				f->raw.p = at;
				f->raw.n = (uint32_t)(in.p - at);
				f->set = 1;
			}
			if (want) {
				free(key.p);
				logtk_buf_str(err, "config: ");
				logtk_buf_str(err, f->name);
				logtk_buf_str(err, ": want ");
				logtk_buf_str(err, want);
				return LOGTK_INVALID;
			}
			logtk_cfg_space_(&in);
			if (in.p < in.end && *in.p == ',') {
				in.p++;
				continue;
			}
			if (in.p < in.end && *in.p == '}') {
				in.p++;
				done = 1;
				break;
			}
			break;
		}
		free(key.p);
		if (!done)
			goto bad;
	}
	logtk_cfg_space_(&in);
	if (in.p == in.end)
		return LOGTK_OK;
bad:
	logtk_buf_str(err, "config: malformed JSON");
	return LOGTK_INVALID;
}

/* logtk_config_is says whether a string field was set to exactly s. */
static inline int logtk_config_is(const logtk_config_field *f, const char *s) {
	return f->set && f->str.len == strlen(s) && !memcmp(f->str.p, s, f->str.len);
}

/* logtk_config_number is a number field's value, rounded as Go's
 * strconv.ParseFloat rounds (strtod); one past float64's range is
 * infinite (Go's encoding/json refuses it: check with isinf). 0 when
 * unset. Only a plugin that calls it links strtod. */
static inline double logtk_config_number(const logtk_config_field *f) {
	if (!f->set || f->raw.n == 0)
		return 0;
	char digits[64];
	char *num = f->raw.n < sizeof digits ? digits : (char *)malloc(f->raw.n + 1);
	if (!num)
		return 0;
	memcpy(num, f->raw.p, f->raw.n);
	num[f->raw.n] = 0;
	double v = strtod(num, 0);
	if (num != digits)
		free(num);
	return v;
}

/* logtk_config_free releases the fields' strings. */
static inline void logtk_config_free(logtk_config_field *fields, int nfields) {
	for (int i = 0; i < nfields; i++) {
		free(fields[i].str.p);
		fields[i].str.p = 0;
		fields[i].str.len = fields[i].str.cap = 0;
	}
}

#if defined(LOGTK_FORMATTER) || defined(LOGTK_TRANSPORT)

const char *logtk_plugin_info(void);
int logtk_plugin_configure(const uint8_t *json, uint32_t n, logtk_buf *err);

static uint8_t *logtk_in_;
static uint32_t logtk_in_cap_;
static logtk_buf logtk_out_;
static const uint8_t *logtk_res_;
static uint32_t logtk_res_n_;
static const char *logtk_format_msg_;

/* logtk_format_error sets the message of the status logtk_plugin_format
 * returns next: a string that lives at least until then. */
static inline void logtk_format_error(const char *msg) { logtk_format_msg_ = msg; }

static inline void logtk_result_set_(const void *p, uint32_t n) {
	logtk_res_ = (const uint8_t *)p;
	logtk_res_n_ = n;
}

/* A status with a message as the result. */
static inline uint32_t logtk_fail_(uint32_t status, const char *msg) {
	logtk_out_.len = 0;
	if (logtk_buf_str(&logtk_out_, msg))
		logtk_result_set_(msg, (uint32_t)strlen(msg));
	else
		logtk_result_set_(logtk_out_.p, logtk_out_.len);
	return status;
}

__attribute__((export_name("logtk_abi_version"))) uint32_t logtk_abi_version(void) { return 2; }

__attribute__((export_name("logtk_alloc"))) uint32_t logtk_alloc(uint32_t n) {
	if (n > logtk_in_cap_) {
		if (n > 0xffffffffu - LOGTK_SLACK)
			return 0;
		uint8_t *p = (uint8_t *)realloc(logtk_in_, n + LOGTK_SLACK);
		if (!p)
			return 0; /* the host replaces the instance */
		logtk_in_ = p;
		logtk_in_cap_ = n;
	}
	return (uint32_t)(uintptr_t)logtk_in_;
}

__attribute__((export_name("logtk_result"))) uint64_t logtk_result(void) {
	return (uint64_t)(uintptr_t)logtk_res_ << 32 | logtk_res_n_;
}

__attribute__((export_name("logtk_info"))) uint32_t logtk_info(void) {
	const char *s = logtk_plugin_info();
	logtk_result_set_(s, (uint32_t)strlen(s));
	return LOGTK_OK;
}

__attribute__((export_name("logtk_configure"))) uint32_t logtk_configure(uint32_t p, uint32_t n) {
	logtk_out_.len = 0;
	int st = logtk_plugin_configure((const uint8_t *)(uintptr_t)p, n, &logtk_out_);
	logtk_result_set_(logtk_out_.p, st ? logtk_out_.len : 0);
	return (uint32_t)st;
}

#endif /* LOGTK_FORMATTER || LOGTK_TRANSPORT */

#ifdef LOGTK_FORMATTER

int logtk_plugin_format(const logtk_record *r, logtk_buf *out);

/* logtk_format: one entry per input record, in order, each a length
 * padded to 5 bytes (the ABI allows it) and the plugin's bytes. */
#ifdef LOGTK_PASSTHROUGH
int logtk_plugin_passthrough(void);
#endif

__attribute__((export_name("logtk_format"))) uint32_t logtk_format(uint32_t ptr, uint32_t n) {
	const uint8_t *p = (const uint8_t *)(uintptr_t)ptr, *end = p + n;
#ifdef LOGTK_PASSTHROUGH
	if (logtk_plugin_passthrough())
		return 5; /* unchanged: the host forwards the batch */
#endif
	logtk_out_.len = 0;
	while (p < end) {
		uint64_t l;
		if (!(p = logtk_varint(p, end, &l)) || l > (uint64_t)(end - p))
			return logtk_fail_(LOGTK_INVALID, "malformed batch");
		logtk_record r;
		if (logtk_record_parse(&r, p, (uint32_t)l))
			return logtk_fail_(LOGTK_INVALID, "malformed record");
		p += l;
		if (logtk_buf_grow(&logtk_out_, 5))
			return logtk_fail_(LOGTK_INTERNAL, "out of memory");
		uint32_t at = logtk_out_.len;
		logtk_out_.len += 5;
		logtk_format_msg_ = 0;
		int st = logtk_plugin_format(&r, &logtk_out_);
		if (st) {
			if (st != LOGTK_INVALID)
				st = LOGTK_INTERNAL;
			const char *msg = logtk_format_msg_;
			if (!msg)
				msg = st == LOGTK_INTERNAL ? "out of memory, or the plugin failed" : "a record cannot be formatted";
			return logtk_fail_((uint32_t)st, msg);
		}
		uint32_t m = logtk_out_.len - at - 5;
		for (int i = 0; i < 5; i++)
			logtk_out_.p[at + i] = (uint8_t)((m >> (7 * i)) & 0x7f) | (i < 4 ? 0x80 : 0);
	}
	logtk_result_set_(logtk_out_.p, logtk_out_.len);
	return LOGTK_OK;
}

#endif /* LOGTK_FORMATTER */

/* Imports of the host's "logtk" module (docs/plugin-abi.md, Imports).
 * A module imports only those it calls. */
#define LOGTK_IMPORT_(name) __attribute__((import_module("logtk"), import_name(name)))

/* logtk_log writes a line to the host's log under the plugin's name, at
 * a record level (LOGTK_WARN...). */
LOGTK_IMPORT_("log") void logtk_log(int32_t level, const void *p, uint32_t n);

/* Network endpoints granted by name: negative results are the error
 * codes below, logtk_net_error tells the last one's message. */
enum {
	LOGTK_NET_NOT_GRANTED = -1, LOGTK_NET_DIAL = -2, LOGTK_NET_IO = -3,
	LOGTK_NET_NO_HANDLE = -4, LOGTK_NET_BAD_POINTER = -5,
	LOGTK_NET_TOO_MANY = -6, LOGTK_NET_EOF = -7
};
LOGTK_IMPORT_("net_dial") int32_t logtk_net_dial(const void *name, uint32_t n);
LOGTK_IMPORT_("net_write") int32_t logtk_net_write(int32_t h, const void *p, uint32_t n);
/* 0: nothing arrived within timeout_ms (0 means the endpoint's
 * io_timeout). */
LOGTK_IMPORT_("net_read") int32_t logtk_net_read(int32_t h, void *p, uint32_t cap, uint32_t timeout_ms);
LOGTK_IMPORT_("net_close") int32_t logtk_net_close(int32_t h);
LOGTK_IMPORT_("net_error") int32_t logtk_net_error(void *p, uint32_t cap);

#ifdef LOGTK_TRANSPORT

/* A mark (docs/plugin-abi.md, Marks): a worker instance, and the highest
 * seq of its records that a batch carries or a transport holds. worker
 * points into the bytes the mark was read from. */
typedef struct {
	logtk_bytes worker;
	uint32_t index;
	uint64_t seq;
} logtk_mark;

/* logtk_mark_next reads the next mark off the front of marks (the ABI's
 * encoding): 1, 0 at the end, -1 when malformed (a name running past
 * the end or not UTF-8, an index of 2^32 or more, a missing seq). */
static inline int logtk_mark_next(logtk_bytes *marks, logtk_mark *m) {
	const uint8_t *p = marks->p, *end = p + marks->n;
	uint64_t n, idx;
	if (p == end)
		return 0;
	if (!(p = logtk_varint(p, end, &n)) || n > (uint64_t)(end - p) || !logtk_utf8_valid(p, (uint32_t)n))
		return -1;
	m->worker.p = p;
	m->worker.n = (uint32_t)n;
	p += n;
	if (!(p = logtk_varint(p, end, &idx)) || idx > 0xffffffffu || !(p = logtk_varint(p, end, &m->seq)))
		return -1;
	m->index = (uint32_t)idx;
	marks->n = (uint32_t)(end - p);
	marks->p = p;
	return 1;
}

/* logtk_buf_mark appends a mark in the ABI's encoding. */
static inline int logtk_buf_mark(logtk_buf *b, const logtk_mark *m) {
	if (logtk_buf_uvarint(b, m->worker.n) || logtk_buf_append(b, m->worker.p, m->worker.n) ||
	    logtk_buf_uvarint(b, m->index) || logtk_buf_uvarint(b, m->seq))
		return -1;
	return 0;
}

/* A transport's batch: its id, its marks (empty unless the transport
 * keeps marks: read them with logtk_mark_next) and its entries
 * (logtk_entry_next). */
typedef struct {
	uint64_t id;
	logtk_bytes marks;
	const uint8_t *p, *end;
} logtk_batch;

/* logtk_entry_next sets e to the batch's next entry: 1, or 0 at the end.
 * (logtk_write has checked every length before the plugin sees the
 * batch.) */
static inline int logtk_entry_next(logtk_batch *b, logtk_bytes *e) {
	uint64_t n;
	const uint8_t *p;
	if (b->p >= b->end || !(p = logtk_varint(b->p, b->end, &n)) || n > (uint64_t)(b->end - p))
		return 0;
	e->p = p;
	e->n = (uint32_t)n;
	b->p = p + n;
	return 1;
}

int logtk_plugin_open(logtk_buf *err);
int logtk_plugin_write(logtk_batch *b, logtk_buf *err);
int logtk_plugin_flush(logtk_buf *err);
int logtk_plugin_close(logtk_buf *err);

/* A transport's call: its status, and its message as the result when it
 * fails. */
static inline uint32_t logtk_transport_done_(int st) {
	logtk_result_set_(logtk_out_.p, st ? logtk_out_.len : 0);
	return (uint32_t)st;
}

/* The host asked for marks (and got them): write inputs carry them. */
static int logtk_keeping_marks_;

__attribute__((export_name("logtk_open"))) uint32_t logtk_open(void) {
	logtk_out_.len = 0;
	return logtk_transport_done_(logtk_plugin_open(&logtk_out_));
}

/* logtk_write checks the batch as the Go SDK does (its id, its marks,
 * every entry's length) before the plugin sees it: a malformed one is
 * LOGTK_INVALID. */
__attribute__((export_name("logtk_write"))) uint32_t logtk_write(uint32_t ptr, uint32_t n) {
	logtk_batch b;
	b.p = (const uint8_t *)(uintptr_t)ptr;
	b.end = b.p + n;
	b.marks.p = b.p;
	b.marks.n = 0;
	if (!(b.p = logtk_varint(b.p, b.end, &b.id)))
		return logtk_fail_(LOGTK_INVALID, "write input without a batch id");
	if (logtk_keeping_marks_) {
		uint64_t l;
		if (!(b.p = logtk_varint(b.p, b.end, &l)) || l > (uint64_t)(b.end - b.p))
			return logtk_fail_(LOGTK_INVALID, "write input without the batch's marks");
		b.marks.p = b.p;
		b.marks.n = (uint32_t)l;
		b.p += l;
		logtk_bytes ms = b.marks;
		logtk_mark m;
		int r;
		while ((r = logtk_mark_next(&ms, &m)) > 0)
			;
		if (r < 0)
			return logtk_fail_(LOGTK_INVALID, "malformed marks");
	}
	for (const uint8_t *p = b.p; p < b.end;) {
		uint64_t l;
		if (!(p = logtk_varint(p, b.end, &l)) || l > (uint64_t)(b.end - p))
			return logtk_fail_(LOGTK_INVALID, "malformed batch");
		p += l;
	}
	logtk_out_.len = 0;
	return logtk_transport_done_(logtk_plugin_write(&b, &logtk_out_));
}

__attribute__((export_name("logtk_flush"))) uint32_t logtk_flush(void) {
	logtk_out_.len = 0;
	return logtk_transport_done_(logtk_plugin_flush(&logtk_out_));
}

__attribute__((export_name("logtk_close"))) uint32_t logtk_close(void) {
	logtk_out_.len = 0;
	return logtk_transport_done_(logtk_plugin_close(&logtk_out_));
}

#ifdef LOGTK_MARKS
/* logtk_plugin_marks appends to marks the marks of everything the
 * transport holds (logtk_buf_mark; at most one per worker instance),
 * and answers 0; from then on every batch carries its marks. */
int logtk_plugin_marks(logtk_buf *marks, logtk_buf *err);

static logtk_buf logtk_marks_out_;

__attribute__((export_name("logtk_marks"))) uint32_t logtk_marks(void) {
	logtk_out_.len = 0;
	logtk_marks_out_.len = 0;
	int st = logtk_plugin_marks(&logtk_marks_out_, &logtk_out_);
	if (st)
		return logtk_transport_done_(st);
	logtk_keeping_marks_ = 1;
	logtk_result_set_(logtk_marks_out_.p, logtk_marks_out_.len);
	return LOGTK_OK;
}
#endif /* LOGTK_MARKS */

#ifdef LOGTK_ASYNC
/* logtk_plugin_poll waits up to timeout_ms for deliveries and appends
 * the delivered batches' ids to ids (logtk_buf_uvarint); 0, or a status
 * with a message (LOGTK_RETRY: everything on its way is sent again).
 * logtk_plugin_write may answer LOGTK_PENDING. */
int logtk_plugin_poll(uint32_t timeout_ms, logtk_buf *ids, logtk_buf *err);

static logtk_buf logtk_ids_out_;

__attribute__((export_name("logtk_poll"))) uint32_t logtk_poll(uint32_t timeout_ms) {
	logtk_out_.len = 0;
	logtk_ids_out_.len = 0;
	int st = logtk_plugin_poll(timeout_ms, &logtk_ids_out_, &logtk_out_);
	if (st)
		return logtk_transport_done_(st);
	logtk_result_set_(logtk_ids_out_.p, logtk_ids_out_.len);
	return LOGTK_OK;
}
#endif /* LOGTK_ASYNC */

#endif /* LOGTK_TRANSPORT */
#endif /* LOGTK_H */
