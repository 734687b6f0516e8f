// Package buswal is the embedded bus as an append-only write-ahead log on
// disk, so embedded mode has the shape of the scaled one (ingest → durable
// log → pipeline → store, like ingest → Kafka → pipeline → OpenSearch).
//
// Publish frames each record (length, CRC-32C, protobuf), a single writer
// goroutine appends every waiting publish to the current segment with one
// write and one fsync (group commit), and Publish returns nil only after that
// fsync. The subscribed handler (the pipeline) is then given the records in
// large batches; once it returns nil the applied offset is checkpointed and
// segments wholly applied are deleted. After a crash, Open truncates a torn
// last record, refuses a corrupt segment with ErrCorrupt, and the handler is
// given again everything after the checkpoint (the store's deterministic
// ids make that replay idempotent).
//
// The log is bounded: at most Config.MaxBacklog records may wait for the
// handler; beyond that Publish waits for room and then fails with
// bus.ErrUnavailable, so a store that falls behind slows the edges down
// (HTTP 503, withheld PUBACK) instead of growing a queue.
package buswal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
)

// ErrAlreadySubscribed is returned by a second concurrent Subscribe.
var ErrAlreadySubscribed = errors.New("write-ahead log already has a subscriber")

// Config tunes the log.
type Config struct {
	// Dir holds the segments and the checkpoint; created if missing.
	Dir string
	// SegmentBytes starts a new segment once the current one is this large
	// (default 64 MiB).
	SegmentBytes int64
	// MaxBacklog bounds the records published but not yet applied by the
	// handler (default 500,000).
	MaxBacklog int
	// PublishTimeout bounds how long Publish waits for room in the backlog
	// and for its fsync (default 5 s).
	PublishTimeout time.Duration
	// MaxApplyBatch bounds the records of one handler call (default 20,000).
	MaxApplyBatch int
	// ApplyInterval is the least time between the starts of two handler
	// calls unless a full batch waits (default 5 ms; negative: none). A
	// record arriving after a quiet spell is applied at once; under load the
	// handler gets fewer, larger batches — each store commit costs a
	// transaction and an fsync on the disk the log's own fsyncs (the acks)
	// wait for.
	ApplyInterval time.Duration
	// GroupLinger is how long the writer, woken by a publish, waits for
	// others to join its group before the write and fsync, while many
	// devices publish (GroupLingerDevices); 0: it takes only those already
	// waiting. Every ack of the group waits up to this much longer; in
	// exchange, at many devices each sending rarely (one or two publishes
	// waiting per wake-up), the log makes several times fewer fsyncs and
	// wake-ups per second. A few clients each waiting for their acks before
	// sending more (closed loop) would instead lose throughput to every
	// linger — hence the device count.
	GroupLinger time.Duration
	// GroupLingerDevices is how many distinct devices (the records'
	// DeviceId) must have published within the last 100 ms
	// window or the current one for a group to linger (default 256;
	// negative: always).
	GroupLingerDevices int
	// SyncEvery is the least time between two checkpoints when a syncer is
	// set (SetSyncApplied; default 200 ms): each costs the store an fsync.
	SyncEvery time.Duration
}

// Log is the write-ahead log bus. Use Open.
type Log struct {
	log  *slog.Logger
	cfg  Config
	lock *os.File

	reqs chan *appendReq
	quit chan struct{}
	done chan struct{}

	// writer goroutine only
	f      *os.File
	segs   []segment // segs[len-1] is being appended to
	broken error

	mu sync.Mutex
	// next is the offset the next durable record gets; applied is the
	// offset of the first record the handler has not applied.
	next, applied uint64
	// reserved counts records published (in flight or durable) and not yet
	// applied; it is what MaxBacklog bounds.
	reserved int
	// pending holds durable, unapplied records in offset order; ready
	// counts them.
	pending []entry
	ready   int
	// wake is closed and replaced whenever records become durable or are
	// applied (waiters re-check their condition).
	wake       chan struct{}
	subscribed bool
	closed     bool
	ckpt       *os.File
	// segFirsts are the first offsets of the segments on disk, for
	// deletion once applied (guarded by mu; the writer appends to it).
	segFirsts []uint64
	// syncApplied makes what the handler applied durable (SetSyncApplied;
	// guarded by mu). Subscriber goroutine only: ckptAt is the offset the
	// checkpoint file holds, ckptTime when it was written.
	syncApplied func() error
	ckptAt      uint64
	ckptTime    time.Time

	lag      prometheus.Histogram
	backlog  prometheus.GaugeFunc
	groups   prometheus.Histogram
	applies  prometheus.Histogram
	fsyncDur prometheus.Histogram
}

type entry struct {
	first uint64
	recs  []*busv1.Record
	// durable is when the records' fsync completed (ack time).
	durable time.Time
}

type appendReq struct {
	buf  []byte
	recs []*busv1.Record
	errc chan error
}

var (
	_ bus.Bounded    = (*Log)(nil)
	_ bus.Publisher  = (*Log)(nil)
	_ bus.Subscriber = (*Log)(nil)
)

// Open opens (creating if needed) the log in cfg.Dir, recovering after a
// crash: a torn last record is truncated, a corrupt segment is an error
// wrapping ErrCorrupt. Metrics go to reg (may be nil).
func Open(log *slog.Logger, cfg Config, reg prometheus.Registerer) (*Log, error) {
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = 64 << 20
	}
	if cfg.MaxBacklog <= 0 {
		cfg.MaxBacklog = 500_000
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.MaxApplyBatch <= 0 {
		cfg.MaxApplyBatch = 20_000
	}
	if cfg.ApplyInterval == 0 {
		cfg.ApplyInterval = 5 * time.Millisecond
	}
	if cfg.SyncEvery <= 0 {
		cfg.SyncEvery = 200 * time.Millisecond
	}
	if cfg.GroupLingerDevices == 0 {
		cfg.GroupLingerDevices = 256
	}
	// The log holds every device's readings: private to the platform's
	// user (a directory created by an older version is tightened too, which
	// also covers its older files).
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("make log dir private: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.Dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("log dir %s is in use by another process: %w", cfg.Dir, err)
	}
	l := &Log{
		log: log, cfg: cfg, lock: lock,
		reqs: make(chan *appendReq, 4096),
		quit: make(chan struct{}),
		done: make(chan struct{}),
		wake: make(chan struct{}),
	}
	if err := l.recover(); err != nil {
		l.closeFiles()
		return nil, err
	}
	l.lag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "iot_wal_ack_to_applied_seconds",
		Help:    "Time from a record's durable ack (fsync) to the pipeline having stored it (visible to readers).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 1.5, 28),
	})
	l.groups = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "iot_wal_group_records",
		Help:    "Records made durable by one write and fsync (group commit).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 16),
	})
	l.applies = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "iot_wal_apply_records",
		Help:    "Records given to the store in one handler call (one store transaction).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 16),
	})
	l.fsyncDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "iot_wal_fsync_seconds",
		Help:    "Duration of one segment fsync.",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
	})
	l.backlog = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "iot_wal_backlog_records",
		Help: "Records published and not yet applied to the store (bounded by the max backlog).",
	}, func() float64 { l.mu.Lock(); defer l.mu.Unlock(); return float64(l.reserved) })
	if reg != nil {
		reg.MustRegister(l.lag, l.groups, l.applies, l.fsyncDur, l.backlog)
	}
	go l.writeLoop()
	return l, nil
}

// recover reads the checkpoint and the segments left on disk, queues every
// durable record after the checkpoint for the handler, and opens the last
// segment (or a new one) for appending.
func (l *Log) recover() error {
	dir := l.cfg.Dir
	applied, haveCkpt, err := readCheckpoint(dir)
	if err != nil {
		return err
	}
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	if !haveCkpt && len(segs) > 0 {
		applied = segs[0].first
	}
	if len(segs) > 0 && applied < segs[0].first {
		return fmt.Errorf("%w: checkpoint %d is before the oldest segment %s (a segment is missing)", ErrCorrupt, applied, filepath.Base(segs[0].path))
	}
	next := applied
	var recs []*busv1.Record
	for i := range segs {
		s := &segs[i]
		if s.first != next && i > 0 {
			return fmt.Errorf("%w: segment %s starts at record %d, want %d (a segment is missing)", ErrCorrupt, filepath.Base(s.path), s.first, next)
		}
		last := i == len(segs)-1
		res, err := scanSegment(s.path, s.first, applied, last, func(_ uint64, rec *busv1.Record) error {
			recs = append(recs, rec)
			return nil
		})
		if err != nil {
			return err
		}
		if res.torn {
			l.log.Warn("write-ahead log: truncating a torn last record", "segment", filepath.Base(s.path), "valid_bytes", res.valid)
			if err := os.Truncate(s.path, res.valid); err != nil {
				return fmt.Errorf("truncate torn segment: %w", err)
			}
		}
		s.count, s.size = res.count, res.valid
		next = s.first + s.count
	}
	if next < applied {
		return fmt.Errorf("%w: checkpoint %d is past the end of the log (%d)", ErrCorrupt, applied, next)
	}
	ckpt, err := os.OpenFile(filepath.Join(dir, ckptName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open checkpoint: %w", err)
	}
	l.ckpt = ckpt
	if len(segs) == 0 {
		segs = []segment{{path: filepath.Join(dir, segName(next)), first: next}}
	}
	tail := &segs[len(segs)-1]
	f, err := os.OpenFile(tail.path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	if _, err := f.Seek(tail.size, 0); err != nil {
		f.Close()
		return fmt.Errorf("seek segment: %w", err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return fmt.Errorf("sync log dir: %w", err)
	}
	l.f, l.segs = f, segs
	for _, s := range segs {
		l.segFirsts = append(l.segFirsts, s.first)
	}
	l.next, l.applied, l.ckptAt = next, applied, applied
	if len(recs) > 0 {
		l.pending = []entry{{first: applied, recs: recs, durable: time.Now()}}
		l.reserved = len(recs)
		l.ready = len(recs)
		l.log.Info("write-ahead log: replaying records not yet applied", "records", len(recs), "from_offset", applied)
	}
	return nil
}

// Publish appends recs and returns nil once they are on disk (fsync). It
// waits for room in the backlog at most PublishTimeout (or until ctx ends),
// then fails with bus.ErrUnavailable.
func (l *Log) Publish(ctx context.Context, recs []*busv1.Record) error {
	if len(recs) == 0 {
		return nil
	}
	var buf []byte
	for _, r := range recs {
		var err error
		if buf, err = appendFrame(buf, r); err != nil {
			return err
		}
	}
	if len(buf) > maxPublish {
		return fmt.Errorf("write-ahead log: batch of %d bytes exceeds %d", len(buf), maxPublish)
	}
	// The timeout context (a timer and a registration with the caller's
	// context) is made only when Publish has to wait.
	var cancel context.CancelFunc
	timed := func() {
		if cancel == nil {
			ctx, cancel = context.WithTimeout(ctx, l.cfg.PublishTimeout)
		}
	}
	defer func() {
		if cancel != nil {
			cancel()
		}
	}()
	if !l.tryReserve(len(recs)) {
		timed()
		if err := l.reserve(ctx, len(recs)); err != nil {
			return err
		}
	}
	req := &appendReq{buf: buf, recs: recs, errc: make(chan error, 1)}
	select {
	case l.reqs <- req:
	default:
		timed()
		select {
		case l.reqs <- req:
		case <-l.quit:
			l.release(len(recs))
			return fmt.Errorf("write-ahead log closed: %w", bus.ErrUnavailable)
		case <-ctx.Done():
			l.release(len(recs))
			return fmt.Errorf("write-ahead log: %w: %w", bus.ErrUnavailable, ctx.Err())
		}
	}
	// Once queued the append happens: wait for its outcome (bounded by the
	// fsync) so a refusal never hides a record that became durable.
	select {
	case err := <-req.errc:
		return err
	case <-l.done:
		select {
		case err := <-req.errc:
			return err
		default:
			return fmt.Errorf("write-ahead log closed: %w", bus.ErrUnavailable)
		}
	}
}

// PublishTimeout is how long Publish waits for room at most (bus.Bounded).
func (l *Log) PublishTimeout() time.Duration { return l.cfg.PublishTimeout }

// tryReserve takes room for n records in the backlog if there is some now.
func (l *Log) tryReserve(n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed && (l.reserved == 0 || l.reserved+n <= l.cfg.MaxBacklog) {
		l.reserved += n
		return true
	}
	return false
}

// reserve waits for room for n records in the backlog.
func (l *Log) reserve(ctx context.Context, n int) error {
	l.mu.Lock()
	for {
		if l.closed {
			l.mu.Unlock()
			return fmt.Errorf("write-ahead log closed: %w", bus.ErrUnavailable)
		}
		if l.reserved == 0 || l.reserved+n <= l.cfg.MaxBacklog {
			l.reserved += n
			l.mu.Unlock()
			return nil
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("write-ahead log: backlog of %d records is full (the store is behind): %w: %w", l.cfg.MaxBacklog, bus.ErrUnavailable, ctx.Err())
		}
		l.mu.Lock()
	}
}

func (l *Log) release(n int) {
	l.mu.Lock()
	l.reserved -= n
	l.broadcastLocked()
	l.mu.Unlock()
}

func (l *Log) broadcastLocked() {
	close(l.wake)
	l.wake = make(chan struct{})
}

// writeLoop is the single appender: every publish waiting when it wakes is
// written with one write and made durable with one fsync.
func (l *Log) writeLoop() {
	defer close(l.done)
	var buf []byte
	var linger *time.Timer
	if l.cfg.GroupLinger > 0 {
		linger = time.NewTimer(time.Hour)
		linger.Stop()
		defer linger.Stop()
	}
	var fleet fleetWindow
	for {
		var first *appendReq
		select {
		case first = <-l.reqs:
		case <-l.quit:
			for {
				select {
				case r := <-l.reqs:
					l.release(len(r.recs))
					r.errc <- fmt.Errorf("write-ahead log closed: %w", bus.ErrUnavailable)
				default:
					return
				}
			}
		}
		group := []*appendReq{first}
		buf = append(buf[:0], first.buf...)
		var lingered <-chan time.Time
		if linger != nil {
			fleet.note(first, time.Now())
			if fleet.many(l.cfg.GroupLingerDevices) {
				linger.Reset(l.cfg.GroupLinger)
				lingered = linger.C
			}
		}
	gather:
		for len(buf) < groupBytes {
			select {
			case r := <-l.reqs:
				group = append(group, r)
				buf = append(buf, r.buf...)
				if linger != nil {
					fleet.note(r, time.Time{})
				}
				continue
			default:
			}
			if lingered == nil {
				break
			}
			select {
			case r := <-l.reqs:
				group = append(group, r)
				buf = append(buf, r.buf...)
				fleet.note(r, time.Time{})
			case <-lingered:
				break gather
			case <-l.quit:
				break gather
			}
		}
		if linger != nil {
			linger.Stop()
		}
		err := l.append(buf)
		if err != nil {
			for _, r := range group {
				l.release(len(r.recs))
				r.errc <- fmt.Errorf("write-ahead log: %w: %w", bus.ErrUnavailable, err)
			}
			continue
		}
		now := time.Now()
		n := 0
		l.mu.Lock()
		for _, r := range group {
			l.pending = append(l.pending, entry{first: l.next, recs: r.recs, durable: now})
			l.next += uint64(len(r.recs))
			n += len(r.recs)
		}
		l.ready += n
		l.broadcastLocked()
		l.mu.Unlock()
		l.groups.Observe(float64(n))
		for _, r := range group {
			r.errc <- nil
		}
	}
}

// fleetWindow counts the distinct devices publishing per 100 ms window (the
// writer's own state): whether the group commit lingers.
type fleetWindow struct {
	start     time.Time
	cur       map[int64]struct{}
	prevCount int
}

// note counts r's devices; now (non-zero) rolls the window when it is over.
func (w *fleetWindow) note(r *appendReq, now time.Time) {
	if !now.IsZero() && now.Sub(w.start) >= 100*time.Millisecond {
		w.prevCount = len(w.cur)
		if now.Sub(w.start) >= 200*time.Millisecond {
			w.prevCount = 0 // stretched by a quiet spell: too sparse to count
		}
		w.start = now
		clear(w.cur)
	}
	if w.cur == nil {
		w.cur = map[int64]struct{}{}
	}
	// Every device of the publish counts: a gateway merges many devices'
	// readings into one publish (MQTT rounds). A run of one device's
	// readings costs one map write.
	last := int64(-1)
	for _, rec := range r.recs {
		if d := rec.GetDeviceId(); d != last {
			w.cur[d] = struct{}{}
			last = d
		}
	}
}

// many reports whether at least n devices published in the previous or the
// current window (n < 0: always).
func (w *fleetWindow) many(n int) bool {
	return n < 0 || w.prevCount >= n || len(w.cur) >= n
}

// append writes buf to the current segment (rotating first when it is full)
// and syncs it. After a failed write or sync the log refuses every later
// append: what reached the disk is unknown until it is reopened.
func (l *Log) append(buf []byte) error {
	if l.broken != nil {
		return l.broken
	}
	tail := &l.segs[len(l.segs)-1]
	if tail.size >= l.cfg.SegmentBytes {
		if err := l.rotate(); err != nil {
			l.broken = err
			return err
		}
		tail = &l.segs[len(l.segs)-1]
	}
	if _, err := l.f.Write(buf); err != nil {
		l.broken = fmt.Errorf("append to segment: %w", err)
		return l.broken
	}
	start := time.Now()
	if err := l.f.Sync(); err != nil {
		l.broken = fmt.Errorf("sync segment: %w", err)
		return l.broken
	}
	l.fsyncDur.Observe(time.Since(start).Seconds())
	tail.size += int64(len(buf))
	return nil
}

// rotate closes the current segment and starts the next one.
func (l *Log) rotate() error {
	l.mu.Lock()
	next := l.next
	l.mu.Unlock()
	path := filepath.Join(l.cfg.Dir, segName(next))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	if err := syncDir(l.cfg.Dir); err != nil {
		f.Close()
		return fmt.Errorf("sync log dir: %w", err)
	}
	if err := l.f.Close(); err != nil {
		l.log.Warn("close segment", "err", err)
	}
	l.f = f
	l.segs = append(l.segs[len(l.segs)-1:], segment{path: path, first: next})
	l.mu.Lock()
	l.segFirsts = append(l.segFirsts, next)
	l.mu.Unlock()
	return nil
}

// Subscribe hands durable records to h in offset order, in batches of at
// most MaxApplyBatch, until ctx ends. A batch h fails is given again after a
// backoff. Only one subscriber at a time.
func (l *Log) Subscribe(ctx context.Context, h bus.Handler) error {
	l.mu.Lock()
	if l.subscribed {
		l.mu.Unlock()
		return ErrAlreadySubscribed
	}
	l.subscribed = true
	l.mu.Unlock()
	defer func() {
		// What was applied but not yet checkpointed (a syncer delays it).
		if err := l.checkpoint(true); err != nil {
			l.log.Warn("write-ahead log: final checkpoint", "err", err)
		}
		l.mu.Lock()
		l.subscribed = false
		l.mu.Unlock()
	}()
	backoff := 50 * time.Millisecond
	var lastApply time.Time
	for {
		recs, firsts, wake := l.take()
		if len(recs) == 0 {
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		if wait := l.cfg.ApplyInterval - time.Since(lastApply); wait > 0 && len(recs) < l.cfg.MaxApplyBatch {
			if !l.waitFull(ctx, wait) {
				return nil
			}
			continue // take again: more records arrived meanwhile
		}
		lastApply = time.Now()
		l.applies.Observe(float64(len(recs)))
		if err := h(ctx, recs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.log.Warn("write-ahead log: handler failed, retrying the batch", "records", len(recs), "backoff", backoff, "err", err)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if err := l.markApplied(len(recs), firsts); err != nil {
			return err
		}
	}
}

// waitFull waits until d has passed or a full batch is ready; false when
// ctx ended first.
func (l *Log) waitFull(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		l.mu.Lock()
		full, wake := l.ready >= l.cfg.MaxApplyBatch, l.wake
		l.mu.Unlock()
		if full {
			return true
		}
		select {
		case <-t.C:
			return true
		case <-wake:
		case <-ctx.Done():
			return false
		}
	}
}

// take returns up to MaxApplyBatch pending records from the head of the
// queue (without removing them) and their ack times, or the channel to wait on.
func (l *Log) take() ([]*busv1.Record, []time.Time, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) == 0 {
		return nil, nil, l.wake
	}
	var recs []*busv1.Record
	var acks []time.Time
	for _, e := range l.pending {
		room := l.cfg.MaxApplyBatch - len(recs)
		if room <= 0 {
			break
		}
		if len(e.recs) > room && len(recs) > 0 {
			break
		}
		k := min(len(e.recs), room)
		recs = append(recs, e.recs[:k]...)
		acks = append(acks, e.durable)
		if k < len(e.recs) {
			break
		}
	}
	return recs, acks, nil
}

// SetSyncApplied installs sync, which makes durable what the handler has
// applied (the store's fsync): the handler may then apply without an fsync
// per batch (store.DeferSync). The checkpoint then advances only past records
// applied before a successful sync — at most every SyncEvery, and before
// applied segments are deleted — so a power loss can cost only a replay,
// never a record. Call it before Subscribe.
func (l *Log) SetSyncApplied(sync func() error) {
	l.mu.Lock()
	l.syncApplied = sync
	l.mu.Unlock()
}

// markApplied records that the first n pending records were applied:
// checkpoint, release backlog room, delete segments wholly applied.
func (l *Log) markApplied(n int, acks []time.Time) error {
	now := time.Now()
	for _, t := range acks {
		l.lag.Observe(now.Sub(t).Seconds())
	}
	l.mu.Lock()
	for left := n; left > 0; {
		e := &l.pending[0]
		if len(e.recs) <= left {
			left -= len(e.recs)
			l.pending[0] = entry{}
			l.pending = l.pending[1:]
			continue
		}
		e.recs = e.recs[left:]
		e.first += uint64(left)
		left = 0
	}
	l.applied += uint64(n)
	l.reserved -= n
	l.ready -= n
	l.broadcastLocked()
	l.mu.Unlock()
	return l.checkpoint(false)
}

// checkpoint writes the applied offset to the checkpoint file and deletes
// the segments wholly applied. With a syncer it first makes the applied
// records durable in the store, and does all this only when force, when
// segments can be deleted, or SyncEvery after the last checkpoint (a stale
// checkpoint only means an idempotent replay). Subscriber goroutine only.
func (l *Log) checkpoint(force bool) error {
	l.mu.Lock()
	applied, sync := l.applied, l.syncApplied
	// Segments before the one holding `applied` are wholly applied.
	k := 0
	for k+1 < len(l.segFirsts) && l.segFirsts[k+1] <= applied {
		k++
	}
	drop := slices.Clone(l.segFirsts[:k])
	l.mu.Unlock()
	if applied == l.ckptAt {
		return nil
	}
	if sync != nil {
		if !force && k == 0 && time.Since(l.ckptTime) < l.cfg.SyncEvery {
			return nil
		}
		if err := sync(); err != nil {
			// The checkpoint stays where it is (and the segments it does
			// not cover stay on disk): retried at the next batch.
			l.log.Warn("write-ahead log: could not make applied records durable; checkpoint not advanced", "applied", applied, "err", err)
			return nil
		}
	}
	// The checkpoint must be durable before segments it covers go away; in
	// between, a stale checkpoint only means an idempotent replay.
	if err := writeCheckpoint(l.ckpt, applied, k > 0); err != nil {
		return err
	}
	l.ckptAt, l.ckptTime = applied, time.Now()
	if k > 0 {
		l.mu.Lock()
		l.segFirsts = l.segFirsts[k:]
		l.mu.Unlock()
	}
	for _, first := range drop {
		if err := os.Remove(filepath.Join(l.cfg.Dir, segName(first))); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("write-ahead log: delete applied segment", "segment", segName(first), "err", err)
		}
	}
	return nil
}

// Subscribed reports whether a handler is installed (readiness).
func (l *Log) Subscribed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.subscribed
}

// Stats reports the log's offsets: next to be written, applied, and the
// records waiting for the handler.
func (l *Log) Stats() (next, applied uint64, backlog int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next, l.applied, l.reserved
}

// Close stops appending (waiting publishes fail with bus.ErrUnavailable)
// and closes the files. Stop the subscriber first.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.broadcastLocked()
	l.mu.Unlock()
	close(l.quit)
	<-l.done
	return l.closeFiles()
}

func (l *Log) closeFiles() error {
	var errs []error
	if l.f != nil {
		errs = append(errs, l.f.Close())
	}
	if l.ckpt != nil {
		errs = append(errs, l.ckpt.Close())
	}
	errs = append(errs, l.lock.Close())
	return errors.Join(errs...)
}

// WaitApplied waits until every record acknowledged before the call has
// been applied by the handler, or ctx ends: a reader of the store that waits
// first sees every reading acknowledged before its request (read your
// writes).
func (l *Log) WaitApplied(ctx context.Context) error {
	l.mu.Lock()
	target := l.next
	for l.applied < target {
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
		l.mu.Lock()
	}
	l.mu.Unlock()
	return nil
}
