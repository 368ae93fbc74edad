/*
 * network.c: the network transport (plugins/network) in C: it ships
 * batches to a logtk log server over wire protocol v1
 * (docs/wire-protocol.md) through an endpoint the host dials for it, and
 * reports a batch delivered only once the server acknowledged storing
 * it. Asynchronous: logtk_write sends and answers pending, logtk_poll
 * reports the acknowledgements. plugins/network/network.go is the
 * reference (read its comments for the why); the host's network tests,
 * server kills and chaos included, run this module.
 */
#define LOGTK_TRANSPORT
#define LOGTK_MARKS
#define LOGTK_ASYNC
#include "config.h"

enum { AUTH = 0x01, WELCOME = 0x02, DATA = 0x03, ACK = 0x04, PING = 0x05, PONG = 0x06, CLOSE = 0x07 };

#define SECOND 1000000000LL
#define MAX_FRAME_IN (16 << 20)

/* The configuration. */
static logtk_buf endpoint, token, sender, application, format, hostname;
static int64_t ack_timeout = 10 * SECOND;

/* The connection and what is on its way. */
static int32_t conn; /* 0: none */
static logtk_buf in, out, auth;
static uint8_t read_buf[64 << 10];

typedef struct {
	uint64_t *id;
	uint32_t len, cap;
} ids;

static ids inflight; /* sent, not yet acknowledged */
static ids done;     /* acknowledged, not yet reported */
static int64_t quiet; /* how long reads have waited in vain since the last ack (ns) */
static uint64_t stored;
static int64_t max_frame, max_in_flight;
static logtk_buf held; /* WELCOME's held, in the ABI's marks encoding */

const char *logtk_plugin_info(void) {
	return "{\"name\":\"network\",\"version\":\"1.0.0\",\"kind\":\"transport\",\"abi\":2,\"config\":["
	       "{\"name\":\"endpoint\",\"type\":\"string\",\"required\":true,\"doc\":\"name of the endpoint granted in allow { endpoint \\\"name\\\" { ... } }\"},"
	       "{\"name\":\"token\",\"type\":\"string\",\"doc\":\"the server's secret token (or token_file)\"},"
	       "{\"name\":\"token_file\",\"type\":\"file\",\"doc\":\"a file holding the token; surrounding whitespace is ignored\"},"
	       "{\"name\":\"sender\",\"type\":\"string\",\"required\":true,\"doc\":\"this host's stable identity, [A-Za-z0-9._-]: the server drops retransmissions per sender\"},"
	       "{\"name\":\"application\",\"type\":\"string\",\"required\":true,\"doc\":\"the server keeps a directory per application\"},"
	       "{\"name\":\"format\",\"type\":\"string\",\"doc\":\"what the records are; default \\\"logtk.v1.Record\\\" (the protobuf format without a schema)\"},"
	       "{\"name\":\"hostname\",\"type\":\"string\",\"doc\":\"this machine's name, sent in AUTH; the server stamps it on every record it stores; default none\"},"
	       "{\"name\":\"ack_timeout\",\"type\":\"string\",\"doc\":\"how long to wait for the server's acknowledgement; default \\\"10s\\\"\"}]}";
}

static int ids_add(ids *s, uint64_t id) {
	if (s->len == s->cap) {
		uint32_t c = s->cap ? 2 * s->cap : 64;
		uint64_t *g = (uint64_t *)realloc(s->id, c * sizeof(uint64_t));
		if (!g)
			return -1;
		s->id = g;
		s->cap = c;
	}
	s->id[s->len++] = id;
	return 0;
}

static int ids_remove(ids *s, uint64_t id) {
	for (uint32_t i = 0; i < s->len; i++)
		if (s->id[i] == id) {
			s->id[i] = s->id[--s->len];
			return 1;
		}
	return 0;
}

/* base64 decodes as encoding/json decodes a []byte
 * (base64.StdEncoding): the standard alphabet, padded, line breaks
 * ignored, nothing after the padding. 0, or -1 when malformed or out of
 * memory. */
static int base64(logtk_buf *dst, const uint8_t *s, uint32_t n) {
	const uint8_t *end = s + n;
	for (;;) {
		uint32_t acc = 0;
		int j;
		for (j = 0; j < 4; j++) {
			while (s < end && (*s == '\r' || *s == '\n'))
				s++;
			if (s == end)
				return j == 0 ? 0 : -1;
			uint8_t c = *s++;
			uint32_t v;
			if (c == '=') {
				if (j < 2)
					return -1;
				if (j == 2) {
					while (s < end && (*s == '\r' || *s == '\n'))
						s++;
					if (s == end || *s++ != '=')
						return -1;
				}
				while (s < end && (*s == '\r' || *s == '\n'))
					s++;
				if (s != end)
					return -1;
				acc <<= 6 * (4 - j);
				uint8_t b[2] = {(uint8_t)(acc >> 16), (uint8_t)(acc >> 8)};
				return logtk_buf_append(dst, b, (uint32_t)(j - 1));
			}
			if (c >= 'A' && c <= 'Z') v = c - 'A';
			else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
			else if (c >= '0' && c <= '9') v = c - '0' + 52;
			else if (c == '+') v = 62;
			else if (c == '/') v = 63;
			else return -1;
			acc = acc << 6 | v;
		}
		uint8_t b[3] = {(uint8_t)(acc >> 16), (uint8_t)(acc >> 8), (uint8_t)acc};
		if (logtk_buf_append(dst, b, 3))
			return -1;
	}
}

static int trim(uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static int set(logtk_buf *b, const logtk_config_field *f) {
	b->len = 0;
	return f->set ? logtk_buf_append(b, f->str.p, f->str.len) : 0;
}

int logtk_plugin_configure(const uint8_t *json, uint32_t n, logtk_buf *err) {
	enum { ENDPOINT, TOKEN, TOKEN_FILE, SENDER, APPLICATION, FORMAT, HOSTNAME, ACK_TIMEOUT, N };
	logtk_config_field f[N] = {
	    {.name = "endpoint", .type = LOGTK_CFG_STRING}, {.name = "token", .type = LOGTK_CFG_STRING},    {.name = "token_file", .type = LOGTK_CFG_STRING},
	    {.name = "sender", .type = LOGTK_CFG_STRING},   {.name = "application", .type = LOGTK_CFG_STRING}, {.name = "format", .type = LOGTK_CFG_STRING},
	    {.name = "hostname", .type = LOGTK_CFG_STRING}, {.name = "ack_timeout", .type = LOGTK_CFG_STRING},
	};
	logtk_buf file = {0, 0, 0};
	int st = logtk_config_read(json, n, f, N, err);
	if (st)
		goto done;
	st = LOGTK_INVALID;
	if (f[TOKEN_FILE].set && base64(&file, f[TOKEN_FILE].str.p, f[TOKEN_FILE].str.len)) {
		logtk_buf_str(err, "config: token_file: illegal base64 data");
		goto done;
	}
	if (!f[ENDPOINT].str.len || !f[ENDPOINT].set) {
		logtk_buf_str(err, "endpoint is required");
		goto done;
	}
	if (!f[SENDER].set || !f[SENDER].str.len || !f[APPLICATION].set || !f[APPLICATION].str.len) {
		logtk_buf_str(err, "sender and application are required");
		goto done;
	}
	if (f[TOKEN].set && f[TOKEN].str.len && file.len) {
		logtk_buf_str(err, "give token or token_file, not both");
		goto done;
	}
	const uint8_t *t = f[TOKEN].str.p;
	uint32_t tn = f[TOKEN].set ? f[TOKEN].str.len : 0;
	if (file.len) {
		t = file.p;
		tn = file.len;
		while (tn && trim(*t))
			t++, tn--;
		while (tn && trim(t[tn - 1]))
			tn--;
	}
	if (!tn) {
		logtk_buf_str(err, "token or token_file is required");
		goto done;
	}
	int64_t d = 10 * SECOND;
	if (f[ACK_TIMEOUT].set && f[ACK_TIMEOUT].str.len &&
	    (go_parse_duration(f[ACK_TIMEOUT].str.p, f[ACK_TIMEOUT].str.len, &d) || d <= 0)) {
		logtk_buf_str(err, "ack_timeout ");
		cfg_quote(err, &f[ACK_TIMEOUT].str);
		logtk_buf_str(err, " is not a positive duration");
		goto done;
	}
	st = LOGTK_INTERNAL;
	token.len = 0;
	if (set(&endpoint, &f[ENDPOINT]) || logtk_buf_append(&token, t, tn) || set(&sender, &f[SENDER]) ||
	    set(&application, &f[APPLICATION]) || set(&format, &f[FORMAT]) || set(&hostname, &f[HOSTNAME]))
		goto done;
	if (!format.len && logtk_buf_str(&format, "logtk.v1.Record"))
		goto done;
	ack_timeout = d;
	st = LOGTK_OK;
done:
	for (int i = 0; i < N; i++)
		free(f[i].str.p);
	free(file.p);
	return st;
}

int logtk_plugin_open(logtk_buf *err) {
	(void)err;
	return LOGTK_OK; /* the first write connects: a server that is down does not fail the start */
}

/* ---- Messages ---- */

static void say_net(logtk_buf *e, const char *op, int32_t code) {
	static const char *const names[] = {"endpoint not granted", "dial failed", "i/o error", "bad handle",
	                                    "buffer outside memory", "too many connections", "connection closed"};
	char msg[512];
	int32_t m = logtk_net_error(msg, sizeof msg);
	logtk_buf_str(e, op);
	logtk_buf_str(e, ": ");
	if (code <= -1 && code >= -7)
		logtk_buf_str(e, names[-code - 1]);
	else {
		logtk_buf_str(e, "error ");
		logtk_buf_int(e, code);
	}
	if (m > 0) {
		logtk_buf_str(e, ": ");
		logtk_buf_append(e, msg, (uint32_t)(m < (int32_t)sizeof msg ? m : (int32_t)sizeof msg));
	}
}

static void say_duration(logtk_buf *e, int64_t d) {
	uint8_t *o = go_room(e, 40);
	if (o)
		go_done(e, go_put_duration(o, d));
}

/* describe_close appends a CLOSE's "code N: reason". */
static void describe_close(logtk_buf *e, const uint8_t *p, const uint8_t *end) {
	uint64_t code = 0;
	logtk_bytes reason = {0, 0};
	while (p < end) {
		uint32_t num;
		int type;
		uint64_t v;
		logtk_bytes b;
		const uint8_t *q = logtk_field(p, end, &num, &type, &v, &b);
		if (!q)
			break;
		if (num == 1 && type == 0)
			code = v;
		else if (num == 2 && type == 2)
			reason = b;
		p = q;
	}
	logtk_buf_str(e, "code ");
	logtk_buf_uint(e, code);
	logtk_buf_str(e, ": ");
	logtk_buf_bytes(e, reason);
}

/* ---- Frames ---- */

static int frame(logtk_buf *b, uint8_t type, const uint8_t *p, uint32_t n) {
	uint32_t l = n + 1;
	uint8_t h[5] = {(uint8_t)l, (uint8_t)(l >> 8), (uint8_t)(l >> 16), (uint8_t)(l >> 24), type};
	return logtk_buf_append(b, h, 5) || logtk_buf_append(b, p, n);
}

static int send_all(const logtk_buf *b, logtk_buf *err) {
	int32_t w = logtk_net_write(conn, b->p, b->len);
	if (w < 0) {
		say_net(err, "write", w);
		return -1;
	}
	return 0;
}

/* drop forgets the connection and what was on its way: the host sends
 * it again after a retry. */
static void drop(void) {
	if (conn) {
		logtk_net_close(conn);
		conn = 0;
	}
	inflight.len = 0;
}

enum { GOT = 0, TIMEOUT = 1, FAILED = -1 };

static uint8_t ftype;
static logtk_buf fpayload;

/* read_frame takes the next frame into ftype and fpayload: one already
 * read, or one that arrives within wait ns (0: only one already read).
 * A read that waits in vain adds its wait to quiet. */
static int read_frame(int64_t wait, logtk_buf *err) {
	for (;;) {
		if (in.len >= 5) {
			uint32_t n = (uint32_t)in.p[0] | (uint32_t)in.p[1] << 8 | (uint32_t)in.p[2] << 16 | (uint32_t)in.p[3] << 24;
			if (n < 1 || n > MAX_FRAME_IN) {
				logtk_buf_str(err, "frame length ");
				logtk_buf_uint(err, n);
				logtk_buf_str(err, " from the server");
				return FAILED;
			}
			if (in.len >= 4 + n) {
				ftype = in.p[4];
				fpayload.len = 0;
				if (logtk_buf_append(&fpayload, in.p + 5, n - 1)) {
					logtk_buf_str(err, "out of memory");
					return FAILED;
				}
				memmove(in.p, in.p + 4 + n, in.len - 4 - n);
				in.len -= 4 + n;
				return GOT;
			}
		}
		if (wait <= 0)
			return TIMEOUT;
		int64_t ms = wait / 1000000;
		if (ms > 0x7fffffff)
			ms = 0x7fffffff;
		if (ms < 1)
			ms = 1;
		int32_t k = logtk_net_read(conn, read_buf, sizeof read_buf, (uint32_t)ms);
		if (k == 0) {
			quiet += wait;
			return TIMEOUT;
		}
		if (k == LOGTK_NET_EOF) {
			logtk_buf_str(err, "server closed the connection");
			return FAILED;
		}
		if (k < 0) {
			say_net(err, "read", k);
			return FAILED;
		}
		if (logtk_buf_append(&in, read_buf, (uint32_t)k)) {
			logtk_buf_str(err, "out of memory");
			return FAILED;
		}
	}
}

/* parse_welcome reads the fields of a WELCOME the plugin uses. */
static int parse_welcome(const uint8_t *p, const uint8_t *end, logtk_buf *err) {
	uint64_t st = 0, mf = 0, mi = 0;
	held.len = 0;
	while (p < end) {
		uint32_t num;
		int type;
		uint64_t v;
		logtk_bytes b;
		const uint8_t *q = logtk_field(p, end, &num, &type, &v, &b);
		if (!q) {
			logtk_buf_str(err, "malformed WELCOME");
			return -1;
		}
		if (num == 6 && type == 2) {
			logtk_mark m = {{(const uint8_t *)"", 0}, 0, 0};
			for (const uint8_t *r = b.p, *rend = b.p + b.n; r < rend;) {
				uint32_t fn;
				int ft;
				uint64_t fv;
				logtk_bytes fb;
				if (!(r = logtk_field(r, rend, &fn, &ft, &fv, &fb))) {
					logtk_buf_str(err, "malformed WELCOME: held");
					return -1;
				}
				if (fn == 1 && ft == 2) {
					if (!logtk_utf8_valid(fb.p, fb.n)) {
						logtk_buf_str(err, "malformed WELCOME: a held worker name is not UTF-8");
						return -1;
					}
					m.worker = fb;
				} else if (fn == 2 && ft == 0) {
					if (fv > 0xffffffffu) {
						logtk_buf_str(err, "malformed WELCOME: a held worker index is too large");
						return -1;
					}
					m.index = (uint32_t)fv;
				} else if (fn == 3 && ft == 0)
					m.seq = fv;
			}
			if (logtk_buf_mark(&held, &m)) {
				logtk_buf_str(err, "out of memory");
				return -1;
			}
		}
		if (type == 0) {
			if (num == 2)
				mf = v < (1u << 30) ? v : (1u << 30);
			else if (num == 3)
				mi = v < (1u << 16) ? v : (1u << 16);
			else if (num == 5)
				st = v;
		}
		p = q;
	}
	stored = st;
	max_frame = (int64_t)mf;
	max_in_flight = (int64_t)mi;
	return 0;
}

static int field_bytes(logtk_buf *b, uint32_t num, const logtk_buf *v) {
	return logtk_buf_uvarint(b, num << 3 | 2) || logtk_buf_uvarint(b, v->len) || logtk_buf_append(b, v->p, v->len);
}

static int connect_(logtk_buf *err) {
	int32_t h = logtk_net_dial(endpoint.p, endpoint.len);
	if (h < 0) {
		logtk_buf dial = {0, 0, 0};
		logtk_buf_str(&dial, "dial ");
		logtk_buf_append(&dial, endpoint.p, endpoint.len);
		logtk_buf_byte(&dial, 0);
		say_net(err, dial.p ? (const char *)dial.p : "dial", h);
		free(dial.p);
		return -1;
	}
	conn = h;
	in.len = 0;
	auth.len = 0;
	out.len = 0;
	if (logtk_buf_uvarint(&auth, 1 << 3) || logtk_buf_uvarint(&auth, 1) || field_bytes(&auth, 2, &token) ||
	    (sender.len && field_bytes(&auth, 3, &sender)) || (application.len && field_bytes(&auth, 4, &application)) ||
	    (format.len && field_bytes(&auth, 5, &format)) || (hostname.len && field_bytes(&auth, 6, &hostname)) ||
	    frame(&out, AUTH, auth.p, auth.len)) {
		logtk_buf_str(err, "out of memory");
		return -1;
	}
	if (send_all(&out, err))
		return -1;
	uint32_t at = err->len;
	int r = read_frame(ack_timeout, err);
	if (r != GOT) {
		/* the read's message, after ours */
		static logtk_buf why;
		why.len = 0;
		logtk_buf_str(&why, "waiting for WELCOME: ");
		if (r == TIMEOUT)
			logtk_buf_str(&why, "timeout");
		else
			logtk_buf_append(&why, err->p + at, err->len - at);
		err->len = at;
		logtk_buf_append(err, why.p, why.len);
		return -1;
	}
	if (ftype == CLOSE) {
		logtk_buf_str(err, "server refused the connection: ");
		describe_close(err, fpayload.p, fpayload.p + fpayload.len);
		return -1;
	}
	if (ftype != WELCOME) {
		static const char *const names[] = {"AUTH", "WELCOME", "DATA", "ACK", "PING", "PONG", "CLOSE"};
		logtk_buf_str(err, "expected WELCOME, got ");
		if (ftype >= AUTH && ftype <= CLOSE)
			logtk_buf_str(err, names[ftype - 1]);
		else {
			static const char hex[] = "0123456789abcdef";
			char u[] = "unknown (0x00)";
			u[11] = hex[ftype >> 4];
			u[12] = hex[ftype & 15];
			logtk_buf_str(err, u);
		}
		return -1;
	}
	return parse_welcome(fpayload.p, fpayload.p + fpayload.len, err);
}

/* read_acks reads the server's frames, waiting up to wait ns for the
 * first and then taking only those already read, noting acknowledged
 * batches in done. It answers PINGs; with nothing on its way it reads
 * for them alone. 0, or LOGTK_RETRY with a message. */
static int read_acks(int64_t wait, logtk_buf *err) {
	int idle = inflight.len == 0;
	if (!conn) {
		if (idle)
			return 0;
		logtk_buf_str(err, "not connected");
		return LOGTK_RETRY;
	}
	while (idle || inflight.len > 0) {
		uint32_t at = err->len;
		int r = read_frame(wait, err);
		if (r == TIMEOUT)
			return 0;
		if (r == FAILED) {
			drop();
			if (idle) {
				err->len = at; /* nothing was on its way: the next batch reconnects */
				return 0;
			}
			static logtk_buf why;
			why.len = 0;
			logtk_buf_str(&why, "waiting for acks: ");
			logtk_buf_append(&why, err->p + at, err->len - at);
			err->len = at;
			logtk_buf_append(err, why.p, why.len);
			return LOGTK_RETRY;
		}
		wait = 0; /* take the frames already read, then return */
		if (ftype == ACK) {
			uint64_t id;
			if (fpayload.len == 0 || !logtk_varint(fpayload.p, fpayload.p + fpayload.len, &id)) {
				drop();
				logtk_buf_str(err, "malformed ACK");
				return LOGTK_RETRY;
			}
			if (ids_remove(&inflight, id)) {
				if (ids_add(&done, id)) {
					logtk_buf_str(err, "out of memory");
					return LOGTK_INTERNAL;
				}
				if (id > stored)
					stored = id;
				quiet = 0; /* only an ack counts: a stuck server still PINGs */
			}
		} else if (ftype == PING) {
			out.len = 0;
			if (frame(&out, PONG, fpayload.p, fpayload.len)) {
				logtk_buf_str(err, "out of memory");
				return LOGTK_INTERNAL;
			}
			if (send_all(&out, err)) {
				drop();
				if (idle) {
					err->len = at;
					return 0;
				}
				return LOGTK_RETRY;
			}
		} else if (ftype == CLOSE) {
			drop();
			if (idle)
				return 0;
			logtk_buf_str(err, "server closed the connection: ");
			describe_close(err, fpayload.p, fpayload.p + fpayload.len);
			return LOGTK_RETRY;
		}
	}
	return 0;
}

/* overdue fails with a retry once the server has been quiet for
 * ack_timeout with batches on their way. */
static int overdue(logtk_buf *err) {
	if (inflight.len == 0 || quiet < ack_timeout)
		return 0;
	uint32_t n = inflight.len;
	drop();
	logtk_buf_str(err, "no ack within ");
	say_duration(err, ack_timeout);
	logtk_buf_str(err, " with ");
	logtk_buf_uint(err, n);
	logtk_buf_str(err, " batches on their way");
	return LOGTK_RETRY;
}

int logtk_plugin_marks(logtk_buf *marks, logtk_buf *err) {
	if (!conn && connect_(err)) {
		drop();
		return LOGTK_RETRY;
	}
	if (logtk_buf_append(marks, held.p, held.len)) {
		logtk_buf_str(err, "out of memory");
		return LOGTK_INTERNAL;
	}
	return LOGTK_OK;
}

int logtk_plugin_write(logtk_batch *b, logtk_buf *err) {
	if (b->p == b->end || (conn && b->id <= stored)) {
		if (ids_add(&done, b->id))
			goto nomem;
		return LOGTK_PENDING;
	}
	if (!conn) {
		if (connect_(err)) {
			drop();
			return LOGTK_RETRY;
		}
		if (b->id <= stored) {
			if (ids_add(&done, b->id))
				goto nomem;
			return LOGTK_PENDING; /* stored before a reconnect */
		}
	}
	/* The server's limit on unacknowledged batches: wait for acks
	 * first. */
	while (max_in_flight > 0 && inflight.len >= max_in_flight) {
		int64_t wait = ack_timeout < SECOND ? ack_timeout : SECOND;
		int st = read_acks(wait, err);
		if (!st)
			st = overdue(err);
		if (st)
			return st;
	}
	uint32_t n = (uint32_t)(b->end - b->p);
	uint8_t idv[10];
	uint32_t il = 0;
	for (uint64_t v = b->id; ; v >>= 7) {
		idv[il++] = (uint8_t)(v < 0x80 ? v : (v & 0x7f) | 0x80);
		if (v < 0x80)
			break;
	}
	uint64_t payload = (uint64_t)il + n;
	if (max_frame > 0 && (int64_t)payload > max_frame) {
		logtk_buf_str(err, "batch ");
		logtk_buf_uint(err, b->id);
		logtk_buf_str(err, " is ");
		logtk_buf_uint(err, payload);
		logtk_buf_str(err, " bytes, over the server's frame limit of ");
		logtk_buf_int(err, max_frame);
		logtk_buf_str(err, ": lower the batch size");
		return LOGTK_INTERNAL;
	}
	out.len = 0;
	uint32_t l = (uint32_t)payload + 1;
	uint8_t h[5] = {(uint8_t)l, (uint8_t)(l >> 8), (uint8_t)(l >> 16), (uint8_t)(l >> 24), DATA};
	if (logtk_buf_append(&out, h, 5) || logtk_buf_append(&out, idv, il) || logtk_buf_append(&out, b->p, n))
		goto nomem;
	if (send_all(&out, err)) {
		drop();
		return LOGTK_RETRY;
	}
	if (inflight.len == 0)
		quiet = 0; /* the wait for this batch's ack starts now */
	if (ids_add(&inflight, b->id))
		goto nomem;
	return LOGTK_PENDING;
nomem:
	logtk_buf_str(err, "out of memory");
	return LOGTK_INTERNAL;
}

int logtk_plugin_poll(uint32_t timeout_ms, logtk_buf *out_ids, logtk_buf *err) {
	int st = read_acks((int64_t)timeout_ms * 1000000, err);
	if (!st)
		st = overdue(err);
	if (!st)
		for (uint32_t i = 0; i < done.len; i++)
			if (logtk_buf_uvarint(out_ids, done.id[i])) {
				logtk_buf_str(err, "out of memory");
				st = LOGTK_INTERNAL;
				break;
			}
	done.len = 0;
	return st;
}

int logtk_plugin_flush(logtk_buf *err) {
	(void)err;
	return LOGTK_OK; /* every acknowledged batch is stored */
}

int logtk_plugin_close(logtk_buf *err) {
	(void)err;
	if (conn) {
		static const uint8_t code1000[] = {0x08, 0xe8, 0x07}; /* Close{code: 1000} */
		out.len = 0;
		if (!frame(&out, CLOSE, code1000, sizeof code1000))
			logtk_net_write(conn, out.p, out.len);
		drop();
	}
	return LOGTK_OK;
}
