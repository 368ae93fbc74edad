/*
 * file.c: the file transport (plugins/file) in C: it appends each batch
 * to a file in a granted directory, whole or not at all, rotates the
 * file by size and age, keeps max_files rotated ones, syncs before it
 * acknowledges (fsync "batch"), cuts a torn last entry off at open, and
 * keeps marks in the log beside the file. plugins/file/file.go and
 * marks.go are the reference (read their comments for the why); the
 * tests of plugins/file run each case against both, and the two read
 * and write the same files, the marks log included.
 */
#define LOGTK_TRANSPORT
#define LOGTK_MARKS
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { RAW, NEWLINE, LENGTH_PREFIXED };

/* The configuration. */
static logtk_buf path;  /* NUL-terminated; len without the NUL */
static logtk_buf mpath; /* the marks log's path, NUL-terminated */
static logtk_buf dir;   /* path's directory, NUL-terminated */
static uint32_t base;   /* where path's last element starts in it */
static int64_t max_bytes, max_files, max_age;
static int fsync_never, framing;

/* The file. */
static int fd = -1;
static int64_t size;   /* bytes in the file: where a failed write is cut back to */
static int64_t opened; /* monotonic nanoseconds at its open */
static logtk_buf buf;
static int pending; /* written since the last sync */

/* The marks (plugins/file/marks.go). */
typedef struct {
	uint8_t *worker;
	uint32_t n, index;
	uint64_t seq;
} mark;

typedef struct {
	mark *m;
	uint32_t len, cap;
} marks;

static int keep;
static marks held;
static int mfd = -1;
static int64_t marks_size, entry_size;
static logtk_buf mbuf;

#define MARKS_COMPACT_AT (1 << 20)

const char *logtk_plugin_info(void) {
	return "{\"name\":\"file\",\"version\":\"1.0.0\",\"kind\":\"transport\",\"abi\":2,\"config\":["
	       "{\"name\":\"path\",\"type\":\"path\",\"required\":true,\"doc\":\"the file to append to; its directory must be granted in allow { directories }\"},"
	       "{\"name\":\"max_bytes\",\"type\":\"number\",\"doc\":\"rotate when the file would grow past this size; 0 (default) never\"},"
	       "{\"name\":\"max_age\",\"type\":\"string\",\"doc\":\"rotate a file older than this (\\\"24h\\\"); needs allow { clock = true }\"},"
	       "{\"name\":\"max_files\",\"type\":\"number\",\"doc\":\"rotated files to keep; older ones are deleted; 0 (default) keeps all\"},"
	       "{\"name\":\"fsync\",\"type\":\"string\",\"doc\":\"\\\"batch\\\" (default): sync before acknowledging each batch; \\\"never\\\": leave it to the OS (Flush and Close still sync)\"},"
	       "{\"name\":\"framing\",\"type\":\"string\",\"doc\":\"\\\"raw\\\" (default; text and JSON lines end in a newline already), \\\"newline\\\" (add one) or \\\"length-prefixed\\\" (a uvarint length before each entry, for binary formats)\"}]}";
}

/* Messages. say_errno appends the errno's text in lower case, as Go
 * writes it ("no space left on device"). */
static void say_errno(logtk_buf *e, int n) {
	const char *s = strerror(n);
	uint32_t at = e->len;
	logtk_buf_str(e, s);
	if (e->len > at + 1 && e->p[at] >= 'A' && e->p[at] <= 'Z' && e->p[at + 1] >= 'a' && e->p[at + 1] <= 'z')
		e->p[at] = (uint8_t)(e->p[at] + 32);
}

static void say_op(logtk_buf *e, const char *op, const char *p, int n) {
	logtk_buf_str(e, op);
	logtk_buf_byte(e, ' ');
	logtk_buf_str(e, p);
	logtk_buf_str(e, ": ");
	say_errno(e, n);
}

static void say_int(logtk_buf *e, int64_t v) { logtk_buf_int(e, v); }

static int64_t cap_int(double v) {
	if (v >= 9223372036854775807.0)
		return INT64_MAX;
	return (int64_t)v;
}

static int set_str(logtk_buf *b, const uint8_t *p, uint32_t n) {
	b->len = 0;
	if (logtk_buf_append(b, p, n) || logtk_buf_byte(b, 0))
		return -1;
	b->len--;
	return 0;
}

int logtk_plugin_configure(const uint8_t *json, uint32_t n, logtk_buf *err) {
	enum { PATH, MAX_BYTES, MAX_AGE, MAX_FILES, FSYNC, FRAMING, N };
	logtk_config_field f[N] = {
	    {.name = "path", .type = LOGTK_CFG_STRING},      {.name = "max_bytes", .type = LOGTK_CFG_NUMBER}, {.name = "max_age", .type = LOGTK_CFG_STRING},
	    {.name = "max_files", .type = LOGTK_CFG_NUMBER}, {.name = "fsync", .type = LOGTK_CFG_STRING},     {.name = "framing", .type = LOGTK_CFG_STRING},
	};
	int st = logtk_config_read(json, n, f, N, err);
	if (st)
		goto done;
	st = LOGTK_INVALID;
	double mb = logtk_config_number(&f[MAX_BYTES]), mf = logtk_config_number(&f[MAX_FILES]);
	if (isinf(mb) || isinf(mf)) {
		/* encoding/json refuses a number past float64's range */
		logtk_buf_str(err, "config: ");
		logtk_buf_str(err, isinf(mb) ? "max_bytes" : "max_files");
		logtk_buf_str(err, ": the number is out of range");
		goto done;
	}
	if (!f[PATH].set || f[PATH].str.len == 0) {
		logtk_buf_str(err, "path is required");
		goto done;
	}
	if (f[FSYNC].set && f[FSYNC].str.len && !logtk_config_is(&f[FSYNC], "batch") && !logtk_config_is(&f[FSYNC], "never")) {
		logtk_buf_str(err, "unknown fsync ");
		cfg_quote(err, &f[FSYNC].str);
		logtk_buf_str(err, " (want \"batch\" or \"never\")");
		goto done;
	}
	if (f[FRAMING].set && f[FRAMING].str.len && !logtk_config_is(&f[FRAMING], "raw") && !logtk_config_is(&f[FRAMING], "newline") &&
	    !logtk_config_is(&f[FRAMING], "length-prefixed")) {
		logtk_buf_str(err, "unknown framing ");
		cfg_quote(err, &f[FRAMING].str);
		logtk_buf_str(err, " (want \"raw\", \"newline\" or \"length-prefixed\")");
		goto done;
	}
	if (mb < 0 || mf < 0) {
		logtk_buf_str(err, "max_bytes and max_files must not be negative");
		goto done;
	}
	if (mb != trunc(mb) || mf != trunc(mf)) {
		/* 0.5 would rotate before every batch, or keep no rotated file */
		logtk_buf_str(err, "max_bytes and max_files must be whole numbers");
		goto done;
	}
	max_age = 0;
	if (f[MAX_AGE].set && f[MAX_AGE].str.len) {
		int64_t d;
		if (go_parse_duration(f[MAX_AGE].str.p, f[MAX_AGE].str.len, &d) || d <= 0) {
			logtk_buf_str(err, "max_age ");
			cfg_quote(err, &f[MAX_AGE].str);
			logtk_buf_str(err, " is not a positive duration");
			goto done;
		}
		max_age = d;
	}
	st = LOGTK_INTERNAL;
	const uint8_t *p = f[PATH].str.p;
	uint32_t pn = f[PATH].str.len;
	if (set_str(&path, p, pn))
		goto done;
	/* filepath.Dir and Base, for a path the host made absolute and
	 * clean. */
	uint32_t slash = pn;
	while (slash > 0 && p[slash - 1] != '/')
		slash--;
	if (slash == 0 ? set_str(&dir, (const uint8_t *)".", 1) : set_str(&dir, p, slash > 1 ? slash - 1 : 1))
		goto done;
	mpath.len = 0;
	if (logtk_buf_append(&mpath, dir.p, dir.len) || (dir.len > 1 || dir.p[0] != '/' ? logtk_buf_byte(&mpath, '/') : 0) ||
	    logtk_buf_byte(&mpath, '.') || logtk_buf_append(&mpath, p + slash, pn - slash) || logtk_buf_str(&mpath, ".marks") ||
	    logtk_buf_byte(&mpath, 0))
		goto done;
	mpath.len--;
	base = slash;
	max_bytes = cap_int(mb);
	max_files = cap_int(mf);
	fsync_never = logtk_config_is(&f[FSYNC], "never");
	framing = logtk_config_is(&f[FRAMING], "newline") ? NEWLINE : logtk_config_is(&f[FRAMING], "length-prefixed") ? LENGTH_PREFIXED : RAW;
	st = LOGTK_OK;
done:
	for (int i = 0; i < N; i++)
		free(f[i].str.p);
	return st;
}

static int64_t now(clockid_t c) {
	struct timespec ts;
	if (clock_gettime(c, &ts))
		return 0;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* write_all writes all of b[0:n] to f: 0, or -1 with errno set and
 * *done what was written. */
static int write_all(int f, const uint8_t *b, uint32_t n, uint32_t *done) {
	*done = 0;
	while (*done < n) {
		ssize_t w = write(f, b + *done, n - *done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		*done += (uint32_t)w;
	}
	return 0;
}

/* framed_len is the bytes an entry of n bytes takes in the file. */
static uint64_t framed_len(uint32_t n) {
	switch (framing) {
	case LENGTH_PREFIXED:
		return (uint64_t)logtk_uvarint_size(n) + n;
	case NEWLINE:
		return (uint64_t)n + 1;
	}
	return n;
}

/* put writes n bytes at p to fd, adding what it wrote to *done: 0, or
 * -1 with errno set. put_buf writes buf so and empties it. */
static int put(const uint8_t *p, uint32_t n, uint32_t *done) {
	uint32_t w;
	int bad = write_all(fd, p, n, &w);
	*done += w;
	return bad;
}

static int put_buf(uint32_t *done) {
	int bad = put(buf.p, buf.len, done);
	buf.len = 0;
	return bad;
}

/* write_batch writes b's entries, framed, to fd, through buf a chunk at a
 * time (an entry of a chunk or more straight from the batch), so that a
 * batch of large records takes no second copy of its size: 0, -1 with
 * errno set, or -2 out of memory; *done is what was written. */
static int write_batch(logtk_batch b, uint32_t *done) {
	enum { CHUNK = 256 << 10 };
	*done = 0;
	buf.len = 0;
	logtk_bytes e;
	while (logtk_entry_next(&b, &e)) {
		if (framing == LENGTH_PREFIXED && logtk_buf_uvarint(&buf, e.n))
			return -2;
		if (e.n >= CHUNK) {
			if (put_buf(done) || put(e.p, e.n, done))
				return -1;
		} else if (logtk_buf_append(&buf, e.p, e.n))
			return -2;
		if (framing == NEWLINE && logtk_buf_byte(&buf, '\n'))
			return -2;
		if (buf.len >= CHUNK && put_buf(done))
			return -1;
	}
	return put_buf(done) ? -1 : 0;
}

/* whole_entries returns where the last whole entry of the file ends
 * (plugins/file's wholeEntries), or -1 with errno set. */
static int64_t whole_entries(int64_t n) {
	if (n == 0 || framing == RAW)
		return n;
	int r = open(path.p ? (const char *)path.p : "", O_RDONLY);
	if (r < 0)
		return -1;
	enum { CHUNK = 64 << 10 };
	uint8_t *chunk = (uint8_t *)malloc(CHUNK);
	int64_t whole = 0;
	if (!chunk) {
		close(r);
		errno = ENOMEM;
		return -1;
	}
	if (framing == NEWLINE) {
		for (int64_t end = n; end > 0;) {
			int64_t start = end > CHUNK ? end - CHUNK : 0;
			uint32_t want = (uint32_t)(end - start), got = 0;
			while (got < want) {
				ssize_t k = pread(r, chunk + got, want - got, start + got);
				if (k < 0 && errno == EINTR)
					continue;
				if (k <= 0)
					break;
				got += (uint32_t)k;
			}
			if (got < want) {
				if (errno == 0)
					errno = EIO;
				whole = -1;
				break;
			}
			uint32_t i = got;
			while (i > 0 && chunk[i - 1] != '\n')
				i--;
			if (i > 0) {
				whole = start + i;
				break;
			}
			end = start;
		}
	} else {
		/* Go's bufio reader and binary.ReadUvarint: pos is where the
		 * reader is, whole the sum of the entries' sizes as Go counts
		 * them (the varint's shortest size and the length). */
		int64_t pos = 0, have = 0, at = 0; /* the chunk holds [at, at+have) */
		for (whole = 0; whole < n;) {
			uint64_t l = 0;
			int i, ok = 0;
			for (i = 0; i < 10; i++) {
				if (pos >= at + have) {
					ssize_t k = pread(r, chunk, CHUNK, pos);
					if (k < 0 && errno == EINTR) {
						i--;
						continue;
					}
					if (k <= 0)
						break;
					at = pos;
					have = k;
				}
				uint8_t c = chunk[pos - at];
				pos++;
				if (c < 0x80) {
					if (i == 9 && c > 1)
						break;
					l |= (uint64_t)c << (7 * i);
					ok = 1;
					break;
				}
				l |= (uint64_t)(c & 0x7f) << (7 * i);
			}
			if (!ok)
				break;
			int sv = 1;
			for (uint64_t x = l; x >= 0x80; x >>= 7)
				sv++;
			if (l > (uint64_t)(n - whole) || (int64_t)l + sv > n - whole)
				break;
			/* Discard: fails at the end of the file. */
			if ((int64_t)l > n - pos)
				break;
			pos += (int64_t)l;
			whole += sv + (int64_t)l;
		}
	}
	free(chunk);
	close(r);
	return whole;
}

/* open_file opens the file for appending and cuts a torn last entry
 * off it. */
static int open_file(logtk_buf *err) {
	if (strlen((const char *)path.p) != path.len) {
		logtk_buf_str(err, "opening ");
		logtk_buf_append(err, path.p, path.len);
		logtk_buf_str(err, " (is its directory granted in allow { directories }?): invalid argument");
		return -1;
	}
	int f = open((const char *)path.p, O_CREAT | O_WRONLY | O_APPEND, 0644);
	if (f < 0) {
		logtk_buf_str(err, "opening ");
		logtk_buf_str(err, (const char *)path.p);
		logtk_buf_str(err, " (is its directory granted in allow { directories }?): ");
		say_op(err, "open", (const char *)path.p, errno);
		return -1;
	}
	struct stat st;
	if (fstat(f, &st)) {
		say_op(err, "stat", (const char *)path.p, errno);
		close(f);
		return -1;
	}
	int64_t whole = whole_entries(st.st_size);
	if (whole < 0) {
		logtk_buf_str(err, "reading ");
		logtk_buf_str(err, (const char *)path.p);
		logtk_buf_str(err, " for a torn last entry: ");
		say_errno(err, errno);
		close(f);
		return -1;
	}
	if (whole < st.st_size) {
		/* A process that died inside a write (the host's crash) left
		 * part of an entry: it was never acknowledged and comes
		 * again. */
		if (ftruncate(f, whole)) {
			logtk_buf_str(err, "cutting a torn last entry off ");
			logtk_buf_str(err, (const char *)path.p);
			logtk_buf_str(err, ": ");
			say_errno(err, errno);
			close(f);
			return -1;
		}
	}
	fd = f;
	size = whole;
	opened = now(CLOCK_MONOTONIC);
	return 0;
}

static void close_files(void) {
	if (fd >= 0) {
		close(fd);
		fd = -1;
	}
	if (mfd >= 0) {
		close(mfd);
		mfd = -1;
	}
}

/* sync_dir makes a rename in the directory durable where the sandbox
 * lets it. */
static void sync_dir(void) {
	int d = open((const char *)dir.p, O_RDONLY | O_DIRECTORY);
	if (d >= 0) {
		fsync(d);
		close(d);
	}
}

static int sync_file(logtk_buf *err) {
	if (!pending)
		return 0;
	if (fsync(fd)) {
		say_op(err, "sync", (const char *)path.p, errno);
		return -1;
	}
	pending = 0;
	return 0;
}

/* ---- The marks log (plugins/file/marks.go) ---- */

static uint32_t crc_table[256];

static uint32_t crc32c(const uint8_t *p, uint32_t n) {
	if (!crc_table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? c >> 1 ^ 0x82f63b78u : c >> 1;
			crc_table[i] = c;
		}
	uint32_t c = 0xffffffffu;
	while (n--)
		c = crc_table[(c ^ *p++) & 0xff] ^ c >> 8;
	return ~c;
}

static int mark_cmp(const void *a, const void *b) {
	const mark *x = (const mark *)a, *y = (const mark *)b;
	uint32_t n = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->worker, y->worker, n);
	if (c)
		return c;
	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

static mark *find(marks *h, const uint8_t *w, uint32_t n, uint32_t index) {
	for (uint32_t i = 0; i < h->len; i++)
		if (h->m[i].n == n && h->m[i].index == index && !memcmp(h->m[i].worker, w, n))
			return &h->m[i];
	return 0;
}

/* merge adds the marks of an encoding to h, keeping the highest seq of
 * each worker instance (plugin.MergeMarks; sorted at the end). */
static int merge(marks *h, logtk_bytes enc) {
	logtk_mark m;
	int r;
	while ((r = logtk_mark_next(&enc, &m)) > 0) {
		mark *o = find(h, m.worker.p, m.worker.n, m.index);
		if (o) {
			if (m.seq > o->seq)
				o->seq = m.seq;
			continue;
		}
		if (h->len == h->cap) {
			uint32_t c = h->cap ? 2 * h->cap : 16;
			mark *g = (mark *)realloc(h->m, c * sizeof(mark));
			if (!g)
				return -1;
			h->m = g;
			h->cap = c;
		}
		uint8_t *w = (uint8_t *)malloc(m.worker.n + 1);
		if (!w)
			return -1;
		memcpy(w, m.worker.p, m.worker.n);
		h->m[h->len++] = (mark){w, m.worker.n, m.index, m.seq};
	}
	if (h->len > 1)
		qsort(h->m, h->len, sizeof(mark), mark_cmp);
	return r;
}

static void clear(marks *h) {
	for (uint32_t i = 0; i < h->len; i++)
		free(h->m[i].worker);
	h->len = 0;
}

static int append_held(logtk_buf *b, const marks *h) {
	for (uint32_t i = 0; i < h->len; i++) {
		logtk_mark m = {{h->m[i].worker, h->m[i].n}, h->m[i].index, h->m[i].seq};
		if (logtk_buf_mark(b, &m))
			return -1;
	}
	return 0;
}

/* append_entry appends a log entry: uvarint length | uvarint start |
 * uvarint end | marks | CRC-32C LE; the marks either held ones or an
 * encoding, written again as Go's AppendMarks writes it. */
static int append_entry(logtk_buf *b, int64_t start, int64_t end, const marks *h, logtk_bytes enc) {
	static logtk_buf payload;
	payload.len = 0;
	if (logtk_buf_uvarint(&payload, (uint64_t)start) || logtk_buf_uvarint(&payload, (uint64_t)end))
		return -1;
	if (h) {
		if (append_held(&payload, h))
			return -1;
	} else {
		logtk_mark m;
		while (logtk_mark_next(&enc, &m) > 0)
			if (logtk_buf_mark(&payload, &m))
				return -1;
	}
	uint32_t c = crc32c(payload.p, payload.len);
	uint8_t le[4] = {(uint8_t)c, (uint8_t)(c >> 8), (uint8_t)(c >> 16), (uint8_t)(c >> 24)};
	if (logtk_buf_uvarint(b, payload.len) || logtk_buf_append(b, payload.p, payload.len) || logtk_buf_append(b, le, 4))
		return -1;
	return 0;
}

/* An entry of the log as read. */
typedef struct {
	int64_t start, end;
	logtk_bytes marks;
	int some;
} entry;

/* parse_log reads a marks log up to its first torn or damaged entry:
 * the marks of every entry before the last into h, and the last. 1 when
 * it stopped at a damaged entry, -1 out of memory. */
static int parse_log(const uint8_t *p, uint32_t n, marks *h, entry *last) {
	const uint8_t *end = p + n;
	last->some = 0;
	while (p < end) {
		uint64_t l, start, stop;
		const uint8_t *q = logtk_varint(p, end, &l);
		if (!q || (uint64_t)(end - q) < 4 || l > (uint64_t)(end - q) - 4)
			return 1;
		const uint8_t *pay = q, *pend = q + l;
		uint32_t sum = (uint32_t)pend[0] | (uint32_t)pend[1] << 8 | (uint32_t)pend[2] << 16 | (uint32_t)pend[3] << 24;
		if (crc32c(pay, (uint32_t)l) != sum)
			return 1;
		if (!(q = logtk_varint(pay, pend, &start)) || !(q = logtk_varint(q, pend, &stop)) || stop < start ||
		    stop > (uint64_t)INT64_MAX)
			return 1;
		logtk_bytes ms = {q, (uint32_t)(pend - q)}, probe = ms;
		logtk_mark m;
		int r;
		while ((r = logtk_mark_next(&probe, &m)) > 0)
			;
		if (r < 0)
			return 1;
		if (last->some && merge(h, last->marks))
			return -1;
		*last = (entry){(int64_t)start, (int64_t)stop, ms, 1};
		p = pend + 4;
	}
	return 0;
}

/* rewrite_log replaces the marks log by one entry of the file's size
 * and the held marks, and opens it for appending; on failure the log is
 * closed, and the next write starts again from the files. */
static int rewrite_log(logtk_buf *err) {
	if (mfd >= 0) {
		close(mfd);
		mfd = -1;
	}
	static logtk_buf tmp;
	tmp.len = 0;
	if (logtk_buf_append(&tmp, mpath.p, mpath.len) || logtk_buf_str(&tmp, ".new") || logtk_buf_byte(&tmp, 0))
		goto nomem;
	mbuf.len = 0;
	if (append_entry(&mbuf, size, size, &held, (logtk_bytes){0, 0}))
		goto nomem;
	int f = open((const char *)tmp.p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	uint32_t done;
	if (f < 0) {
		logtk_buf_str(err, "writing the marks of ");
		logtk_buf_str(err, (const char *)path.p);
		logtk_buf_str(err, ": ");
		say_op(err, "open", (const char *)tmp.p, errno);
		return -1;
	}
	if (write_all(f, mbuf.p, mbuf.len, &done) || fsync(f)) {
		int e = errno;
		close(f);
		logtk_buf_str(err, "writing the marks of ");
		logtk_buf_str(err, (const char *)path.p);
		logtk_buf_str(err, ": ");
		say_op(err, "write", (const char *)tmp.p, e);
		return -1;
	}
	if (close(f) || rename((const char *)tmp.p, (const char *)mpath.p)) {
		logtk_buf_str(err, "writing the marks of ");
		logtk_buf_str(err, (const char *)path.p);
		logtk_buf_str(err, ": ");
		say_op(err, "rename", (const char *)tmp.p, errno);
		return -1;
	}
	sync_dir();
	mfd = open((const char *)mpath.p, O_CREAT | O_WRONLY | O_APPEND, 0644);
	if (mfd < 0) {
		logtk_buf_str(err, "opening the marks of ");
		logtk_buf_str(err, (const char *)path.p);
		logtk_buf_str(err, ": ");
		say_op(err, "open", (const char *)mpath.p, errno);
		return -1;
	}
	marks_size = mbuf.len;
	return 0;
nomem:
	logtk_buf_str(err, "out of memory");
	return -1;
}

static void warn(logtk_buf *m) { logtk_log(LOGTK_WARN, m->p, m->len); }

/* load_log reads the marks log, cuts off the file a batch whose write
 * never got whole, and rewrites the log as one entry. */
static int load_log(logtk_buf *err) {
	if (mfd >= 0) {
		close(mfd);
		mfd = -1;
	}
	static logtk_buf b;
	b.len = 0;
	int f = open((const char *)mpath.p, O_RDONLY);
	if (f < 0 && errno != ENOENT) {
		logtk_buf_str(err, "reading the marks of ");
		logtk_buf_str(err, (const char *)path.p);
		logtk_buf_str(err, ": ");
		say_op(err, "open", (const char *)mpath.p, errno);
		return -1;
	}
	if (f >= 0) {
		for (;;) {
			if (logtk_buf_grow(&b, 64 << 10)) {
				close(f);
				logtk_buf_str(err, "out of memory");
				return -1;
			}
			ssize_t k = read(f, b.p + b.len, b.cap - b.len);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				int e = errno;
				close(f);
				logtk_buf_str(err, "reading the marks of ");
				logtk_buf_str(err, (const char *)path.p);
				logtk_buf_str(err, ": ");
				say_op(err, "read", (const char *)mpath.p, e);
				return -1;
			}
			if (k == 0)
				break;
			b.len += (uint32_t)k;
		}
		close(f);
	}
	clear(&held);
	entry last;
	int torn = parse_log(b.p, b.len, &held, &last);
	if (torn < 0) {
		logtk_buf_str(err, "out of memory");
		return -1;
	}
	if (!last.some) {
	} else if (last.start <= size && size < last.end) {
		if (ftruncate(fd, last.start)) {
			logtk_buf_str(err, "cutting off ");
			logtk_buf_str(err, (const char *)path.p);
			logtk_buf_str(err, " the batch a write that never returned left (bytes ");
			say_int(err, last.start);
			logtk_buf_str(err, " to ");
			say_int(err, size);
			logtk_buf_str(err, "): ");
			say_errno(err, errno);
			return -1;
		}
		size = last.start;
	} else {
		if (merge(&held, last.marks)) {
			logtk_buf_str(err, "out of memory");
			return -1;
		}
		if (size > last.end) {
			logtk_buf m = {0, 0, 0};
			logtk_buf_str(&m, (const char *)path.p);
			logtk_buf_str(&m, " holds ");
			say_int(&m, size - last.end);
			logtk_buf_str(&m, " bytes its marks log does not name (written without marks, or the log ");
			logtk_buf_str(&m, (const char *)mpath.p);
			logtk_buf_str(&m, " was damaged): kept; records in them may be written again after a host crash");
			warn(&m);
			free(m.p);
		}
	}
	if (torn) {
		logtk_buf m = {0, 0, 0};
		logtk_buf_str(&m, "the marks log ");
		logtk_buf_str(&m, (const char *)mpath.p);
		logtk_buf_str(&m, " ends in a damaged entry: read up to it");
		warn(&m);
		free(m.p);
	}
	return rewrite_log(err);
}

/* note_marks appends the entry of a batch about to be written: its
 * bytes will be [size, size+n). On failure the entry is cut off again
 * (or, failing that, both files are closed). */
static int note_marks(int64_t n, logtk_bytes enc, logtk_buf *err) {
	mbuf.len = 0;
	if (append_entry(&mbuf, size, size + n, 0, enc)) {
		logtk_buf_str(err, "out of memory");
		return -1;
	}
	uint32_t w;
	if (write_all(mfd, mbuf.p, mbuf.len, &w)) {
		int e = errno;
		say_op(err, "write", (const char *)mpath.p, e);
		/* Cut back whatever it said: in the sandbox a write that
		 * failed part way reports nothing of what it wrote. */
		if (ftruncate(mfd, marks_size)) {
			logtk_buf_str(err, "\ncutting a failed entry off the marks: ");
			say_errno(err, errno);
			close_files();
		}
		return -1;
	}
	entry_size = w;
	marks_size += w;
	return 0;
}

/* unnote_marks takes the entry note_marks appended last off the log. */
static void unnote_marks(void) {
	if (ftruncate(mfd, marks_size - entry_size)) {
		close_files();
		return;
	}
	marks_size -= entry_size;
}

/* held_marks notes that the batch of the last entry is whole in the
 * file (and synced with its entry when sync is set), and compacts the
 * log when it has grown. */
static int held_marks(logtk_bytes enc, int sync, logtk_buf *err) {
	if (sync && fsync(mfd)) {
		say_op(err, "sync", (const char *)mpath.p, errno);
		return -1;
	}
	if (merge(&held, enc)) {
		logtk_buf_str(err, "out of memory");
		return -1;
	}
	if (marks_size > MARKS_COMPACT_AT) {
		/* What the log says is durable whatever compaction does; if it
		 * fails, the next write starts again from the files. */
		logtk_buf ignored = {0, 0, 0};
		if (rewrite_log(&ignored))
			close_files();
		free(ignored.p);
	}
	return 0;
}

/* held_all: every mark of a batch is at or below the held ones. */
static int held_all(logtk_bytes enc) {
	if (enc.n == 0)
		return 0;
	logtk_mark m;
	while (logtk_mark_next(&enc, &m) > 0) {
		mark *h = find(&held, m.worker.p, m.worker.n, m.index);
		if (!h || h->seq < m.seq)
			return 0;
	}
	return 1;
}

/* ---- Rotation ---- */

typedef struct {
	char *name;
	int64_t mod;
} rotated;

static int rotated_cmp(const void *a, const void *b) {
	const rotated *x = (const rotated *)a, *y = (const rotated *)b;
	if (x->mod != y->mod)
		return x->mod < y->mod ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int64_t mtime(const struct stat *st) { return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec; }

/* join appends dir/name, NUL-terminated, to b. */
static int join(logtk_buf *b, const char *name) {
	b->len = 0;
	if (logtk_buf_append(b, dir.p, dir.len) || (dir.len > 1 || dir.p[0] != '/' ? logtk_buf_byte(b, '/') : 0) ||
	    logtk_buf_str(b, name) || logtk_buf_byte(b, 0))
		return -1;
	return 0;
}

/* prune deletes the oldest rotated files beyond max_files: by
 * modification time, then by name (plugins/file's Rotated). */
static int prune(logtk_buf *err) {
	if (max_files <= 0)
		return 0;
	DIR *d = opendir((const char *)dir.p);
	if (!d) {
		say_op(err, "open", (const char *)dir.p, errno);
		return -1;
	}
	const char *name = (const char *)path.p + base;
	size_t bl = path.len - base;
	rotated *found = 0;
	size_t nfound = 0, capf = 0;
	static logtk_buf full;
	int st = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, name, bl) || e->d_name[bl] != '.' || e->d_type == DT_DIR)
			continue;
		struct stat s;
		if (join(&full, e->d_name)) {
			st = -1;
			break;
		}
		if (lstat((const char *)full.p, &s))
			continue; /* removed meanwhile */
		if (nfound == capf) {
			capf = capf ? 2 * capf : 16;
			rotated *g = (rotated *)realloc(found, capf * sizeof(rotated));
			if (!g) {
				st = -1;
				break;
			}
			found = g;
		}
		char *nm = strdup((const char *)full.p);
		if (!nm) {
			st = -1;
			break;
		}
		found[nfound++] = (rotated){nm, mtime(&s)};
	}
	closedir(d);
	if (st)
		logtk_buf_str(err, "out of memory");
	else {
		qsort(found, nfound, sizeof(rotated), rotated_cmp);
		for (size_t i = 0; nfound - i > (uint64_t)max_files; i++)
			if (unlink(found[i].name) && errno != ENOENT) {
				say_op(err, "remove", found[i].name, errno);
				st = -1;
				break;
			}
	}
	for (size_t i = 0; i < nfound; i++)
		free(found[i].name);
	free(found);
	return st;
}

/* rotate renames the file to <path>.<UTC time of its last write>
 * (20060102T150405.000000000Z) and starts a new one, then prunes. */
static int rotate(logtk_buf *err) {
	if (sync_file(err))
		return -1;
	struct stat st;
	if (fstat(fd, &st)) {
		say_op(err, "stat", (const char *)path.p, errno);
		return -1;
	}
	int c = close(fd);
	fd = -1;
	if (c) {
		say_op(err, "close", (const char *)path.p, errno);
		return -1;
	}
	int64_t secs = (int64_t)st.st_mtim.tv_sec, y, mo, dd;
	int64_t days = secs / 86400, rem = secs % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	go_civil(days, &y, &mo, &dd);
	uint8_t stamp[40], *o = stamp;
	o = go_put_digits32(o, (uint32_t)y, 4);
	o = go_put_digits32(o, (uint32_t)mo, 2);
	o = go_put_digits32(o, (uint32_t)dd, 2);
	*o++ = 'T';
	o = go_put_digits32(o, (uint32_t)(rem / 3600), 2);
	o = go_put_digits32(o, (uint32_t)(rem / 60 % 60), 2);
	o = go_put_digits32(o, (uint32_t)(rem % 60), 2);
	*o++ = '.';
	o = go_put_digits32(o, (uint32_t)st.st_mtim.tv_nsec, 9);
	*o++ = 'Z';
	static logtk_buf dst;
	struct stat probe;
	for (int i = 0;; i++) {
		dst.len = 0;
		if (logtk_buf_append(&dst, path.p, path.len) || logtk_buf_byte(&dst, '.') ||
		    logtk_buf_append(&dst, stamp, (uint32_t)(o - stamp)) || (i && (logtk_buf_byte(&dst, '.') || logtk_buf_uint(&dst, (uint64_t)i))) ||
		    logtk_buf_byte(&dst, 0)) {
			logtk_buf_str(err, "out of memory");
			return -1;
		}
		if (stat((const char *)dst.p, &probe) && errno == ENOENT)
			break;
	}
	if (rename((const char *)path.p, (const char *)dst.p)) {
		say_op(err, "rename", (const char *)path.p, errno);
		return -1;
	}
	if (keep)
		sync_dir(); /* the log's sizes are the new file's */
	if (open_file(err))
		return -1;
	if (keep && (note_marks(0, (logtk_bytes){0, 0}, err) || held_marks((logtk_bytes){0, 0}, 1, err)))
		return -1;
	return prune(err);
}

static int needs_rotation(int64_t incoming) {
	if (size == 0)
		return 0;
	if (max_bytes > 0 && size + incoming > max_bytes)
		return 1;
	return max_age > 0 && now(CLOCK_MONOTONIC) - opened >= max_age;
}

/* ---- The exports ---- */

int logtk_plugin_open(logtk_buf *err) {
	/* Without allow { clock = true } the sandbox's clock is a fixed
	 * fake in the past. */
	if (max_age > 0 && now(CLOCK_REALTIME) <= 1704067200LL * 1000000000) {
		logtk_buf_str(err, "max_age needs the clock: grant it with allow { clock = true }");
		return LOGTK_INTERNAL;
	}
	return open_file(err) ? LOGTK_INTERNAL : LOGTK_OK;
}

int logtk_plugin_marks(logtk_buf *out, logtk_buf *err) {
	if (fd < 0 && open_file(err))
		return LOGTK_RETRY;
	if (load_log(err))
		return LOGTK_RETRY;
	keep = 1;
	if (append_held(out, &held)) {
		logtk_buf_str(err, "out of memory");
		return LOGTK_INTERNAL;
	}
	return LOGTK_OK;
}

int logtk_plugin_write(logtk_batch *b, logtk_buf *err) {
	if (fd < 0 || (keep && mfd < 0)) {
		close_files();
		if (open_file(err))
			return LOGTK_RETRY;
		if (keep && load_log(err)) {
			close_files();
			return LOGTK_RETRY;
		}
	}
	if (keep && held_all(b->marks))
		return LOGTK_OK; /* in the file from a write whose answer was lost */
	uint64_t total = 0;
	logtk_bytes e;
	for (logtk_batch c = *b; logtk_entry_next(&c, &e);)
		total += framed_len(e.n);
	if (needs_rotation((int64_t)total) && rotate(err))
		return LOGTK_RETRY;
	int64_t before = size;
	/* The entry first: a death in the middle of the write leaves an
	 * entry that names more than the file holds, and the next marks cut
	 * the batch off. */
	if (keep && note_marks((int64_t)total, b->marks, err))
		return LOGTK_RETRY;
	uint32_t n;
	int bad = write_batch(*b, &n);
	if (bad == -2)
		logtk_buf_str(err, "out of memory");
	else if (bad)
		say_op(err, "write", (const char *)path.p, errno);
	else {
		size += n;
		pending = 1;
		if (!fsync_never)
			bad = sync_file(err);
	}
	if (!bad && keep)
		bad = held_marks(b->marks, !fsync_never, err);
	if (bad) {
		/* A batch is in the file whole or not at all: what a full disk
		 * took of it is cut off again, and its entry goes too. */
		if (ftruncate(fd, before)) {
			logtk_buf_str(err, "; cutting the ");
			logtk_buf_uint(err, n);
			logtk_buf_str(err, " bytes written of the batch off failed too (the next write starts again from the file): ");
			say_errno(err, errno);
			close_files();
			return LOGTK_RETRY;
		}
		size = before;
		if (keep && mfd >= 0)
			unnote_marks();
		/* Out of memory is not a failure that passes: the same batch
		 * would find the same memory. */
		return bad == -2 ? LOGTK_INTERNAL : LOGTK_RETRY;
	}
	return LOGTK_OK;
}

int logtk_plugin_flush(logtk_buf *err) {
	if (fd < 0)
		return LOGTK_OK;
	if (sync_file(err))
		return LOGTK_RETRY;
	if (mfd >= 0 && fsync(mfd)) {
		say_op(err, "sync", (const char *)mpath.p, errno);
		return LOGTK_INTERNAL;
	}
	return LOGTK_OK;
}

int logtk_plugin_close(logtk_buf *err) {
	int st = logtk_plugin_flush(err);
	if (mfd >= 0 && close(mfd) && !st) {
		say_op(err, "close", (const char *)mpath.p, errno);
		st = LOGTK_INTERNAL;
	}
	mfd = -1;
	if (fd >= 0 && close(fd) && !st) {
		say_op(err, "close", (const char *)path.p, errno);
		st = LOGTK_INTERNAL;
	}
	fd = -1;
	return st;
}
