package logserver

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/kafka"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/server"
	"github.com/logtk/logtk/internal/wire"
	kt "github.com/logtk/logtk/plugins/kafka"
	"github.com/logtk/logtk/record"
)

// The server reads its kafka block's topics as a member of the consumer
// group and stores what it reads as it stores what arrives over the wire
// protocol (docs/kafka.md has the whole story):
//
//   - A record the kafka transport produced carries its identity in its
//     headers: sender, application, batch id, worker instance, and its
//     part of that instance's records in the batch. The parts of one
//     instance in one batch (a group) are stored together once all have
//     been read, under the application, with the sender "kafka/"+sender
//     and the batch id as the instance's held mark in the store's index.
//     A group whose batch id is not above the instance's mark is stored
//     already (the host sent the batch again): it is dropped. An
//     instance's records are in one partition, in the order produced, so
//     its marks only grow.
//   - Any other record is foreign: it is stored as a record of its own
//     (its value as the message; the reason, topic, partition and offset
//     as attributes) under the block's application, sender
//     "kafka/<topic>/<partition>", with its offset + 1 as the batch id,
//     which drops it when it is read again.
//   - A poll's records become a cycle: its store batches are written to a
//     staging file (synced), the offsets after them are committed with,
//     in each partition's commit metadata, the number of the last cycle
//     each member of the group committed there; only then are the
//     batches appended to the store (synced). A server that died or
//     failed between the two looks, before it reads again, at its number
//     in the committed metadata: the commit was made, and the staged
//     batches go into the store, or it was not, and they are dropped
//     (whoever reads the partition next reads them again). Either way no
//     record is stored twice across the group's stores, or lost. Members
//     carry each other's numbers forward in their commits.
//   - Offsets are never committed past a group not yet whole, and
//     rebalances wait until a cycle is done (BlockRebalanceOnPoll).

// KafkaStats counts what the Kafka reader read.
type KafkaStats struct {
	Stored     atomic.Int64 // records of ours stored
	Duplicates atomic.Int64 // records of ours dropped, stored already
	Foreign    atomic.Int64 // records not ours, stored as such
	Incomplete atomic.Int64 // records of groups stored without all their parts
	Cycles     atomic.Int64 // polls stored and committed
	Resolved   atomic.Int64 // staged cycles found at a start: applied or dropped
}

type kafkaReader struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	Stats  KafkaStats
	member string
	staged string // the staging file's path
	cycle  int64  // the last cycle number used
	// parts holds each assigned partition's groups not yet whole and the
	// members' last cycles of its commit metadata; the poll loop and the
	// rebalance callbacks share it.
	parts map[topicPartition]*partState
	// assignErr is a failure to read an assignment's commit metadata: the
	// membership ends, and a new one reads it again.
	assignErr error
}

type topicPartition struct {
	topic string
	p     int32
}

type partState struct {
	groups map[groupKey]*kafkaGroup
	cycles map[string]int64 // member -> its last committed cycle here
	// inherited: per worker instance, the last whole batch in what the
	// group committed before this member was given the partition (read
	// back at assignment), so that a copy of it the host sent again is
	// dropped here too, whoever stored the first.
	inherited map[groupKey]uint64
	// through is the offset after the last record the group's readers
	// had read when they committed last (the commit metadata's
	// through=): what a record before it decided (a group stored or
	// dropped) is decided already, though the committed offset, held
	// back by a group not yet whole, may be before it.
	through int64
}

// kafkaPartialSpan bounds how far (in offsets) a group not yet whole
// holds its partition's commits back: past it, what it has is stored
// without its batch becoming the instance's mark, so that a copy of the
// batch the host sends later still goes in whole (stored twice in part,
// never lost). A host's batch takes far fewer offsets than this.
const kafkaPartialSpan = 100_000

// kafkaPartialBytes bounds the bytes a group not yet whole holds in
// memory.
const kafkaPartialBytes = 64 << 20

// kafkaReadBack bounds what a member reads back before a partition's
// committed offset when it is given the partition: more than a host has
// on its way (32 batches) for many hosts.
const kafkaReadBack = 100_000

func newPartState() *partState {
	return &partState{groups: map[groupKey]*kafkaGroup{}, cycles: map[string]int64{}}
}

type groupKey struct {
	app, sender, worker string
	index               uint32
}

type kafkaGroup struct {
	bytes int // of its records
	batch uint64
	first int64 // offset of its first part
	n     int   // parts in all
	from  int   // the part its first record is (0 but where the topic lost the start)
	host  string
	recs  [][]byte
}

// ServeKafka joins the kafka block's consumer group and stores what it
// reads until Shutdown; it returns at once.
func (s *Server) ServeKafka() error {
	kc := s.cfg.Kafka
	if kc == nil {
		return errors.New("logserver: the server block has no kafka block")
	}
	if _, err := kafka.ClientOpts(kc); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	r := &s.kafka
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return errors.New("logserver: ServeKafka called twice")
	}
	r.member = kc.Member
	if r.member == "" {
		r.member = defaultMember(s.cfg.Dir)
	}
	r.staged = filepath.Join(s.cfg.Dir, ".kafka-"+kc.Group+".staged")
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	r.parts = map[topicPartition]*partState{}
	go func() {
		defer close(r.done)
		s.readKafka(ctx)
	}()
	s.log.Info("kafka: reading", "brokers", strings.Join(kc.Brokers, ","), "topics", strings.Join(kc.Topics, ","), "group", kc.Group, "member", r.member)
	return nil
}

// defaultMember is the machine's hostname and the store directory's
// path, hashed: stable across restarts, distinct per server.
func defaultMember(dir string) string {
	host, _ := os.Hostname()
	abs, _ := filepath.Abs(dir)
	sum := sha256.Sum256([]byte(abs))
	var b strings.Builder
	for _, c := range []byte(host) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteByte(c)
		}
	}
	h := b.String()
	if len(h) > 40 {
		h = h[:40]
	}
	return h + "-" + hex.EncodeToString(sum[:6])
}

// KafkaStats returns the Kafka reader's counts.
func (s *Server) KafkaStats() *KafkaStats { return &s.kafka.Stats }

// close stops the reader: a cycle under way is finished first, and the
// member leaves the group.
func (r *kafkaReader) close() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// readKafka runs a member of the group until ctx ends; a membership that
// fails (the store, a commit's outcome unknown, the brokers) ends, and a
// new one starts after a backoff, reading again from the committed
// offsets.
func (s *Server) readKafka(ctx context.Context) {
	delay := 100 * time.Millisecond
	for {
		err := s.kafkaMember(ctx)
		if ctx.Err() != nil {
			return
		}
		s.log.Error("kafka: reading failed; joining the group again", "error", err, "in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay/2 + rand.N(delay/2+1)):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// kafkaMember is one membership of the group: resolve what a previous
// one left staged, then poll, stage, commit and store until ctx ends or
// something fails.
func (s *Server) kafkaMember(ctx context.Context) error {
	kc := s.cfg.Kafka
	r := &s.kafka
	opts, err := kafka.ClientOpts(kc)
	if err != nil {
		return err
	}
	if err := s.resolveStaged(ctx, opts); err != nil {
		return fmt.Errorf("staged cycle: %w", err)
	}
	forget := func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for topic, ps := range lost {
			for _, p := range ps {
				delete(r.parts, topicPartition{topic, p})
			}
		}
	}
	base := slices.Clone(opts)
	assigned := func(_ context.Context, cl *kgo.Client, got map[string][]int32) {
		// The reader's context, bounded: a stopping server does not
		// wait on this, nor does a rebalance for long.
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		// The members' cycles in the commit metadata of what we now
		// read, carried forward in our commits; and the last batches
		// before the committed offsets.
		offs, err := kadm.NewClient(cl).FetchOffsets(ctx, kc.Group)
		if err == nil {
			err = offs.Error()
		}
		states := map[topicPartition]*partState{}
		for topic, ps := range got {
			for _, p := range ps {
				if err != nil {
					break
				}
				st := newPartState()
				if o, ok := offs.Lookup(topic, p); ok {
					st.cycles = parseCycles(o.Metadata)
					st.through = parseThrough(o.Metadata)
					if o.At > 0 {
						st.inherited = s.readBack(ctx, base, topic, p, o.At)
					}
				}
				states[topicPartition{topic, p}] = st
			}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.assignErr = err
			return
		}
		for tp, st := range states {
			r.cycle = max(r.cycle, st.cycles[r.member])
			r.parts[tp] = st
		}
	}
	opts = append(opts,
		kgo.ConsumerGroup(kc.Group),
		kgo.SessionTimeout(cmp.Or(kc.SessionTimeout, 45*time.Second)),
		kgo.HeartbeatInterval(min(3*time.Second, cmp.Or(kc.SessionTimeout, 45*time.Second)/3)),
		// How long a rebalance waits for the members to rejoin: a cycle
		// (a store sync and a commit) is done well within it, and a dead
		// member holds a rebalance up no longer than this.
		kgo.RebalanceTimeout(min(time.Minute, max(10*time.Second, 2*cmp.Or(kc.SessionTimeout, 45*time.Second)))),
		kgo.ConsumeTopics(kc.Topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(assigned),
		kgo.OnPartitionsRevoked(forget),
		kgo.OnPartitionsLost(forget),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer func() {
		// Leave the group, so that the others take the partitions now
		// rather than after the session timeout.
		lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cl.LeaveGroupContext(lctx)
		cancel()
		cl.Close()
		r.mu.Lock()
		clear(r.parts)
		r.assignErr = nil
		r.mu.Unlock()
	}()
	for {
		fs := cl.PollRecords(ctx, 10000)
		if ctx.Err() != nil || fs.IsClientClosed() {
			cl.AllowRebalance()
			return ctx.Err()
		}
		r.mu.Lock()
		aerr := r.assignErr
		r.mu.Unlock()
		if aerr != nil {
			cl.AllowRebalance()
			return fmt.Errorf("reading the commit metadata of an assignment: %w", aerr)
		}
		failed := false
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				failed = true
				s.peerWarn.Warn(s.log, "kafka: fetch failed", "topic", topic, "partition", p, "error", err)
			}
		})
		if failed && fs.NumRecords() == 0 {
			// Nothing but errors (brokers away, not authorised): poll
			// again after a pause rather than at once.
			cl.AllowRebalance()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		err := s.kafkaCycle(ctx, cl, fs, opts)
		cl.AllowRebalance()
		if err != nil {
			return err
		}
	}
}

// kafkaCycle stores a poll's records and commits the offsets after them:
// staged, committed, stored.
func (s *Server) kafkaCycle(ctx context.Context, cl *kgo.Client, fs kgo.Fetches, opts []kgo.Opt) error {
	r := &s.kafka
	c := s.readCycle(fs)
	if len(c.commits) == 0 {
		return nil
	}
	r.mu.Lock()
	r.cycle = max(r.cycle+1, time.Now().UnixNano())
	c.number, c.member = r.cycle, r.member
	// Each partition's commit metadata: the members' cycles, ours now
	// this one.
	meta := map[topicPartition]string{}
	for topic, ps := range c.commits {
		for p := range ps {
			st := r.parts[topicPartition{topic, p}]
			if st == nil {
				st = newPartState()
				r.parts[topicPartition{topic, p}] = st
			}
			st.cycles[r.member] = c.number
			st.through = max(st.through, c.through[topicPartition{topic, p}])
			meta[topicPartition{topic, p}] = formatCycles(st.through, st.cycles)
		}
	}
	r.mu.Unlock()
	if len(c.batches) > 0 {
		if err := s.stage(c); err != nil {
			return fmt.Errorf("staging: %w", err)
		}
	}
	if err := s.kafkaPoint("staged"); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cctx = kgo.PreCommitFnContext(cctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			t := &req.Topics[i]
			for j := range t.Partitions {
				if m, ok := meta[topicPartition{t.Topic, t.Partitions[j].Partition}]; ok {
					t.Partitions[j].Metadata = &m
				}
			}
		}
		return nil
	})
	var cerr error
	cl.CommitOffsetsSync(cctx, c.commits, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		cerr = err
		if err == nil {
			cerr = commitErr(resp)
		}
	})
	cancel()
	if cerr != nil {
		// Whether the commit was made is not known: the next membership
		// reads the metadata and settles the staged cycle.
		return fmt.Errorf("offset commit: %w", cerr)
	}
	if err := s.kafkaPoint("committed"); err != nil {
		return err
	}
	if err := s.applyCycle(c); err != nil {
		return err // staged: the next membership applies it
	}
	s.clearStaged()
	r.Stats.Cycles.Add(1)
	return nil
}

// kafkaCycleData is a poll's records made store batches, and the offsets
// to commit after them.
type kafkaCycleData struct {
	member  string // the member that staged it
	number  int64
	batches []*kafkaBatch
	commits map[string]map[int32]kgo.EpochOffset
	through map[topicPartition]int64 // the offset after each partition's last record read
}

type kafkaBatch struct {
	app, sender string
	id          uint64
	stamp       []byte // the server stamp of its records
	held        []server.WorkerSeq
	tp          topicPartition
	entries     []byte
	stored      int64 // records of ours in it (Stats.Stored once stored)
	incomplete  int64 // of them, records of groups not whole (Stats.Incomplete)
	foreign     int64 // foreign records in it (Stats.Foreign once stored)
}

// readCycle makes a poll's records store batches, one per application,
// sender, hostname and partition, and the offsets to commit.
func (s *Server) readCycle(fs kgo.Fetches) *kafkaCycleData {
	r := &s.kafka
	kc := s.cfg.Kafka
	c := &kafkaCycleData{commits: map[string]map[int32]kgo.EpochOffset{}, through: map[topicPartition]int64{}}
	type key struct {
		app, sender, host string
		tp                topicPartition
	}
	batches := map[key]*kafkaBatch{}
	nextID := map[string]uint64{} // app/sender -> the next batch id of this cycle
	out := func(k key, stampSender string) *kafkaBatch {
		b := batches[k]
		if b == nil {
			ks := k.app + "/" + k.sender
			id := nextID[ks]
			if id == 0 {
				id = s.store.LastBatch(k.app, k.sender) + 1
			}
			nextID[ks] = id + 1
			b = &kafkaBatch{app: k.app, sender: k.sender, id: id, tp: k.tp,
				stamp: irecord.AppendServerStamp(nil, stampSender, k.host, k.app)}
			batches[k] = b
			c.batches = append(c.batches, b)
		}
		return b
	}
	// Marks of the groups of this cycle, before they are in the store.
	marks := map[groupKey]uint64{}
	heldOf := func(ps *partState, gk groupKey) (uint64, bool) {
		held, ok := s.store.HeldOf(gk.app, "kafka/"+gk.sender, gk.worker, gk.index)
		if m, seen := marks[gk]; seen {
			held, ok = max(held, m), true
		}
		if m, seen := ps.inherited[gk]; seen {
			held, ok = max(held, m), true
		}
		return held, ok
	}
	// storeGroup stores a group, decided by the record at offset at;
	// unmarked, its batch does not become the instance's mark.
	storeGroup := func(ps *partState, tp topicPartition, gk groupKey, g *kafkaGroup, at int64, unmarked bool) {
		incomplete := g.from > 0 || g.from+len(g.recs) < g.n
		if held, ok := heldOf(ps, gk); ok && g.batch <= held {
			r.Stats.Duplicates.Add(int64(len(g.recs)))
			return
		}
		if !unmarked {
			marks[gk] = g.batch
		}
		if at < ps.through {
			// Decided by whoever read this before: stored already.
			r.Stats.Duplicates.Add(int64(len(g.recs)))
			return
		}
		b := out(key{gk.app, "kafka/" + gk.sender, g.host, tp}, gk.sender)
		for _, rec := range g.recs {
			b.entries = entries.Append(b.entries, rec)
		}
		if !unmarked {
			b.held = append(b.held, server.WorkerSeq{Worker: gk.worker, Index: gk.index, Seq: g.batch})
		}
		b.stored += int64(len(g.recs))
		if incomplete {
			b.incomplete += int64(len(g.recs))
		}
	}
	var ir identityReader
	fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if len(ftp.Records) == 0 {
			return
		}
		tp := topicPartition{ftp.Topic, ftp.Partition}
		r.mu.Lock()
		ps := r.parts[tp]
		if ps == nil {
			ps = newPartState()
			r.parts[tp] = ps
		}
		r.mu.Unlock()
		foreignSender := fmt.Sprintf("kafka/%s/%d", ftp.Topic, ftp.Partition)
		foreignFloor := s.store.LastBatch(kc.Application, foreignSender)
		var fb *kafkaBatch
		for _, kr := range ftp.Records {
			id, why := ir.identity(kr)
			if why != "" {
				if uint64(kr.Offset)+1 <= foreignFloor || kr.Offset < ps.through {
					continue // stored already (here, or by whoever read it before)
				}
				if fb == nil {
					fb = out(key{kc.Application, foreignSender, "", tp}, fmt.Sprintf("kafka-%s-%d", ftp.Topic, ftp.Partition))
				}
				fb.entries = entries.Append(fb.entries, foreignRecord(kr, why))
				fb.id = uint64(kr.Offset) + 1
				fb.foreign++
				continue
			}
			gk := groupKey{id.app, id.sender, id.worker, id.index}
			g := ps.groups[gk]
			if g != nil && (g.batch != id.batch || id.part != g.from+len(g.recs)) {
				switch {
				case id.batch == g.batch && id.part == 0, id.batch < g.batch:
					// The batch again from its start, or the batches
					// from an earlier one sent again (a host's retry, or
					// its spool after a crash): g's batch comes again,
					// whole; this part of it is dropped.
					delete(ps.groups, gk)
				default:
					// A later batch, or a part out of place: g's other
					// parts will not come (Kafka refused them, or the
					// host that produced them died and routes its records
					// again in new batches). What it has is stored.
					storeGroup(ps, tp, gk, g, kr.Offset, false)
					delete(ps.groups, gk)
				}
				g = nil
			}
			if g == nil {
				if id.part != 0 {
					// The rest of a group whose start was read before
					// and stored or dropped: a copy's tail, or what
					// follows a group stored incomplete.
					if held, ok := heldOf(ps, gk); ok && id.batch <= held {
						r.Stats.Duplicates.Add(1)
						continue
					}
				}
				// A group starting at a later part: its start is gone
				// from the topic (retention). It is stored from here.
				g = &kafkaGroup{batch: id.batch, first: kr.Offset, n: id.parts, from: id.part, host: id.host}
				ps.groups[gk] = g
			}
			g.recs = append(g.recs, kr.Value)
			g.bytes += len(kr.Value)
			if g.bytes > kafkaPartialBytes && g.from+len(g.recs) < g.n {
				// Parts (forged, or of a huge batch) past what a group
				// may hold in memory: stored as they are, unmarked, and
				// the group goes on from the next part.
				storeGroup(ps, tp, gk, g, kr.Offset, true)
				ps.groups[gk] = &kafkaGroup{batch: g.batch, first: kr.Offset + 1, n: g.n, from: g.from + len(g.recs), host: g.host}
				continue
			}
			if g.from+len(g.recs) == g.n {
				storeGroup(ps, tp, gk, g, kr.Offset, false)
				delete(ps.groups, gk)
			}
		}
		last := ftp.Records[len(ftp.Records)-1].Offset
		for gk, g := range ps.groups {
			if last-g.first >= s.kafkaSpan {
				// Its other parts have not come in kafkaPartialSpan
				// offsets: stored as it is, unmarked, decided at
				// first+span (the poll that reads that offset decides,
				// so no earlier poll's through passes it).
				storeGroup(ps, tp, gk, g, g.first+s.kafkaSpan, true)
				delete(ps.groups, gk)
			}
		}
		next := last + 1
		for _, g := range ps.groups {
			next = min(next, g.first)
		}
		c.through[tp] = last + 1
		if c.commits[ftp.Topic] == nil {
			c.commits[ftp.Topic] = map[int32]kgo.EpochOffset{}
		}
		c.commits[ftp.Topic][ftp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: next}
	})
	return c
}

// readBack reads a partition's records from kafkaReadBack before end (or
// its start) to end, and returns per worker instance the last batch it
// holds whole there. It is best effort: what it cannot read in time
// costs the dropping of a copy the host sent again, never a record, so
// it gives up (and says so) rather than hold the assignment up.
func (s *Server) readBack(ctx context.Context, opts []kgo.Opt, topic string, p int32, end int64) map[groupKey]uint64 {
	held := map[groupKey]uint64{}
	start := max(0, end-kafkaReadBack)
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(start)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), // what retention removed
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		s.log.Warn("kafka: cannot read back before the committed offset; a batch sent again may be stored twice", "topic", topic, "partition", p, "error", err)
		return held
	}
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	type part struct {
		batch   uint64
		next, n int
	}
	open := map[groupKey]*part{}
	var ir identityReader
	for {
		// A poll that brings nothing for 2 s has met the end (control
		// records and compaction leave offsets no record has).
		pctx, cancel := context.WithTimeout(ctx, min(2*time.Second, time.Until(deadline)))
		fs := cl.PollFetches(pctx)
		cancel()
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil || time.Now().After(deadline) || ctx.Err() != nil {
			s.log.Warn("kafka: read back before the committed offset in part; a batch sent again may be stored twice", "topic", topic, "partition", p, "error", ferr)
			return held
		}
		if fs.NumRecords() == 0 {
			return held
		}
		last := int64(-1)
		fs.EachRecord(func(kr *kgo.Record) {
			last = kr.Offset
			if kr.Offset >= end {
				return
			}
			id, why := ir.identity(kr)
			if why != "" {
				return
			}
			gk := groupKey{id.app, id.sender, id.worker, id.index}
			g := open[gk]
			switch {
			case g != nil && g.batch == id.batch && id.part == g.next:
			case id.part == 0:
				g = &part{batch: id.batch, n: id.parts}
				open[gk] = g
			default:
				delete(open, gk)
				return
			}
			if g.next++; g.next == g.n {
				held[gk] = max(held[gk], g.batch)
				delete(open, gk)
			}
		})
		if last >= end-1 {
			return held
		}
	}
}

// applyCycle appends a cycle's batches to the store and waits until they
// are durable; batches stored already (a staged cycle applied twice) are
// dropped by their ids.
func (s *Server) applyCycle(c *kafkaCycleData) error {
	var tickets []server.Ticket
	var applied []*kafkaBatch
	for _, b := range c.batches {
		s.ingestMu.Lock()
		t, dup, err := s.store.AppendHeld(b.app, b.sender, "logtk.v1.Record", b.id, b.entries, b.stamp, b.held)
		s.ingestMu.Unlock()
		if err != nil {
			return fmt.Errorf("store %s/%s: %w", b.app, b.sender, err)
		}
		if !dup {
			tickets = append(tickets, t)
			applied = append(applied, b)
		}
	}
	for _, t := range tickets {
		if err := s.store.Commit(t); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	for _, b := range applied {
		s.kafka.Stats.Stored.Add(b.stored)
		s.kafka.Stats.Incomplete.Add(b.incomplete)
		s.kafka.Stats.Foreign.Add(b.foreign)
		if s.onStored != nil {
			s.onStored(b.app, b.sender, "logtk.v1.Record", b.entries, b.stamp)
		}
	}
	return nil
}

// identity is what a record of ours says of itself in its headers.
type identity struct {
	sender, app, host, worker string
	index                     uint32
	batch                     uint64
	part, parts               int
}

// kafkaIdentity reads a record's identity, or says why it is not ours.
func kafkaIdentity(kr *kgo.Record) (identity, string) {
	var ir identityReader
	return ir.identity(kr)
}

// identityReader reads records' identities. The records of a poll mostly
// share their sender, application, worker and hostname: a name equal to
// the last record's is taken from it, already checked, rather than made
// and checked again (no allocation per record for them).
type identityReader struct {
	sender, app, worker, host cachedName
}

type cachedName struct {
	s       string
	set, ok bool
}

func (c *cachedName) get(b []byte, valid func(string) bool) (string, bool) {
	if c.set && string(b) == c.s {
		return c.s, c.ok
	}
	c.s, c.set = string(b), true
	c.ok = valid == nil || valid(c.s)
	return c.s, c.ok
}

// decimal reads an unsigned decimal number of at most limit.
func decimal(b []byte, limit uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (limit-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func (ir *identityReader) identity(kr *kgo.Record) (identity, string) {
	var id identity
	var have int
	ok := true
	var sOK, aOK, hOK = true, true, true
	for _, h := range kr.Headers {
		v := h.Value
		switch h.Key {
		case kt.HeaderSender:
			id.sender, sOK = ir.sender.get(v, wire.ValidName)
			have |= 1
		case kt.HeaderApplication:
			id.app, aOK = ir.app.get(v, wire.ValidName)
			have |= 2
		case kt.HeaderBatch:
			id.batch, ok = decimal(v, math.MaxUint64)
			have |= 4
		case kt.HeaderWorker:
			id.worker, _ = ir.worker.get(v, nil)
			have |= 8
		case kt.HeaderIndex:
			var n uint64
			n, ok = decimal(v, math.MaxUint32)
			id.index, have = uint32(n), have|16
		case kt.HeaderPart:
			i, n, cut := bytes.Cut(v, []byte{'/'})
			part, ok1 := decimal(i, 1<<24)
			parts, ok2 := decimal(n, 1<<24)
			id.part, id.parts = int(part), int(parts)
			ok = cut && ok1 && ok2 && id.part < id.parts
			have |= 32
		case kt.HeaderHostname:
			id.host, hOK = ir.host.get(v, wire.ValidHostname)
		}
		if !ok {
			return id, fmt.Sprintf("header %s = %.40q: not what logtk writes there (a decimal number; i/n for the part, 0 <= i < n <= 16777216)", h.Key, v)
		}
	}
	switch {
	case have == 0:
		return id, "no logtk headers: not produced by logtk's kafka transport"
	case have != 63:
		return id, "logtk headers missing: each of logtk.sender, .application, .batch, .worker, .index and .part is needed"
	case !sOK:
		return id, fmt.Sprintf("logtk.sender %.40q is not a valid name", id.sender)
	case !aOK:
		return id, fmt.Sprintf("logtk.application %.40q is not a valid name", id.app)
	case !hOK:
		return id, fmt.Sprintf("logtk.hostname %.40q is not a valid hostname", id.host)
	case id.batch == 0:
		return id, "logtk.batch is 0: batch ids start at 1"
	}
	var r record.Record
	if !r.Parse(kr.Value) || !irecord.WholeFields(kr.Value) {
		return id, "the value is not a logtk.v1.Record"
	}
	return id, ""
}

// maxForeignMessage bounds the message of a foreign record.
const maxForeignMessage = 64 << 10

// foreignRecord encodes a record that is not ours as a logtk record: its
// value as the message (quoted when it is not UTF-8), at warn level, with
// the reason and where it was read.
func foreignRecord(kr *kgo.Record, why string) []byte {
	msg := kr.Value
	cut := len(msg) > maxForeignMessage
	if cut {
		msg = msg[:maxForeignMessage]
	}
	text := string(msg)
	if !utf8.Valid(msg) {
		text = strconv.QuoteToASCII(text)
	}
	t := kr.Timestamp
	if t.IsZero() {
		t = time.Now()
	}
	b := irecord.AppendHead(nil, t, record.LevelWarn, text, "kafka")
	b = irecord.AppendAttrOf(b, pa(slog.String("kafka_error", why)))
	b = irecord.AppendAttrOf(b, pa(slog.String("kafka_topic", kr.Topic)))
	b = irecord.AppendAttrOf(b, pa(slog.Int64("kafka_partition", int64(kr.Partition))))
	b = irecord.AppendAttrOf(b, pa(slog.Int64("kafka_offset", kr.Offset)))
	if len(kr.Key) > 0 {
		b = irecord.AppendAttrOf(b, pa(slog.String("kafka_key", strconv.QuoteToASCII(string(kr.Key)))))
	}
	if cut {
		b = irecord.AppendAttrOf(b, pa(slog.Int64("kafka_value_bytes", int64(len(kr.Value)))))
	}
	return b
}

func pa(a slog.Attr) *slog.Attr { return &a }

// commitErr is the first partition error of an offset commit's answer.
func commitErr(resp *kmsg.OffsetCommitResponse) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}
