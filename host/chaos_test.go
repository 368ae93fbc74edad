package host

import (
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/logtk/logtk/config"
)

// cutter is a TCP proxy whose connections can be cut at any moment.
type cutter struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cuts   int
}

func newCutter(t *testing.T, target string) *cutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); c.cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.DialTimeout("tcp", target, 2*time.Second)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return c
}

// cut closes every proxied connection, wherever the bytes are.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
	c.cuts++
}

// TestNetworkChaos: records from 4 workers (1,000,000 in all; 100,000
// under the race detector) through the Wasm protobuf formatter and network
// transport, while the server process is killed (SIGKILL) and restarted 5
// times and the connection is cut at random points: every record is stored
// exactly once, in per-worker order.
func TestNetworkChaos(t *testing.T) {
	perWorker := 250_000
	if raceEnabled {
		perWorker = 25_000
	}
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d", seed)

	ls := newLogServer(t, false)
	ls.process = true
	ls.start()
	proxy := newCutter(t, ls.addr)
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": itoa(perWorker)})
	w.Count = 4
	cfg := networkConfig(t, ls, w)
	cfg.Transports[0].Allow.Endpoints["logserver"] = config.EndpointConfig{Address: proxy.ln.Addr().String(), DialTimeout: time.Second, IOTimeout: 2 * time.Second}
	h, err := New(cfg, Options{Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	restarts := 0
	done := false
	for !done && (restarts < 5 || proxy.cuts < 5) {
		// Wait a random while, up to 100 ms, or until the host is done.
		// (Up to 300 ms left too little chaos once a million records
		// took ~3 s: 2 events in a run, found by make test.)
		select {
		case <-h.Done():
			done = true
			continue
		case <-time.After(time.Duration(rng.IntN(100)) * time.Millisecond):
		}
		if restarts < 5 && rng.IntN(2) == 0 {
			ls.stop()
			ls.start()
			restarts++
		} else {
			proxy.cut()
		}
	}
	waitDone(t, h, 5*time.Minute)
	t.Logf("%d server restarts and %d connection cuts during the run", restarts, proxy.cuts)
	if restarts+proxy.cuts < 3 {
		t.Errorf("the run ended before enough chaos (%d restarts, %d cuts): raise the record count", restarts, proxy.cuts)
	}
	checkExactlyOnce(t, ls.stored(t, "app"), 4, perWorker)
}

func itoa(n int) string {
	b := []byte{}
	if n == 0 {
		return "0"
	}
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
