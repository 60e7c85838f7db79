package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ragstack/rag-operator/internal/store"
)

// Originals are kept in the database, in parts of partSize bytes (bytea rows of
// original_parts), one copy per distinct content. Why in PostgreSQL rather than on a shared
// volume: any replica must read any document, a ReadWriteMany volume is what many clusters
// (and a pair of DGX Sparks) do not have, and one transaction then covers the bytes and the row
// that references them, so "acknowledged" means "committed" with no file to sweep after a
// crash. Parts keep every value far below bytea's 1 GB bound and let a reader stream.
const partSize = 1 << 20

func msTime(ms int64) time.Time { return time.UnixMilli(ms) }

// lockContent serialises, across replicas, the transactions that add or drop documents of one
// content: duplicate detection and the shared original see each other's commits.
func lockContent(ctx context.Context, tx pgx.Tx, sha string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockNSContent, sha); err != nil {
		return fmt.Errorf("store: lock: %w", err)
	}
	return nil
}

// Create stores the upload's bytes (unless a document with the same content already has them)
// and its row in one transaction; the upload is acknowledged only after it commits. The rules
// for duplicates and the queue bound are the SQLite store's; the queue bound is checked without
// a lock across replicas, so concurrent uploads may pass it by at most their number.
func (s *Store) Create(ctx context.Context, u *store.Upload, nd store.NewDocument) (store.Document, error) {
	content, err := u.Content()
	if err != nil {
		return store.Document{}, err
	}
	defer u.Abort()
	sha := u.SHA256()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Document{}, fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := lockContent(ctx, tx, sha); err != nil {
		return store.Document{}, err
	}
	if id, err := duplicateOf(ctx, tx, sha, nd); err != nil {
		return store.Document{}, err
	} else if id != "" {
		return store.Document{}, &store.DuplicateError{ID: id}
	}
	if nd.MaxQueued > 0 {
		if n, err := queueDepth(ctx, tx); err != nil {
			return store.Document{}, err
		} else if n >= nd.MaxQueued {
			return store.Document{}, store.ErrQueueFull
		}
	}
	tag, err := tx.Exec(ctx, `INSERT INTO originals (sha256, size) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING`, sha, u.Size())
	if err != nil {
		return store.Document{}, fmt.Errorf("store: %w", err)
	}
	if tag.RowsAffected() == 1 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"original_parts"}, []string{"sha256", "seq", "data"},
			&parts{r: content, sha: sha}); err != nil {
			return store.Document{}, fmt.Errorf("store: original: %w", err)
		}
	}
	now := s.now()
	d := store.Document{
		ID: uuid.NewString(), Name: nd.Name, Type: nd.Type, SHA256: sha, Size: u.Size(),
		Tags: store.NonNil(nd.Tags), Owner: nd.Owner, Status: store.Pending, TagsSynced: true,
		AutoTags: []string{}, CreatedAt: msTime(now.UnixMilli()), UpdatedAt: msTime(now.UnixMilli()),
	}
	if _, err := tx.Exec(ctx, `INSERT INTO documents (id, name, type, sha256, size, tags, owner, status, created_at, updated_at, queued_at)
		VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, 'pending', $8, $8, $8)`,
		d.ID, d.Name, d.Type, sha, d.Size, store.JSONList(d.Tags), d.Owner, now.UnixMilli()); err != nil {
		return store.Document{}, fmt.Errorf("store: insert: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Document{}, fmt.Errorf("store: commit: %w", err)
	}
	return d, nil
}

func duplicateOf(ctx context.Context, tx pgx.Tx, sha string, nd store.NewDocument) (string, error) {
	rows, err := tx.Query(ctx, `SELECT id, tags FROM documents WHERE sha256=$1 AND status!='deleting' ORDER BY created_at, seq`, sha)
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var tags []string
		if err := rows.Scan(&id, &tags); err != nil {
			return "", fmt.Errorf("store: %w", err)
		}
		if nd.DuplicatedBy(store.NonNil(tags)) {
			return id, nil
		}
	}
	return "", rows.Err()
}

// parts feeds COPY one part of the upload per row.
type parts struct {
	r   io.Reader
	sha string
	seq int
	buf []byte
	err error
}

func (p *parts) Next() bool {
	p.buf = make([]byte, partSize) // COPY may still hold the previous row's slice
	n, err := io.ReadFull(p.r, p.buf)
	p.buf = p.buf[:n]
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		p.err = err
		return false
	}
	if n == 0 {
		return p.seq == 0 && p.advance() // an empty file still gets one (empty) part
	}
	return p.advance()
}

func (p *parts) advance() bool { p.seq++; return true }

func (p *parts) Values() ([]any, error) { return []any{p.sha, p.seq - 1, p.buf}, nil }
func (p *parts) Err() error             { return p.err }

// OpenOriginal copies a document's original from the database into an unlinked file in the
// spool directory (parsers read at random offsets; the copy frees the connection at once) and
// checks it against the document's size and SHA-256.
func (s *Store) OpenOriginal(ctx context.Context, d store.Document) (store.Original, error) {
	f, err := os.CreateTemp(s.spool, "original-*")
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	os.Remove(f.Name()) // the open file stays readable; nothing is left if the process dies
	h := sha256.New()
	var n int64
	rows, err := s.pool.Query(ctx, `SELECT data FROM original_parts WHERE sha256=$1 ORDER BY seq`, d.SHA256)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	for rows.Next() {
		var part []byte
		if err := rows.Scan(&part); err != nil {
			rows.Close()
			f.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
		if _, err := f.Write(part); err != nil {
			rows.Close()
			f.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
		h.Write(part)
		n += int64(len(part))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		f.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.SHA256 || n != d.Size {
		f.Close()
		return nil, fmt.Errorf("store: original of %s is damaged or missing: %d bytes with SHA-256 %s, want %d bytes with %s", d.ID, n, got, d.Size, d.SHA256)
	}
	return f, nil
}

// Remove deletes the row and, when no other document has the same content, the original. The
// caller has removed the points.
func (s *Store) Remove(ctx context.Context, id string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback(ctx)
	var sha string
	err = tx.QueryRow(ctx, `DELETE FROM documents WHERE id=$1 RETURNING sha256`, id).Scan(&sha)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := lockContent(ctx, tx, sha); err != nil {
		return err
	}
	// A statement after the lock: it sees documents that uploads of this content committed.
	if _, err := tx.Exec(ctx, `DELETE FROM originals WHERE sha256=$1 AND NOT EXISTS (SELECT 1 FROM documents WHERE sha256=$1)`, sha); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}
