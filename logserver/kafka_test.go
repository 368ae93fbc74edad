package logserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/logread"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/server"
	"github.com/logtk/logtk/internal/testlog"
	kt "github.com/logtk/logtk/plugins/kafka"
	"github.com/logtk/logtk/record"
)

func newKafka(t *testing.T, partitions int32) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(partitions, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// produceOurs produces, as the kafka transport does, batches of records
// of worker instances w#0..w#(instances-1), perBatch records of each
// instance a batch, seqs from 1; batch ids from firstBatch. It returns
// the records produced.
func produceOurs(t *testing.T, c *kfake.Cluster, sender string, instances, batches, perBatch int, firstBatch uint64) int {
	t.Helper()
	n := 0
	for b := range batches {
		var rs []*kgo.Record
		for i := range instances {
			for j := range perBatch {
				rs = append(rs, oursRecord(sender, "w", i, firstBatch+uint64(b), uint64(b*perBatch+j+1), j, perBatch))
			}
		}
		produce(t, c, rs...)
		n += len(rs)
	}
	return n
}

// oursRecord is a record as the kafka transport produces it: record seq
// of worker instance worker#index, part i of n of its batch.
func oursRecord(sender, worker string, index int, batch, seq uint64, i, n int) *kgo.Record {
	v := irecord.AppendHead(nil, time.Unix(1700000000, 0), record.LevelInfo, fmt.Sprintf("r %d", seq), "")
	v = irecord.AppendStamp(v, &irecord.Stamp{Worker: worker, WorkerIndex: uint32(index), Seq: seq, Incarnation: 1})
	return &kgo.Record{Topic: "logs", Key: fmt.Appendf(nil, "%s/%s#%d", sender, worker, index), Value: v, Headers: []kgo.RecordHeader{
		{Key: kt.HeaderSender, Value: []byte(sender)},
		{Key: kt.HeaderApplication, Value: []byte("app")},
		{Key: kt.HeaderBatch, Value: strconv.AppendUint(nil, batch, 10)},
		{Key: kt.HeaderWorker, Value: []byte(worker)},
		{Key: kt.HeaderIndex, Value: strconv.AppendInt(nil, int64(index), 10)},
		{Key: kt.HeaderSeq, Value: strconv.AppendUint(nil, seq, 10)},
		{Key: kt.HeaderPart, Value: fmt.Appendf(nil, "%d/%d", i, n)},
	}}
}

// produce produces rs to c, each key's records to one partition, and
// waits for Kafka's acknowledgement.
func produce(t *testing.T, c *kfake.Cluster, rs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// kafkaTestServer is a log server reading "logs" as member m of group
// "g", into dir; hook, when set, is its kafkaHook.
func kafkaTestServer(t *testing.T, c *kfake.Cluster, dir, m string, hook func(string) error) *Server {
	t.Helper()
	return kafkaGroupServer(t, c, dir, "g", m, hook)
}

func kafkaGroupServer(t *testing.T, c *kfake.Cluster, dir, group, m string, hook func(string) error, span ...int64) *Server {
	t.Helper()
	s, err := New(&config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: dir, Tokens: [][]byte{[]byte("tok")}, Fsync: "batch", MaxBytes: 1 << 30,
		Kafka: &config.KafkaConfig{Brokers: c.ListenAddrs(), Topics: []string{"logs"}, Group: group, Member: m, ClientID: "t", DialTimeout: 5 * time.Second, Application: "kafka"}}},
		Options{Logger: testlog.Logger(t, 0)})
	if err != nil {
		t.Fatal(err)
	}
	s.kafkaHook = hook
	if len(span) > 0 {
		s.kafkaSpan = span[0]
	}
	if err := s.ServeKafka(); err != nil {
		t.Fatal(err)
	}
	return s
}

// storedSeqs reads the records of ours stored in dirs: per instance, the
// seqs in stored order.
func storedSeqs(t *testing.T, dirs ...string) map[string][]uint64 {
	t.Helper()
	out := map[string][]uint64{}
	for _, dir := range dirs {
		files, err := logread.Files(filepath.Join(dir, "app"))
		if err != nil {
			continue
		}
		logread.Read(context.Background(), files, logread.Options{}, func(b []byte) error {
			var r record.Record
			r.Parse(b)
			k := fmt.Sprintf("%s/%s#%d", r.Sender, r.Worker, r.WorkerIndex)
			out[k] = append(out[k], r.Seq)
			return nil
		})
	}
	return out
}

// waitFor waits until cond holds, polling (the reader has no event for
// "caught up with the topic").
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling counters another goroutine moves
	}
}

// checkOnce checks that each of instances instances has seqs 1..n each
// once, in order, across the stores.
func checkOnce(t *testing.T, got map[string][]uint64, sender string, instances, n int) {
	t.Helper()
	for i := range instances {
		k := fmt.Sprintf("%s/w#%d", sender, i)
		seqs := got[k]
		if len(seqs) != n {
			t.Fatalf("%s: %d records stored, want %d", k, len(seqs), n)
		}
		for j, s := range seqs {
			if s != uint64(j+1) {
				t.Fatalf("%s: record %d has seq %d", k, j, s)
			}
		}
	}
}

// TestKafkaReadsOnce: records of ours, and the same batches produced
// again (a host's resend), are stored once; the server stamps the
// sender.
func TestKafkaReadsOnce(t *testing.T) {
	c := newKafka(t, 3)
	dir := t.TempDir()
	n := produceOurs(t, c, "h1", 4, 20, 50, 100)
	produceOurs(t, c, "h1", 4, 5, 50, 110) // batches 110-114 again
	s := kafkaTestServer(t, c, dir, "a", nil)
	defer s.Shutdown(context.Background())
	waitFor(t, "all read", func() bool { return s.KafkaStats().Stored.Load()+s.KafkaStats().Duplicates.Load() >= int64(n+4*5*50) })
	checkOnce(t, storedSeqs(t, dir), "h1", 4, 1000)
	if d := s.KafkaStats().Duplicates.Load(); d != 4*5*50 {
		t.Fatalf("%d duplicates dropped, want %d", d, 4*5*50)
	}
	// The same counts in the metrics.
	m := newServerMetrics()
	m.srv = s
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() == "logtk_server_kafka_records_total" {
			for _, mm := range f.Metric {
				got[mm.Label[0].GetValue()] = mm.Counter.GetValue()
			}
		}
	}
	if got["stored"] != float64(n) || got["duplicate"] != 4*5*50 || got["foreign"] != 0 {
		t.Fatalf("kafka metrics %v", got)
	}
}

// TestKafkaCrashPoints: a cycle ended (as by a crash) after its batches
// were staged and before the commit, or after the commit and before the
// store: the next membership settles the staged cycle from the commit
// metadata, and every record is stored once.
func TestKafkaCrashPoints(t *testing.T) {
	for _, point := range []string{"staged", "committed"} {
		t.Run(point, func(t *testing.T) {
			c := newKafka(t, 3)
			dir := t.TempDir()
			n := produceOurs(t, c, "h1", 3, 10, 100, 1)
			var crashes atomic.Int64
			s := kafkaTestServer(t, c, dir, "a", func(p string) error {
				if p == point && crashes.Load() < 3 {
					crashes.Add(1)
					return errors.New("crash at " + p)
				}
				return nil
			})
			defer s.Shutdown(context.Background())
			waitFor(t, "all stored", func() bool { return s.KafkaStats().Stored.Load() >= int64(n) })
			checkOnce(t, storedSeqs(t, dir), "h1", 3, 1000)
			if r, n := s.KafkaStats().Resolved.Load(), crashes.Load(); r != n || n == 0 {
				t.Fatalf("%d staged cycles settled after %d crashes", r, n)
			}
		})
	}
}

// TestKafkaTakeover: two servers in one group; one stops with a cycle
// staged (before its commit, or after it), the other takes its
// partitions over; the first starts again and settles its cycle. Every
// record is stored once across the two stores.
func TestKafkaTakeover(t *testing.T) {
	for _, point := range []string{"staged", "committed"} {
		t.Run(point, func(t *testing.T) {
			c := newKafka(t, 4)
			dirA, dirB := t.TempDir(), t.TempDir()
			n := produceOurs(t, c, "h1", 8, 10, 100, 1)
			crashed, release := make(chan struct{}), make(chan struct{})
			var once atomic.Bool
			a := kafkaTestServer(t, c, dirA, "a", func(p string) error {
				if p == point && once.CompareAndSwap(false, true) {
					close(crashed)
					<-release
					return errors.New("crash at " + p)
				}
				return nil
			})
			<-crashed
			// The server dies here: it reads nothing more. (It leaves
			// the group, as a dead member is taken to have left once
			// its session ends.)
			a.kafka.mu.Lock()
			a.kafka.cancel()
			a.kafka.mu.Unlock()
			close(release)
			a.Shutdown(context.Background())
			b := kafkaTestServer(t, c, dirB, "b", nil)
			defer b.Shutdown(context.Background())
			a2 := kafkaTestServer(t, c, dirA, "a", nil)
			defer a2.Shutdown(context.Background())
			waitFor(t, "all stored", func() bool {
				return a.KafkaStats().Stored.Load()+b.KafkaStats().Stored.Load()+a2.KafkaStats().Stored.Load() >= int64(n)
			})
			checkOnce(t, storedSeqs(t, dirA, dirB), "h1", 8, 1000)
		})
	}
}

// TestKafkaForeignRecords: records that are not ours (no headers,
// garbage, a record cut short, another schema, headers that lie) are
// each stored once as a record of their own, with the reason, under the
// kafka block's application, and the records of ours around them are
// stored as ever: the reader never sticks.
func TestKafkaForeignRecords(t *testing.T) {
	c := newKafka(t, 1)
	dir := t.TempDir()
	good := irecord.AppendStamp(irecord.AppendHead(nil, time.Unix(1700000000, 0), record.LevelInfo, "good", ""), &irecord.Stamp{Worker: "w", Seq: 1})
	ours := func(part string, v []byte) *kgo.Record {
		return &kgo.Record{Topic: "logs", Value: v, Headers: []kgo.RecordHeader{
			{Key: kt.HeaderSender, Value: []byte("h")}, {Key: kt.HeaderApplication, Value: []byte("app")},
			{Key: kt.HeaderBatch, Value: []byte("7")}, {Key: kt.HeaderWorker, Value: []byte("w")},
			{Key: kt.HeaderIndex, Value: []byte("0")}, {Key: kt.HeaderPart, Value: []byte(part)}}}
	}
	bad := []*kgo.Record{
		{Topic: "logs", Value: []byte("plain text from another producer")},
		{Topic: "logs", Value: []byte{0xff, 0xfe, 0x00, 0x01}, Key: []byte("k")},
		{Topic: "logs", Value: []byte(`{"schema":"other","msg":"json"}`), Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}},
		ours("0/1", good[:len(good)-3]), // a record cut short
		ours("x", good),                 // a part that is not i/n
		ours("3/2", good),               // part past the count
		{Topic: "logs", Value: good, Headers: []kgo.RecordHeader{{Key: kt.HeaderSender, Value: []byte("h")}}}, // headers missing
		{Topic: "logs", Value: make([]byte, 100<<10)},                                                         // over the message limit
	}
	var rs []*kgo.Record
	rs = append(rs, ours("0/1", good))
	rs = append(rs, bad...)
	good2 := irecord.AppendStamp(irecord.AppendHead(nil, time.Unix(1700000000, 0), record.LevelInfo, "good", ""), &irecord.Stamp{Worker: "w", Seq: 2})
	r2 := ours("0/1", good2)
	r2.Headers[2].Value = []byte("8")
	rs = append(rs, r2)
	produce(t, c, rs...)
	s := kafkaTestServer(t, c, dir, "a", nil)
	waitFor(t, "all read", func() bool {
		return s.KafkaStats().Stored.Load() == 2 && s.KafkaStats().Foreign.Load() == int64(len(bad))
	})
	s.Shutdown(context.Background())
	if got := storedSeqs(t, dir)["h/w#0"]; len(got) != 2 {
		t.Fatalf("records of ours: %v", got)
	}
	files, err := logread.Files(filepath.Join(dir, "kafka"))
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	logread.Read(context.Background(), files, logread.Options{}, func(b []byte) error {
		var r record.Record
		r.Parse(b)
		var a record.Attr
		why := ""
		for it := r.Attrs(); it.Next(&a); {
			if string(a.Key) == "kafka_error" {
				why = string(a.Data)
			}
		}
		if why == "" || r.Level != record.LevelWarn {
			t.Errorf("foreign record %q without a reason or at level %d", r.Message, r.Level)
		}
		reasons = append(reasons, why)
		return nil
	})
	if len(reasons) != len(bad) {
		t.Fatalf("%d foreign records stored, want %d: %q", len(reasons), len(bad), reasons)
	}
	t.Logf("reasons: %q", reasons)
	// The same store read by a new group, from the topic's start (as
	// after offsets lost): nothing is stored twice.
	s2 := kafkaGroupServer(t, c, dir, "g2", "a", nil)
	defer s2.Shutdown(context.Background())
	produceOurs(t, c, "h2", 1, 1, 1, 1)
	waitFor(t, "the next record", func() bool { return s2.KafkaStats().Stored.Load() == 1 })
	if f, d := s2.KafkaStats().Foreign.Load(), s2.KafkaStats().Duplicates.Load(); f != 0 || d != 2 {
		t.Fatalf("read again: %d foreign records stored again, %d of ours dropped (want 0, 2)", f, d)
	}
}

// FuzzKafkaRecord: whatever a topic holds, the reader classifies it
// without panicking, and a foreign record is stored as a valid record.
func FuzzKafkaRecord(f *testing.F) {
	good := irecord.AppendStamp(irecord.AppendHead(nil, time.Unix(1700000000, 0), record.LevelInfo, "m", ""), &irecord.Stamp{Worker: "w", Seq: 1})
	f.Add(good, []byte("logtk.sender=h\nlogtk.application=app\nlogtk.batch=1\nlogtk.worker=w\nlogtk.index=0\nlogtk.part=0/1"))
	f.Add([]byte("text"), []byte(""))
	f.Add([]byte{0xff}, []byte("logtk.part=1/1\nlogtk.batch=0"))
	f.Fuzz(func(t *testing.T, value, headers []byte) {
		kr := &kgo.Record{Topic: "t", Value: value}
		for _, l := range bytes.Split(headers, []byte("\n")) {
			k, v, _ := bytes.Cut(l, []byte("="))
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: string(k), Value: v})
		}
		id, why := kafkaIdentity(kr)
		if why == "" {
			if id.part >= id.parts || id.batch == 0 {
				t.Fatalf("taken as ours: %+v", id)
			}
			return
		}
		b := foreignRecord(kr, why)
		var r record.Record
		if !r.Parse(b) || !irecord.WholeFields(b) {
			t.Fatalf("foreign record does not parse: %x", b)
		}
	})
}

// FuzzStaged: a staging file, damaged in any way, reads as a cycle or as
// damaged, never panics; a cycle reads back as written.
func FuzzStaged(f *testing.F) {
	c := &kafkaCycleData{number: 42, batches: []*kafkaBatch{{app: "a", sender: "kafka/h", id: 3, stamp: []byte{1, 2}, tp: topicPartition{"t", 2},
		held: []server.WorkerSeq{{Worker: "w", Index: 1, Seq: 9}}, stored: 1, entries: []byte{3, 'a', 'b', 'c'}}}}
	f.Add(encodeStaged(c))
	f.Add([]byte("LTKS1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeStaged(b)
		if err != nil {
			return
		}
		if again := encodeStaged(c); !bytes.Equal(again, b) {
			t.Fatalf("read back differently:\n%x\n%x", b, again)
		}
	})
}

// TestKafkaResendAfterPartial: a host killed while producing a batch
// leaves part of it in the topic; started again, it sends its spool from
// an earlier batch on (those Kafka had but the host had no answer for):
// the part is dropped, the earlier batches are duplicates, and the batch
// is stored whole from its new copy. (TestHostCrashKafka lost the rest
// of such a batch: the part was stored as incomplete, and the whole
// copy then taken for a duplicate.)
func TestKafkaResendAfterPartial(t *testing.T) {
	c := newKafka(t, 1)
	dir := t.TempDir()
	var rs []*kgo.Record
	batch := func(b uint64, parts ...int) {
		for _, p := range parts {
			rs = append(rs, oursRecord("h", "w", 0, b, (b-1)*3+uint64(p)+1, p, 3))
		}
	}
	batch(1, 0, 1, 2)
	batch(2, 0, 1, 2)
	batch(3, 0, 1) // the kill
	batch(1, 0, 1, 2)
	batch(2, 0, 1, 2)
	batch(3, 0, 1, 2)
	batch(4, 0, 1, 2)
	produce(t, c, rs...)
	s := kafkaTestServer(t, c, dir, "a", nil)
	waitFor(t, "all read", func() bool { return s.KafkaStats().Stored.Load()+s.KafkaStats().Duplicates.Load() >= 12+6 })
	s.Shutdown(context.Background())
	checkOnce(t, storedSeqs(t, dir), "h", 1, 12)
	if n := s.KafkaStats().Incomplete.Load(); n != 0 {
		t.Fatalf("%d records stored as incomplete", n)
	}
}

// TestKafkaGroupWithoutItsStart: a topic that lost the first parts of a
// batch (retention trimmed it mid-batch) holds the rest: they are stored
// (counted as incomplete), and the batches after them too; a batch whose
// parts stop short is stored when the next starts.
func TestKafkaGroupWithoutItsStart(t *testing.T) {
	c := newKafka(t, 1)
	dir := t.TempDir()
	rec := func(batch, seq uint64, i, n int) *kgo.Record { return oursRecord("h", "w", 0, batch, seq, i, n) }
	produce(t, c,
		rec(5, 3, 2, 5), rec(5, 4, 3, 5), rec(5, 5, 4, 5), // batch 5 without its parts 0 and 1
		rec(6, 6, 0, 2), rec(6, 7, 1, 2),
		rec(7, 8, 0, 3), rec(7, 9, 1, 3), // batch 7 stops short (its last part refused)
		rec(8, 10, 0, 1),
	)
	s := kafkaTestServer(t, c, dir, "a", nil)
	waitFor(t, "all stored", func() bool { return s.KafkaStats().Stored.Load() == 8 })
	s.Shutdown(context.Background())
	got := storedSeqs(t, dir)["h/w#0"]
	if fmt.Sprint(got) != "[3 4 5 6 7 8 9 10]" {
		t.Fatalf("stored seqs %v", got)
	}
	if n := s.KafkaStats().Incomplete.Load(); n != 5 {
		t.Fatalf("%d records counted incomplete, want 5 (3 without their start, 2 cut short)", n)
	}
}

// TestKafkaResendAcrossTakeover: a host's batch, stored by one server,
// is sent again by the host after the partition went to another server:
// the second server drops it too (it reads back the last batches before
// the committed offset when it is given the partition).
func TestKafkaResendAcrossTakeover(t *testing.T) {
	c := newKafka(t, 1)
	dirA, dirB := t.TempDir(), t.TempDir()
	produceOurs(t, c, "h1", 2, 3, 50, 1) // batches 1-3
	a := kafkaTestServer(t, c, dirA, "a", nil)
	waitFor(t, "a stored", func() bool { return a.KafkaStats().Stored.Load() == 300 })
	a.Shutdown(context.Background())
	produceOurs(t, c, "h1", 2, 2, 50, 2) // batches 2-3 again: the host's retry
	b := kafkaTestServer(t, c, dirB, "b", nil)
	defer b.Shutdown(context.Background())
	waitFor(t, "b read", func() bool { return b.KafkaStats().Duplicates.Load()+b.KafkaStats().Stored.Load() >= 200 })
	if got := b.KafkaStats().Stored.Load(); got != 0 {
		t.Fatalf("the second server stored %d records of batches the first had", got)
	}
	checkOnce(t, storedSeqs(t, dirA, dirB), "h1", 2, 150)
}

// TestKafkaPartialHeldAcrossTakeover: a batch of one instance left in
// part for good (the rest refused, the host dead-lettered it) holds its
// partition's committed offset back; the server that reads the
// partition next reads from there again, and stores none of what the
// first stored after it (an outsider found 2,000 records in both
// stores). Past kafkaPartialSpan the part is stored, and the commits go
// on.
func TestKafkaPartialHeldAcrossTakeover(t *testing.T) {
	c := newKafka(t, 1)
	dirA, dirB := t.TempDir(), t.TempDir()
	var rs []*kgo.Record
	for p := range 10 { // parts 0-9 of a batch of 20 of instance a#0
		rs = append(rs, oursRecord("h1", "a", 0, 1, uint64(p+1), p, 20))
	}
	produce(t, c, rs...)
	produceOurs(t, c, "h1", 1, 3, 50, 1) // w#0: 150 records, offsets 10-159
	const span = 200
	a := kafkaGroupServer(t, c, dirA, "g", "a", nil, span)
	waitFor(t, "a stored", func() bool { return a.KafkaStats().Stored.Load() == 150 })
	waitFor(t, "a committed", func() bool { return a.KafkaStats().Cycles.Load() > 0 })
	a.Shutdown(context.Background())
	b := kafkaGroupServer(t, c, dirB, "g", "b", nil, span)
	defer b.Shutdown(context.Background())
	produceOurs(t, c, "h1", 1, 1, 20, 4) // w#0 batch 4: offsets 160-179
	waitFor(t, "b read", func() bool { return b.KafkaStats().Stored.Load() >= 20 })
	if got := b.KafkaStats().Stored.Load(); got != 20 {
		t.Fatalf("the second server stored %d records, want 20 (the first had the other 150)", got)
	}
	// The part held back is stored, once, as span offsets pass.
	produceOurs(t, c, "h1", 1, 2, 50, 5) // offsets 180-279
	waitFor(t, "the part stored", func() bool {
		return b.KafkaStats().Incomplete.Load() == 10 && b.KafkaStats().Stored.Load() == 20+100+10
	})
	got := storedSeqs(t, dirA, dirB)
	if len(got["h1/a#0"]) != 10 || len(got["h1/w#0"]) != 270 {
		t.Fatalf("stored: a#0 %v, w#0 %d records", got["h1/a#0"], len(got["h1/w#0"]))
	}
}

// TestKafkaSpanAtPollEnd: a poll that ends exactly at a held part's
// first offset + span stores the part (the poll that reads that offset
// decides); it was dropped when a later poll decided it behind the
// through= the first had already set.
func TestKafkaSpanAtPollEnd(t *testing.T) {
	c := newKafka(t, 1)
	dir := t.TempDir()
	var rs []*kgo.Record
	for p := range 10 { // offsets 0-9: parts 0-9 of a batch of 20 of a#0
		rs = append(rs, oursRecord("h1", "a", 0, 1, uint64(p+1), p, 20))
	}
	produce(t, c, rs...)
	produceOurs(t, c, "h1", 1, 1, 91, 1) // offsets 10-100: the poll ends at 0 + span
	s := kafkaGroupServer(t, c, dir, "g", "a", nil, 100)
	defer s.Shutdown(context.Background())
	waitFor(t, "the first poll", func() bool { return s.KafkaStats().Cycles.Load() > 0 && s.KafkaStats().Stored.Load() >= 91 })
	produceOurs(t, c, "h1", 1, 1, 50, 2) // offsets 101-150
	waitFor(t, "the second poll", func() bool { return s.KafkaStats().Stored.Load() >= 91+50+10 || s.KafkaStats().Duplicates.Load() > 0 })
	if got := storedSeqs(t, dir)["h1/a#0"]; len(got) != 10 {
		t.Fatalf("the part held span offsets: stored %v", got)
	}
}
