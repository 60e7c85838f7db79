package vector

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ragstack/rag-operator/internal/serverconfig"
)

// ErrClosed is returned by a store used after Close.
var ErrClosed = errors.New("vector: store closed")

// Memory is the embedded store: every point in memory, exact search, durable on disk.
//
// Durability is a write-ahead log plus a snapshot, both in dir:
//   - <collection>.wal: one CRC-framed record per mutation, fsynced before the call returns, so
//     an acknowledged write survives a crash. A torn last record (crash mid-append) fails its CRC
//     and is cut off at open; it was never acknowledged.
//   - <collection>.snapshot: the whole state, rewritten when the log outgrows it (temp file,
//     fsync, rename, fsync dir: a crash leaves the old snapshot or the new one, never a mix),
//     after which the log is truncated. The snapshot records the last op it contains, so a log
//     left untruncated by a crash is replayed without applying anything twice.
//
// Rewriting the whole file on every write would be simpler, but ingesting hundreds of documents
// would then rewrite the whole store hundreds of times; the log keeps each write proportional to
// its own size. One process per directory: nothing locks the files against a second one.
type Memory struct {
	dir  string
	cfg  serverconfig.Collection
	dist distance // from cfg; used for scoring
	// meta is the collection as stored (size and distance at creation); EnsureCollection
	// compares it with cfg, and writes are checked against it.
	metaSize int
	metaDist string

	wmu       sync.Mutex // serialises writers: log append, apply, compaction
	log       *os.File
	logSize   int64
	snapSize  int64
	compactAt int64 // compact when the log exceeds max(compactAt, snapSize)
	broken    error // a failed fsync: the log's state is unknown, writes are refused

	mu     sync.RWMutex // guards docs and seq; searches hold it shared
	docs   map[string]map[int]*mpoint
	seq    uint64
	closed atomic.Bool
}

type mpoint struct {
	Chunk        // Vector normalised for Cosine, as Qdrant stores it
	id    string // PointID, the tie-breaker that makes equal scores order deterministically
}

var _ Store = (*Memory)(nil)

var collectionName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

const (
	snapshotMagic = "RAGVEC01"
	walHeader     = 8 // u32 length + u32 CRC-32C of the payload
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewMemory opens (or creates) the store for cfg's collection in dir.
func NewMemory(dir string, cfg serverconfig.Collection) (*Memory, error) {
	if !collectionName.MatchString(cfg.Name) {
		return nil, fmt.Errorf("vector: collection name %q: want letters, digits, '.', '_' or '-'", cfg.Name)
	}
	if cfg.VectorSize < 1 {
		return nil, fmt.Errorf("vector: collection %q: vector size %d", cfg.Name, cfg.VectorSize)
	}
	dist, err := parseDistance(cfg.Distance)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("vector: %w", err)
	}
	m := &Memory{
		dir: dir, cfg: cfg, dist: dist,
		metaSize: cfg.VectorSize, metaDist: cfg.Distance,
		compactAt: 16 << 20,
		docs:      map[string]map[int]*mpoint{},
	}
	stale, _ := filepath.Glob(m.path(".snapshot.tmp*"))
	for _, f := range stale {
		_ = os.Remove(f) // a compaction that crashed before its rename
	}
	if err := m.loadSnapshot(); err != nil {
		return nil, err
	}
	if err := m.openLog(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Memory) path(suffix string) string { return filepath.Join(m.dir, m.cfg.Name+suffix) }

func (m *Memory) loadSnapshot() error {
	b, err := os.ReadFile(m.path(".snapshot"))
	if errors.Is(err, os.ErrNotExist) {
		// A new store: write an empty snapshot at once so the collection's size and distance are
		// on disk before any point is.
		return m.writeSnapshot()
	}
	if err != nil {
		return fmt.Errorf("vector: %w", err)
	}
	if len(b) < len(snapshotMagic)+4 || string(b[:len(snapshotMagic)]) != snapshotMagic {
		return fmt.Errorf("vector: %s is not a snapshot", m.path(".snapshot"))
	}
	body := b[len(snapshotMagic) : len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		// The snapshot is only ever replaced by rename after an fsync, so this is disk damage,
		// not a crash: refuse rather than start empty and let the server re-ingest nothing.
		return fmt.Errorf("vector: %s: checksum mismatch (disk damage?)", m.path(".snapshot"))
	}
	d := &decoder{b: body}
	m.seq = d.u64()
	m.metaSize = int(d.uvarint())
	m.metaDist = d.str()
	n := d.count(1)
	for range n {
		c := d.chunk()
		if d.err != nil {
			break
		}
		m.put(c)
	}
	if d.err != nil || len(d.b) != 0 {
		return fmt.Errorf("vector: %s: undecodable", m.path(".snapshot"))
	}
	m.snapSize = int64(len(b))
	return nil
}

// writeSnapshot replaces the snapshot atomically with the current state. Callers hold wmu (or
// are NewMemory); it takes mu shared, so searches go on while it writes.
func (m *Memory) writeSnapshot() (err error) {
	tmp, err := os.CreateTemp(m.dir, m.cfg.Name+".snapshot.tmp*")
	if err != nil {
		return fmt.Errorf("vector: snapshot: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	crc := crc32.New(castagnoli)
	w := bufio.NewWriterSize(tmp, 1<<20)
	body := io.MultiWriter(w, crc)
	if _, err := w.WriteString(snapshotMagic); err != nil {
		return err
	}

	m.mu.RLock()
	e := &encoder{}
	e.u64(m.seq)
	e.uvarint(uint64(m.metaSize))
	e.str(m.metaDist)
	n := 0
	for _, d := range m.docs {
		n += len(d)
	}
	e.uvarint(uint64(n))
	// Sorted, so the same state always makes the same bytes (diffable, testable).
docs:
	for _, doc := range slices.Sorted(maps.Keys(m.docs)) {
		for _, idx := range slices.Sorted(maps.Keys(m.docs[doc])) {
			e.chunk(&m.docs[doc][idx].Chunk)
			if len(e.b) >= 1<<20 {
				if _, err = body.Write(e.b); err != nil {
					break docs
				}
				e.b = e.b[:0]
			}
		}
	}
	m.mu.RUnlock()
	if err != nil {
		return err
	}
	if _, err := body.Write(e.b); err != nil {
		return err
	}
	if err := binary.Write(w, binary.LittleEndian, crc.Sum32()); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	fi, err := tmp.Stat()
	if err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), m.path(".snapshot")); err != nil {
		return err
	}
	if err := syncDir(m.dir); err != nil {
		return err
	}
	m.snapSize = fi.Size()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// openLog replays the log over the snapshot and leaves it open for appending. A record that does
// not check out ends the replay and is cut off with everything after it: records are appended
// and fsynced one at a time, so only the last one can be torn, and it was never acknowledged.
func (m *Memory) openLog() error {
	f, err := os.OpenFile(m.path(".wal"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("vector: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("vector: reading log: %w", err)
	}
	var off int64
	for int64(len(b))-off >= walHeader {
		n := int64(binary.LittleEndian.Uint32(b[off:]))
		sum := binary.LittleEndian.Uint32(b[off+4:])
		if n > int64(len(b))-off-walHeader {
			break
		}
		payload := b[off+walHeader : off+walHeader+n]
		if crc32.Checksum(payload, castagnoli) != sum {
			break
		}
		o, err := decodeOp(payload)
		if err != nil {
			break
		}
		if o.seq > m.seq { // ops up to m.seq are in the snapshot already
			m.apply(o)
			m.seq = o.seq
		}
		off += walHeader + n
	}
	if off != int64(len(b)) {
		if err := f.Truncate(off); err != nil {
			f.Close()
			return fmt.Errorf("vector: cutting torn log tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("vector: %w", err)
		}
	}
	m.log, m.logSize = f, off
	return nil
}

// write makes o durable in the log, then applies it.
func (m *Memory) write(o op) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.closed.Load() {
		return ErrClosed
	}
	if m.broken != nil {
		return m.broken
	}
	o.seq = m.seq + 1 // only writers change seq, and they hold wmu
	payload := o.encode()
	rec := make([]byte, walHeader, walHeader+len(payload))
	binary.LittleEndian.PutUint32(rec, uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(payload, castagnoli))
	rec = append(rec, payload...)
	if _, err := m.log.Write(rec); err != nil {
		// Cut the partial record so later appends stay readable.
		if terr := m.log.Truncate(m.logSize); terr != nil {
			m.broken = fmt.Errorf("vector: log unusable after a failed write: %w", terr)
		}
		return fmt.Errorf("vector: writing log: %w", err)
	}
	if err := m.log.Sync(); err != nil {
		// After a failed fsync the kernel may have dropped the pages: nothing about the file can
		// be trusted any more, so stop writing (a restart replays what did reach the disk).
		m.broken = fmt.Errorf("vector: log fsync failed, restart the server: %w", err)
		return m.broken
	}
	m.logSize += int64(len(rec))

	m.mu.Lock()
	m.apply(o)
	m.seq = o.seq
	m.mu.Unlock()

	if m.logSize > max(m.compactAt, m.snapSize) {
		// The op is durable in the log already; a failed compaction only means a longer log, and
		// it is tried again after the next write.
		if err := m.writeSnapshot(); err == nil {
			if err := m.log.Truncate(0); err == nil {
				m.logSize = 0
				_ = m.log.Sync()
			}
		}
	}
	return nil
}

// apply changes the in-memory state; callers hold mu (or are opening the store).
func (m *Memory) apply(o op) {
	switch o.kind {
	case opUpsert:
		for _, c := range o.chunks {
			m.put(c)
		}
	case opDelete:
		d := m.docs[o.doc]
		for idx := range d {
			if o.keep < 0 || idx >= o.keep {
				delete(d, idx)
			}
		}
		if len(d) == 0 {
			delete(m.docs, o.doc)
		}
	case opSetTags:
		for _, p := range m.docs[o.doc] {
			p.Tags = slices.Clone(o.tags)
		}
	}
}

func (m *Memory) put(c Chunk) {
	c.Tags = slices.Clone(c.Tags)
	c.Vector = slices.Clone(c.Vector)
	if m.dist == cosine {
		normalize(c.Vector)
	}
	d := m.docs[c.DocumentID]
	if d == nil {
		d = map[int]*mpoint{}
		m.docs[c.DocumentID] = d
	}
	d[c.ChunkIndex] = &mpoint{Chunk: c, id: PointID(c.DocumentID, c.ChunkIndex)}
}

func normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	n := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= n
	}
}

// EnsureCollection checks the stored collection has the configured size and distance.
func (m *Memory) EnsureCollection(context.Context) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if m.metaSize != m.cfg.VectorSize {
		return fmt.Errorf("%w: embedded collection %q (%s) has vector size %d, configured %d", ErrCollectionMismatch, m.cfg.Name, m.dir, m.metaSize, m.cfg.VectorSize)
	}
	if m.metaDist != m.cfg.Distance {
		return fmt.Errorf("%w: embedded collection %q (%s) has distance %s, configured %s", ErrCollectionMismatch, m.cfg.Name, m.dir, m.metaDist, m.cfg.Distance)
	}
	return nil
}

// Upsert writes all chunks in one durable step (all or nothing).
func (m *Memory) Upsert(_ context.Context, chunks []Chunk) error {
	if err := validateChunks(chunks, m.metaSize); err != nil {
		return err
	}
	if len(chunks) == 0 {
		return nil
	}
	return m.write(op{kind: opUpsert, chunks: chunks})
}

// DeleteDocument removes the document's points (those with ChunkIndex >= keepChunks when
// keepChunks >= 0).
func (m *Memory) DeleteDocument(_ context.Context, documentID string, keepChunks int) error {
	return m.write(op{kind: opDelete, doc: documentID, keep: keepChunks})
}

// SetTags replaces the tags of the document's points.
func (m *Memory) SetTags(_ context.Context, documentID string, tags []string) error {
	return m.write(op{kind: opSetTags, doc: documentID, tags: tags})
}

// each calls fn for every point matching f; callers hold mu shared.
func (m *Memory) each(f Filter, fn func(*mpoint)) {
	visit := func(d map[int]*mpoint) {
		for _, p := range d {
			if len(f.AnyTags) == 0 || slices.ContainsFunc(p.Tags, func(t string) bool { return slices.Contains(f.AnyTags, t) }) {
				fn(p)
			}
		}
	}
	if len(f.DocumentIDs) > 0 {
		for _, id := range slices.Compact(slices.Sorted(slices.Values(f.DocumentIDs))) {
			visit(m.docs[id])
		}
		return
	}
	for _, d := range m.docs {
		visit(d)
	}
}

// Search scores every matching point exactly.
func (m *Memory) Search(_ context.Context, vector []float32, opts SearchOptions) ([]Hit, error) {
	if err := checkQuery(vector, m.metaSize); err != nil {
		return nil, err
	}
	q := slices.Clone(vector)
	if m.dist == cosine {
		normalize(q)
	}
	type scored struct {
		p     *mpoint
		score float32
	}
	var hits []scored
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed.Load() {
		return nil, ErrClosed
	}
	m.each(opts.Filter, func(p *mpoint) {
		s := score(m.dist, q, p.Vector)
		if opts.ScoreThreshold != 0 && s < opts.ScoreThreshold {
			return
		}
		hits = append(hits, scored{p, s})
	})
	slices.SortFunc(hits, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.p.id, b.p.id)
	})
	hits = hits[:min(len(hits), defaultLimit(opts.Limit))]
	out := make([]Hit, len(hits))
	for i, h := range hits {
		c := h.p.Chunk
		c.Vector = nil
		c.Tags = slices.Clone(c.Tags)
		out[i] = Hit{Chunk: c, Score: h.score}
	}
	return out, nil
}

// score is higher-is-better for every distance (minus the distance for Euclid and Manhattan).
// Cosine vectors are normalised already, so it is their dot product.
func score(d distance, q, v []float32) float32 {
	var s float32
	switch d {
	case euclid:
		for i := range q {
			x := q[i] - v[i]
			s += x * x
		}
		return -float32(math.Sqrt(float64(s)))
	case manhattan:
		for i := range q {
			s += float32(math.Abs(float64(q[i] - v[i])))
		}
		return -s
	default:
		for i := range q {
			s += q[i] * v[i]
		}
		return s
	}
}

// Count counts points matching f.
func (m *Memory) Count(_ context.Context, f Filter) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed.Load() {
		return 0, ErrClosed
	}
	n := 0
	m.each(f, func(*mpoint) { n++ })
	return n, nil
}

// Ping reports a closed store or a log that can no longer be written.
func (m *Memory) Ping(context.Context) error {
	if m.closed.Load() {
		return ErrClosed
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	return m.broken
}

// Close closes the log. Every acknowledged write is on disk already.
func (m *Memory) Close() error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.closed.Swap(true) {
		return nil
	}
	return m.log.Close()
}

// compactNow forces a compaction (tests).
func (m *Memory) compactNow() error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if err := m.writeSnapshot(); err != nil {
		return err
	}
	if err := m.log.Truncate(0); err != nil {
		return err
	}
	m.logSize = 0
	return m.log.Sync()
}
