package logserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // OTLP exporters compress with gzip
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/internal/otlp"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
)

// The OTLP/gRPC receiver (docs/otlp.md) serves the LogsService's Export
// with what the OTLP/HTTP receiver does for a POST: the records stored
// under the sender "otlp-<peer address>", the answer sent only once they
// are durable. A store that fails answers UNAVAILABLE (an exporter
// retries); a record that cannot be stored, INVALID_ARGUMENT (it does
// not); a message over max_request_bytes once decompressed,
// RESOURCE_EXHAUSTED, from gRPC itself.

// otlpStreams is how many calls one gRPC connection may have at once;
// otlpWindow is its flow-control windows (per stream and per
// connection): a fixed size, not grown by gRPC's bandwidth estimation.
const (
	otlpStreams = 16
	otlpWindow  = 1 << 20
)

type otlpGRPCReceiver struct {
	mu   sync.Mutex
	srv  *grpc.Server
	addr net.Addr
}

// ServeOTLPGRPC serves the otlp block's gRPC receiver on ln (TLS when
// the block says so) until Shutdown; it returns at once.
func (s *Server) ServeOTLPGRPC(ln net.Listener) error {
	o := s.cfg.OTLP
	if o == nil {
		return errors.New("logserver: the server block has no otlp block")
	}
	// Bounded, as the wire protocol's listener is: at most max_connections
	// connections, otlpStreams calls at once on each, and flow-control
	// windows that keep what one connection can make the server hold to
	// a few of its largest messages.
	ln = netutil.LimitListener(ln, s.maxConns())
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(o.MaxRequestBytes),
		grpc.MaxConcurrentStreams(otlpStreams),
		grpc.InitialWindowSize(otlpWindow),
		grpc.InitialConnWindowSize(otlpWindow),
		grpc.ReadBufferSize(32 << 10),
		grpc.WriteBufferSize(32 << 10),
		grpc.MaxHeaderListSize(64 << 10),
		grpc.ForceServerCodec(otlpCodec{}),
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute, Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if o.TLS != nil {
		tc, err := o.TLS.Build()
		if err != nil {
			return err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	r := &s.otlpGRPC
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		return errors.New("logserver: ServeOTLPGRPC called twice")
	}
	r.srv = grpc.NewServer(opts...)
	collogs.RegisterLogsServiceServer(r.srv, otlpLogsService{s: s})
	r.addr = ln.Addr()
	go r.srv.Serve(ln)
	s.log.Info("otlp listening", "grpc", ln.Addr().String(), "tls", o.TLS != nil)
	return nil
}

// OTLPGRPCAddr returns the address the OTLP/gRPC receiver serves, nil
// when none.
func (s *Server) OTLPGRPCAddr() net.Addr {
	s.otlpGRPC.mu.Lock()
	defer s.otlpGRPC.mu.Unlock()
	return s.otlpGRPC.addr
}

// close stops the receiver: the calls being served finish first (their
// records are durable or refused), new ones are refused.
func (r *otlpGRPCReceiver) close() {
	r.mu.Lock()
	srv := r.srv
	r.mu.Unlock()
	if srv != nil {
		srv.GracefulStop()
	}
}

type otlpLogsService struct {
	collogs.UnimplementedLogsServiceServer
	s *Server
}

func (l otlpLogsService) Export(ctx context.Context, req *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error) {
	s := l.s
	var addr net.Addr = &net.TCPAddr{}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr
	}
	invalid, err := s.ingestOTLP(&logs.LogsData{ResourceLogs: req.ResourceLogs}, addr)
	switch {
	case invalid != nil:
		s.otlp.Stats.Refused.Add(1)
		s.peerWarn.Warn(s.log, "otlp: request refused", "peer", addr.String(), "reason", invalid)
		return nil, status.Error(codes.InvalidArgument, "a log record cannot be stored: "+invalid.Error())
	case err != nil:
		s.otlp.Stats.Refused.Add(1)
		s.peerWarn.Warn(s.log, "otlp: request refused", "peer", addr.String(), "reason", err)
		return nil, status.Error(codes.Unavailable, "storing failed: "+err.Error())
	}
	s.otlp.Stats.Requests.Add(1)
	return &collogs.ExportLogsServiceResponse{}, nil
}

// otlpCodec is gRPC's protobuf codec taking invalid UTF-8 in strings, as
// the OTLP/HTTP receiver does (otlp.Unmarshal).
type otlpCodec struct{}

func (otlpCodec) Name() string { return "proto" }

func (otlpCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("otlp codec: %T is not a protobuf message", v)
	}
	return proto.Marshal(m)
}

func (otlpCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("otlp codec: %T is not a protobuf message", v)
	}
	return otlp.Unmarshal(data, m)
}
