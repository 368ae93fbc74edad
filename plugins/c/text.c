/*
 * text.c: the text formatter (plugins/text) in C, byte for byte: one
 * human-readable line per record, with the plain or the colour theme.
 * record/textfmt is the reference (Theme.AppendWith); plugins/builtin's
 * differential tests hold this to it.
 */
#define LOGTK_FORMATTER
#include "config.h"

/* A theme's escapes, with their lengths (0: none). */
typedef struct {
	const char *s;
	uint32_t n;
} esc;

typedef struct {
	esc levels[8], dim, key, reset;
} theme;

#define ESC(s) {s, sizeof(s) - 1}
static const theme none = {{{"", 0}, {"", 0}, {"", 0}, {"", 0}, {"", 0}, {"", 0}, {"", 0}, {"", 0}}, {"", 0}, {"", 0}, {"", 0}};
static const theme color = {
    {ESC("\x1b[90m"), ESC("\x1b[36m"), ESC("\x1b[32m"), ESC("\x1b[1;32m"), ESC("\x1b[33m"), ESC("\x1b[31m"), ESC("\x1b[1;41;97m"), ESC("\x1b[35m")},
    ESC("\x1b[2m"),
    ESC("\x1b[34m"),
    ESC("\x1b[0m")};

/* The most a theme adds around one piece: its longest escape and a
 * reset. */
#define ESC_MAX 16

static const theme *theme_set = &none; /* the configured one */
static go_time_cache times;

const char *logtk_plugin_info(void) {
	return "{\"name\":\"text\",\"version\":\"1.0.0\",\"kind\":\"format\",\"abi\":2,\"config\":["
	       "{\"name\":\"theme\",\"type\":\"string\",\"doc\":\"\\\"none\\\" (default) or \\\"color\\\" (ANSI colours)\"}]}";
}

int logtk_plugin_configure(const uint8_t *json, uint32_t n, logtk_buf *err) {
	logtk_config_field f = {.name = "theme", .type = LOGTK_CFG_STRING};
	int st = logtk_config_read(json, n, &f, 1, err);
	if (st == LOGTK_OK && f.set && f.str.len > 0) {
		if (logtk_config_is(&f, "none")) {
			theme_set = &none;
		} else if (logtk_config_is(&f, "color")) {
			theme_set = &color;
		} else {
			logtk_buf_str(err, "unknown theme ");
			cfg_quote(err, &f.str);
			logtk_buf_str(err, " (want \"none\" or \"color\")");
			st = LOGTK_INVALID;
		}
	}
	free(f.str.p);
	return st;
}

/* put_esc writes a theme's escape (at most ESC_MAX bytes). */
static inline uint8_t *put_esc(uint8_t *o, esc e) {
	if (e.n == 0)
		return o;
	memcpy(o, e.s, e.n);
	return o + e.n;
}

/* bare8 says whether the first k (1-8) of the eight bytes at s may
 * stand unquoted: printable ASCII but space, '=' and '"'. bare8_bad
 * flags the bytes that may not (the high bit of the lowest flagged byte
 * is exact; those above it may be wrong). */
static inline uint64_t bare8_bad(const uint8_t *s, uint32_t k) {
	uint64_t x = go_word8(s, k);
	return (x & GO_HIGHS) | go_any_below(x, 0x21) | go_any_equal(x, 0x7f) | go_any_equal(x, '=') | go_any_equal(x, '"');
}
static inline int bare8(const uint8_t *s, uint32_t k) { return bare8_bad(s, k) == 0; }

/* needs_quote is textfmt's needsQuote: empty, or holding a space, '=',
 * '"', another ASCII byte outside '!'..'~', or invalid UTF-8. Eight
 * bytes at a time while they are all bare. */
static int needs_quote(const uint8_t *s, uint32_t n) {
	if (n == 0)
		return 1;
	for (uint32_t i = 0; i < n;) {
		uint32_t k = n - i < 8 ? n - i : 8;
		uint64_t bad = bare8_bad(s + i, k);
		if (!bad) {
			i += k;
			continue;
		}
		/* To the first byte that is not bare (the lowest flagged byte
		 * is exact): ASCII needs quotes; UTF-8 may not. */
		i += (uint32_t)__builtin_ctzll(bad) >> 3;
		uint8_t c = s[i];
		if (c < 0x80)
			return 1;
		uint32_t size;
		int32_t r = go_decode_rune(s + i, n - i, &size);
		if ((r == 0xfffd && size == 1) || go_acted_on(r))
			return 1;
		i += size;
	}
	return 0;
}

/* put_string writes s as textfmt's appendString: as it is, or quoted if
 * it needs it (at most 4n+2 bytes). The usual string, bare ASCII, is
 * checked and copied in one pass. */
static inline uint8_t *put_string(uint8_t *o, const uint8_t *s, uint32_t n) {
	uint32_t i = 0;
	while (i < n) {
		uint32_t k = n - i < 8 ? n - i : 8;
		if (!bare8(s + i, k))
			break;
		memcpy(o + i, s + i, 8);
		i += k;
	}
	if (i == n && n > 0)
		return o + n;
	return needs_quote(s, n) ? go_put_quoted(o, s, n) : go_put_bytes(o, s, n);
}

/* find_newline returns where s holds its first '\n' (NULL: none), eight
 * bytes at a time; the lowest flagged byte is the first newline. */
static inline const uint8_t *find_newline(const uint8_t *s, uint32_t n) {
	for (uint32_t i = 0; i < n; i += 8) {
		uint64_t nl = go_any_equal(go_word8(s + i, n - i < 8 ? n - i : 8), '\n');
		if (nl)
			return s + i + ((uint32_t)__builtin_ctzll(nl) >> 3);
	}
	return 0;
}

/* A multi-line value, written after the line. Its prefix is copied to
 * prefixes (the group prefix buffer is rewritten as the walk goes on). */
typedef struct {
	uint32_t prefix_at, prefix_n;
	logtk_bytes key, text;
} block;

static block *blocks;
static uint32_t nblocks, capblocks;
static logtk_buf prefixes;

static int defer_block(const uint8_t *prefix, uint32_t prefix_n, logtk_bytes key, logtk_bytes text) {
	if (nblocks == capblocks) {
		uint32_t c = capblocks ? capblocks * 2 : 8;
		block *p = (block *)realloc(blocks, c * sizeof *p);
		if (!p)
			return -1;
		blocks = p;
		capblocks = c;
	}
	block *bl = &blocks[nblocks];
	bl->prefix_at = prefixes.len;
	bl->prefix_n = prefix_n;
	if (logtk_buf_append(&prefixes, prefix, prefix_n))
		return -1;
	bl->key = key;
	bl->text = text;
	nblocks++;
	return 0;
}

/* trim_right_newlines is bytes.TrimRight(s, "\n"). */
static uint32_t trim_right_newlines(const uint8_t *s, uint32_t n) {
	while (n > 0 && s[n - 1] == '\n')
		n--;
	return n;
}

static logtk_buf pbuf; /* the dotted key of the groups being walked */

/* attr is textfmt's appendAttr. The groups around a are pbuf's first
 * prefix_n bytes; a group extends them in place, and siblings overwrite
 * only what follows.
 *
 * It is compiled once per theme (attr_none, attr_color), the theme a
 * constant, so that the plain theme's empty escapes cost nothing; and
 * it takes the attribute in its arguments, not by pointer, which keeps
 * the walk's attribute out of memory (in Wasm every access to memory is
 * checked against its bounds). */
#define ATTR_ARGS                                                                                                  \
	logtk_buf *b, uint32_t prefix_n, int kind, const uint8_t *kp, uint32_t kn, const uint8_t *dp, uint32_t dn, \
	    int64_t i, uint64_t u, double f
#define ATTR_PASS(a) (a).kind, (a).key.p, (a).key.n, (a).data.p, (a).data.n, (a).i, (a).u, (a).f
static int attr_none(ATTR_ARGS);
static int attr_color(ATTR_ARGS);

__attribute__((always_inline)) static inline int attr(ATTR_ARGS, const theme *th) {
	const logtk_attr A = {{kp, kn}, kind, {dp, dn}, i, u, f}, *a = &A;
	if (a->kind == LOGTK_GROUP) {
		pbuf.len = prefix_n;
		uint8_t *q = go_room(&pbuf, (uint64_t)a->key.n + 1);
		if (!q)
			return -1;
		if (prefix_n > 0)
			*q++ = '.';
		go_done(&pbuf, go_put_bytes(q, a->key.p, a->key.n));
		uint32_t p = pbuf.len;
		logtk_attrs_iter it;
		logtk_attr g;
		logtk_group(a, &it);
		while (logtk_attr_next(&it, &g))
			if (th == &none ? attr_none(b, p, ATTR_PASS(g)) : attr_color(b, p, ATTR_PASS(g)))
				return -1;
		return 0;
	}
	int quote = a->kind == LOGTK_STRING && needs_quote(a->data.p, a->data.n);
	if (quote && find_newline(a->data.p, trim_right_newlines(a->data.p, a->data.n)))
		return defer_block(pbuf.p, prefix_n, a->key, a->data);
	int whole = 0;
	if (prefix_n > 0 && (needs_quote(pbuf.p, prefix_n) || needs_quote(a->key.p, a->key.n))) {
		/* The whole dotted key, quoted if it needs it as a whole (an
		 * empty key in a group does not): built after the prefix in
		 * pbuf. */
		pbuf.len = prefix_n;
		if (logtk_buf_byte(&pbuf, '.') || logtk_buf_append(&pbuf, a->key.p, a->key.n))
			return -1;
		whole = 1;
	}
	/* The key (4 bytes a byte quoted), the theme's escapes, and any
	 * value but a string or bytes (32 bytes at most). */
	uint64_t keyn = whole ? pbuf.len : (uint64_t)prefix_n + 1 + a->key.n;
	uint8_t *o = go_room(b, 4 * keyn + 2 * ESC_MAX + 40);
	if (!o)
		return -1;
	*o++ = ' ';
	o = put_esc(o, th->key);
	if (whole) {
		o = put_string(o, pbuf.p, pbuf.len);
	} else if (prefix_n > 0) {
		o = go_put_bytes(o, pbuf.p, prefix_n);
		*o++ = '.';
		o = go_put_bytes(o, a->key.p, a->key.n);
	} else {
		o = put_string(o, a->key.p, a->key.n);
	}
	o = put_esc(o, th->reset);
	*o++ = '=';
	switch (a->kind) {
	case LOGTK_STRING:
		go_done(b, o);
		/* Quoted, at most 4 bytes a byte: measured exactly when large,
		 * so that megabytes of text ask for about their own size. */
		if (!(o = go_room(b, !quote ? a->data.n : a->data.n > 65536 ? go_quoted_len(a->data.p, a->data.n) : 4 * (uint64_t)a->data.n + 2)))
			return -1;
		o = quote ? go_put_quoted(o, a->data.p, a->data.n) : go_put_bytes(o, a->data.p, a->data.n);
		break;
	case LOGTK_INT:
		o = go_put_int(o, a->i);
		break;
	case LOGTK_UINT:
		o = go_put_uint(o, a->u);
		break;
	case LOGTK_FLOAT:
		o = go_put_float(o, a->f);
		break;
	case LOGTK_BOOL:
		o = a->i ? GO_PUT_LIT(o, "true") : GO_PUT_LIT(o, "false");
		break;
	case LOGTK_BYTES:
		go_done(b, o);
		if (!(o = go_room(b, go_base64_len(a->data.n) + 7)))
			return -1;
		o = GO_PUT_LIT(o, "base64:");
		o = go_put_base64(o, a->data.p, a->data.n);
		break;
	case LOGTK_TIME:
		o = go_put_time(o, &times, a->i, 0, 1);
		break;
	case LOGTK_DURATION:
		o = go_put_duration(o, a->i);
		break;
	}
	go_done(b, o);
	return 0;
}

static int attr_none(ATTR_ARGS) { return attr(b, prefix_n, kind, kp, kn, dp, dn, i, u, f, &none); }
static int attr_color(ATTR_ARGS) { return attr(b, prefix_n, kind, kp, kn, dp, dn, i, u, f, &color); }

/* block_lines writes a block's text as textfmt does: trailing newlines
 * dropped, each line after "    | ". */
static int block_lines(logtk_buf *b, const uint8_t *s, uint32_t n) {
	n = trim_right_newlines(s, n);
	for (;;) {
		const uint8_t *nl = find_newline(s, n);
		uint32_t l = nl ? (uint32_t)(nl - s) : n;
		uint32_t shown = l > 0 && s[l - 1] == '\r' ? l - 1 : l; /* CRLF: the line ends at its \r */
		uint8_t *o = go_room(b, (shown > 65536 ? go_text_len(s, shown) : 4 * (uint64_t)shown) + 7);
		if (!o)
			return -1;
		o = GO_PUT_LIT(o, "    | ");
		o = go_put_text(o, s, shown);
		*o++ = '\n';
		go_done(b, o);
		if (!nl)
			return 0;
		s += l + 1;
		n -= l + 1;
	}
}

/* format is textfmt's AppendWith. */
__attribute__((always_inline)) static inline int format(const logtk_record *r, logtk_buf *b, const theme *th) {
	nblocks = 0;
	prefixes.len = 0;
	logtk_bytes msg = r->message, msg_block = {0, 0};
	const uint8_t *nl = find_newline(msg.p, msg.n);
	if (nl) {
		msg_block.p = nl + 1;
		msg_block.n = msg.n - (uint32_t)(nl - msg.p) - 1;
		msg.n = (uint32_t)(nl - msg.p);
		if (msg.n > 0 && msg.p[msg.n - 1] == '\r')
			msg.n--; /* CRLF: the line ends at its \r */
	}
	/* The head at once: its text as it is, the time, numbers and the
	 * theme's escapes. */
	/* Text is escaped (at most 4 bytes a byte); a message of megabytes
	 * is measured instead, so that it asks for about its own size. */
	uint64_t text = (msg.n > 65536 ? go_text_len(msg.p, msg.n) : 4 * (uint64_t)msg.n) +
	                4 * ((uint64_t)r->logger.n + r->sender.n + r->application.n + r->worker.n);
	uint8_t *o = go_room(b, text + 8 * ESC_MAX + 160);
	if (!o)
		return LOGTK_INTERNAL;
	if (r->time_unix_nano != 0) {
		o = put_esc(o, th->dim);
		o = go_put_time(o, &times, r->time_unix_nano, 6, 0);
		o = put_esc(o, th->reset);
		*o++ = ' ';
	}
	int li = go_level_index(r->level);
	o = put_esc(o, th->levels[li]);
	memcpy(o, go_level_names[li], 5);
	o += 5;
	o = put_esc(o, th->reset);
	if (r->sender.n > 0) {
		*o++ = ' ';
		o = put_esc(o, th->dim);
		o = go_put_text(o, r->sender.p, r->sender.n);
		if (r->application.n > 0) {
			*o++ = '/';
			o = go_put_text(o, r->application.p, r->application.n);
		}
		o = put_esc(o, th->reset);
	}
	if (r->worker.n > 0) {
		*o++ = ' ';
		o = put_esc(o, th->dim);
		o = go_put_text(o, r->worker.p, r->worker.n);
		*o++ = '#';
		o = go_put_uint(o, r->worker_index);
		if (r->pid != 0) {
			o = GO_PUT_LIT(o, " [");
			o = go_put_int(o, r->pid);
			*o++ = ']';
		}
		o = put_esc(o, th->reset);
	}
	switch (r->source) {
	case LOGTK_STDOUT: o = GO_PUT_LIT(o, " stdout"); break;
	case LOGTK_STDERR: o = GO_PUT_LIT(o, " stderr"); break;
	case LOGTK_HOST: o = GO_PUT_LIT(o, " host"); break;
	}
	if (r->logger.n > 0) {
		*o++ = ' ';
		o = go_put_text(o, r->logger.p, r->logger.n);
		*o++ = ':';
	}
	*o++ = ' ';
	o = go_put_text(o, msg.p, msg.n);
	go_done(b, o);
	logtk_bytes none_ = {0, 0};
	if (msg_block.n > 0 && defer_block(0, 0, none_, msg_block))
		return LOGTK_INTERNAL;
	if (r->caller.p) {
		logtk_bytes file, function;
		uint32_t line;
		if (!logtk_caller_parse(r, &file, &line, &function) && file.n > 0) {
			if (!(o = go_room(b, 4 * (uint64_t)file.n + 2 * ESC_MAX + 32)))
				return LOGTK_INTERNAL;
			*o++ = ' ';
			o = put_esc(o, th->key);
			o = GO_PUT_LIT(o, "caller");
			o = put_esc(o, th->reset);
			*o++ = '=';
			o = go_put_text(o, file.p, file.n);
			*o++ = ':';
			o = go_put_uint(o, line);
			go_done(b, o);
		}
	}
	logtk_attrs_iter it;
	logtk_attr a;
	logtk_attrs(r, &it);
	while (logtk_attr_next(&it, &a))
		if (th == &none ? attr_none(b, 0, ATTR_PASS(a)) : attr_color(b, 0, ATTR_PASS(a)))
			return LOGTK_INTERNAL;
	if (logtk_buf_byte(b, '\n'))
		return LOGTK_INTERNAL;
	for (uint32_t i = 0; i < nblocks; i++) {
		block *bl = &blocks[i];
		if (bl->key.n > 0 || bl->prefix_n > 0) {
			if (!(o = go_room(b, 4 * ((uint64_t)bl->prefix_n + bl->key.n) + 8)))
				return LOGTK_INTERNAL;
			o = GO_PUT_LIT(o, "    ");
			if (bl->prefix_n > 0) {
				o = go_put_text(o, prefixes.p + bl->prefix_at, bl->prefix_n);
				*o++ = '.';
			}
			o = go_put_text(o, bl->key.p, bl->key.n);
			*o++ = ':';
			*o++ = '\n';
			go_done(b, o);
		}
		if (block_lines(b, bl->text.p, bl->text.n))
			return LOGTK_INTERNAL;
	}
	return LOGTK_OK;
}

/* The record's head is not compiled per theme: that doubled the largest
 * function, and with it the host's memory while it compiles the module
 * (BENCHMARKS.md). */
int logtk_plugin_format(const logtk_record *r, logtk_buf *b) { return format(r, b, theme_set); }
