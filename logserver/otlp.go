package logserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/otlp"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/wire"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	"golang.org/x/net/netutil"
)

// The OTLP/HTTP receiver (docs/otlp.md) stores the records of a request
// in the same store, under the sender "otlp-<peer address>", and answers
// 200 only once they are durable (synced, with fsync = "batch"): an
// exporter that retries what was not answered gets each record stored
// at least once.

// OTLPStats counts what the OTLP receiver took.
type OTLPStats struct {
	Requests atomic.Int64 // answered 200
	Records  atomic.Int64 // stored
	Refused  atomic.Int64 // requests answered 4xx or 5xx
}

type otlpReceiver struct {
	mu    sync.Mutex
	srv   *http.Server
	addr  net.Addr
	Stats OTLPStats
}

// ServeOTLP serves the otlp block's receiver on ln (made TLS when the
// block says so) until Shutdown; it returns at once.
func (s *Server) ServeOTLP(ln net.Listener) error {
	o := s.cfg.OTLP
	if o == nil {
		return errors.New("logserver: the server block has no otlp block")
	}
	// At most max_connections at once, as the wire protocol's listener:
	// more wait in the kernel's queue until one ends.
	ln = netutil.LimitListener(ln, s.maxConns())
	if o.TLS != nil {
		tc, err := o.TLS.Build()
		if err != nil {
			return err
		}
		ln = tls.NewListener(ln, tc)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/logs", s.otlpLogs)
	r := &s.otlp
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		return errors.New("logserver: ServeOTLP called twice")
	}
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, IdleTimeout: 5 * time.Minute, MaxHeaderBytes: 64 << 10}
	r.addr = ln.Addr()
	go r.srv.Serve(ln)
	s.log.Info("otlp listening", "http", ln.Addr().String(), "tls", o.TLS != nil)
	return nil
}

// OTLPAddr returns the address the OTLP receiver serves, nil when none.
func (s *Server) OTLPAddr() net.Addr {
	s.otlp.mu.Lock()
	defer s.otlp.mu.Unlock()
	return s.otlp.addr
}

// OTLPStats returns the OTLP receiver's counts.
func (s *Server) OTLPStats() *OTLPStats { return &s.otlp.Stats }

func (r *otlpReceiver) close(ctx context.Context) {
	r.mu.Lock()
	srv := r.srv
	r.mu.Unlock()
	if srv != nil {
		srv.Shutdown(ctx)
	}
}

// otlpLogs handles POST /v1/logs.
func (s *Server) otlpLogs(w http.ResponseWriter, req *http.Request) {
	o := s.cfg.OTLP
	ct := req.Header.Get("Content-Type")
	fail := func(code int, msg string) {
		s.otlp.Stats.Refused.Add(1)
		s.peerWarn.Warn(s.log, "otlp: request refused", "peer", req.RemoteAddr, "status", code, "reason", msg)
		http.Error(w, msg, code)
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		fail(http.StatusMethodNotAllowed, "POST an ExportLogsServiceRequest to /v1/logs")
		return
	}
	body, err := otlp.Decode(req.Body, ct, req.Header.Get("Content-Encoding"), int64(o.MaxRequestBytes))
	switch {
	case errors.Is(err, otlp.ErrTooLarge):
		fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("the request is over max_request_bytes (%d)", o.MaxRequestBytes))
		return
	case err != nil && strings.Contains(err.Error(), "is not supported"):
		fail(http.StatusUnsupportedMediaType, err.Error())
		return
	case err != nil:
		fail(http.StatusBadRequest, err.Error())
		return
	}
	if invalid, err := s.ingestOTLP(body, remoteAddr(req.RemoteAddr)); invalid != nil {
		fail(http.StatusBadRequest, "a log record cannot be stored: "+invalid.Error())
		return
	} else if err != nil {
		// Not stored: the exporter retries (503 is retryable).
		w.Header().Set("Retry-After", "1")
		fail(http.StatusServiceUnavailable, "storing failed: "+err.Error())
		return
	}
	s.otlp.Stats.Requests.Add(1)
	// An empty ExportLogsServiceResponse: no partial_success, as every
	// record was stored.
	if strings.HasPrefix(strings.ToLower(ct), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	} else {
		w.Header().Set("Content-Type", "application/x-protobuf")
	}
}

// ingestOTLP stores the records of an export request, each under its
// application, and returns once they are durable. invalid is a record
// that cannot be stored (nothing is); err a store that failed (the
// exporter should retry).
func (s *Server) ingestOTLP(body *logs.LogsData, peer net.Addr) (invalid, err error) {
	o := s.cfg.OTLP
	b := s.newBatcher("otlp", peer)
	n := 0
	otlp.Each(body, time.Now(), func(service string, rec []byte) {
		if err := irecord.Validate(rec); err != nil && invalid == nil {
			invalid = err // nothing stored that a reader could not read back
		}
		app := o.Application
		if o.ByServiceName && wire.ValidName(service) {
			app = service
		}
		b.byApp[app] = entries.Append(b.byApp[app], rec)
		n++
	})
	if invalid != nil {
		return invalid, nil
	}
	if n > 0 {
		if err := s.storeBatches(b); err != nil {
			return nil, err
		}
	}
	s.otlp.Stats.Records.Add(int64(n))
	return nil, nil
}

// storeBatches stores and syncs a batcher's batches, one per
// application, passing them on as a wire batch would be. The store keeps
// each sender's batches in increasing id order and drops one whose id is
// not above the last: ids are taken and batches appended under one lock,
// so that concurrent requests or connections of one peer (one sender)
// never reach the store out of order. The syncs run outside it.
func (s *Server) storeBatches(b *ingestBatch) error {
	var errs []error
	for app, batch := range b.byApp {
		if len(batch) == 0 {
			continue
		}
		stamp := irecord.AppendServerStamp(nil, b.sender, b.host, app)
		s.ingestMu.Lock()
		t, dup, err := s.store.AppendStamped(app, b.sender, "logtk.v1.Record", syslogIDs.Add(1), batch, stamp)
		s.ingestMu.Unlock()
		if err == nil && dup {
			err = fmt.Errorf("batch of %s/%s taken for a duplicate", app, b.sender) // cannot happen under ingestMu
		}
		if err == nil {
			err = s.store.Commit(t)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if s.onStored != nil {
			s.onStored(app, b.sender, "logtk.v1.Record", batch, stamp)
		}
	}
	return errors.Join(errs...)
}

// remoteAddr parses an http.Request's RemoteAddr.
func remoteAddr(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		return &net.TCPAddr{}
	}
	return a
}
