/*
 * protobuf.c: the protobuf formatter (plugins/protobuf) in C, byte for
 * byte. Without configuration it emits logtk's own logtk.v1.Record,
 * which is the record the host holds: the batch goes back unchanged
 * (status 5). Given a user's compiled schema (a FileDescriptorSet) and a
 * message name, it maps the record's fields and attributes onto that
 * message's fields by name, with a plan made once at configure.
 * plugins/protobuf/protobuf.go is the reference, mapping rules and all;
 * plugins/builtin's differential tests hold this to it.
 */
#define LOGTK_FORMATTER
#define LOGTK_PASSTHROUGH
#include "config.h"

/* Field types (google.protobuf.FieldDescriptorProto.Type). */
enum {
	T_DOUBLE = 1, T_FLOAT = 2, T_INT64 = 3, T_UINT64 = 4, T_INT32 = 5, T_FIXED64 = 6, T_FIXED32 = 7,
	T_BOOL = 8, T_STRING = 9, T_MESSAGE = 11, T_BYTES = 12, T_UINT32 = 13, T_ENUM = 14,
	T_SFIXED32 = 15, T_SFIXED64 = 16, T_SINT32 = 17, T_SINT64 = 18
};
enum { LABEL_REPEATED = 3 };

typedef struct {
	logtk_bytes name, type_name; /* point into the schema */
	int32_t number;              /* as the reference's protowire.Number: truncated */
	int typ, label;              /* a type or label it does not know: -1 */
} field_desc;

typedef struct {
	logtk_buf full_name;
	uint32_t first, n; /* its fields in fields[] */
} message_desc;

/* The schema, and what was read from it: the Go reference's maps, as
 * arrays searched from the end (a later name replaces an earlier one,
 * as in a map). */
static logtk_buf schema;
static field_desc *fields;
static uint32_t nfields, capfields;
static message_desc *messages;
static uint32_t nmessages, capmessages;

/* What a record provides, in the order of the reference's sourceNames. */
enum {
	SRC_TIME, SRC_LEVEL, SRC_MESSAGE, SRC_LOGGER, SRC_WORKER, SRC_WORKER_INDEX, SRC_PID, SRC_INCARNATION,
	SRC_SEQ, SRC_SOURCE, SRC_RECEIVED, SRC_SENDER, SRC_HOSTNAME, SRC_APPLICATION, NSRC
};

static const char *const source_names[NSRC][5] = {
	{"time_unix_nano", "time", "timestamp", "ts", 0},
	{"level", "severity", "severity_number", 0},
	{"message", "msg", "body", 0},
	{"logger", "logger_name", "name", 0},
	{"worker", "worker_name", 0},
	{"worker_index", 0},
	{"pid", "process_id", 0},
	{"incarnation", 0},
	{"seq", "sequence", "sequence_number", 0},
	{"source", 0},
	{"received_unix_nano", "received", "received_time", 0},
	{"sender", 0},
	{"hostname", 0},
	{"application", 0},
};

typedef struct {
	int32_t num;
	int typ;
	int timestamp; /* a message field of type .google.protobuf.Timestamp */
	uint8_t tag[16]; /* a negative number's tag takes ten bytes; go_put_bytes reads 16 */
	uint32_t ntag;
} target;

typedef struct {
	int src;
	target t;
} step;

typedef struct {
	logtk_bytes name;
	target t;
} attr_target;

static int configured; /* a schema is in use */
static step plan[NSRC];
static uint32_t nplan;
static attr_target *attr_targets; /* in the order the reference adds them */
static uint32_t nattr_targets;

/* The targets by name: an open-addressed table of their indexes (+1; 0
 * is empty), so that finding an attribute's field, or that it has none,
 * takes one probe and no loop when names do not collide. Names are
 * unique within a message. */
static uint32_t *target_slot;
static uint32_t target_mask; /* the table's size - 1, a power of two - 1 */

/* name_hash hashes a name's length and first eight bytes (the rest is
 * compared on a hit). The name lies in a buffer with slack past it. */
static inline uint32_t name_hash(const uint8_t *p, uint32_t n) {
	uint64_t x = 0;
	if (n > 0) /* an empty name's bytes may be a null pointer */
		memcpy(&x, p, 8);
	if (n < 8)
		x &= n ? ~(uint64_t)0 >> (64 - 8 * n) : 0;
	return (uint32_t)(((x ^ n) * 0x9e3779b97f4a7c15ULL) >> 32) & target_mask;
}
static target rest;
static int has_rest;
static logtk_buf keybuf; /* the dotted key of grouped attributes */
static logtk_buf val;    /* a value as text */
static go_time_cache times;

const char *logtk_plugin_info(void) {
	return "{\"name\":\"protobuf\",\"version\":\"1.0.0\",\"kind\":\"format\",\"abi\":2,\"config\":["
	       "{\"name\":\"schema\",\"type\":\"file\",\"doc\":\"a compiled FileDescriptorSet; default: logtk's own logtk.v1.Record\"},"
	       "{\"name\":\"message\",\"type\":\"string\",\"doc\":\"the fully qualified message to emit, e.g. cluster.LoggableMessage (required with schema)\"}]}";
}

int logtk_plugin_passthrough(void) { return !configured; }

/* ---- The descriptor set ---- */

/* bytes_eq compares eight bytes at a time (memcmp is a call in Wasm);
 * both sides lie in buffers with slack past their ends. */
static inline int bytes_eq(logtk_bytes a, const uint8_t *p, uint32_t n) {
	if (a.n != n)
		return 0;
	if (n - 1 < 8) { /* the usual name, without a loop */
		uint64_t x, y, keep = ~(uint64_t)0 >> (64 - 8 * n);
		memcpy(&x, a.p, 8);
		memcpy(&y, p, 8);
		return ((x ^ y) & keep) == 0;
	}
	for (uint32_t i = 0; i < n; i += 8) {
		uint64_t x, y;
		memcpy(&x, a.p + i, 8);
		memcpy(&y, p + i, 8);
		if (n - i < 8) {
			uint64_t keep = ((uint64_t)1 << (8 * (n - i))) - 1;
			x &= keep;
			y &= keep;
		}
		if (x != y)
			return 0;
	}
	return 1;
}
static int bytes_eq_str(logtk_bytes a, const char *s) {
	uint32_t n = (uint32_t)strlen(s);
	return a.n == n && (n == 0 || !memcmp(a.p, s, n));
}

/* read_field reads a field of the descriptor as protowire does: 0, or
 * -1 malformed. */
static int read_field(const uint8_t **p, const uint8_t *end, uint32_t *num, int *type, uint64_t *v, logtk_bytes *b) {
	const uint8_t *q = logtk_field(*p, end, num, type, v, b);
	if (!q)
		return -1;
	*p = q;
	return 0;
}

static int add_field(logtk_bytes b) {
	field_desc f = {{0, 0}, {0, 0}, 0, 0, 0};
	const uint8_t *p = b.p, *end = b.p + b.n;
	while (p < end) {
		uint32_t num;
		int type;
		uint64_t v = 0;
		logtk_bytes d = {0, 0};
		if (read_field(&p, end, &num, &type, &v, &d))
			return -1;
		/* As the reference: a field of another wire type than its own
		 * sets the zero value (its bytes, or its varint, are empty). */
		logtk_bytes none = {0, 0};
		if (type != 2)
			d = none;
		if (type != 0)
			v = 0;
		if (num == 1) f.name = d;
		if (num == 3) f.number = (int32_t)v;
		if (num == 4) f.label = v <= 3 ? (int)v : -1;
		if (num == 5) f.typ = v <= 18 ? (int)v : -1;
		if (num == 6) f.type_name = d;
	}
	if (nfields == capfields) {
		uint32_t c = capfields ? capfields * 2 : 32;
		field_desc *n = (field_desc *)realloc(fields, c * sizeof *n);
		if (!n)
			return -2;
		fields = n;
		capfields = c;
	}
	fields[nfields++] = f;
	return 0;
}

/* add_message reads a DescriptorProto in scope (a package or the
 * enclosing message's full name): its fields, then its nested
 * messages, as the reference's parseMessage. */
static int add_message(logtk_bytes b, const uint8_t *scope, uint32_t nscope, int depth) {
	if (depth > 100)
		return -1;
	const uint8_t *p = b.p, *end = b.p + b.n;
	logtk_bytes name = {0, 0};
	uint32_t first = nfields;
	while (p < end) {
		uint32_t num;
		int type;
		uint64_t v = 0;
		logtk_bytes d = {0, 0};
		if (read_field(&p, end, &num, &type, &v, &d))
			return -1;
		if (type != 2)
			continue;
		if (num == 1)
			name = d;
		if (num == 2) {
			int st = add_field(d);
			if (st)
				return st;
		}
	}
	if (nmessages == capmessages) {
		uint32_t c = capmessages ? capmessages * 2 : 16;
		message_desc *n = (message_desc *)realloc(messages, c * sizeof *n);
		if (!n)
			return -2;
		messages = n;
		capmessages = c;
	}
	message_desc *m = &messages[nmessages++];
	memset(m, 0, sizeof *m);
	m->first = first;
	m->n = nfields - first;
	if ((nscope > 0 && (logtk_buf_append(&m->full_name, scope, nscope) || logtk_buf_byte(&m->full_name, '.'))) ||
	    logtk_buf_append(&m->full_name, name.p, name.n))
		return -2;
	/* Nested messages, scoped by this one's full name (copied: the
	 * array may move). */
	logtk_buf full = {0, 0, 0};
	if (logtk_buf_append(&full, m->full_name.p, m->full_name.len)) {
		free(full.p);
		return -2;
	}
	p = b.p;
	int st = 0;
	while (p < end && !st) {
		uint32_t num;
		int type;
		uint64_t v = 0;
		logtk_bytes d = {0, 0};
		if (read_field(&p, end, &num, &type, &v, &d))
			st = -1;
		else if (type == 2 && num == 3)
			st = add_message(d, full.p, full.len, depth + 1);
	}
	free(full.p);
	return st;
}

/* parse_set reads a FileDescriptorSet: 0, -1 malformed, -2 out of
 * memory. */
static int parse_set(const uint8_t *s, uint32_t n) {
	const uint8_t *p = s, *end = s + n;
	while (p < end) {
		uint32_t num;
		int type;
		uint64_t v = 0;
		logtk_bytes file = {0, 0};
		if (read_field(&p, end, &num, &type, &v, &file))
			return -1;
		if (type != 2 || num != 1)
			continue;
		/* The package first (the last one given), then the messages. */
		logtk_bytes pkg = {0, 0};
		const uint8_t *q = file.p, *fend = file.p + file.n;
		while (q < fend) {
			logtk_bytes d = {0, 0};
			if (read_field(&q, fend, &num, &type, &v, &d))
				return -1;
			if (type == 2 && num == 2)
				pkg = d;
		}
		q = file.p;
		while (q < fend) {
			logtk_bytes d = {0, 0};
			if (read_field(&q, fend, &num, &type, &v, &d))
				return -1;
			if (type == 2 && num == 4) {
				int st = add_message(d, pkg.p, pkg.n, 0);
				if (st)
					return st;
			}
		}
	}
	return 0;
}

/* find_message finds a message by its full name (the last of the
 * name). */
static message_desc *find_message(const uint8_t *name, uint32_t n) {
	for (uint32_t i = nmessages; i-- > 0;)
		if (messages[i].full_name.len == n && (n == 0 || !memcmp(messages[i].full_name.p, name, n)))
			return &messages[i];
	return 0;
}

/* is_string_map is the reference's isStringMap. */
static int is_string_map(logtk_bytes type_name) {
	const uint8_t *p = type_name.p;
	uint32_t n = type_name.n;
	if (n > 0 && p[0] == '.') {
		p++;
		n--;
	}
	message_desc *m = find_message(p, n);
	if (!m || m->n != 2 || m->full_name.len < 5 || memcmp(m->full_name.p + m->full_name.len - 5, "Entry", 5))
		return 0;
	for (uint32_t i = 0; i < 2; i++) {
		field_desc *f = &fields[m->first + i];
		if (f->typ != T_STRING || (f->number != 1 && f->number != 2))
			return 0;
	}
	return 1;
}

static int is_int(int typ) {
	switch (typ) {
	case T_INT64: case T_UINT64: case T_INT32: case T_FIXED64: case T_FIXED32: case T_UINT32:
	case T_SFIXED32: case T_SFIXED64: case T_SINT32: case T_SINT64:
		return 1;
	}
	return 0;
}

static int compatible(int src, const field_desc *f) {
	switch (src) {
	case SRC_TIME:
	case SRC_RECEIVED:
		return is_int(f->typ) || f->typ == T_STRING || (f->typ == T_MESSAGE && bytes_eq_str(f->type_name, ".google.protobuf.Timestamp")) ||
		       f->typ == T_DOUBLE;
	case SRC_MESSAGE: case SRC_LOGGER: case SRC_WORKER: case SRC_SENDER: case SRC_HOSTNAME: case SRC_APPLICATION:
		return f->typ == T_STRING || f->typ == T_BYTES;
	}
	return is_int(f->typ) || f->typ == T_ENUM || f->typ == T_STRING;
}

/* The wire type a field of typ is written with. */
static int wire_type(int typ) {
	switch (typ) {
	case T_DOUBLE: case T_FIXED64: case T_SFIXED64: return 1;
	case T_FLOAT: case T_FIXED32: case T_SFIXED32: return 5;
	case T_STRING: case T_MESSAGE: case T_BYTES: return 2;
	}
	return 0;
}

__attribute__((noinline)) static uint8_t *put_varint_long(uint8_t *o, uint64_t v) {
	while (v >= 0x80) {
		*o++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*o++ = (uint8_t)v;
	return o;
}

/* put_varint writes v as a varint: one byte inline, the usual case. */
static inline uint8_t *put_varint(uint8_t *o, uint64_t v) {
	if (v < 0x80) {
		*o = (uint8_t)v;
		return o + 1;
	}
	return put_varint_long(o, v);
}


static target make_target(const field_desc *f) {
	target t;
	memset(&t, 0, sizeof t);
	t.num = f->number;
	t.typ = f->typ;
	t.timestamp = f->typ == T_MESSAGE && bytes_eq_str(f->type_name, ".google.protobuf.Timestamp");
	return t;
}

/* A target's tag for wire type w, worked out once. */
static void set_tag(target *t) {
	uint8_t *e = put_varint(t->tag, (uint64_t)(int64_t)t->num << 3 | (uint32_t)wire_type(t->typ));
	t->ntag = (uint32_t)(e - t->tag);
}

static void reset(void) {
	for (uint32_t i = 0; i < nmessages; i++)
		free(messages[i].full_name.p);
	nmessages = nfields = 0;
	nplan = 0;
	nattr_targets = 0;
	has_rest = 0;
	configured = 0;
}

static int fail(logtk_buf *err, int st, const char *a, logtk_bytes q, const char *b) {
	logtk_buf_str(err, a);
	if (q.p) {
		logtk_buf v = {(uint8_t *)q.p, q.n, q.n};
		cfg_quote(err, &v);
	}
	logtk_buf_str(err, b);
	return st;
}

/* config_error names a field of the message: "field m.name ...". */
static int field_error(logtk_buf *err, const message_desc *m, logtk_bytes name, const char *what) {
	logtk_buf_str(err, "field ");
	logtk_buf_append(err, m->full_name.p, m->full_name.len);
	logtk_buf_byte(err, '.');
	logtk_buf_append(err, name.p, name.n);
	logtk_buf_str(err, what);
	return LOGTK_INVALID;
}

/* The base64 (standard, padded) of the schema, as encoding/json decodes
 * a []byte: \r and \n ignored. 0, or -1. */
static int decode_base64(const logtk_buf *in, logtk_buf *out) {
	static int8_t dec[256];
	static int ready;
	if (!ready) {
		memset(dec, -1, sizeof dec);
		const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		for (int i = 0; i < 64; i++)
			dec[(uint8_t)a[i]] = (int8_t)i;
		ready = 1;
	}
	out->len = 0;
	uint32_t acc = 0, nacc = 0, pad = 0;
	for (uint32_t i = 0; i < in->len; i++) {
		uint8_t c = in->p[i];
		if (c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad || dec[c] < 0)
			return -1;
		acc = acc << 6 | (uint32_t)dec[c];
		if (++nacc == 4) {
			uint8_t t[3] = {(uint8_t)(acc >> 16), (uint8_t)(acc >> 8), (uint8_t)acc};
			if (logtk_buf_append(out, t, 3))
				return -2;
			acc = nacc = 0;
		}
	}
	if (nacc == 1 || (nacc == 0 && pad) || (nacc > 0 && nacc + pad != 4))
		return -1;
	/* Trailing bits that are not zero are ignored, as Go's (not
	 * strict) base64 ignores them. */
	if (nacc == 2) {
		uint8_t t = (uint8_t)(acc >> 4);
		if (logtk_buf_append(out, &t, 1))
			return -2;
	} else if (nacc == 3) {
		uint8_t t[2] = {(uint8_t)(acc >> 10), (uint8_t)(acc >> 2)};
		if (logtk_buf_append(out, t, 2))
			return -2;
	}
	return 0;
}

int logtk_plugin_configure(const uint8_t *json, uint32_t n, logtk_buf *err) {
	logtk_config_field f[2] = {{.name = "schema", .type = LOGTK_CFG_STRING}, {.name = "message", .type = LOGTK_CFG_STRING}};
	logtk_bytes none = {0, 0};
	int st = logtk_config_read(json, n, f, 2, err);
	logtk_buf raw = {0, 0, 0};
	if (st)
		goto done;
	if (f[0].set && (st = decode_base64(&f[0].str, &raw))) {
		st = st == -2 ? LOGTK_INTERNAL : fail(err, LOGTK_INVALID, "config: schema: not base64", none, "");
		goto done;
	}
	reset();
	if (raw.len == 0) {
		if (f[1].set && f[1].str.len > 0) {
			logtk_bytes m = {f[1].str.p, f[1].str.len};
			st = fail(err, LOGTK_INVALID, "message ", m, " given without a schema");
		}
		goto done;
	}
	if (!f[1].set || f[1].str.len == 0) {
		st = fail(err, LOGTK_INVALID, "schema given without message: name the message to emit", none, "");
		goto done;
	}
	/* The schema stays: the descriptors point into it. */
	free(schema.p);
	schema = raw;
	raw.p = 0;
	int ps = parse_set(schema.p, schema.len);
	if (ps) {
		st = ps == -2 ? LOGTK_INTERNAL : fail(err, LOGTK_INVALID, "schema is not a FileDescriptorSet: malformed protobuf", none, "");
		reset();
		goto done;
	}
	const uint8_t *mn = f[1].str.p;
	uint32_t mlen = f[1].str.len;
	if (mlen > 0 && mn[0] == '.') {
		mn++;
		mlen--;
	}
	message_desc *m = find_message(mn, mlen);
	if (!m) {
		logtk_bytes q = {f[1].str.p, f[1].str.len};
		fail(err, LOGTK_INVALID, "schema has no message ", q, " (it has: ");
		for (uint32_t i = 0; i < nmessages; i++) {
			if (i > 0)
				logtk_buf_str(err, ", ");
			logtk_buf_append(err, messages[i].full_name.p, messages[i].full_name.len);
		}
		logtk_buf_byte(err, ')');
		st = LOGTK_INVALID;
		reset();
		goto done;
	}
	/* The record's fields, each to the first of its names the message
	 * has (of fields of one name, the last), as the reference's plan. */
	uint8_t *used = (uint8_t *)calloc(m->n + 1, 1);
	attr_target *at = (attr_target *)realloc(attr_targets, (m->n + 1) * sizeof *attr_targets);
	if (at)
		attr_targets = at;
	if (!used || !at) {
		free(used);
		st = LOGTK_INTERNAL;
		reset();
		goto done;
	}
	for (int src = 0; src < NSRC && !st; src++) {
		for (int k = 0; source_names[src][k]; k++) {
			const char *name = source_names[src][k];
			field_desc *fd = 0;
			uint32_t idx = 0;
			for (uint32_t i = m->n; i-- > 0;)
				if (bytes_eq_str(fields[m->first + i].name, name)) {
					fd = &fields[m->first + i];
					idx = i;
					break;
				}
			if (!fd)
				continue;
			/* used is by name: any field of this name taken already */
			int taken = 0;
			for (uint32_t i = 0; i < m->n; i++)
				if (used[i] && bytes_eq_str(fields[m->first + i].name, name))
					taken = 1;
			if (taken)
				continue;
			if (fd->label == LABEL_REPEATED) {
				st = field_error(err, m, fd->name, " is repeated; record field ");
				logtk_buf_str(err, name);
				logtk_buf_str(err, " needs a singular field");
				break;
			}
			if (!compatible(src, fd)) {
				st = field_error(err, m, fd->name, " cannot hold the record's ");
				logtk_buf_str(err, name);
				break;
			}
			plan[nplan].src = src;
			plan[nplan].t = make_target(fd);
			set_tag(&plan[nplan].t);
			nplan++;
			used[idx] = 1;
			break;
		}
	}
	if (st) {
		free(used);
		reset();
		goto done;
	}
	for (uint32_t i = 0; i < m->n; i++) {
		field_desc *fd = &fields[m->first + i];
		int taken = 0;
		for (uint32_t j = 0; j < m->n; j++)
			if (used[j] && bytes_eq(fields[m->first + j].name, fd->name.p, fd->name.n))
				taken = 1;
		if (taken)
			continue;
		if (fd->label == LABEL_REPEATED && fd->typ == T_MESSAGE && is_string_map(fd->type_name)) {
			if (!has_rest && (bytes_eq_str(fd->name, "attrs") || bytes_eq_str(fd->name, "attributes") ||
			                  bytes_eq_str(fd->name, "labels") || bytes_eq_str(fd->name, "fields"))) {
				rest = make_target(fd);
				set_tag(&rest);
				has_rest = 1;
			}
			continue;
		}
		if (fd->label == LABEL_REPEATED)
			continue;
		attr_targets[nattr_targets].name = fd->name;
		attr_targets[nattr_targets].t = make_target(fd);
		set_tag(&attr_targets[nattr_targets].t);
		nattr_targets++;
	}
	free(used);
	/* At most half full. */
	uint32_t size = 16;
	while (size < 2 * nattr_targets)
		size *= 2;
	free(target_slot);
	if (!(target_slot = (uint32_t *)calloc(size, sizeof *target_slot))) {
		st = LOGTK_INTERNAL;
		reset();
		goto done;
	}
	target_mask = size - 1;
	for (uint32_t i = 0; i < nattr_targets; i++) {
		uint32_t h = name_hash(attr_targets[i].name.p, attr_targets[i].name.n);
		while (target_slot[h])
			h = (h + 1) & target_mask;
		target_slot[h] = i + 1;
	}
	configured = 1;
done:
	free(raw.p);
	free(f[0].str.p);
	free(f[1].str.p);
	return st;
}

/* ---- Formatting ---- */

/* put_tag writes a tag of field num and wire type w (a number that does
 * not fit in 31 bits sign-extended, as the reference's). */
static inline uint8_t *put_tag(uint8_t *o, int32_t num, int w) { return put_varint(o, (uint64_t)(int64_t)num << 3 | (uint32_t)w); }

/* put_bytes_field writes field num as length-delimited s. */
static inline uint8_t *put_len(uint8_t *o, int32_t num, const uint8_t *s, uint32_t n) {
	o = put_tag(o, num, 2);
	o = put_varint(o, n);
	return go_put_bytes(o, s, n);
}

/* put_int is the reference's appendInt. */
static uint8_t *put_int(uint8_t *o, const target *t, int64_t v) {
	switch (t->typ) {
	case T_INT64: case T_UINT64: case T_INT32: case T_UINT32: case T_ENUM: case T_BOOL:
		if (t->typ == T_BOOL && v != 0)
			v = 1;
		o = put_tag(o, t->num, 0);
		return put_varint(o, (uint64_t)v);
	case T_SINT32: case T_SINT64:
		o = put_tag(o, t->num, 0);
		return put_varint(o, (uint64_t)v << 1 ^ (uint64_t)(v >> 63));
	case T_FIXED32: case T_SFIXED32: {
		uint32_t x = (uint32_t)v;
		o = put_tag(o, t->num, 5);
		memcpy(o, &x, 4);
		return o + 4;
	}
	case T_FIXED64: case T_SFIXED64: {
		o = put_tag(o, t->num, 1);
		memcpy(o, &v, 8);
		return o + 8;
	}
	case T_DOUBLE: {
		double d = (double)v;
		o = put_tag(o, t->num, 1);
		memcpy(o, &d, 8);
		return o + 8;
	}
	case T_FLOAT: {
		float x = (float)v;
		o = put_tag(o, t->num, 5);
		memcpy(o, &x, 4);
		return o + 4;
	}
	}
	return o;
}

/* put_time is the reference's appendTime. */
static uint8_t *put_time(uint8_t *o, const target *t, int64_t ns) {
	if (ns == 0)
		return o;
	if (t->typ == T_MESSAGE) { /* google.protobuf.Timestamp */
		int64_t sec = ns / 1000000000, nsec = ns % 1000000000;
		if (nsec < 0) {
			sec--;
			nsec += 1000000000;
		}
		o = put_tag(o, t->num, 2);
		o = put_varint(o, 1 + logtk_uvarint_size((uint64_t)sec) + 1 + logtk_uvarint_size((uint64_t)nsec));
		*o++ = 1 << 3;
		o = put_varint(o, (uint64_t)sec);
		*o++ = 2 << 3;
		return put_varint(o, (uint64_t)nsec);
	}
	if (t->typ == T_STRING) {
		uint8_t tmp[40];
		uint32_t n = (uint32_t)(go_put_time(tmp, &times, ns, 0, 1) - tmp);
		return put_len(o, t->num, tmp, n);
	}
	if (t->typ == T_DOUBLE) {
		double d = (double)ns / 1e9;
		o = put_tag(o, t->num, 1);
		memcpy(o, &d, 8);
		return o + 8;
	}
	return put_int(o, t, ns);
}

/* put_short_value writes textfmt.AppendValue of a value of a kind
 * other than a string, bytes or a group: at most 40 bytes. */
static inline uint8_t *put_short_value(uint8_t *o, int kind, int64_t i, uint64_t u, double f) {
	switch (kind) {
	case LOGTK_INT: return go_put_int(o, i);
	case LOGTK_UINT: return go_put_uint(o, u);
	case LOGTK_FLOAT: return go_put_float(o, f);
	case LOGTK_BOOL: return i ? GO_PUT_LIT(o, "true") : GO_PUT_LIT(o, "false");
	case LOGTK_TIME: return go_put_time(o, &times, i, 0, 1);
	case LOGTK_DURATION: return go_put_duration(o, i);
	}
	return o;
}

/* value_text writes textfmt.AppendValue of a (not a group, not a
 * string) into val: 0, or -1. */
#define VALUE_ARGS int kind, const uint8_t *dp, uint32_t dn, int64_t i, uint64_t u, double f
#define VALUE_PASS(a) (a)->kind, (a)->data.p, (a)->data.n, (a)->i, (a)->u, (a)->f
static int value_text(VALUE_ARGS) {
	val.len = 0;
	uint8_t *o = go_room(&val, go_base64_len(dn) + 48);
	if (!o)
		return -1;
	if (kind == LOGTK_BYTES) {
		o = GO_PUT_LIT(o, "base64:");
		o = go_put_base64(o, dp, dn);
	} else {
		o = put_short_value(o, kind, i, u, f);
	}
	go_done(&val, o);
	return 0;
}

/* attr_field writes an attribute into its field if the types fit (the
 * reference's appendAttr): 1 written, 0 not, -1 out of memory. */
__attribute__((always_inline)) static inline int attr_field(logtk_buf *b, const target *t, const logtk_attr *a) {
	uint8_t *o = go_room(b, 2 * (uint64_t)a->data.n + 64);
	if (!o)
		return -1;
	switch (a->kind) {
	case LOGTK_STRING:
	case LOGTK_BYTES:
		if (t->typ != T_STRING && t->typ != T_BYTES)
			return 0;
		if (a->kind == LOGTK_BYTES && t->typ == T_STRING) {
			val.len = 0;
			uint8_t *v = go_room(&val, go_base64_len(a->data.n));
			if (!v)
				return -1;
			go_done(&val, go_put_base64(v, a->data.p, a->data.n));
			go_done(b, put_len(o, t->num, val.p, val.len));
			return 1;
		}
		go_done(b, put_len(o, t->num, a->data.p, a->data.n));
		return 1;
	case LOGTK_INT:
	case LOGTK_DURATION:
		if (is_int(t->typ) || t->typ == T_ENUM || t->typ == T_DOUBLE || t->typ == T_FLOAT) {
			go_done(b, put_int(o, t, a->i));
			return 1;
		}
		break;
	case LOGTK_UINT:
		if (is_int(t->typ)) {
			go_done(b, put_int(o, t, (int64_t)a->u));
			return 1;
		}
		break;
	case LOGTK_BOOL:
		if (t->typ == T_BOOL) {
			go_done(b, put_int(o, t, a->i));
			return 1;
		}
		break;
	case LOGTK_FLOAT:
		if (t->typ == T_DOUBLE) {
			o = put_tag(o, t->num, 1);
			memcpy(o, &a->f, 8);
			go_done(b, o + 8);
			return 1;
		}
		if (t->typ == T_FLOAT) {
			float x = (float)a->f;
			o = put_tag(o, t->num, 5);
			memcpy(o, &x, 4);
			go_done(b, o + 4);
			return 1;
		}
		break;
	case LOGTK_TIME:
		if (is_int(t->typ) || t->timestamp) {
			go_done(b, put_time(o, t, a->i));
			return 1;
		}
		break;
	}
	if (t->typ == T_STRING && a->kind != LOGTK_GROUP) {
		if (value_text(VALUE_PASS(a)) || !(o = go_room(b, (uint64_t)val.len + 16)))
			return -1;
		go_done(b, put_len(o, t->num, val.p, val.len));
		return 1;
	}
	return 0;
}

/* rest_entry adds an attribute without a field of its own to the
 * map<string,string> (the reference's appendRest): groups flattened
 * with dotted keys, built in keybuf (its first prefix_n bytes are the
 * enclosing groups'; none at the top, or under a group with an empty
 * key there, as in the reference). The attribute comes in its
 * arguments, not by pointer, which keeps the walk's attribute out of
 * memory (in Wasm every access to memory is checked against its
 * bounds). */
static int rest_entry(logtk_buf *b, uint32_t prefix_n, int kind, const uint8_t *kp, uint32_t kn, const uint8_t *dp, uint32_t dn,
                      int64_t i, uint64_t u, double f) {
	const logtk_attr A = {{kp, kn}, kind, {dp, dn}, i, u, f}, *a = &A;
	const uint8_t *key;
	uint32_t keyn;
	if (prefix_n > 0 || a->kind == LOGTK_GROUP) {
		keybuf.len = prefix_n;
		uint8_t *q = go_room(&keybuf, (uint64_t)a->key.n + 1);
		if (!q)
			return -1;
		if (prefix_n > 0)
			*q++ = '.';
		go_done(&keybuf, go_put_bytes(q, a->key.p, a->key.n));
		key = keybuf.p;
		keyn = keybuf.len;
	} else {
		key = a->key.p;
		keyn = a->key.n;
	}
	if (a->kind == LOGTK_GROUP) {
		uint32_t p = keybuf.len;
		logtk_attrs_iter it;
		logtk_attr g;
		logtk_group(a, &it);
		while (logtk_attr_next(&it, &g))
			if (rest_entry(b, p, g.kind, g.key.p, g.key.n, g.data.p, g.data.n, g.i, g.u, g.f))
				return -1;
		return 0;
	}
	const uint8_t *v;
	uint32_t vn;
	uint8_t tmp[64]; /* a short value's text, and slack */
	if (a->kind == LOGTK_STRING) {
		v = a->data.p;
		vn = a->data.n;
	} else if (a->kind == LOGTK_BYTES) {
		if (value_text(VALUE_PASS(a)))
			return -1;
		v = val.p;
		vn = val.len;
		/* keybuf and val are apart: key stays valid */
	} else {
		v = tmp;
		vn = (uint32_t)(put_short_value(tmp, a->kind, a->i, a->u, a->f) - tmp);
	}
	uint64_t inner = 1 + (uint64_t)logtk_uvarint_size(keyn) + keyn + 1 + logtk_uvarint_size(vn) + vn;
	uint8_t *o = go_room(b, inner + 16);
	if (!o)
		return -1;
	o = go_put_bytes(o, rest.tag, rest.ntag);
	o = put_varint(o, inner);
	*o++ = 1 << 3 | 2;
	o = put_varint(o, keyn);
	o = go_put_bytes(o, key, keyn);
	*o++ = 2 << 3 | 2;
	o = put_varint(o, vn);
	o = go_put_bytes(o, v, vn);
	go_done(b, o);
	return 0;
}

static const char level_texts[8][8] = {"TRACE", "DEBUG", "INFO", "NOTE", "WARN", "ERROR", "FATAL", "?????"};
static const uint8_t level_lens[8] = {5, 5, 4, 4, 4, 5, 5, 5};
static const char source_texts[5][8] = {"", "sdk", "stdout", "stderr", "host"};
static const uint8_t source_lens[5] = {0, 3, 6, 6, 4};

/* put_int_or_text is the reference's appendIntOrText. */
static uint8_t *put_int_or_text(uint8_t *o, const target *t, int64_t v) {
	if (t->typ == T_STRING) {
		uint8_t tmp[48]; /* 20 digits, and go_put_digits32's 16-byte writes */
		uint32_t n = (uint32_t)(go_put_int(tmp, v) - tmp);
		return put_len(o, t->num, tmp, n);
	}
	return put_int(o, t, v);
}

static uint8_t *put_str(uint8_t *o, int32_t num, logtk_bytes s) { return s.n ? put_len(o, num, s.p, s.n) : o; }

int logtk_plugin_format(const logtk_record *r, logtk_buf *b) {
	/* The plan's fields at once: their text as it is, and at most 40
	 * bytes for each other one. */
	uint64_t text = (uint64_t)r->message.n + r->logger.n + r->worker.n + r->sender.n + r->hostname.n + r->application.n;
	uint8_t *o = go_room(b, text + 64 * NSRC);
	if (!o)
		return LOGTK_INTERNAL;
	for (uint32_t i = 0; i < nplan; i++) {
		const target *t = &plan[i].t;
		switch (plan[i].src) {
		case SRC_TIME: o = put_time(o, t, r->time_unix_nano); break;
		case SRC_RECEIVED: o = put_time(o, t, r->received_unix_nano); break;
		case SRC_LEVEL:
			if (t->typ == T_STRING) {
				int li = go_level_index(r->level);
				o = put_len(o, t->num, (const uint8_t *)level_texts[li], level_lens[li]);
			} else {
				o = put_int(o, t, r->level);
			}
			break;
		case SRC_SOURCE:
			if (t->typ == T_STRING) {
				if (r->source >= 0 && r->source < 5 && r->source > 0)
					o = put_len(o, t->num, (const uint8_t *)source_texts[r->source], source_lens[r->source]);
			} else {
				o = put_int(o, t, r->source);
			}
			break;
		case SRC_MESSAGE: o = put_str(o, t->num, r->message); break;
		case SRC_LOGGER: o = put_str(o, t->num, r->logger); break;
		case SRC_WORKER: o = put_str(o, t->num, r->worker); break;
		case SRC_SENDER: o = put_str(o, t->num, r->sender); break;
		case SRC_HOSTNAME: o = put_str(o, t->num, r->hostname); break;
		case SRC_APPLICATION: o = put_str(o, t->num, r->application); break;
		case SRC_WORKER_INDEX: o = put_int_or_text(o, t, r->worker_index); break;
		case SRC_PID: o = put_int_or_text(o, t, r->pid); break;
		case SRC_INCARNATION: o = put_int_or_text(o, t, r->incarnation); break;
		case SRC_SEQ: o = put_int_or_text(o, t, (int64_t)r->seq); break;
		}
	}
	go_done(b, o);
	logtk_attrs_iter it;
	logtk_attr a;
	logtk_attrs(r, &it);
	while (logtk_attr_next(&it, &a)) {
		const attr_target *at = 0;
		for (uint32_t h = name_hash(a.key.p, a.key.n); target_slot[h]; h = (h + 1) & target_mask)
			if (bytes_eq(attr_targets[target_slot[h] - 1].name, a.key.p, a.key.n)) {
				at = &attr_targets[target_slot[h] - 1];
				break;
			}
		if (at) {
			int st = attr_field(b, &at->t, &a);
			if (st < 0)
				return LOGTK_INTERNAL;
			if (st)
				continue;
		}
		if (has_rest && rest_entry(b, 0, a.kind, a.key.p, a.key.n, a.data.p, a.data.n, a.i, a.u, a.f))
			return LOGTK_INTERNAL;
	}
	return LOGTK_OK;
}
