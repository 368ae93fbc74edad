/*
 * logtk.h: write a logtk format plugin in C (docs/plugin-abi.md).
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
 * The host's imports (logtk_log, logtk_net_*) are declared below; a
 * module imports only those it calls. plugins/c/file.c (marks) and
 * plugins/c/network.c (both, and the network) are transports written
 * with this header.
 *
 * Records come validated by the host (docs/ipc.md): their strings are
 * UTF-8 and their fields well-formed, so the readers below meet
 * malformed input only from a host that is not logtk's.
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
 * with status 3, never a trap.
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
	if (p < end && *p < 0x80) {
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
 * other wire type is malformed. */
static const uint8_t *logtk_field_slow_(const uint8_t *p, const uint8_t *end, uint32_t *num, int *type, uint64_t *v, logtk_bytes *b);

__attribute__((always_inline)) static inline const uint8_t *logtk_field(const uint8_t *p, const uint8_t *end, uint32_t *num, int *type, uint64_t *v, logtk_bytes *b) {
	/* The usual field, inline: a tag of one or two bytes, and a
	 * one-byte varint or length, or a fixed64. Everything else (and
	 * anything malformed) takes the call. */
	if (end - p >= 3) {
		uint32_t t = p[0];
		const uint8_t *q = p + 1;
		if (t >= 0x80) {
			if (p[1] >= 0x80)
				return logtk_field_slow_(p, end, num, type, v, b);
			t = (t & 0x7f) | (uint32_t)p[1] << 7;
			q++;
		}
		if (t >= 8 && q < end) {
			uint32_t c = *q;
			switch (t & 7) {
			case 0:
				if (c < 0x80) {
					*num = t >> 3;
					*type = 0;
					*v = c;
					return q + 1;
				}
				if (end - q >= 2 && q[1] < 0x80) {
					*num = t >> 3;
					*type = 0;
					*v = (c & 0x7f) | (uint64_t)q[1] << 7;
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
	const uint8_t *end = p + n;
	while (p < end) {
		uint32_t num;
		int type;
		uint64_t v = 0;
		logtk_bytes b = {0, 0};
		if (!(p = logtk_field(p, end, &num, &type, &v, &b)))
			return -1;
		if (type == 0) {
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
	it->p = r->raw.p;
	it->end = r->raw.p + r->raw.n;
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
