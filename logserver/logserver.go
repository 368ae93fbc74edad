// Package logserver is logtk's log server (logtk-host serve): it
// receives wire protocol v1 (docs/wire-protocol.md) from network
// transports and stores every batch exactly once, one directory per
// sending application (internal/server's store). When the configuration
// also has transports, every stored batch of logtk.v1.Record records goes
// on through those stages, as a host's records do (a live text tail,
// forwarding): the store comes first and is what acknowledgements wait
// for.
//
// # Lifecycle
//
//	srv, err := logserver.New(cfg, logserver.Options{...}) // open (and recover) the store, compile the stages
//	err = srv.ListenAndServe()             // or srv.Serve(ln); blocks until Shutdown
//	err = srv.Shutdown(ctx)                // clients told, batches finished, store synced and closed
//
// As with net/http, Serve returns ErrServerClosed once Shutdown has
// begun, and a Server serves one listener for its life.
package logserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/metrics"
	"github.com/logtk/logtk/internal/pipeline"
	"github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/server"
)

// ErrServerClosed is what Serve and ListenAndServe return after Shutdown.
var ErrServerClosed = errors.New("logserver: server closed")

// Server is a log server. Its methods are safe for concurrent use.
type Server struct {
	cfg    *config.ServerConfig
	log    hclog.Logger
	srv    *server.Server
	store  *server.Store
	stages *pipeline.Pipeline // optional stages after the store

	onStored func(app, sender, format string, batch, stamp []byte) // metrics and stages, nil without
	metrics  *serverMetrics
	syslog   syslogListeners
	otlp     otlpReceiver
	otlpGRPC otlpGRPCReceiver
	kafka    kafkaReader
	// kafkaHook, when set (tests), is called at the points of a Kafka
	// cycle ("staged", "committed"); an error ends the cycle there, as a
	// crash would.
	kafkaHook func(point string) error
	// kafkaSpan is kafkaPartialSpan (tests make it smaller).
	kafkaSpan int64
	ingestMu  sync.Mutex      // syslog and OTLP batches' ids and appends (storeBatches)
	peerWarn  server.QuietLog // what peers do wrong (refused requests, skipped messages)

	mu       sync.Mutex
	ln       net.Listener
	serving  chan struct{} // closed when Serve has its listener
	served   chan struct{} // closed when Serve returned
	shutdown bool
}

// Options configure New. The zero value is valid.
type Options struct {
	// Logger receives the server's log. Default: none.
	Logger hclog.Logger
	// Metrics, when set, gets the server's metrics registered with it
	// (docs/metrics.md): connections, batches, records and duplicates,
	// bytes stored per application, fsync latency, and its stages'.
	Metrics prometheus.Registerer
}

// New opens the store of cfg.Server (recovering what a crash left) and
// compiles cfg's stages. It does not listen.
func New(cfg *config.Config, o Options) (*Server, error) {
	if cfg.Server == nil {
		return nil, errors.New("the configuration has no server block")
	}
	sc := cfg.Server
	logger := o.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	var m *serverMetrics
	var pm *metrics.Pipeline
	if o.Metrics != nil {
		m = newServerMetrics()
		if err := o.Metrics.Register(m); err != nil {
			return nil, fmt.Errorf("logserver: metrics: %w", err)
		}
		pm = metrics.NewPipeline(o.Metrics)
	}
	var p *pipeline.Pipeline
	if len(cfg.Transports) > 0 {
		var err error
		// The server has no record stream of its own: its stages'
		// reports go to its log, at their level.
		p, err = pipeline.New(context.Background(), pipeline.Options{
			Formats: cfg.Formats, Transports: cfg.Transports, DeadLetterDir: cfg.DeadLetterDir,
			Logger: logger.Named("pipeline"), Metrics: pm,
		})
		if err != nil {
			return nil, err
		}
	}
	store, err := server.OpenStore(server.StoreOptions{Dir: sc.Dir, Fsync: sc.Fsync != "none", MaxBytes: sc.MaxBytes, MaxOpen: sc.MaxOpenApplications,
		OnSync: m.observeSync})
	if err != nil {
		if p != nil {
			p.Close()
		}
		return nil, err
	}
	opts := server.Options{Tokens: sc.Tokens, Store: store, MaxFrameBytes: sc.MaxFrameBytes,
		MaxInFlight: sc.MaxInFlight, MaxConns: sc.MaxConns, MaxUnauthenticated: sc.MaxUnauthenticated,
		Heartbeat: sc.Heartbeat, AuthTimeout: sc.AuthTimeout, Logger: logger}
	var stages func(app, sender, format string, batch, stamp []byte)
	if p != nil {
		stages = onStored(p, logger)
	}
	var stored func(app, sender, format string, batch, stamp []byte)
	if m != nil || stages != nil {
		stored = func(app, sender, format string, batch, stamp []byte) {
			m.stored(app, len(batch))
			if stages != nil {
				stages(app, sender, format, batch, stamp)
			}
		}
		opts.OnStored = stored
	}
	srv := &Server{cfg: sc, log: logger, srv: server.New(opts), store: store, stages: p, kafkaSpan: kafkaPartialSpan,
		serving: make(chan struct{}), served: make(chan struct{}), onStored: stored, metrics: m}
	if m != nil {
		m.srv = srv
	}
	return srv, nil
}

// ListenAndServe listens on the configuration's address (with its TLS),
// and on its syslog and OTLP addresses when it has those blocks, and
// serves.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return err
	}
	if sl := s.cfg.Syslog; sl != nil {
		var tcp net.Listener
		var udp net.PacketConn
		if sl.TCP != "" {
			if tcp, err = net.Listen("tcp", sl.TCP); err != nil {
				ln.Close()
				return fmt.Errorf("syslog: %w", err)
			}
		}
		if sl.UDP != "" {
			if udp, err = net.ListenPacket("udp", sl.UDP); err != nil {
				ln.Close()
				if tcp != nil {
					tcp.Close()
				}
				return fmt.Errorf("syslog: %w", err)
			}
		}
		if err := s.ServeSyslog(tcp, udp); err != nil {
			ln.Close()
			return err
		}
	}
	if o := s.cfg.OTLP; o != nil && o.HTTP != "" {
		hl, err := net.Listen("tcp", o.HTTP)
		if err != nil {
			ln.Close()
			return fmt.Errorf("otlp: %w", err)
		}
		if err := s.ServeOTLP(hl); err != nil {
			ln.Close()
			return err
		}
	}
	if o := s.cfg.OTLP; o != nil && o.GRPC != "" {
		gl, err := net.Listen("tcp", o.GRPC)
		if err != nil {
			ln.Close()
			return fmt.Errorf("otlp grpc: %w", err)
		}
		if err := s.ServeOTLPGRPC(gl); err != nil {
			ln.Close()
			return err
		}
	}
	if s.cfg.Kafka != nil {
		if err := s.ServeKafka(); err != nil {
			ln.Close()
			return err
		}
	}
	return s.Serve(ln)
}

// Serve serves clients on ln, made TLS when the configuration says so,
// until Shutdown; then it returns ErrServerClosed. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.TLS != nil {
		tc, err := s.cfg.TLS.Build()
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, tc)
	}
	s.mu.Lock()
	switch {
	case s.shutdown:
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	case s.ln != nil:
		s.mu.Unlock()
		ln.Close()
		return errors.New("logserver: Serve called twice")
	}
	s.ln = ln
	close(s.serving)
	s.mu.Unlock()
	defer close(s.served)
	s.log.Info("log server listening", "address", ln.Addr().String(), "dir", s.cfg.Dir, "fsync", s.cfg.Fsync, "tls", s.cfg.TLS != nil)
	err := s.srv.Serve(ln)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return ErrServerClosed
	}
	return err
}

// Addr returns the address Serve listens on, waiting until it does (nil
// if the server is shut down first).
func (s *Server) Addr() net.Addr {
	select {
	case <-s.serving:
		return s.ln.Addr()
	case <-s.served:
		return nil
	}
}

// Ready reports whether the server serves: listening, not shut down.
func (s *Server) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln != nil && !s.shutdown
}

// maxConns is the server block's max_connections, which bounds each
// listener's connections (the wire protocol's, syslog's TCP and OTLP's).
func (s *Server) maxConns() int {
	if s.cfg.MaxConns == 0 {
		return 4096 // the wire protocol's default
	}
	return s.cfg.MaxConns
}

// Stats returns the batches, records and duplicates stored so far.
func (s *Server) Stats() (batches, records, duplicates int64) {
	return s.srv.Stats.Batches.Load(), s.srv.Stats.Records.Load(), s.srv.Stats.Duplicates.Load()
}

// Shutdown stops the server: clients are told it is shutting down,
// batches being written finish (until ctx ends), the store is synced and
// closed, and the stages drain and close. Serve returns ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	serving := s.ln != nil
	s.mu.Unlock()
	err := s.srv.Close(ctx)
	s.syslog.close()
	s.otlp.close(ctx)
	s.otlpGRPC.close()
	s.kafka.close()
	if serving {
		<-s.served
	}
	if s.stages != nil {
		err = errors.Join(err, s.stages.Close())
	}
	return errors.Join(err, s.store.Close())
}

// onStored passes each stored batch of records on to the stages, stamped
// as the store keeps it.
func onStored(p *pipeline.Pipeline, logger hclog.Logger) func(app, sender, format string, batch, stamp []byte) {
	var warned sync.Map
	var stamped []byte // the records of a batch with their stamp, reused
	var stampedMu sync.Mutex
	return func(app, sender, format string, batch, stamp []byte) {
		if format != "logtk.v1.Record" {
			if _, seen := warned.LoadOrStore(app+"/"+sender, true); !seen {
				logger.Warn("records are not logtk.v1.Record: stored, not passed to the stages", "application", app, "sender", sender, "format", format)
			}
			return
		}
		var recs [][]byte
		var bad int
		var firstErr error
		// The stages see each record as the store keeps it, stamped
		// with where it came from. Connections call this at once: the
		// buffer is the pipeline's for the time of WriteBatch, which
		// copies what it is given.
		stampedMu.Lock()
		defer stampedMu.Unlock()
		n, _ := entries.Count(batch)
		stamped = slices.Grow(stamped[:0], len(batch)+n*len(stamp))
		entries.Each(batch, func(e []byte) {
			if err := record.Validate(e); err != nil {
				if bad++; firstErr == nil {
					firstErr = err
				}
				return
			}
			start := len(stamped)
			stamped = append(append(stamped, e...), stamp...)
			recs = append(recs, stamped[start:len(stamped):len(stamped)])
		})
		if bad > 0 {
			logger.Warn("malformed records: stored, not passed to the stages", "application", app, "sender", sender, "records", bad, "first_error", firstErr)
		}
		p.WriteBatch(recs)
	}
}
