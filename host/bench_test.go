package host

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logtk/logtk/plugins/builtin"

	kafkatransport "github.com/logtk/logtk/plugins/kafka"
	"github.com/logtk/logtk/record"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hashicorp/go-hclog"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/pipeline"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/server"
	"github.com/logtk/logtk/logserver"

	"github.com/logtk/logtk/sdk/plugintest"
)

// countingOutput counts records and bytes and keeps nothing: the benchmark
// measures the host, not an output.
type countingOutput struct{ records, bytes atomic.Int64 }

func (c *countingOutput) WriteBatch(recs [][]byte) error {
	c.records.Add(int64(len(recs)))
	for _, r := range recs {
		c.bytes.Add(int64(len(r)))
	}
	return nil
}
func (c *countingOutput) Close() error { return nil }

// BenchmarkIngest measures records/s from worker processes through the
// host (IPC read, validation, stamping, queueing) into an Output that only
// counts, for one and for four workers: "sdk" workers encode every record
// with the SDK (they share the 2 cores with the host, so their encoding
// is in the figure), "blast" workers publish one pre-encoded record over
// and over in the ring (the host's own capacity), "socket" workers use the
// SDK without a ring. Each op is one record; the time includes starting
// the worker processes, which large b.N amortises.
func BenchmarkIngest(b *testing.B) {
	for _, tc := range []struct {
		mode    string
		workers int
	}{{"sdk", 1}, {"sdk", 4}, {"blast", 4}, {"socket", 4}} {
		b.Run(fmt.Sprintf("%s/workers=%d", tc.mode, tc.workers), func(b *testing.B) {
			workers := tc.workers
			per := max(b.N/workers, 1)
			out := &countingOutput{}
			mode := "flood"
			if tc.mode == "blast" {
				mode = "blast"
			}
			w := testWorker("flood", mode, map[string]string{"LOGTK_TEST_N": fmt.Sprint(per)})
			if tc.mode == "socket" {
				w.RingBytes = -1
			}
			w.Count = workers
			h, err := New(&config.Config{Workers: []config.WorkerConfig{w}}, Options{Output: out, Logger: hclog.NewNullLogger()})
			if err != nil {
				b.Fatal(err)
			}
			el, u := measureRun(b, h)
			n := out.records.Load()
			if n < int64(per*workers) {
				b.Fatalf("%d records arrived, want at least %d", n, per*workers)
			}
			u.report(b, n)
			b.ReportMetric(float64(n)/el.Seconds(), "records/s")
			b.ReportMetric(float64(out.bytes.Load())/el.Seconds()/1e6, "MB/s")
		})
	}
}

// BenchmarkPipeline measures records/s through a Wasm format stage and the
// Wasm file transport (fsync "never", so the disk is not what is measured)
// per batch size; "marks" is the protobuf run with the file transport
// keeping marks (a durable ingest's pipeline). The formatters are the
// built-in modules (from C), the file transport the Go plugin. Each op
// is one record.
func BenchmarkPipeline(b *testing.B) {
	for _, format := range []string{"protobuf", "json", "text", "protobuf/marks"} {
		format, keepMarks := strings.CutSuffix(format, "/marks")
		for _, size := range []int{64, 512} {
			name := fmt.Sprintf("%s/batch=%d", format, size)
			if keepMarks {
				name += "/marks"
			}
			b.Run(name, func(b *testing.B) {
				dir := b.TempDir()
				plug := builtin.Path(format)
				if _, ok := builtin.Module(format); !ok {
					plug = plugintest.Build(b, "../plugins/"+format+"/plugin")
				}
				cfg := &config.Config{
					Formats: []config.FormatConfig{{Name: format, Plugin: plug}},
					Transports: []config.TransportConfig{{Name: "file", Plugin: builtin.Path("file"), Format: format,
						Config: []byte(fmt.Sprintf(`{"path":%q,"fsync":"never","framing":"length-prefixed"}`, dir+"/out")),
						Allow:  config.Allow{Directories: []string{dir}}}},
					DeadLetterDir: dir + "/dead",
				}
				p, err := pipeline.New(context.Background(), pipeline.Options{Formats: cfg.Formats, Transports: cfg.Transports, DeadLetterDir: cfg.DeadLetterDir, KeepMarks: keepMarks})
				if err != nil {
					b.Fatal(err)
				}
				p.Vouch(func(string, uint32) (uint64, bool) { return 0, false })
				recs := plugintest.SampleRecords()[:2]
				batch := make([][]byte, size)
				for i := range batch {
					batch[i] = recs[i%2]
				}
				var marks []pipeline.Mark
				if keepMarks {
					marks = []pipeline.Mark{{Worker: "api", Index: 0}, {Worker: "api", Index: 1}}
				}
				b.ResetTimer()
				for n := 0; n < b.N; n += size {
					for i := range marks {
						marks[i].Seq = uint64(n + size)
					}
					p.WriteBatchMarked(batch, marks)
				}
				p.Close()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkNetworkEndToEnd measures records/s and MB/s from 4 worker
// processes through the host, the Wasm protobuf formatter and the Wasm
// network transport to a log server on loopback that acknowledges each
// batch once it is in its files ("fsync=none") or once it is synced to
// disk ("fsync=batch"). Each op is one record.
//
// "slow-server" is the overload case: the server takes 5 ms per batch
// (about 0.1 M records/s) while the workers log as fast as they can; what
// it shows is the host's peak memory, which the bounded queues, ring and
// window keep flat whatever the backlog.
func BenchmarkNetworkEndToEnd(b *testing.B) {
	for _, fsync := range []string{"none", "batch"} {
		b.Run("fsync="+fsync, func(b *testing.B) { benchEndToEnd(b, fsync, 0, "") })
	}
	// The durable ingest (a ring file and journal in a runtime
	// directory, the ring's space given back only once settled) beside
	// the same run without it, with and without a spool.
	for _, spool := range []bool{false, true} {
		for _, durable := range []bool{false, true} {
			name := fmt.Sprintf("durable=%v/spool=%v", durable, spool)
			b.Run(name, func(b *testing.B) {
				runtime := ""
				if durable {
					runtime = runtimeDirB(b)
				}
				benchEndToEndOpts(b, "none", 0, runtime, spool)
			})
		}
	}
	b.Run("slow-server", func(b *testing.B) { benchEndToEnd(b, "none", 5*time.Millisecond, "") })
}

// runtimeDirB is a runtime directory on a memory file system where there
// is one (/dev/shm), as the durable ingest's default is.
func runtimeDirB(b *testing.B) string {
	dir, err := os.MkdirTemp("/dev/shm", "logtk-bench-")
	if err != nil {
		return filepath.Join(b.TempDir(), "run")
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// statsServer is what benchEndToEnd needs of a log server.
type statsServer interface {
	Addr() net.Addr
	Stats() (batches, records, duplicates int64)
}

// slowServer is a log server whose store takes delay per batch.
type slowServer struct {
	ln  net.Listener
	srv *server.Server
}

func (s *slowServer) Addr() net.Addr { return s.ln.Addr() }
func (s *slowServer) Stats() (int64, int64, int64) {
	return s.srv.Stats.Batches.Load(), s.srv.Stats.Records.Load(), s.srv.Stats.Duplicates.Load()
}

func newSlowServer(b *testing.B, dir string, delay time.Duration) *slowServer {
	st, err := server.OpenStore(server.StoreOptions{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := server.New(server.Options{Tokens: [][]byte{[]byte("tok")}, Store: st, Logger: hclog.NewNullLogger(),
		OnStored: func(string, string, string, []byte, []byte) { time.Sleep(delay) }}) // a slow disk, not synchronisation
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close(context.Background()); st.Close() })
	return &slowServer{ln: ln, srv: srv}
}

func benchEndToEnd(b *testing.B, fsync string, slow time.Duration, runtimeDir string) {
	benchEndToEndOpts(b, fsync, slow, runtimeDir, false)
}

func benchEndToEndOpts(b *testing.B, fsync string, slow time.Duration, runtimeDir string, spool bool) {
	dir := b.TempDir()
	var ls statsServer
	if slow > 0 {
		ls = newSlowServer(b, dir, slow)
	} else {
		ls = newLogServerB(b, dir, fsync)
	}
	per := max(b.N/4, 1)
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": fmt.Sprint(per)})
	w.Count = 4
	cfg := &config.Config{
		Workers: []config.WorkerConfig{w},
		Formats: []config.FormatConfig{{Name: "pb", Plugin: builtin.Path("protobuf")}},
		Transports: []config.TransportConfig{{
			Name: "net", Plugin: builtin.Path("network"), Format: "pb",
			Config: []byte(`{"endpoint":"logserver","token":"tok","sender":"bench","application":"app"}`),
			Allow:  config.Allow{Endpoints: map[string]config.EndpointConfig{"logserver": {Address: ls.Addr().String()}}},
		}},
		DeadLetterDir: b.TempDir(),
		RuntimeDir:    runtimeDir,
	}
	if spool {
		cfg.Transports[0].Spool = &config.SpoolConfig{Dir: b.TempDir(), MaxBytes: 1 << 30, WhenFull: "block"}
	}
	h, err := New(cfg, Options{Logger: hclog.NewNullLogger()})
	if err != nil {
		b.Fatal(err)
	}
	el, u := measureRun(b, h)
	_, records, _ := ls.Stats()
	if records < int64(per*4) {
		b.Fatalf("%d records stored, want at least %d", records, per*4)
	}
	u.report(b, records)
	b.ReportMetric(float64(records)/el.Seconds(), "records/s")
	var stored int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && filepath.Ext(fi.Name()) == ".pb" {
			stored += fi.Size()
		}
		return nil
	})
	b.ReportMetric(float64(stored)/el.Seconds()/1e6, "MB/s")
}

func newLogServerB(b *testing.B, dir, fsync string) *logserver.Server {
	ls, err := startServer(&config.ServerConfig{Listen: "127.0.0.1:0", Dir: dir, Tokens: [][]byte{[]byte("tok")},
		Fsync: fsync, MaxBytes: 1 << 30}, hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ls.Shutdown(context.Background()) })
	return ls
}

// measureRun runs h to its end with the benchmark timer on, and returns
// the elapsed time and the usage measured around it.
func measureRun(b *testing.B, h *Host) (time.Duration, usage) {
	b.ResetTimer()
	u := startUsage()
	start := time.Now()
	h.Start()
	<-h.Done()
	el := time.Since(start)
	b.StopTimer()
	return el, u
}

// usage measures the CPU time of this process (the host, and the log
// server when it runs in-process) and of its waited-for children (the
// workers), and this process's peak resident memory, over a benchmark.
type usage struct{ cpu time.Duration }

func rusageCPU(who int) time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startUsage() usage {
	// Return what earlier benchmarks left to the OS, then reset the peak
	// RSS (VmHWM) to the current RSS (writing 5 to clear_refs).
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	return usage{cpu: rusageCPU(syscall.RUSAGE_SELF) + rusageCPU(syscall.RUSAGE_CHILDREN)}
}

// report adds cpu-ns/record (host and workers together, on all cores) and
// host-peak-MB (the host process's peak RSS during the run).
func (u usage) report(b *testing.B, records int64) {
	cpu := rusageCPU(syscall.RUSAGE_SELF) + rusageCPU(syscall.RUSAGE_CHILDREN) - u.cpu
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(max(records, 1)), "cpu-ns/record")
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			b.ReportMetric(kb/1024, "host-peak-MB")
		}
	}
}

// BenchmarkKafka: records through Kafka beside the wire protocol, in one
// run. kfake (franz-go's in-process Kafka, 3 brokers, 8 partitions) on
// loopback measures logtk's client path, not Kafka:
//
//   - wire: 4 workers -> protobuf -> network transport -> log server
//     (fsync none), as NetworkEndToEnd/fsync=none;
//   - produce: 4 workers -> protobuf -> kafka transport -> kfake, until
//     Kafka acknowledged every record;
//   - consume: a log server (fsync none) reading b.N records of the kafka
//     transport's form from the topic into its store.
func BenchmarkKafka(b *testing.B) {
	b.Run("wire", func(b *testing.B) { benchEndToEnd(b, "none", 0, "") })
	b.Run("produce", func(b *testing.B) {
		c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(8, "logs"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		e := &kafkaEnv{c: c, topic: "logs", group: "servers"}
		per := max(b.N/4, 1)
		w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": fmt.Sprint(per)})
		w.Count = 4
		cfg := &config.Config{
			Workers:       []config.WorkerConfig{w},
			Formats:       []config.FormatConfig{{Name: "pb", Plugin: plugintest.Build(b, "../plugins/protobuf/plugin")}},
			Transports:    []config.TransportConfig{kafkaTransport(b, e)},
			DeadLetterDir: b.TempDir(),
		}
		h, err := New(cfg, Options{Logger: hclog.NewNullLogger()})
		if err != nil {
			b.Fatal(err)
		}
		el, u := measureRun(b, h)
		if un := h.Undelivered(); un.Any() {
			b.Fatalf("undelivered: %+v", un)
		}
		records := h.routed.Load()
		u.report(b, records)
		b.ReportMetric(float64(records)/el.Seconds(), "records/s")
	})
	b.Run("consume", func(b *testing.B) {
		c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(8, "logs"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		e := &kafkaEnv{c: c, topic: "logs", group: "servers"}
		n := produceForBench(b, e, max(b.N, 512))
		dir := b.TempDir()
		b.ResetTimer()
		u := startUsage()
		start := time.Now()
		srv, err := logserver.New(&config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: dir, Tokens: [][]byte{[]byte("0123456789abcdef")}, Fsync: "none", MaxBytes: 1 << 30,
			Kafka: &config.KafkaConfig{Brokers: e.addrs(), Topics: []string{e.topic}, Group: e.group, ClientID: "bench", DialTimeout: 5 * time.Second, Application: "kafka", SessionTimeout: 10 * time.Second}}},
			logserver.Options{Logger: hclog.NewNullLogger()})
		if err != nil {
			b.Fatal(err)
		}
		if err := srv.ServeKafka(); err != nil {
			b.Fatal(err)
		}
		for srv.KafkaStats().Stored.Load() < int64(n) {
			time.Sleep(time.Millisecond) // polling the server's count: the measurement's end
		}
		el := time.Since(start)
		b.StopTimer()
		srv.Shutdown(context.Background())
		u.report(b, int64(n))
		b.ReportMetric(float64(n)/el.Seconds(), "records/s")
	})
}

// produceForBench produces n records as the kafka transport does (16
// worker instances, batches of 512 records each), 200-byte records.
func produceForBench(b *testing.B, e *kafkaEnv, n int) int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.addrs()...), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const instances, batch = 16, 512
	msg := strings.Repeat("m", 120)
	done := 0
	for bid := uint64(1); done < n; bid++ {
		var rs []*kgo.Record
		for i := 0; i < instances && done < n; i++ {
			k := min(batch, n-done)
			for j := range k {
				seq := (bid-1)*batch + uint64(j) + 1
				rec := irecord.AppendHead(nil, time.Unix(1700000000, 0), record.LevelInfo, msg, "bench")
				rec = irecord.AppendStamp(rec, &irecord.Stamp{Worker: "w", WorkerIndex: uint32(i), Seq: seq, Incarnation: 1})
				rs = append(rs, &kgo.Record{Topic: e.topic, Key: fmt.Appendf(nil, "bench/w#%d", i), Value: rec, Headers: []kgo.RecordHeader{
					{Key: kafkatransport.HeaderSender, Value: []byte("bench")},
					{Key: kafkatransport.HeaderApplication, Value: []byte("app")},
					{Key: kafkatransport.HeaderBatch, Value: strconv.AppendUint(nil, bid, 10)},
					{Key: kafkatransport.HeaderWorker, Value: []byte("w")},
					{Key: kafkatransport.HeaderIndex, Value: strconv.AppendInt(nil, int64(i), 10)},
					{Key: kafkatransport.HeaderSeq, Value: strconv.AppendUint(nil, seq, 10)},
					{Key: kafkatransport.HeaderPart, Value: fmt.Appendf(nil, "%d/%d", j, k)},
				}})
			}
			done += k
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	return done
}
