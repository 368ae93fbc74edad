/*
 * clogfmt: an example format plugin in C (sdk/c/logtk.h). It renders
 * each record as one logfmt line:
 *
 *   time=1764979200000000000 level=info worker=api#0 seq=7 msg="hello" user.id=42
 *
 * time is Unix nanoseconds (left out with config { time = false }, or
 * when the record has none); worker and seq only for a record a worker
 * wrote; attributes follow in order, groups flattened to dotted keys.
 * Strings (and keys that need it) are quoted with \" \\ \n \r \t and
 * \xHH for other bytes below 0x20; floats as printf's %.17g (NaN, +Inf,
 * -Inf), durations as nanoseconds with "ns", times as Unix nanoseconds,
 * bytes as lower-case hex.
 *
 * Build: make c-plugins (clang 14, pinned). The built module is
 * committed as examples/clogfmt/clogfmt.wasm, so that using and testing
 * it needs only Go; its test checks it is what this file builds.
 */
#define LOGTK_FORMATTER
#include "../../../sdk/c/logtk.h"

#include <stdio.h>

static int with_time = 1;

const char *logtk_plugin_info(void) {
	return "{\"name\":\"clogfmt\",\"version\":\"1.0.0\",\"kind\":\"format\",\"abi\":2,"
	       "\"config\":[{\"name\":\"time\",\"type\":\"bool\",\"doc\":\"write the record's time (default true)\"}]}";
}

/* The configuration is a JSON object with at most the field "time"
 * (docs/plugin-abi.md: exactly the fields the block sets). */
int logtk_plugin_configure(const uint8_t *json, uint32_t n, logtk_buf *err) {
	logtk_config_field f = {.name = "time", .type = LOGTK_CFG_BOOL};
	int st = logtk_config_read(json, n, &f, 1, err);
	if (st == LOGTK_OK && f.set)
		with_time = f.b;
	logtk_config_free(&f, 1);
	return st;
}

static const char *level_name(int32_t l) {
	if (l >= LOGTK_FATAL) return "fatal";
	if (l >= LOGTK_ERROR) return "error";
	if (l >= LOGTK_WARN) return "warn";
	if (l >= LOGTK_NOTICE) return "notice";
	if (l >= LOGTK_INFO) return "info";
	if (l >= LOGTK_DEBUG) return "debug";
	if (l >= LOGTK_TRACE) return "trace";
	return "unset";
}

static int quoted(logtk_buf *b, logtk_bytes s) {
	static const char hex[] = "0123456789abcdef";
	int e = logtk_buf_byte(b, '"');
	for (uint32_t i = 0; i < s.n && !e; i++) {
		uint8_t c = s.p[i];
		switch (c) {
		case '"': e = logtk_buf_str(b, "\\\""); break;
		case '\\': e = logtk_buf_str(b, "\\\\"); break;
		case '\n': e = logtk_buf_str(b, "\\n"); break;
		case '\r': e = logtk_buf_str(b, "\\r"); break;
		case '\t': e = logtk_buf_str(b, "\\t"); break;
		default:
			if (c < 0x20) {
				char x[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
				e = logtk_buf_append(b, x, 4);
			} else {
				e = logtk_buf_byte(b, c);
			}
		}
	}
	return e || logtk_buf_byte(b, '"');
}

/* A key is written as it is when it is a non-empty run of letters,
 * digits and _ . - : otherwise quoted. */
static int key(logtk_buf *b, logtk_bytes prefix, logtk_bytes k) {
	int plain = prefix.n + k.n > 0;
	for (uint32_t i = 0; i < k.n && plain; i++) {
		uint8_t c = k.p[i];
		plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
	}
	if (plain)
		return logtk_buf_bytes(b, prefix) || logtk_buf_bytes(b, k);
	logtk_buf whole = {0, 0, 0};
	int e = logtk_buf_bytes(&whole, prefix) || logtk_buf_bytes(&whole, k);
	logtk_bytes w = {whole.p, whole.len};
	e = e || quoted(b, w);
	free(whole.p);
	return e;
}

static int attr(logtk_buf *b, logtk_bytes prefix, const logtk_attr *a) {
	if (a->kind == LOGTK_GROUP) {
		logtk_buf p = {0, 0, 0};
		int e = logtk_buf_bytes(&p, prefix) || logtk_buf_bytes(&p, a->key) || logtk_buf_byte(&p, '.');
		logtk_bytes np = {p.p, p.len};
		logtk_attrs_iter it;
		logtk_attr g;
		logtk_group(a, &it);
		while (!e && logtk_attr_next(&it, &g))
			e = attr(b, np, &g);
		free(p.p);
		return e;
	}
	int e = logtk_buf_byte(b, ' ') || key(b, prefix, a->key) || logtk_buf_byte(b, '=');
	if (e)
		return e;
	switch (a->kind) {
	case LOGTK_STRING: return quoted(b, a->data);
	case LOGTK_INT:
	case LOGTK_TIME: return logtk_buf_int(b, a->i);
	case LOGTK_DURATION: return logtk_buf_int(b, a->i) || logtk_buf_str(b, "ns");
	case LOGTK_UINT: return logtk_buf_uint(b, a->u);
	case LOGTK_BOOL: return logtk_buf_str(b, a->i ? "true" : "false");
	case LOGTK_FLOAT: {
		double f = a->f;
		if (f != f) return logtk_buf_str(b, "NaN");
		if (f > 1.7976931348623157e308) return logtk_buf_str(b, "+Inf");
		if (f < -1.7976931348623157e308) return logtk_buf_str(b, "-Inf");
		char d[40];
		int n = snprintf(d, sizeof d, "%.17g", f);
		return logtk_buf_append(b, d, (uint32_t)n);
	}
	case LOGTK_BYTES: {
		static const char hex[] = "0123456789abcdef";
		for (uint32_t i = 0; i < a->data.n && !e; i++) {
			char x[2] = {hex[a->data.p[i] >> 4], hex[a->data.p[i] & 15]};
			e = logtk_buf_append(b, x, 2);
		}
		return e;
	}
	}
	return logtk_buf_str(b, "?");
}

int logtk_plugin_format(const logtk_record *r, logtk_buf *out) {
	int e = 0;
	if (with_time && r->time_unix_nano != 0)
		e = logtk_buf_str(out, "time=") || logtk_buf_int(out, r->time_unix_nano) || logtk_buf_byte(out, ' ');
	e = e || logtk_buf_str(out, "level=") || logtk_buf_str(out, level_name(r->level));
	if (!e && r->worker.n > 0)
		e = logtk_buf_str(out, " worker=") || logtk_buf_bytes(out, r->worker) || logtk_buf_byte(out, '#') ||
		    logtk_buf_uint(out, r->worker_index) || logtk_buf_str(out, " seq=") || logtk_buf_uint(out, r->seq);
	e = e || logtk_buf_str(out, " msg=") || quoted(out, r->message);
	logtk_attrs_iter it;
	logtk_attr a;
	logtk_bytes none = {0, 0};
	logtk_attrs(r, &it);
	while (!e && logtk_attr_next(&it, &a))
		e = attr(out, none, &a);
	e = e || logtk_buf_byte(out, '\n');
	return e ? LOGTK_INTERNAL : LOGTK_OK;
}
