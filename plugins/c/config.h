/*
 * config.h: the configuration JSON of a C reference plugin, read as the
 * Go plugins' plugin.DecodeConfig (encoding/json) reads it into a struct
 * of string and float64 fields: an object (or nothing at all); a
 * member names a field case-insensitively; a string (a number, for a
 * number field) sets it, null leaves it, any other value is an error; members the plugin does not know are skipped. The
 * host sends exactly the fields the block sets (docs/plugin-abi.md), so
 * this is the whole of what a reference plugin needs.
 */
#ifndef LOGTK_CONFIG_H
#define LOGTK_CONFIG_H

#include "gofmt.h"

#include <stdlib.h>

typedef struct {
	const char *name; /* the field's JSON name */
	logtk_buf value;  /* its decoded value, when set */
	int set;
	int number; /* a number field (a Go float64): num, not value; needs
	             * CFG_NUMBERS defined before config.h (strtod: 8 KB) */
	double num;
} cfg_field;

typedef struct {
	const uint8_t *p, *end;
} cfg_in;

static inline void cfg_space(cfg_in *in) {
	while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
		in->p++;
}

static inline int cfg_hex4(const uint8_t *p, uint32_t *v) {
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

static inline int cfg_utf8(logtk_buf *b, uint32_t r) {
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

/* cfg_string reads a JSON string at in->p (its opening quote) into out
 * (NULL: skipped): 0, -1 malformed, -2 out of memory. Escapes as
 * encoding/json decodes them, a lone surrogate and invalid UTF-8 as
 * U+FFFD. */
static inline int cfg_string(cfg_in *in, logtk_buf *out) {
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
				if (in->end - in->p < 4 || cfg_hex4(in->p, &r))
					goto bad;
				in->p += 4;
				if (r >= 0xd800 && r < 0xdc00) {
					uint32_t r2;
					if (in->end - in->p >= 6 && in->p[0] == '\\' && in->p[1] == 'u' && !cfg_hex4(in->p + 2, &r2) && r2 >= 0xdc00 && r2 < 0xe000) {
						in->p += 6;
						r = 0x10000 + ((r - 0xd800) << 10) + (r2 - 0xdc00);
					} else {
						r = 0xfffd;
					}
				} else if (r >= 0xdc00 && r < 0xe000) {
					r = 0xfffd;
				}
				e = e || cfg_utf8(b, r);
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
		int32_t r = go_decode_rune(in->p, (uint32_t)(in->end - in->p), &size);
		if (r == 0xfffd && size == 1)
			e = e || cfg_utf8(b, 0xfffd);
		else
			e = e || logtk_buf_append(b, in->p, size);
		in->p += size;
	}
bad:
	free(skip.p);
	return -1;
}

/* cfg_skip skips one JSON value of any kind: 0 or -1 malformed. */
static inline int cfg_skip(cfg_in *in, int depth) {
	cfg_space(in);
	if (in->p >= in->end || depth > 64)
		return -1;
	uint8_t c = *in->p;
	if (c == '"')
		return cfg_string(in, 0) ? -1 : 0;
	if (c == '{' || c == '[') {
		uint8_t close = c == '{' ? '}' : ']';
		in->p++;
		cfg_space(in);
		if (in->p < in->end && *in->p == close) {
			in->p++;
			return 0;
		}
		for (;;) {
			if (c == '{') {
				cfg_space(in);
				if (in->p >= in->end || *in->p != '"' || cfg_string(in, 0))
					return -1;
				cfg_space(in);
				if (in->p >= in->end || *in->p++ != ':')
					return -1;
			}
			if (cfg_skip(in, depth + 1))
				return -1;
			cfg_space(in);
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
#define CFG_DIGITS(min)                                                          \
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
		CFG_DIGITS(1);
	if (in->p < in->end && *in->p == '.') {
		in->p++;
		CFG_DIGITS(1);
	}
	if (in->p < in->end && (*in->p == 'e' || *in->p == 'E')) {
		in->p++;
		if (in->p < in->end && (*in->p == '+' || *in->p == '-'))
			in->p++;
		CFG_DIGITS(1);
	}
#undef CFG_DIGITS
	return 0;
}

static inline int cfg_fold_eq(const uint8_t *a, uint32_t n, const char *b) {
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

/* cfg_read reads the configuration into fields: 0, or LOGTK_INVALID
 * with a message in err (LOGTK_INTERNAL when memory ran out). */
static inline int cfg_read(const uint8_t *json, uint32_t n, cfg_field *fields, int nfields, logtk_buf *err) {
	cfg_in in = {json, json + n};
	if (n == 0)
		return LOGTK_OK; /* nothing set; spaces alone are not JSON */
	cfg_space(&in);
	if (in.p == in.end)
		goto bad;
	if (*in.p == 'n' && in.end - in.p >= 4 && !memcmp(in.p, "null", 4)) {
		in.p += 4;
		cfg_space(&in);
		if (in.p == in.end)
			return LOGTK_OK;
		goto bad;
	}
	if (*in.p != '{') {
		logtk_buf_str(err, "config: want a JSON object");
		return LOGTK_INVALID;
	}
	in.p++;
	cfg_space(&in);
	if (in.p < in.end && *in.p == '}') {
		in.p++;
	} else {
		logtk_buf key = {0, 0, 0};
		int done = 0;
		for (;;) {
			cfg_space(&in);
			key.len = 0;
			if (in.p >= in.end || *in.p != '"')
				break;
			int st = cfg_string(&in, &key);
			if (st == -2) {
				free(key.p);
				return LOGTK_INTERNAL;
			}
			if (st)
				break;
			cfg_space(&in);
			if (in.p >= in.end || *in.p++ != ':')
				break;
			cfg_space(&in);
			cfg_field *f = 0;
			for (int i = 0; i < nfields; i++)
				if (cfg_fold_eq(key.p, key.len, fields[i].name))
					f = &fields[i];
			if (!f) {
				if (cfg_skip(&in, 0))
					break;
#ifdef CFG_NUMBERS
			} else if (f->number && in.p < in.end && (*in.p == '-' || (*in.p >= '0' && *in.p <= '9'))) {
				const uint8_t *at = in.p;
				if (cfg_skip(&in, 0))
					break;
				/* strtod rounds correctly, as strconv.ParseFloat; a
				 * number past float64's range is an error there. */
				char digits[64];
				size_t l = (size_t)(in.p - at);
				char *num = l < sizeof digits ? digits : (char *)malloc(l + 1);
				if (!num) {
					free(key.p);
					return LOGTK_INTERNAL;
				}
				memcpy(num, at, l);
				num[l] = 0;
				f->num = strtod(num, 0);
				if (num != digits)
					free(num);
				if (f->num > 1.7976931348623157e308 || f->num < -1.7976931348623157e308) {
					free(key.p);
					logtk_buf_str(err, "config: ");
					logtk_buf_str(err, f->name);
					logtk_buf_str(err, ": the number is out of range");
					return LOGTK_INVALID;
				}
				f->set = 1;
#endif
			} else if (!f->number && in.p < in.end && *in.p == '"') {
				f->value.len = 0;
				st = cfg_string(&in, &f->value);
				if (st == -2) {
					free(key.p);
					return LOGTK_INTERNAL;
				}
				if (st)
					break;
				f->set = 1;
			} else if (in.end - in.p >= 4 && !memcmp(in.p, "null", 4)) {
				in.p += 4;
			} else {
				free(key.p);
				logtk_buf_str(err, "config: ");
				logtk_buf_str(err, f->name);
				logtk_buf_str(err, f->number ? ": want a number" : ": want a string");
				return LOGTK_INVALID;
			}
			cfg_space(&in);
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
	cfg_space(&in);
	if (in.p == in.end)
		return LOGTK_OK;
bad:
	logtk_buf_str(err, "config: malformed JSON");
	return LOGTK_INVALID;
}

/* cfg_is says whether a field was set to exactly s. */
static inline int cfg_is(const cfg_field *f, const char *s) {
	return f->set && f->value.len == strlen(s) && !memcmp(f->value.p, s, f->value.len);
}

/* cfg_quote appends a value quoted as Go's %q quotes it, for messages. */
static inline int cfg_quote(logtk_buf *err, const logtk_buf *v) {
	uint8_t *o = go_room(err, 4 * (uint64_t)v->len + 2);
	if (!o)
		return -1;
	go_done(err, go_put_quoted(o, v->p, v->len));
	return 0;
}

#endif /* LOGTK_CONFIG_H */
