package host

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/internal/capture"
	"github.com/logtk/logtk/internal/ipc"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/shmring"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/record"
)

// A run is one incarnation of a worker instance: the process the
// instance started last, its IPC channel and its output pipes. Its
// goroutines read the channel (readIPC, and the worker's shared-memory
// ring between frames: ring.go), stdout (readLines) and stderr
// (readStderr), and turn what they read into stamped records, queued in
// the order they were received.

// sendTimeout bounds a write to a worker's channel (welcome, messages).
const sendTimeout = 5 * time.Second

// maxBadFrames is how many consecutive bad frames a channel may carry before
// the host stops reading it as frames: the stream has lost its framing.
const maxBadFrames = 100

// run is the state the goroutines of one incarnation share.
type run struct {
	in          *instance
	pid         int64
	incarnation uint32
	writeMu     sync.Mutex
	conn        *net.UnixConn
	origin      []byte // the stamp fields common to this run's records

	// The shared-memory ring, read by readIPC only (nil without one, or
	// once abandoned as corrupt).
	ring     *shmring.Shared
	sockRecs uint64 // RECORD_AT frames taken from the socket
	// ringBlocked: the ring's next entry is a barrier for RECORD_AT frames
	// not yet read from the socket.
	ringBlocked bool
	// ringUnsettled counts the reads in a row that found the ring's
	// published position not (yet) a valid one.
	ringUnsettled int
	// With the durable ingest: the ring's file; inRead while the ring is
	// read (under emitMu); chunkDue until the read's first record is
	// journaled with chunkAt, the position the read began at.
	rf       *ringFile
	markedAt uint64 // the ring position the last mark gave
	inRead   bool
	chunkDue bool
	chunkAt  uint64
}

// emit stamps body (an encoded record without origin fields) and queues it.
func (r *run) emit(source int32, body []byte) {
	r.in.emitMu.Lock()
	r.stampLocked(source, body, false, time.Now().UnixNano())
	r.flushLocked()
	r.in.emitMu.Unlock()
}

// stampLocked copies body into the instance's slab, appends the host's
// fields and adds the result to the pending batch. With check it
// validates the copy first (and adds nothing if that fails): a record read
// from memory the worker can still write is checked only once it is out
// of the worker's reach. The caller holds emitMu and calls flushLocked
// before it lets go of it.
func (r *run) stampLocked(source int32, body []byte, check bool, received int64) error {
	in := r.in
	if r.origin == nil {
		r.origin = irecord.AppendStampOrigin(nil, in.id.Name, uint32(in.id.Index), r.pid, r.incarnation)
	}
	if need := len(body) + len(r.origin) + 32; cap(in.slab)-len(in.slab) < need {
		in.slab = make([]byte, 0, max(64<<10, need))
	}
	start := len(in.slab)
	rec := append(in.slab, body...)
	if check {
		if err := irecord.Validate(rec[start:]); err != nil {
			return err
		}
	}
	in.seq++
	rec = append(rec, r.origin...)
	rec = irecord.AppendStampArrival(rec, in.seq, source, received)
	if st := in.stream; st != nil {
		if r.chunkDue {
			// The first record of a ring read: where the read began and
			// the seq it starts from.
			st.chunk(r.rf, r.chunkAt, in.seq)
			r.chunkDue = false
		} else if !r.inRead {
			st.side(in.seq, rec[start:])
		}
	}
	in.slab = rec
	in.pending = append(in.pending, rec[start:len(rec):len(rec)])
	if len(in.pending) >= in.h.opts.BatchSize {
		r.flushLocked()
	}
	return nil
}

// flushLocked queues the pending records. The caller holds emitMu.
func (r *run) flushLocked() { r.flushMarkLocked(nil, 0) }

// flushMarkLocked queues the pending records, first journaling what the
// durable ingest must know of them; once they are settled, so are the
// ring rf's entries before pos (with rf nil, no ring's).
func (r *run) flushMarkLocked(rf *ringFile, pos uint64) {
	in := r.in
	var m mark
	if st := in.stream; st != nil {
		st.writeBuf(in.seq)
		m = mark{st: st, seq: in.seq, rf: rf, pos: pos}
	}
	if len(in.pending) == 0 && rf == nil {
		return
	}
	in.records.Add(uint64(len(in.pending)))
	in.h.enqueue(in.pending, m)
	in.pending = in.h.getBatch()
}

// hostRecord emits a record the host writes about the worker.
func (r *run) hostRecord(level int32, msg string, attrs ...slog.Attr) {
	b := irecord.AppendHead(nil, time.Now(), level, msg, "logtk.host")
	for _, a := range attrs {
		b = irecord.AppendAttr(b, a)
	}
	r.emit(record.SourceHost, b)
}

// messageRecord keeps a custom message nobody handles (Options.OnMessage
// is not set, as under logtk-host run) as a debug record of the worker:
// logger logtk.message, the payload as a string attribute when it is
// UTF-8, as bytes otherwise.
func (r *run) messageRecord(msg []byte) {
	b := irecord.AppendHead(nil, time.Now(), record.LevelDebug, fmt.Sprintf("custom message (%d bytes); nothing handles messages here", len(msg)), "logtk.message")
	if utf8.Valid(msg) {
		b = irecord.AppendAttr(b, slog.String("payload", string(msg)))
	} else {
		b = irecord.AppendAttr(b, slog.Any("payload", msg))
	}
	r.emit(record.SourceHost, b)
}

func (r *run) readIPC() {
	in := r.in
	rd := ipc.NewReader(r.conn, in.cfg.MaxFrameBytes)
	// The worker is gone (or its channel is): the ring's last records,
	// written after everything the socket carried, are read last.
	defer r.drainSettled(shmring.NoLimit, true)
	bad := 0
	helloSeen := false
	for {
		if !rd.FrameBuffered() {
			r.in.emitMu.Lock()
			r.flushLocked()
			r.in.emitMu.Unlock()
		}
		r.pollRing(rd)
		t, p, err := rd.Next()
		r.ringOp(func() { r.ring.CancelSleep() })
		if err != nil {
			var fe *ipc.FrameError
			switch {
			case err == io.EOF:
				return
			case errors.As(err, &fe):
				r.hostRecord(record.LevelError, "worker sent a bad IPC frame: "+fe.Reason,
					slog.Int64("offset", fe.Offset), slog.String("frame_type", fe.Type.String()), slog.Uint64("declared_length", uint64(fe.Length)))
				if bad++; bad >= maxBadFrames {
					r.goodbye(fmt.Sprintf("%d consecutive bad frames; the channel has lost its framing", bad))
					r.hostRecord(record.LevelError, fmt.Sprintf("closed the IPC channel after %d consecutive bad frames; the worker's SDK falls back to stderr", bad))
					r.discard()
					return
				}
				continue
			case errors.Is(err, ipc.ErrTruncated):
				r.hostRecord(record.LevelError, "IPC channel ended inside a frame: "+err.Error())
				return
			case errors.Is(err, net.ErrClosed):
				return
			default:
				r.hostRecord(record.LevelError, "reading the IPC channel failed: "+err.Error())
				return
			}
		}
		switch t {
		case ipc.TypeHello:
			var hello logtkv1.Hello
			if err := proto.Unmarshal(p, &hello); err != nil {
				r.hostRecord(record.LevelError, "worker sent an undecodable hello: "+err.Error(), slog.Any("payload", append([]byte(nil), p...)))
				bad++
				continue
			}
			helloSeen = true
			if hello.ProtocolVersion != ipc.ProtocolVersion {
				reason := fmt.Sprintf("worker speaks IPC protocol %d, this host speaks %d", hello.ProtocolVersion, ipc.ProtocolVersion)
				r.goodbye(reason)
				r.hostRecord(record.LevelError, "refused the worker's IPC channel: "+reason, slog.String("sdk", hello.Sdk))
				r.discard()
				return
			}
			w, _ := proto.Marshal(&logtkv1.Welcome{
				ProtocolVersion: ipc.ProtocolVersion,
				MaxFrameBytes:   uint32(in.cfg.MaxFrameBytes),
				Worker:          in.id.Name,
				WorkerIndex:     uint32(in.id.Index),
				Incarnation:     r.incarnation,
			})
			r.write(ipc.TypeWelcome, w)
		case ipc.TypeRecord:
			if !helloSeen {
				helloSeen = true
				r.hostRecord(record.LevelWarn, "worker sent records without a hello frame; accepting them")
			}
			// Records read together are queued together: the batch goes
			// out before the reader could block (top of the loop).
			r.in.emitMu.Lock()
			err := r.stampLocked(record.SourceSDK, p, true, time.Now().UnixNano())
			r.in.emitMu.Unlock()
			if err != nil {
				r.hostRecord(record.LevelError, "worker sent a malformed record: "+err.Error(),
					slog.Any("payload", append([]byte(nil), p...)))
				bad++
				continue
			}
		case ipc.TypeRecordAt:
			if err := r.recordAt(p); err != nil {
				r.hostRecord(record.LevelError, "worker sent a malformed record: "+err.Error(),
					slog.Any("payload", append([]byte(nil), p...)))
				bad++
				continue
			}
		case ipc.TypeDoorbell:
			// The ring has records; the loop reads it next.
		case ipc.TypeMessage:
			r.in.emitMu.Lock()
			r.flushLocked() // the records before it, before a callback that may take its time
			r.in.emitMu.Unlock()
			msg := append([]byte(nil), p...)
			if fn := in.h.opts.OnMessage; fn != nil {
				fn(in.id, msg)
			} else {
				r.messageRecord(msg)
			}
		case ipc.TypeGoodbye:
			// The worker is closing its end; read on to EOF.
		default:
			r.hostRecord(record.LevelError, "worker sent an unknown IPC frame type "+t.String(), slog.Any("payload", append([]byte(nil), p...)))
			bad++
			continue
		}
		bad = 0
	}
}

func (r *run) write(t ipc.Type, payload []byte) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.conn.SetWriteDeadline(time.Now().Add(sendTimeout))
	_, err := r.conn.Write(ipc.AppendFrame(nil, t, payload))
	return err
}

func (r *run) goodbye(reason string) {
	g, _ := proto.Marshal(&logtkv1.Goodbye{Reason: reason})
	r.write(ipc.TypeHostGoodbye, g)
}

// discard reads the channel to its end without interpreting it, so a worker
// blocked writing to it is not stuck (its SDK switches to stderr on the
// goodbye).
func (r *run) discard() {
	r.conn.CloseWrite()
	io.Copy(io.Discard, r.conn)
}

// readLines turns a stdout pipe into records.
func (r *run) readLines(f *os.File, source int32) {
	lv := lineLevel{def: record.LevelInfo}
	capture.Lines(f, r.in.cfg.MaxLineBytes, func(line []byte, part int, last bool) {
		r.lineRecord(source, line, part, last, lv.of(line, part))
	})
}

// readStderr is readLines for stderr (lines at the worker's StderrLevel),
// with crash reports (see capture.Splitter): a report that ends while the
// worker runs is a stderr record of its own at error level, its summary
// for message and its text in the "panic" attribute; a report that
// outgrows 4*MaxLineBytes is emitted in parts as it grows. readStderr
// returns the report stderr ended in, for the exit record, and the one
// that ended by a quiet spell less than lastWordsWindow before stderr
// ended, if nothing but blank lines came after it (lastWords).
func (r *run) readStderr(f *os.File) (crash, lastWords *capture.Report) {
	lv := lineLevel{def: r.in.cfg.StderrLevelNumber()}
	var quietAt time.Time
	sp := &capture.Splitter{
		Limit: 4 * r.in.cfg.MaxLineBytes,
		Line: func(line []byte, part int, last bool) {
			r.lineRecord(record.SourceStderr, line, part, last, lv.of(line, part))
		},
		Report: func(rep capture.Report) {
			if rep.Ended == capture.EndQuiet && !rep.More {
				quietAt = time.Now()
			}
			r.reportRecord(rep)
		},
	}
	if rep, open, _ := sp.Read(f, r.in.cfg.MaxLineBytes); open {
		return &rep, nil
	}
	if rep, ok := sp.LastWords(); ok && time.Since(quietAt) < lastWordsWindow {
		return nil, &rep
	}
	return nil, nil
}

// reportRecord emits a crash report that ended while the worker ran, or a
// part of one that outgrew its limit.
func (r *run) reportRecord(rep capture.Report) {
	if rep.More {
		r.hostRecord(record.LevelError, fmt.Sprintf("crash report, part %d (continues)", rep.Part),
			slog.String("panic", rep.Text))
		return
	}
	b := irecord.AppendHead(nil, time.Now(), record.LevelError, rep.Summary, "")
	b = irecord.AppendAttr(b, slog.String("panic", rep.Text))
	r.emit(record.SourceStderr, b)
}

// lineLevel gives the pieces of a line the level its first piece names
// (capture.LevelPrefix), or def.
type lineLevel struct {
	def, cur int32
}

func (l *lineLevel) of(line []byte, part int) int32 {
	if part == 0 {
		l.cur = l.def
		if lv, ok := capture.LevelPrefix(line); ok {
			l.cur = irecord.LevelFromSlog(lv)
		}
	}
	return l.cur
}

// lineRecord emits a line (or a piece of one) at level, unless it is a
// JSON line with a level of its own.
func (r *run) lineRecord(source int32, line []byte, part int, last bool, level int32) {
	if part == 0 && last {
		if jr, ok := capture.ParseJSONLine(line); ok {
			t := jr.Time
			if t.IsZero() {
				t = time.Now()
			}
			if jr.HasLvl {
				level = irecord.LevelFromSlog(jr.Level)
			}
			b := irecord.AppendHead(nil, t, level, jr.Message, jr.Logger)
			for _, a := range jr.Attrs {
				b = irecord.AppendAttr(b, a)
			}
			r.emit(source, b)
			return
		}
	}
	text := string(line)
	valid := utf8.ValidString(text)
	if !valid {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	b := irecord.AppendHead(nil, time.Now(), level, text, "")
	if !valid {
		// The message had to be repaired; the exact bytes travel along.
		b = irecord.AppendAttr(b, slog.Any("logtk.raw_line", line))
	}
	if part > 0 || !last {
		b = irecord.AppendAttr(b, slog.Int("logtk.line_part", part))
		b = irecord.AppendAttr(b, slog.Bool("logtk.line_continues", !last))
	}
	r.emit(source, b)
}
