/*
 * config.h: what the C reference plugins add to the header's
 * configuration reader (logtk_config_read, in sdk/c/logtk.h): a value
 * quoted for a message as Go's %q quotes it, so that their errors read
 * as the Go plugins' do.
 */
#ifndef LOGTK_CONFIG_H
#define LOGTK_CONFIG_H

#include "gofmt.h"

/* cfg_quote appends a value quoted as Go's %q quotes it, for messages. */
static inline int cfg_quote(logtk_buf *err, const logtk_buf *v) {
	uint8_t *o = go_room(err, 4 * (uint64_t)v->len + 2);
	if (!o)
		return -1;
	go_done(err, go_put_quoted(o, v->p, v->len));
	return 0;
}

#endif /* LOGTK_CONFIG_H */
