/*
 * json.c: the JSON formatter (plugins/json) in C, byte for byte: one
 * JSON object per record and line, the record's fields first, then its
 * attributes, groups as nested objects. plugins/json/json.go is the
 * reference; plugins/builtin's differential tests hold this to it.
 */
#define LOGTK_FORMATTER
#include "config.h"

static int unix_nano;
static logtk_buf attrs_key;
static int has_attrs_key;
static go_time_cache times;

const char *logtk_plugin_info(void) {
	return "{\"name\":\"json\",\"version\":\"1.0.0\",\"kind\":\"format\",\"abi\":2,\"config\":["
	       "{\"name\":\"time_format\",\"type\":\"string\",\"doc\":\"\\\"rfc3339\\\" (default, nanosecond precision, UTC) or \\\"unix_nano\\\"\"},"
	       "{\"name\":\"attrs_key\",\"type\":\"string\",\"doc\":\"nest attributes under this key instead of at the top level\"}]}";
}

int logtk_plugin_configure(const uint8_t *json, uint32_t n, logtk_buf *err) {
	logtk_config_field f[2] = {{.name = "time_format", .type = LOGTK_CFG_STRING}, {.name = "attrs_key", .type = LOGTK_CFG_STRING}};
	int st = logtk_config_read(json, n, f, 2, err);
	if (st == LOGTK_OK && f[0].set && f[0].str.len > 0 && !logtk_config_is(&f[0], "rfc3339") && !logtk_config_is(&f[0], "unix_nano")) {
		logtk_buf_str(err, "unknown time_format ");
		cfg_quote(err, &f[0].str);
		logtk_buf_str(err, " (want \"rfc3339\" or \"unix_nano\")");
		st = LOGTK_INVALID;
	}
	if (st == LOGTK_OK) {
		unix_nano = logtk_config_is(&f[0], "unix_nano");
		attrs_key.len = 0;
		has_attrs_key = f[1].set && f[1].str.len > 0;
		if (has_attrs_key && logtk_buf_append(&attrs_key, f[1].str.p, f[1].str.len))
			st = LOGTK_INTERNAL;
	}
	free(f[0].str.p);
	free(f[1].str.p);
	return st;
}

/*
 * The output of a record is bounded by its size: no byte of it becomes
 * more than 6 bytes (a string's \u0000), and the least an attribute can
 * take (a tag and length, and a key's, or a value's) bounds what the
 * attribute adds around its key and value (quotes, colon, comma,
 * braces), as a value's encoding bounds its text (an 8-byte time: 32
 * bytes; a 1-byte varint: 3). So one check for room a record, 7 bytes a
 * byte of it and some, and the writes after it check nothing.
 */
#define ROOM(r) (7 * (uint64_t)(r)->raw.n + 6 * (uint64_t)attrs_key.len + 512)

/* A record larger than this is measured instead (bound), so that a
 * record of megabytes of plain text asks for about its own size, not
 * seven times it. */
#define MEASURE_FROM 65536

static uint64_t bound_string(logtk_bytes s) { return go_json_string_len(s.p, s.n); }

/* bound_attrs is what attrs writes for the attributes of it, at most:
 * exact for strings and bytes, 40 bytes for any other value. */
static uint64_t bound_attrs(logtk_attrs_iter *it) {
	uint64_t n = 0;
	logtk_attr a;
	while (logtk_attr_next(it, &a)) {
		n += 2 + bound_string(a.key); /* the comma and the colon */
		switch (a.kind) {
		case LOGTK_STRING: n += bound_string(a.data); break;
		case LOGTK_BYTES: n += 2 + go_base64_len(a.data.n); break;
		case LOGTK_GROUP: {
			logtk_attrs_iter g;
			logtk_group(&a, &g);
			n += 2 + bound_attrs(&g);
			break;
		}
		default: n += 40;
		}
	}
	return n;
}

static uint64_t bound(const logtk_record *r) {
	logtk_attrs_iter it;
	logtk_attrs(r, &it);
	return bound_string(r->message) + bound_string(r->logger) + bound_string(r->sender) + bound_string(r->hostname) +
	       bound_string(r->application) + bound_string(r->worker) + 2 * go_json_string_len(attrs_key.p, attrs_key.len) + 512 +
	       bound_attrs(&it);
}

static uint8_t *attrs(uint8_t *o, logtk_attrs_iter *it, int comma_first);

/* attr writes one attribute (after a comma when comma). */
__attribute__((always_inline)) static inline uint8_t *attr(uint8_t *o, const logtk_attr *a, int comma) {
	if (comma)
		*o++ = ',';
	o = go_put_json_string(o, a->key.p, a->key.n);
	*o++ = ':';
	switch (a->kind) {
	case LOGTK_STRING:
		return go_put_json_string(o, a->data.p, a->data.n);
	case LOGTK_INT:
	case LOGTK_DURATION:
		return go_put_int(o, a->i);
	case LOGTK_UINT:
		return go_put_uint(o, a->u);
	case LOGTK_FLOAT: {
		double v = a->f;
		if (v != v || v > 1.7976931348623157e308 || v < -1.7976931348623157e308) {
			/* strconv.AppendQuote of the 'g' form: NaN, +Inf, -Inf */
			*o++ = '"';
			o = go_put_float(o, v);
			*o++ = '"';
			return o;
		}
		return go_put_float(o, v);
	}
	case LOGTK_BOOL:
		return a->i ? GO_PUT_LIT(o, "true") : GO_PUT_LIT(o, "false");
	case LOGTK_BYTES:
		*o++ = '"';
		o = go_put_base64(o, a->data.p, a->data.n);
		*o++ = '"';
		return o;
	case LOGTK_TIME:
		*o++ = '"';
		o = go_put_time(o, &times, a->i, 0, 1);
		*o++ = '"';
		return o;
	case LOGTK_GROUP: {
		*o++ = '{';
		logtk_attrs_iter it;
		logtk_group(a, &it);
		o = attrs(o, &it, 0);
		*o++ = '}';
		return o;
	}
	}
	return GO_PUT_LIT(o, "null");
}

static uint8_t *attrs(uint8_t *o, logtk_attrs_iter *it, int comma_first) {
	logtk_attr a;
	for (int first = 1; logtk_attr_next(it, &a); first = 0)
		o = attr(o, &a, !first || comma_first);
	return o;
}

static const char sources[5][7] = {"", "sdk", "stdout", "stderr", "host"};
static const uint8_t source_len[] = {0, 3, 6, 6, 4};

static const char levels[8][6] = {"TRACE", "DEBUG", "INFO", "NOTE", "WARN", "ERROR", "FATAL", "?????"};
static const uint8_t level_len[8] = {5, 5, 4, 4, 4, 5, 5, 5};

#define FIELD(o, lit, v)                                           \
	do {                                                       \
		if ((v).n > 0) {                                   \
			o = GO_PUT_LIT(o, lit);                    \
			o = go_put_json_string(o, (v).p, (v).n);   \
		}                                                  \
	} while (0)

int logtk_plugin_format(const logtk_record *r, logtk_buf *b) {
	uint8_t *o = go_room(b, r->raw.n < MEASURE_FROM ? ROOM(r) : bound(r));
	if (!o)
		return LOGTK_INTERNAL;
	*o++ = '{';
	if (r->time_unix_nano != 0) {
		o = GO_PUT_LIT(o, "\"time\":");
		if (unix_nano) {
			o = go_put_int(o, r->time_unix_nano);
		} else {
			*o++ = '"';
			o = go_put_time(o, &times, r->time_unix_nano, 0, 1);
			*o++ = '"';
		}
		*o++ = ',';
	}
	int li = go_level_index(r->level);
	o = GO_PUT_LIT(o, "\"level\":\"");
	memcpy(o, levels[li], 5);
	o += level_len[li];
	o = GO_PUT_LIT(o, "\",\"msg\":");
	o = go_put_json_string(o, r->message.p, r->message.n);
	FIELD(o, ",\"logger\":", r->logger);
	FIELD(o, ",\"sender\":", r->sender);
	FIELD(o, ",\"hostname\":", r->hostname);
	FIELD(o, ",\"application\":", r->application);
	if (r->worker.n > 0) {
		FIELD(o, ",\"worker\":", r->worker);
		o = GO_PUT_LIT(o, ",\"worker_index\":");
		o = go_put_uint(o, r->worker_index);
		o = GO_PUT_LIT(o, ",\"pid\":");
		o = go_put_int(o, r->pid);
		o = GO_PUT_LIT(o, ",\"incarnation\":");
		o = go_put_uint(o, r->incarnation);
	}
	if (r->seq != 0) {
		o = GO_PUT_LIT(o, ",\"seq\":");
		o = go_put_uint(o, r->seq);
	}
	if (r->source > 0 && r->source < 5) {
		o = GO_PUT_LIT(o, ",\"source\":\"");
		memcpy(o, sources[r->source], 6);
		o += source_len[r->source];
		*o++ = '"';
	}
	logtk_attrs_iter it;
	logtk_attrs(r, &it);
	if (has_attrs_key) {
		*o++ = ',';
		o = go_put_json_string(o, attrs_key.p, attrs_key.len);
		*o++ = ':';
		*o++ = '{';
		o = attrs(o, &it, 0);
		*o++ = '}';
	} else {
		o = attrs(o, &it, 1);
	}
	*o++ = '}';
	*o++ = '\n';
	go_done(b, o);
	return LOGTK_OK;
}
