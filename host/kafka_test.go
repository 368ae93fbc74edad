package host

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/logread"
	"github.com/logtk/logtk/logserver"
	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/sdk/plugintest"
)

// kafkaCluster starts an in-process Kafka cluster (kfake) of n brokers
// with topic "logs" in the given number of partitions.
func kafkaCluster(t *testing.T, brokers int, partitions int32) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(brokers), kfake.SeedTopics(partitions, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// kafkaTransport is the kafka transport block producing to c's "logs"
// topic as sender "h1", application "app".
func kafkaTransport(t *testing.T, c *kfake.Cluster) config.TransportConfig {
	return config.TransportConfig{
		Name: "kafka", Plugin: plugintest.Build(t, "../plugins/kafka/plugin"), Format: "pb",
		Config: []byte(`{"cluster":"main","topic":"logs","sender":"h1","application":"app","hostname":"box"}`),
		Allow: config.Allow{Kafka: map[string]*config.KafkaConfig{"main": {
			Brokers: c.ListenAddrs(), Topics: []string{"logs"}, ClientID: "logtk", DialTimeout: 5 * time.Second,
			Compression: "zstd", Timeout: 30 * time.Second}}},
	}
}

// readTopic reads every record of topic up to its end offsets at the
// time of the call.
func readTopic(t *testing.T, c *kfake.Cluster, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s within 60s", len(out), want, topic)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestKafkaTransport: workers -> protobuf -> the kafka transport -> a
// 3-broker Kafka: every record produced once, each worker instance's
// records in one partition in seq order, each with its identity in the
// headers and the record itself as the value.
func TestKafkaTransport(t *testing.T) {
	c := kafkaCluster(t, 3, 4)
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "3000"})
	w.Count = 3
	cfg := &config.Config{
		Workers:       []config.WorkerConfig{w},
		Formats:       []config.FormatConfig{{Name: "pb", Plugin: plugintest.Build(t, "../plugins/protobuf/plugin")}},
		Transports:    []config.TransportConfig{kafkaTransport(t, c)},
		DeadLetterDir: filepath.Join(t.TempDir(), "dead"),
	}
	h, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	waitDone(t, h, 2*time.Minute)
	if u := h.Undelivered(); u.Any() {
		t.Fatalf("undelivered: %+v", u)
	}
	routed := int(h.routed.Load())
	recs := readTopic(t, c, "logs", routed)
	if len(recs) != routed {
		t.Fatalf("%d records in the topic, %d routed", len(recs), routed)
	}
	next := map[string]uint64{}
	part := map[string]int32{}
	n := map[string]int{}
	for _, kr := range recs {
		var r record.Record
		if !r.Parse(kr.Value) {
			t.Fatalf("value at %d/%d is not a record", kr.Partition, kr.Offset)
		}
		key := string(r.Worker) + "#" + strconv.Itoa(int(r.WorkerIndex))
		if r.Worker == nil {
			key = ""
		}
		wantKey := "h1/" + key
		if string(kr.Key) != wantKey {
			t.Fatalf("key %q, want %q", kr.Key, wantKey)
		}
		if p, ok := part[key]; ok && p != kr.Partition {
			t.Fatalf("%s in partitions %d and %d", key, p, kr.Partition)
		}
		part[key] = kr.Partition
		if key != "" {
			if r.Seq != next[key]+1 {
				t.Fatalf("%s: seq %d after %d", key, r.Seq, next[key])
			}
			next[key] = r.Seq
		}
		for h, v := range map[string]string{"logtk.sender": "h1", "logtk.application": "app", "logtk.hostname": "box",
			"logtk.worker": string(r.Worker), "logtk.seq": fmt.Sprint(r.Seq), "logtk.incarnation": fmt.Sprint(r.Incarnation)} {
			if got := header(kr, h); got != v {
				t.Fatalf("%s: header %s = %q, want %q", key, h, got, v)
			}
		}
		if header(kr, "logtk.batch") == "" || header(kr, "logtk.part") == "" {
			t.Fatalf("no batch or part header: %v", kr.Headers)
		}
		if string(r.Message) == "rec" {
			n[key]++
		}
	}
	for i := range 3 {
		if k := fmt.Sprintf("flood#%d", i); n[k] != 3000 {
			t.Fatalf("%s: %d records, want 3000 (%v)", k, n[k], n)
		}
	}
}

// kafkaServer starts a log server reading c's "logs" topic as a member
// of group "servers", storing into dir.
func kafkaServer(t *testing.T, c *kfake.Cluster, dir string) *logserver.Server {
	t.Helper()
	srv, err := logserver.New(&config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: dir, Tokens: [][]byte{[]byte("0123456789abcdef")}, Fsync: "batch", MaxBytes: 1 << 30,
		Kafka: &config.KafkaConfig{Brokers: c.ListenAddrs(), Topics: []string{"logs"}, Group: "servers", ClientID: "logtk-server", DialTimeout: 5 * time.Second, Application: "kafka"}}},
		logserver.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ServeKafka(); err != nil {
		t.Fatal(err)
	}
	return srv
}

// storedByInstance reads an application's store: per worker instance,
// its records' seqs in stored order.
func storedByInstance(t *testing.T, dirs []string, app string) map[string][]uint64 {
	t.Helper()
	out := map[string][]uint64{}
	for _, dir := range dirs {
		files, err := logread.Files(filepath.Join(dir, app))
		if err != nil {
			continue
		}
		logread.Read(context.Background(), files, logread.Options{}, func(b []byte) error {
			var r record.Record
			r.Parse(b)
			if len(r.Worker) > 0 {
				k := fmt.Sprintf("%s/%s#%d", r.Sender, r.Worker, r.WorkerIndex)
				out[k] = append(out[k], r.Seq)
			}
			return nil
		})
	}
	return out
}

// TestKafkaEndToEnd: host -> kafka transport -> Kafka -> a log server
// in the consumer group: every record stored once, in order per worker
// instance, stamped with the sender and hostname it was produced with.
func TestKafkaEndToEnd(t *testing.T) {
	c := kafkaCluster(t, 3, 4)
	dir := t.TempDir()
	srv := kafkaServer(t, c, dir)
	defer srv.Shutdown(context.Background())
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "5000"})
	w.Count = 3
	cfg := &config.Config{
		Workers:       []config.WorkerConfig{w},
		Formats:       []config.FormatConfig{{Name: "pb", Plugin: plugintest.Build(t, "../plugins/protobuf/plugin")}},
		Transports:    []config.TransportConfig{kafkaTransport(t, c)},
		DeadLetterDir: filepath.Join(t.TempDir(), "dead"),
	}
	h, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	waitDone(t, h, 2*time.Minute)
	if u := h.Undelivered(); u.Any() {
		t.Fatalf("undelivered: %+v", u)
	}
	routed := h.routed.Load()
	for deadline := time.Now().Add(60 * time.Second); srv.KafkaStats().Stored.Load() < routed; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records stored within 60s", srv.KafkaStats().Stored.Load(), routed)
		}
		time.Sleep(10 * time.Millisecond) // polling the server's count, with a deadline
	}
	got := storedByInstance(t, []string{dir}, "app")
	for i := range 3 {
		k := fmt.Sprintf("h1/flood#%d", i)
		seqs := got[k]
		for j, s := range seqs {
			if s != uint64(j+1) {
				t.Fatalf("%s: record %d has seq %d", k, j, s)
			}
		}
		if len(seqs) < 5000 {
			t.Fatalf("%s: %d records stored", k, len(seqs))
		}
	}
	if d := srv.KafkaStats().Duplicates.Load(); d != 0 {
		t.Errorf("%d duplicates dropped, none expected", d)
	}
}
