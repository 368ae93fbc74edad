package otlp

import (
	"io"
	"testing"
	"time"
)

// bytesConn hands out data a few bytes at a time, then io.EOF.
type bytesConn struct {
	data []byte
	step int
}

func (c *bytesConn) Write([]byte) error { return nil }
func (c *bytesConn) Close() error       { return nil }
func (c *bytesConn) Read(b []byte, _ time.Duration) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(b, c.data[:min(len(c.data), c.step)])
	c.data = c.data[n:]
	return n, nil
}

// FuzzAnswer: whatever a receiver answers, reading it ends (an answer or
// an error), within the size bound, and a 2xx body's partial success is
// read without panic.
func FuzzAnswer(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 7)
	f.Add([]byte("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 3)
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\x0a\x02\x08\x02"), 64)
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\nuntil close"), 1)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n"), 9)
	f.Fuzz(func(t *testing.T, data []byte, step int) {
		step = max(1, step%4096)
		now := time.Unix(0, 0)
		r := &reader{c: &bytesConn{data: data, step: step}, deadline: now.Add(time.Second), now: func() time.Time { return now }}
		status, _, body, err := r.response()
		if err == nil {
			if status < 200 || status > 999 {
				t.Fatalf("status %d", status)
			}
			if len(body) > maxAnswer+16<<10 {
				t.Fatalf("a body of %d bytes", len(body))
			}
			partialSuccess(body)
		}
		retryAfter(string(data[:min(len(data), 40)]), now)
	})
}
