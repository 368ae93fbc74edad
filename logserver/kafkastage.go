package logserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logtk/logtk/internal/fsutil"
	"github.com/logtk/logtk/internal/server"
)

// The staging file holds the last cycle's store batches between their
// staging and their store (logserver/kafka.go):
//
//	"LTKS2" str(member) uvarint(cycle) uvarint(n) n x batch, then the CRC-32C
//	(Castagnoli) of all before it, 4 bytes little-endian
//	batch: str(app) str(sender) uvarint(id) str(stamp) str(topic)
//	       uvarint(partition) uvarint(held n) n x (str(worker)
//	       uvarint(index) uvarint(seq)) uvarint(records of ours)
//	       uvarint(foreign records) uvarint(incomplete records) str(entries)
//	str: uvarint(length) bytes
//
// A file cut short or damaged reads as none: it was being written when
// the server died, before the commit that could have made it count.

const stagedMagic = "LTKS2"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// kafkaPoint runs the test hook at a point of a cycle.
func (s *Server) kafkaPoint(point string) error {
	if s.kafkaHook == nil {
		return nil
	}
	return s.kafkaHook(point)
}

func appendStr(b, s []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func encodeStaged(c *kafkaCycleData) []byte {
	b := append([]byte(stagedMagic), 0)[:len(stagedMagic)]
	b = appendStr(b, []byte(c.member))
	b = binary.AppendUvarint(b, uint64(c.number))
	b = binary.AppendUvarint(b, uint64(len(c.batches)))
	for _, x := range c.batches {
		b = appendStr(b, []byte(x.app))
		b = appendStr(b, []byte(x.sender))
		b = binary.AppendUvarint(b, x.id)
		b = appendStr(b, x.stamp)
		b = appendStr(b, []byte(x.tp.topic))
		b = binary.AppendUvarint(b, uint64(uint32(x.tp.p)))
		b = binary.AppendUvarint(b, uint64(len(x.held)))
		for _, h := range x.held {
			b = appendStr(b, []byte(h.Worker))
			b = binary.AppendUvarint(b, uint64(h.Index))
			b = binary.AppendUvarint(b, h.Seq)
		}
		b = binary.AppendUvarint(b, uint64(x.stored))
		b = binary.AppendUvarint(b, uint64(x.foreign))
		b = binary.AppendUvarint(b, uint64(x.incomplete))
		b = appendStr(b, x.entries)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errStagedDamaged = errors.New("damaged")

func decodeStaged(b []byte) (*kafkaCycleData, error) {
	if len(b) < len(stagedMagic)+4 || string(b[:len(stagedMagic)]) != stagedMagic {
		return nil, errStagedDamaged
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, errStagedDamaged
	}
	p := body[len(stagedMagic):]
	var bad bool
	uv := func() uint64 {
		v, k := binary.Uvarint(p)
		if k <= 0 {
			bad = true
			return 0
		}
		p = p[k:]
		return v
	}
	str := func() []byte {
		n := uv()
		if bad || n > uint64(len(p)) {
			bad = true
			return nil
		}
		v := p[:n:n]
		p = p[n:]
		return v
	}
	c := &kafkaCycleData{member: string(str())}
	c.number = int64(uv())
	n := uv()
	for i := uint64(0); i < n && !bad; i++ {
		x := &kafkaBatch{app: string(str()), sender: string(str()), id: uv(), stamp: str()}
		x.tp = topicPartition{string(str()), int32(uint32(uv()))}
		for k := uv(); k > 0 && !bad; k-- {
			x.held = append(x.held, server.WorkerSeq{Worker: string(str()), Index: uint32(uv()), Seq: uv()})
		}
		x.stored = int64(uv())
		x.foreign = int64(uv())
		x.incomplete = int64(uv())
		x.entries = str()
		c.batches = append(c.batches, x)
	}
	if bad || len(p) != 0 {
		return nil, errStagedDamaged
	}
	return c, nil
}

// stage writes a cycle's batches to the staging file, synced (as the
// store is: with fsync "none", not synced).
func (s *Server) stage(c *kafkaCycleData) error {
	b := encodeStaged(c)
	path := s.kafka.staged
	if s.cfg.Fsync == "none" {
		return os.WriteFile(path, b, 0o644)
	}
	_, err := os.Stat(path)
	if err := fsutil.WriteSynced(path, b, os.O_TRUNC); err != nil {
		return err
	}
	if os.IsNotExist(err) {
		// A new name: synced into its directory, once.
		return fsutil.SyncDir(filepath.Dir(path))
	}
	return nil
}

// clearStaged empties the staging file once its cycle is in the store
// (not synced: a staged cycle applied again is dropped by its ids).
func (s *Server) clearStaged() {
	os.Truncate(s.kafka.staged, 0)
}

// resolveStaged settles a cycle a previous membership (or process) left
// staged: applied to the store if its commit was made (this member's
// cycle in the partitions' commit metadata is at least its number),
// dropped if not. It needs the brokers: without them it fails, and the
// next membership tries again.
func (s *Server) resolveStaged(ctx context.Context, opts []kgo.Opt) error {
	r := &s.kafka
	b, err := os.ReadFile(r.staged)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(b) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	c, err := decodeStaged(b)
	if err != nil {
		s.log.Warn("kafka: the staging file is damaged (its cycle was never committed); dropping it", "file", r.staged)
		s.clearStaged()
		return nil
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(fctx, s.cfg.Kafka.Group)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		return fmt.Errorf("reading the group's committed offsets: %w", err)
	}
	keep := c.batches[:0]
	dropped := 0
	for _, x := range c.batches {
		o, ok := offs.Lookup(x.tp.topic, x.tp.p)
		// The member that staged it: the one named in the file (the
		// default name follows the hostname, which a restart may change).
		if ok && parseCycles(o.Metadata)[c.member] >= c.number {
			keep = append(keep, x)
		} else {
			dropped++
		}
	}
	c.batches = keep
	r.mu.Lock()
	r.cycle = max(r.cycle, c.number)
	r.mu.Unlock()
	if err := s.applyCycle(c); err != nil {
		return err
	}
	s.log.Info("kafka: settled the cycle staged before", "cycle", c.number, "batches_stored", len(keep), "batches_dropped", dropped)
	r.Stats.Resolved.Add(1)
	s.clearStaged()
	return nil
}

// Commit metadata: "logtk1", " through=<offset>", then for each member
// " member:cycle".
const cyclesPrefix = "logtk1"

// parseThrough reads the through= of a partition's commit metadata (0
// when it has none).
func parseThrough(meta string) int64 {
	f := strings.Fields(meta)
	if len(f) == 0 || f[0] != cyclesPrefix {
		return 0
	}
	for _, x := range f[1:] {
		if v, ok := strings.CutPrefix(x, "through="); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return max(n, 0)
		}
	}
	return 0
}

// parseCycles reads a partition's commit metadata; anything else (a
// commit by another tool) reads as no cycles.
func parseCycles(meta string) map[string]int64 {
	out := map[string]int64{}
	f := strings.Fields(meta)
	if len(f) == 0 || f[0] != cyclesPrefix {
		return out
	}
	for _, mc := range f[1:] {
		if strings.HasPrefix(mc, "through=") {
			continue
		}
		m, c, ok := strings.Cut(mc, ":")
		if n, err := strconv.ParseInt(c, 10, 64); ok && err == nil {
			out[m] = n
		}
	}
	return out
}

// maxCycles bounds the members a partition's metadata names (Kafka's
// offset.metadata.max.bytes is 4096 by default): past it, those with the
// oldest cycles are left out. A member left out whose staged cycle is
// that old drops it; those cycles are long settled.
const maxCycles = 48

// maxMetadataBytes keeps the metadata within Kafka's default
// offset.metadata.max.bytes (4096), with room to spare.
const maxMetadataBytes = 3500

func formatCycles(through int64, m map[string]int64) string {
	type mc struct {
		m string
		c int64
	}
	var l []mc
	for k, v := range m {
		l = append(l, mc{k, v})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].c > l[j].c })
	if len(l) > maxCycles {
		l = l[:maxCycles]
	}
	var b strings.Builder
	b.WriteString(cyclesPrefix)
	fmt.Fprintf(&b, " through=%d", through)
	for _, x := range l {
		e := fmt.Sprintf(" %s:%d", x.m, x.c)
		if b.Len()+len(e) > maxMetadataBytes {
			break // the oldest cycles go first
		}
		b.WriteString(e)
	}
	return b.String()
}
