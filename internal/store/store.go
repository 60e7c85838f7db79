// Package store keeps the RAG server's durable state behind the Store interface (iface.go).
// This package's implementation, SQLite, is the embedded default for one replica: uploaded
// originals on the data volume (dataDir/originals/<sha256>) and documents, which double as the
// ingest job queue, in SQLite (modernc.org/sqlite: pure Go, so the image stays static and
// multi-arch). internal/store/postgres keeps the same state in PostgreSQL for several replicas.
//
// Durability: SQLite runs in WAL mode with synchronous=FULL, so a committed transaction
// survives power loss. An upload is written to dataDir/tmp, fsynced, renamed into originals/
// and the directory fsynced before the row that references it commits; only then does the
// HTTP layer answer 202. A crash between rename and commit leaves a file without a row, which
// Open removes. On Open every "processing" document goes back to "pending": its worker died
// with the process, and processing is idempotent (point ids are derived from document and
// chunk index).
package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Status is a document's place in the pipeline: pending → processing → ready | failed, and
// deleting while its points and file are removed.
type Status string

// Statuses.
const (
	Pending    Status = "pending"
	Processing Status = "processing"
	Ready      Status = "ready"
	Failed     Status = "failed"
	Deleting   Status = "deleting"
)

// Statuses lists every status (for metrics).
var Statuses = []Status{Pending, Processing, Ready, Failed, Deleting}

// EnrichStatus is the state of the background summary/auto-tag step.
type EnrichStatus string

// Enrichment states; "" means enrichment is off for the document.
const (
	EnrichNone    EnrichStatus = ""
	EnrichPending EnrichStatus = "pending"
	EnrichRunning EnrichStatus = "running"
	EnrichDone    EnrichStatus = "done"
	EnrichFailed  EnrichStatus = "failed"
)

// Document is one uploaded file and its processing state.
type Document struct {
	ID     string
	Name   string
	Type   string // parse.Type
	SHA256 string
	Size   int64
	Tags   []string
	Owner  string // API key name that uploaded it
	Status Status
	Error  string // why it failed
	Chunks int
	Pages  int
	// Generation increases on every reprocess: a worker's result counts only for the
	// generation it claimed.
	Generation int64
	Attempts   int
	TagsSynced bool // the vector store's points carry Tags
	Enrich     EnrichStatus
	EnrichErr  string
	Summary    string
	AutoTags   []string
	Excerpt    string // the start of the text, for the summary
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Errors.
var (
	ErrNotFound  = errors.New("document not found")
	ErrQueueFull = errors.New("ingest queue is full")
	ErrTooLarge  = errors.New("file too large")
	ErrConflict  = errors.New("document is being deleted")
)

// DuplicateError: a document with the same content and the same tags, visible to the caller,
// exists (see NewDocument.CanSee).
type DuplicateError struct{ ID string }

func (e *DuplicateError) Error() string { return "duplicate of document " + e.ID }

// SQLite is the embedded store (one replica); safe for concurrent use.
type SQLite struct {
	db  *sql.DB
	dir string
	// mu orders file operations on originals/ with the rows that reference them, so a delete
	// and an upload of the same content cannot leave a row without its file.
	mu  sync.Mutex
	now func() time.Time
}

const schema = `
CREATE TABLE IF NOT EXISTS documents (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  type          TEXT NOT NULL,
  sha256        TEXT NOT NULL,
  size          INTEGER NOT NULL,
  tags          TEXT NOT NULL DEFAULT '[]',
  owner         TEXT NOT NULL DEFAULT '',
  status        TEXT NOT NULL,
  error         TEXT NOT NULL DEFAULT '',
  chunks        INTEGER NOT NULL DEFAULT 0,
  pages         INTEGER NOT NULL DEFAULT 0,
  generation    INTEGER NOT NULL DEFAULT 0,
  attempts      INTEGER NOT NULL DEFAULT 0,
  tags_synced   INTEGER NOT NULL DEFAULT 1,
  enrich_status TEXT NOT NULL DEFAULT '',
  enrich_error  TEXT NOT NULL DEFAULT '',
  summary       TEXT NOT NULL DEFAULT '',
  auto_tags     TEXT NOT NULL DEFAULT '[]',
  excerpt       TEXT NOT NULL DEFAULT '',
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL,
  queued_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_queue ON documents(status, queued_at);
CREATE INDEX IF NOT EXISTS documents_enrich ON documents(enrich_status, updated_at);
CREATE INDEX IF NOT EXISTS documents_sha256 ON documents(sha256);
PRAGMA user_version = 1;
`

// Open opens (creating) the store under dataDir and recovers from a crash.
func Open(ctx context.Context, dataDir string) (*SQLite, error) {
	s := &SQLite{dir: dataDir, now: time.Now}
	for _, d := range []string{s.originals(), s.tmp()} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	// Partial uploads of a previous run were never acknowledged.
	if ents, err := os.ReadDir(s.tmp()); err == nil {
		for _, e := range ents {
			os.Remove(filepath.Join(s.tmp(), e.Name()))
		}
	}
	dsn := "file:" + filepath.Join(dataDir, "rag.db") +
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// WAL gives concurrent readers; writers queue on SQLite's lock (busy_timeout).
	db.SetMaxOpenConns(4)
	s.db = db
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *SQLite) init(ctx context.Context) error {
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("store: journal mode is %q, want wal", mode)
	}
	if err := s.migrateSHAUnique(ctx); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("store: schema: %w", err)
	}
	if err := s.initSessions(ctx); err != nil {
		return err
	}
	now := s.now().UnixMilli()
	// Work in flight when the process died starts again.
	if _, err := s.db.ExecContext(ctx, `UPDATE documents SET status='pending', updated_at=? WHERE status='processing'`, now); err != nil {
		return fmt.Errorf("store: recover: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE documents SET enrich_status='pending' WHERE enrich_status='running'`); err != nil {
		return fmt.Errorf("store: recover: %w", err)
	}
	return s.sweepOriginals(ctx)
}

// sweepOriginals removes files no row references (a crash between an upload's rename and its
// commit, or between a delete's commit and its file removal).
func (s *SQLite) sweepOriginals(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows, err := s.db.QueryContext(ctx, `SELECT sha256 FROM documents`)
	if err != nil {
		return fmt.Errorf("store: sweep: %w", err)
	}
	known := map[string]bool{}
	for rows.Next() {
		var sha string
		if err := rows.Scan(&sha); err != nil {
			rows.Close()
			return err
		}
		known[sha] = true
	}
	rows.Close()
	ents, err := os.ReadDir(s.originals())
	if err != nil {
		return fmt.Errorf("store: sweep: %w", err)
	}
	for _, e := range ents {
		if !known[e.Name()] {
			os.Remove(filepath.Join(s.originals(), e.Name()))
		}
	}
	return nil
}

// Close closes the database.
func (s *SQLite) Close() error { return s.db.Close() }

// Ping checks the database answers.
func (s *SQLite) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

func (s *SQLite) originals() string { return filepath.Join(s.dir, "originals") }
func (s *SQLite) tmp() string       { return filepath.Join(s.dir, "tmp") }

// OriginalPath is where a document's original is kept.
func (s *SQLite) OriginalPath(sha string) string { return filepath.Join(s.originals(), sha) }

// OpenOriginal opens a document's original for reading.
func (s *SQLite) OpenOriginal(_ context.Context, d Document) (Original, error) {
	return os.Open(s.OriginalPath(d.SHA256))
}

// Upload is an incoming file being written to the tmp directory and hashed on the way.
type Upload struct {
	f     *os.File
	h     hash.Hash
	n     int64
	limit int64
	done  bool
}

// NewUpload starts a file of at most limit bytes.
func (s *SQLite) NewUpload(limit int64) (*Upload, error) { return NewUploadIn(s.tmp(), limit) }

// NewUploadIn starts a file of at most limit bytes in dir (a store's spool directory).
func NewUploadIn(dir string, limit int64) (*Upload, error) {
	f, err := os.CreateTemp(dir, "upload-*")
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &Upload{f: f, h: sha256.New(), limit: limit}, nil
}

// Content is the written file for a store that copies it elsewhere (the caller still calls
// Abort); it fails once the upload was used or aborted.
func (u *Upload) Content() (*io.SectionReader, error) {
	if u.done {
		return nil, errors.New("store: upload already used")
	}
	return io.NewSectionReader(u.f, 0, u.n), nil
}

// Write appends to the file; past the limit it fails with ErrTooLarge.
func (u *Upload) Write(p []byte) (int, error) {
	if u.n+int64(len(p)) > u.limit {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, u.limit)
	}
	n, err := u.f.Write(p)
	u.h.Write(p[:n])
	u.n += int64(n)
	return n, err
}

// ReadAt reads the written content (for validation before Create).
func (u *Upload) ReadAt(p []byte, off int64) (int, error) { return u.f.ReadAt(p, off) }

// Size is the number of bytes written.
func (u *Upload) Size() int64 { return u.n }

// SHA256 is the hex digest of the content.
func (u *Upload) SHA256() string { return hex.EncodeToString(u.h.Sum(nil)) }

// Abort discards the file; a no-op after Create took it.
func (u *Upload) Abort() {
	if !u.done {
		u.done = true
		u.f.Close()
		os.Remove(u.f.Name())
	}
}

// NewDocument is what Create needs besides the file.
type NewDocument struct {
	Name  string
	Type  string
	Tags  []string
	Owner string
	// MaxQueued refuses the document (ErrQueueFull) when this many are pending or processing;
	// 0 means no bound.
	MaxQueued int
	// CanSee reports whether the uploader may see a document with these tags (nil: every
	// document). Only a visible document can be a duplicate: an uploader never learns that
	// content it cannot see exists.
	CanSee func(tags []string) bool
}

// Create stores the upload and its row: the file is fsynced and in place before the row
// commits, and nothing is left behind when it fails. A document with the same content and the
// same tags (in any order) that the uploader can see gives a *DuplicateError naming it; the
// same content under other tags, or only in documents the uploader cannot see, is a document
// of its own (the original file on disk is shared, which no caller can observe: Remove keeps
// it while another row references it).
func (s *SQLite) Create(ctx context.Context, u *Upload, nd NewDocument) (Document, error) {
	if u.done {
		return Document{}, errors.New("store: upload already used")
	}
	defer u.Abort()
	if err := u.f.Sync(); err != nil {
		return Document{}, fmt.Errorf("store: %w", err)
	}
	sha := u.SHA256()
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Document{}, fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	if id, err := duplicateOf(ctx, tx, sha, nd); err != nil {
		return Document{}, err
	} else if id != "" {
		return Document{}, &DuplicateError{ID: id}
	}
	if nd.MaxQueued > 0 {
		if n, err := queueDepth(ctx, tx); err != nil {
			return Document{}, err
		} else if n >= nd.MaxQueued {
			return Document{}, ErrQueueFull
		}
	}
	now := s.now()
	d := Document{
		ID: uuid.NewString(), Name: nd.Name, Type: nd.Type, SHA256: sha, Size: u.n,
		Tags: NonNil(nd.Tags), Owner: nd.Owner, Status: Pending, TagsSynced: true,
		CreatedAt: now, UpdatedAt: now,
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO documents (id, name, type, sha256, size, tags, owner, status, created_at, updated_at, queued_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)`,
		d.ID, d.Name, d.Type, sha, d.Size, JSONList(d.Tags), d.Owner, now.UnixMilli(), now.UnixMilli(), now.UnixMilli()); err != nil {
		return Document{}, fmt.Errorf("store: insert: %w", err)
	}
	if err := u.f.Close(); err != nil {
		return Document{}, fmt.Errorf("store: %w", err)
	}
	dst := s.OriginalPath(sha)
	// Another document with this content already keeps the file (s.mu held: it stays).
	_, statErr := os.Stat(dst)
	shared := statErr == nil
	if !shared {
		if err := os.Rename(u.f.Name(), dst); err != nil {
			return Document{}, fmt.Errorf("store: %w", err)
		}
		u.done = true
		if err := syncDir(s.originals()); err != nil {
			os.Remove(dst)
			return Document{}, fmt.Errorf("store: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		if !shared {
			os.Remove(dst)
		}
		return Document{}, fmt.Errorf("store: commit: %w", err)
	}
	return d, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

const columns = `id, name, type, sha256, size, tags, owner, status, error, chunks, pages, generation,
	attempts, tags_synced, enrich_status, enrich_error, summary, auto_tags, excerpt, created_at, updated_at`

type scanner interface{ Scan(...any) error }

func scanDoc(r scanner) (Document, error) {
	var d Document
	var tags, autoTags string
	var created, updated int64
	var synced int
	err := r.Scan(&d.ID, &d.Name, &d.Type, &d.SHA256, &d.Size, &tags, &d.Owner, &d.Status, &d.Error,
		&d.Chunks, &d.Pages, &d.Generation, &d.Attempts, &synced, &d.Enrich, &d.EnrichErr, &d.Summary,
		&autoTags, &d.Excerpt, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Document{}, ErrNotFound
	}
	if err != nil {
		return Document{}, fmt.Errorf("store: %w", err)
	}
	json.Unmarshal([]byte(tags), &d.Tags)
	json.Unmarshal([]byte(autoTags), &d.AutoTags)
	d.Tags, d.AutoTags = NonNil(d.Tags), NonNil(d.AutoTags)
	d.TagsSynced = synced != 0
	d.CreatedAt, d.UpdatedAt = time.UnixMilli(created), time.UnixMilli(updated)
	return d, nil
}

// NonNil is s, or an empty list for nil (so JSON says [] rather than null).
func NonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// JSONList is a tag list as both stores keep it: the JSON text of the list. PostgreSQL casts it
// ($n::text::jsonb), so equality compares lists as SQLite compares the same text.
func JSONList(s []string) string {
	b, _ := json.Marshal(NonNil(s))
	return string(b)
}

// Get returns one document.
func (s *SQLite) Get(ctx context.Context, id string) (Document, error) {
	return scanDoc(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM documents WHERE id=?`, id))
}

// Query filters List. Empty fields do not filter.
type Query struct {
	Status Status
	Tag    string   // documents carrying this tag
	Name   string   // case-insensitive substring of the name
	AnyTag []string // visibility: documents carrying at least one of these (nil: all)
	Limit  int      // default 100, at most 1000
	Offset int
}

// List returns matching documents, newest first, and how many match in all.
func (s *SQLite) List(ctx context.Context, q Query) ([]Document, int, error) {
	var where []string
	var args []any
	if q.Status != "" {
		where, args = append(where, "status=?"), append(args, string(q.Status))
	}
	if q.Tag != "" {
		where, args = append(where, "EXISTS (SELECT 1 FROM json_each(documents.tags) WHERE value=?)"), append(args, q.Tag)
	}
	if q.Name != "" {
		esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(q.Name)
		where, args = append(where, `name LIKE ? ESCAPE '\'`), append(args, "%"+esc+"%")
	}
	if q.AnyTag != nil {
		if len(q.AnyTag) == 0 {
			return []Document{}, 0, nil
		}
		ph := strings.TrimSuffix(strings.Repeat("?,", len(q.AnyTag)), ",")
		where = append(where, "EXISTS (SELECT 1 FROM json_each(documents.tags) WHERE value IN ("+ph+"))")
		for _, t := range q.AnyTag {
			args = append(args, t)
		}
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM documents`+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: %w", err)
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 1000)
	rows, err := s.db.QueryContext(ctx, `SELECT `+columns+` FROM documents`+cond+` ORDER BY created_at DESC, id LIMIT ? OFFSET ?`,
		append(args, q.Limit, max(q.Offset, 0))...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	out := []Document{}
	for rows.Next() {
		d, err := scanDoc(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, d)
	}
	return out, total, rows.Err()
}

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func queueDepth(ctx context.Context, q querier) (int, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM documents WHERE status IN ('pending','processing')`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	return n, nil
}

// QueueDepth counts pending and processing documents.
func (s *SQLite) QueueDepth(ctx context.Context) (int, error) { return queueDepth(ctx, s.db) }

// Counts counts documents per status (every status present, zeros included).
func (s *SQLite) Counts(ctx context.Context) (map[Status]int, error) {
	out := map[Status]int{}
	for _, st := range Statuses {
		out[st] = 0
	}
	rows, err := s.db.QueryContext(ctx, `SELECT status, COUNT(*) FROM documents GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st Status
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// Claim takes the oldest pending document and marks it processing, atomically: two workers
// never get the same document.
func (s *SQLite) Claim(ctx context.Context) (Document, bool, error) {
	d, err := scanDoc(s.db.QueryRowContext(ctx, `UPDATE documents SET status='processing', attempts=attempts+1, updated_at=?
		WHERE id = (SELECT id FROM documents WHERE status='pending' ORDER BY queued_at, rowid LIMIT 1)
		RETURNING `+columns, s.now().UnixMilli()))
	if errors.Is(err, ErrNotFound) {
		return Document{}, false, nil
	}
	return d, err == nil, err
}

// Outcome is the result of processing one generation of a document.
type Outcome struct {
	Err     error // nil: ready
	Chunks  int
	Pages   int
	Excerpt string
	// UsedTags are the tags the points were written with; the document stays marked
	// unsynced when its tags changed meanwhile.
	UsedTags []string
	Enrich   bool // queue the summary/auto-tag step
}

// Finish records the outcome if the document is still processing the same generation
// (a reprocess or delete meanwhile makes the result stale: false is returned).
func (s *SQLite) Finish(ctx context.Context, id string, gen int64, o Outcome) (bool, error) {
	status, errText, enrich := Ready, "", EnrichNone
	if o.Err != nil {
		status, errText = Failed, o.Err.Error()
	} else if o.Enrich {
		enrich = EnrichPending
	}
	// A summary already done stays done when the same content comes back (RequeueReady after
	// its points went missing); a reprocess clears it first, so it is asked for again.
	res, err := s.db.ExecContext(ctx, `UPDATE documents SET status=?, error=?, chunks=?, pages=?, excerpt=?,
		enrich_status = CASE WHEN ?='pending' AND enrich_status='done' THEN 'done' ELSE ? END,
		enrich_error = CASE WHEN ?='pending' AND enrich_status='done' THEN enrich_error ELSE '' END,
		tags_synced = CASE WHEN tags=? THEN 1 ELSE 0 END, updated_at=?
		WHERE id=? AND generation=? AND status='processing'`,
		string(status), errText, o.Chunks, o.Pages, o.Excerpt, string(enrich), string(enrich), string(enrich), JSONList(o.UsedTags),
		s.now().UnixMilli(), id, gen)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Release puts a document this process was working on back in the queue (shutdown).
func (s *SQLite) Release(ctx context.Context, id string, gen int64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE documents SET status='pending', updated_at=? WHERE id=? AND generation=? AND status='processing'`,
		s.now().UnixMilli(), id, gen)
	return err
}

// Requeue starts a new generation of a document (reprocess). maxQueued bounds the queue as
// for uploads (0: no bound); a document already queued is not counted twice.
func (s *SQLite) Requeue(ctx context.Context, id string, maxQueued int) (Document, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Document{}, fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	d, err := scanDoc(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM documents WHERE id=?`, id))
	if err != nil {
		return Document{}, err
	}
	if d.Status == Deleting {
		return Document{}, ErrConflict
	}
	if maxQueued > 0 && d.Status != Pending && d.Status != Processing {
		if n, err := queueDepth(ctx, tx); err != nil {
			return Document{}, err
		} else if n >= maxQueued {
			return Document{}, ErrQueueFull
		}
	}
	now := s.now().UnixMilli()
	d, err = scanDoc(tx.QueryRowContext(ctx, `UPDATE documents SET status='pending', error='', generation=generation+1,
		enrich_status='', enrich_error='', updated_at=?, queued_at=? WHERE id=? RETURNING `+columns, now, now, id))
	if err != nil {
		return Document{}, err
	}
	if err := tx.Commit(); err != nil {
		return Document{}, fmt.Errorf("store: %w", err)
	}
	return d, nil
}

// MarkDeleting flags a document for removal; it stays listed as deleting until Remove.
func (s *SQLite) MarkDeleting(ctx context.Context, id string) (Document, error) {
	return scanDoc(s.db.QueryRowContext(ctx, `UPDATE documents SET status='deleting', updated_at=? WHERE id=? RETURNING `+columns,
		s.now().UnixMilli(), id))
}

// Remove deletes the row and then the original file. The caller has removed the points.
func (s *SQLite) Remove(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sha string
	err := s.db.QueryRowContext(ctx, `DELETE FROM documents WHERE id=? RETURNING sha256`, id).Scan(&sha)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var others int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM documents WHERE sha256=?`, sha).Scan(&others); err != nil {
		return fmt.Errorf("store: %w", err) // Open's sweep removes the file later if unused
	}
	if others > 0 {
		return nil // another document with the same content keeps the file
	}
	if err := os.Remove(s.OriginalPath(sha)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: %w", err) // Open's sweep removes it later
	}
	return syncDir(s.originals())
}

// ListStatus returns documents in a status, oldest first (maintenance: deleting).
func (s *SQLite) ListStatus(ctx context.Context, st Status, limit int) ([]Document, error) {
	return s.listWhere(ctx, `status=? ORDER BY updated_at LIMIT ?`, string(st), limit)
}

// ListTagsUnsynced returns settled documents whose points may carry old tags.
func (s *SQLite) ListTagsUnsynced(ctx context.Context, limit int) ([]Document, error) {
	return s.listWhere(ctx, `tags_synced=0 AND status IN ('ready','failed') ORDER BY updated_at LIMIT ?`, limit)
}

func (s *SQLite) listWhere(ctx context.Context, where string, args ...any) ([]Document, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+columns+` FROM documents WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []Document
	for rows.Next() {
		d, err := scanDoc(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// SetTags replaces a document's tags and marks its points unsynced until MarkTagsSynced.
func (s *SQLite) SetTags(ctx context.Context, id string, tags []string) (Document, error) {
	d, err := scanDoc(s.db.QueryRowContext(ctx, `UPDATE documents SET tags=?, tags_synced=0, updated_at=?
		WHERE id=? AND status!='deleting' RETURNING `+columns, JSONList(tags), s.now().UnixMilli(), id))
	if errors.Is(err, ErrNotFound) {
		if _, gerr := s.Get(ctx, id); gerr == nil {
			return Document{}, ErrConflict
		}
	}
	return d, err
}

// MarkTagsSynced records that the points carry tags, if those are still the document's tags.
func (s *SQLite) MarkTagsSynced(ctx context.Context, id string, tags []string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE documents SET tags_synced=1 WHERE id=? AND tags=?`, id, JSONList(tags))
	return err
}

// ClaimEnrich takes the oldest ready document waiting for its summary and auto-tags.
func (s *SQLite) ClaimEnrich(ctx context.Context) (Document, bool, error) {
	d, err := scanDoc(s.db.QueryRowContext(ctx, `UPDATE documents SET enrich_status='running'
		WHERE id = (SELECT id FROM documents WHERE enrich_status='pending' AND status='ready' ORDER BY updated_at, rowid LIMIT 1)
		RETURNING `+columns))
	if errors.Is(err, ErrNotFound) {
		return Document{}, false, nil
	}
	return d, err == nil, err
}

// FinishEnrich records the summary and auto-tags (or why they failed) for the generation.
func (s *SQLite) FinishEnrich(ctx context.Context, id string, gen int64, summary string, autoTags []string, failure error) error {
	st, msg := EnrichDone, ""
	if failure != nil {
		st, msg = EnrichFailed, failure.Error()
	}
	_, err := s.db.ExecContext(ctx, `UPDATE documents SET enrich_status=?, enrich_error=?, summary=?, auto_tags=?
		WHERE id=? AND generation=? AND enrich_status='running'`, string(st), msg, summary, JSONList(autoTags), id, gen)
	return err
}

// ReleaseEnrich puts an interrupted enrichment back in its queue (shutdown).
func (s *SQLite) ReleaseEnrich(ctx context.Context, id string, gen int64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE documents SET enrich_status='pending' WHERE id=? AND generation=? AND enrich_status='running'`, id, gen)
	return err
}
