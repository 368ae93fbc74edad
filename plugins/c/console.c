/*
 * console.c: the console transport (plugins/console) in C: each batch
 * goes to the process's standard output or standard error in one
 * write, its entries as they are. The host hands the plugin its real
 * stdout or stderr only when the transport block grants them (allow {
 * stdout = true }); without the grant a write fails and the host
 * retries the batch. plugins/console/console.go is the reference.
 */
#define LOGTK_TRANSPORT
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static int fd = 1;
static logtk_buf out;

const char *logtk_plugin_info(void) {
	return "{\"name\":\"console\",\"version\":\"1.0.0\",\"kind\":\"transport\",\"abi\":2,\"config\":["
	       "{\"name\":\"stream\",\"type\":\"string\",\"doc\":\"\\\"stdout\\\" (default) or \\\"stderr\\\"\"}]}";
}

int logtk_plugin_configure(const uint8_t *json, uint32_t n, logtk_buf *err) {
	logtk_config_field f = {.name = "stream", .type = LOGTK_CFG_STRING};
	int st = logtk_config_read(json, n, &f, 1, err);
	if (st == LOGTK_OK) {
		if (!f.set || f.str.len == 0 || logtk_config_is(&f, "stdout")) {
			fd = 1;
		} else if (logtk_config_is(&f, "stderr")) {
			fd = 2;
		} else {
			logtk_buf_str(err, "unknown stream ");
			cfg_quote(err, &f.str);
			logtk_buf_str(err, " (want \"stdout\" or \"stderr\")");
			st = LOGTK_INVALID;
		}
	}
	free(f.str.p);
	return st;
}

int logtk_plugin_open(logtk_buf *err) {
	(void)err;
	return LOGTK_OK;
}

int logtk_plugin_write(logtk_batch *b, logtk_buf *err) {
	out.len = 0;
	logtk_bytes e;
	while (logtk_entry_next(b, &e))
		if (logtk_buf_append(&out, e.p, e.n)) {
			logtk_buf_str(err, "out of memory");
			return LOGTK_INTERNAL;
		}
	for (uint32_t done = 0; done < out.len;) {
		ssize_t n = write(fd, out.p + done, out.len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			logtk_buf_str(err, fd == 1 ? "write /dev/stdout: " : "write /dev/stderr: ");
			logtk_buf_str(err, n < 0 ? strerror(errno) : "nothing written");
			return LOGTK_RETRY;
		}
		done += (uint32_t)n;
	}
	return LOGTK_OK;
}

int logtk_plugin_flush(logtk_buf *err) {
	(void)err;
	return LOGTK_OK;
}

int logtk_plugin_close(logtk_buf *err) {
	(void)err;
	return LOGTK_OK;
}
