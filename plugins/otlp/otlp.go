// Package otlp is the reference OTLP/HTTP logs transport: it sends each
// batch as one ExportLogsServiceRequest (protobuf, gzip by default) in a
// POST to an endpoint the host dials for it, as the OpenTelemetry
// specification's OTLP/HTTP exporter does: to an OpenTelemetry Collector,
// a logtk log server's otlp receiver, or any backend that takes OTLP.
// Its format must be the protobuf format without a schema (logtk.v1.Record
// entries), which it maps itself (docs/otlp.md has the table). See
// README.md.
//
// A batch is delivered only on a 2xx answer. 429, 502, 503 and 504 (and a
// connection that fails) ask the host for the batch again, and the plugin
// sends nothing before a Retry-After the answer gave (this needs the
// clock: allow { clock = true }); any other 4xx refuses the batch, which
// the host dead-letters with the answer's status and text.
package otlp

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/sdk/plugin"
)

// Info describes the plugin.
var Info = plugin.Info{
	Name:    "otlp",
	Version: "1.0.0",
	Config: []plugin.Field{
		{Name: "endpoint", Type: plugin.TypeString, Required: true, Doc: "name of the endpoint granted in allow { endpoint \"name\" { ... } }"},
		{Name: "path", Type: plugin.TypeString, Doc: `the request's path; default "/v1/logs"`},
		{Name: "host", Type: plugin.TypeString, Doc: "the Host header (the server's name); default the endpoint's name"},
		{Name: "headers", Type: plugin.TypeStringMap, Doc: `headers of every request, such as { authorization = "Bearer ..." }`},
		{Name: "compression", Type: plugin.TypeString, Doc: `"gzip" (default) or "none"`},
		{Name: "timeout", Type: plugin.TypeString, Doc: `how long to wait for an answer; default "10s" (also bounded by the endpoint's io_timeout and the call's budget)`},
		{Name: "resource", Type: plugin.TypeStringMap, Doc: "attributes added to every resource, such as { \"deployment.environment\" = \"prod\" }"},
	},
}

// Transport sends batches as OTLP/HTTP requests.
type Transport struct {
	cfg struct {
		Endpoint    string            `json:"endpoint"`
		Path        string            `json:"path"`
		Host        string            `json:"host"`
		Headers     map[string]string `json:"headers"`
		Compression string            `json:"compression"`
		Timeout     string            `json:"timeout"`
		Resource    map[string]string `json:"resource"`
	}
	timeout    time.Duration
	conn       conn
	rd         *reader
	retryAt    time.Time // no request before it (a Retry-After)
	rejected   int64     // records the receiver rejected in partial successes
	body, req  []byte
	zbuf       bytes.Buffer
	zw         *gzip.Writer
	enc        encoder
	dial       func(endpoint string) (conn, error)
	now        func() time.Time
	clock      func() bool // the clock is granted
	headerLine []byte      // the request's fixed header lines
}

// conn is what the transport needs of a connection (*plugin.Conn; tests
// give it a TCP one).
type conn interface {
	Write([]byte) error
	Read(b []byte, timeout time.Duration) (int, error)
	Close() error
}

// New returns a Transport.
func New() *Transport {
	return &Transport{dial: func(e string) (conn, error) { return plugin.Dial(e) }, now: time.Now, clock: clockGranted}
}

// clockGranted: without allow { clock = true } the sandbox's clock is a
// fixed time in the past.
func clockGranted() bool { return time.Now().After(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) }

var _ plugin.Transport = (*Transport)(nil)
var _ plugin.Configurer = (*Transport)(nil)

// Configure implements plugin.Configurer.
func (t *Transport) Configure(config []byte) error {
	if err := plugin.DecodeConfig(config, &t.cfg); err != nil {
		return err
	}
	c := &t.cfg
	if c.Endpoint == "" {
		return errors.New("endpoint is required")
	}
	if c.Path == "" {
		c.Path = "/v1/logs"
	}
	if !strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, " \r\n") {
		return fmt.Errorf("path %q must start with / and hold no space or line break", c.Path)
	}
	if c.Host == "" {
		c.Host = c.Endpoint
	}
	switch c.Compression {
	case "", "gzip", "none":
	default:
		return fmt.Errorf("unknown compression %q (want \"gzip\" or \"none\")", c.Compression)
	}
	t.timeout = 10 * time.Second
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil || d <= 0 {
			return fmt.Errorf("timeout %q is not a positive duration", c.Timeout)
		}
		t.timeout = d
	}
	h := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: logtk-otlp/%s\r\nContent-Type: application/x-protobuf\r\n", c.Path, c.Host, Info.Version)
	if c.Compression != "none" {
		h = append(h, "Content-Encoding: gzip\r\n"...)
	}
	for k, v := range c.Headers {
		if k == "" || strings.ContainsAny(k, ": \r\n") || strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("header %q: a name without spaces or colons, a value on one line", k)
		}
		switch strings.ToLower(k) {
		case "host", "content-length", "content-type", "content-encoding", "transfer-encoding", "connection":
			return fmt.Errorf("header %q is the transport's own", k)
		}
		h = fmt.Appendf(h, "%s: %s\r\n", k, v)
	}
	t.headerLine = h
	t.enc.resource = c.Resource
	return nil
}

// Open implements plugin.Transport: the connection is made at the first
// write (and again after one fails).
func (t *Transport) Open() error { return nil }

// Write implements plugin.Transport.
func (t *Transport) Write(b *plugin.Batch) error {
	if now := t.now(); now.Before(t.retryAt) {
		return plugin.Retry(fmt.Errorf("the receiver asked for no request before %s (Retry-After)", t.retryAt.UTC().Format(time.RFC3339)))
	}
	t.body = t.body[:0]
	var r record.Record
	bad := 0
	t.enc.reset()
	b.Each(func(e []byte) bool {
		if !r.Parse(e) {
			bad++
			return true
		}
		t.enc.add(&r)
		return true
	})
	if bad > 0 {
		return fmt.Errorf("%d entries are not logtk.v1.Record: the otlp transport needs the protobuf format without a schema", bad)
	}
	if t.enc.records == 0 {
		return nil
	}
	t.body = t.enc.appendRequest(t.body)
	body := t.body
	if t.cfg.Compression != "none" {
		t.zbuf.Reset()
		if t.zw == nil {
			t.zw = gzip.NewWriter(&t.zbuf)
		} else {
			t.zw.Reset(&t.zbuf)
		}
		t.zw.Write(body)
		t.zw.Close()
		body = t.zbuf.Bytes()
	}
	status, header, resp, err := t.roundTrip(body)
	if err != nil {
		t.closeConn()
		return plugin.Retry(err)
	}
	switch {
	case status >= 200 && status < 300:
		if n, msg := partialSuccess(resp); n > 0 || msg != "" {
			t.rejected += n
			plugin.Log(record.LevelWarn, fmt.Sprintf("the receiver rejected %d of %d records (%d in all): %s", n, t.enc.records, t.rejected, msg))
		}
		return nil
	case status == 429 || status == 502 || status == 503 || status == 504:
		// Without the clock the sandbox's time stands still: a wait
		// measured on it would never end, so the host's backoff alone
		// paces the retries then.
		if d, ok := retryAfter(header["retry-after"], t.now()); ok && t.clock() {
			t.retryAt = t.now().Add(d)
		}
		return plugin.Retry(fmt.Errorf("the receiver answered %d: %s", status, snippet(resp)))
	case status >= 500:
		return plugin.Retry(fmt.Errorf("the receiver answered %d: %s", status, snippet(resp)))
	}
	return fmt.Errorf("the receiver refused the batch: %d: %s", status, snippet(resp))
}

// Flush implements plugin.Transport.
func (t *Transport) Flush() error { return nil }

// Close implements plugin.Transport.
func (t *Transport) Close() error {
	t.closeConn()
	return nil
}

// Rejected returns how many records receivers rejected in partial
// successes.
func (t *Transport) Rejected() int64 { return t.rejected }

func (t *Transport) closeConn() {
	if t.conn != nil {
		t.conn.Close()
		t.conn, t.rd = nil, nil
	}
}

// roundTrip sends one request with body and reads the answer, on the
// open connection or a new one.
func (t *Transport) roundTrip(body []byte) (int, map[string]string, []byte, error) {
	if t.conn == nil {
		c, err := t.dial(t.cfg.Endpoint)
		if err != nil {
			return 0, nil, nil, err
		}
		t.conn, t.rd = c, &reader{c: c}
	}
	t.req = append(t.req[:0], t.headerLine...)
	t.req = append(t.req, "Content-Length: "...)
	t.req = strconv.AppendInt(t.req, int64(len(body)), 10)
	t.req = append(t.req, "\r\n\r\n"...)
	t.req = append(t.req, body...)
	if err := t.conn.Write(t.req); err != nil {
		return 0, nil, nil, err
	}
	t.rd.deadline = t.now().Add(t.timeout)
	t.rd.now = t.now
	status, header, resp, err := t.rd.response()
	if err != nil {
		return 0, nil, nil, err
	}
	// Bytes after the answer were not asked for: a receiver that answered
	// twice or garbles its framing, and which answer is this request's is
	// not known. The connection goes, and the batch is sent again (twice
	// rather than lost).
	if len(t.rd.buf) > 0 {
		return 0, nil, nil, fmt.Errorf("%w: %d bytes after the answer, which was not asked for", errAnswer, len(t.rd.buf))
	}
	if strings.EqualFold(header["connection"], "close") {
		t.closeConn()
	}
	return status, header, resp, nil
}

// retryAfter reads a Retry-After value: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return min(time.Duration(n)*time.Second, time.Hour), true
	}
	if at, err := time.Parse(time.RFC1123, v); err == nil {
		return min(max(at.Sub(now), 0), time.Hour), true
	}
	return 0, false
}

// snippet is the start of an answer's body, for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		return "(no text)"
	}
	return strings.ToValidUTF8(s, "?")
}

// reader reads HTTP/1.1 answers from a connection.
type reader struct {
	c        conn
	buf      []byte
	deadline time.Time
	now      func() time.Time
}

var errAnswer = errors.New("malformed HTTP answer")

// maxAnswer bounds an answer's head and body.
const maxAnswer = 1 << 20

func (r *reader) fill() error {
	if len(r.buf) > maxAnswer {
		return fmt.Errorf("%w: over %d bytes", errAnswer, maxAnswer)
	}
	wait := r.deadline.Sub(r.now())
	if wait <= 0 {
		return errors.New("no answer in time")
	}
	var tmp [16 << 10]byte
	n, err := r.c.Read(tmp[:], wait)
	if errors.Is(err, plugin.ErrTimeout) {
		return errors.New("no answer in time")
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("the receiver closed the connection before answering")
		}
		return err
	}
	r.buf = append(r.buf, tmp[:n]...)
	return nil
}

// line returns the next line without its CRLF.
func (r *reader) line() (string, error) {
	for {
		if i := bytes.Index(r.buf, []byte("\r\n")); i >= 0 {
			l := string(r.buf[:i])
			r.buf = r.buf[i+2:]
			return l, nil
		}
		if err := r.fill(); err != nil {
			return "", err
		}
	}
}

// take returns the next n bytes.
func (r *reader) take(n int) ([]byte, error) {
	if n > maxAnswer {
		return nil, fmt.Errorf("%w: a body of %d bytes", errAnswer, n)
	}
	for len(r.buf) < n {
		if err := r.fill(); err != nil {
			return nil, err
		}
	}
	b := append([]byte(nil), r.buf[:n]...)
	r.buf = r.buf[n:]
	return b, nil
}

// response reads one answer: status, headers (lower-case names) and body.
func (r *reader) response() (int, map[string]string, []byte, error) {
	for {
		l, err := r.line()
		if err != nil {
			return 0, nil, nil, err
		}
		proto, rest, ok := strings.Cut(l, " ")
		code, _, _ := strings.Cut(rest, " ")
		status, err := strconv.Atoi(code)
		if !ok || !strings.HasPrefix(proto, "HTTP/1.") || err != nil || status < 100 || status > 999 {
			return 0, nil, nil, fmt.Errorf("%w: status line %q", errAnswer, snippet([]byte(l)))
		}
		header := map[string]string{}
		for {
			h, err := r.line()
			if err != nil {
				return 0, nil, nil, err
			}
			if h == "" {
				break
			}
			k, v, ok := strings.Cut(h, ":")
			if !ok {
				return 0, nil, nil, fmt.Errorf("%w: header %q", errAnswer, snippet([]byte(h)))
			}
			header[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
		if status < 200 {
			continue // 100 Continue and the like: the answer follows
		}
		var body []byte
		switch {
		case strings.EqualFold(header["transfer-encoding"], "chunked"):
			for {
				l, err := r.line()
				if err != nil {
					return 0, nil, nil, err
				}
				size, _, _ := strings.Cut(l, ";")
				n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 32)
				if err != nil || n < 0 || len(body)+int(n) > maxAnswer {
					return 0, nil, nil, fmt.Errorf("%w: chunk size %q", errAnswer, snippet([]byte(l)))
				}
				if n == 0 {
					for { // trailers, then the blank line
						if l, err := r.line(); err != nil || l == "" {
							break
						}
					}
					break
				}
				c, err := r.take(int(n))
				if err != nil {
					return 0, nil, nil, err
				}
				body = append(body, c...)
				if _, err := r.take(2); err != nil {
					return 0, nil, nil, err
				}
			}
		case header["content-length"] != "":
			n, err := strconv.Atoi(header["content-length"])
			if err != nil || n < 0 {
				return 0, nil, nil, fmt.Errorf("%w: Content-Length %q", errAnswer, header["content-length"])
			}
			if body, err = r.take(n); err != nil {
				return 0, nil, nil, err
			}
		case status == 204 || status == 304:
		default:
			// Until the connection closes.
			header["connection"] = "close"
			for {
				if err := r.fill(); err != nil {
					break
				}
			}
			body, r.buf = r.buf, nil
		}
		return status, header, body, nil
	}
}
