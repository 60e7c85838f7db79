package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/ragstack/rag-operator/internal/store"
)

const columns = `id, name, type, sha256, size, tags, owner, status, error, chunks, pages, generation,
	attempts, tags_synced, enrich_status, enrich_error, summary, auto_tags, excerpt, created_at, updated_at`

func scanDoc(r pgx.Row) (store.Document, error) {
	var d store.Document
	var created, updated int64
	err := r.Scan(&d.ID, &d.Name, &d.Type, &d.SHA256, &d.Size, &d.Tags, &d.Owner, &d.Status, &d.Error,
		&d.Chunks, &d.Pages, &d.Generation, &d.Attempts, &d.TagsSynced, &d.Enrich, &d.EnrichErr, &d.Summary,
		&d.AutoTags, &d.Excerpt, &created, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Document{}, store.ErrNotFound
	}
	if err != nil {
		return store.Document{}, fmt.Errorf("store: %w", err)
	}
	d.Tags, d.AutoTags = store.NonNil(d.Tags), store.NonNil(d.AutoTags)
	d.CreatedAt, d.UpdatedAt = msTime(created), msTime(updated)
	return d, nil
}

func scanDocs(rows pgx.Rows) ([]store.Document, error) {
	defer rows.Close()
	out := []store.Document{}
	for rows.Next() {
		d, err := scanDoc(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return out, nil
}

// Get returns one document.
func (s *Store) Get(ctx context.Context, id string) (store.Document, error) {
	return scanDoc(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM documents WHERE id=$1`, id))
}

// List returns matching documents, newest first, and how many match in all.
func (s *Store) List(ctx context.Context, q store.Query) ([]store.Document, int, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if q.Status != "" {
		where = append(where, "status="+arg(string(q.Status)))
	}
	if q.Tag != "" {
		where = append(where, "tags @> jsonb_build_array("+arg(q.Tag)+"::text)")
	}
	if q.Name != "" {
		esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(q.Name)
		where = append(where, "name ILIKE "+arg("%"+esc+"%")+` ESCAPE '\'`)
	}
	if q.AnyTag != nil {
		if len(q.AnyTag) == 0 {
			return []store.Document{}, 0, nil
		}
		where = append(where, "tags ?| "+arg(q.AnyTag)+"::text[]")
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM documents`+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: %w", err)
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	limit, offset := arg(min(q.Limit, 1000)), arg(max(q.Offset, 0))
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM documents`+cond+` ORDER BY created_at DESC, id LIMIT `+limit+` OFFSET `+offset, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: %w", err)
	}
	docs, err := scanDocs(rows)
	return docs, total, err
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func queueDepth(ctx context.Context, q queryRower) (int, error) {
	var n int
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM documents WHERE status IN ('pending','processing')`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	return n, nil
}

// QueueDepth counts pending and processing documents.
func (s *Store) QueueDepth(ctx context.Context) (int, error) { return queueDepth(ctx, s.pool) }

// Counts counts documents per status (every status present, zeros included).
func (s *Store) Counts(ctx context.Context) (map[store.Status]int, error) {
	out := map[store.Status]int{}
	for _, st := range store.Statuses {
		out[st] = 0
	}
	rows, err := s.pool.Query(ctx, `SELECT status, COUNT(*) FROM documents GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out[store.Status(st)] = n
	}
	return out, rows.Err()
}

// Claim takes the oldest document that is pending or whose holder's lease expired, and marks
// it processing under this process's lease. SKIP LOCKED lets claimers on every replica pass
// each other's candidate row instead of queueing behind it; the row lock makes the claim
// exclusive.
func (s *Store) Claim(ctx context.Context) (store.Document, bool, error) {
	d, err := scanDoc(s.pool.QueryRow(ctx, `UPDATE documents SET status='processing', attempts=attempts+1, updated_at=$1,
		claimed_by=$2, lease_until=now() + $3 * interval '1 millisecond'
		WHERE id = (SELECT id FROM documents
			WHERE status='pending' OR (status='processing' AND lease_until < now())
			ORDER BY queued_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+columns, s.now().UnixMilli(), s.id, s.leaseMillis()))
	if errors.Is(err, store.ErrNotFound) {
		return store.Document{}, false, nil
	}
	return d, err == nil, err
}

// Finish records the outcome if this process still holds the claim on the same generation
// (a reprocess, a delete, or a lease lost to another replica makes the result stale: false).
func (s *Store) Finish(ctx context.Context, id string, gen int64, o store.Outcome) (bool, error) {
	status, errText, enrich := store.Ready, "", store.EnrichNone
	if o.Err != nil {
		status, errText = store.Failed, o.Err.Error()
	} else if o.Enrich {
		enrich = store.EnrichPending
	}
	tag, err := s.pool.Exec(ctx, `UPDATE documents SET status=$1, error=$2, chunks=$3, pages=$4, excerpt=$5,
		enrich_status = CASE WHEN $6::text='pending' AND enrich_status='done' THEN 'done' ELSE $6::text END,
		enrich_error = CASE WHEN $6::text='pending' AND enrich_status='done' THEN enrich_error ELSE '' END,
		tags_synced = (tags = $7::text::jsonb), updated_at=$8, claimed_by='', lease_until=NULL
		WHERE id=$9 AND generation=$10 AND status='processing' AND claimed_by=$11`,
		string(status), errText, o.Chunks, o.Pages, o.Excerpt, string(enrich), store.JSONList(o.UsedTags),
		s.now().UnixMilli(), id, gen, s.id)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Release puts a document this process holds back in the queue (shutdown).
func (s *Store) Release(ctx context.Context, id string, gen int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE documents SET status='pending', updated_at=$1, claimed_by='', lease_until=NULL
		WHERE id=$2 AND generation=$3 AND status='processing' AND claimed_by=$4`, s.now().UnixMilli(), id, gen, s.id)
	return err
}

// Requeue starts a new generation of a document (reprocess). maxQueued bounds the queue as
// for uploads (0: no bound); a document already queued is not counted twice.
func (s *Store) Requeue(ctx context.Context, id string, maxQueued int) (store.Document, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Document{}, fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback(ctx)
	d, err := scanDoc(tx.QueryRow(ctx, `SELECT `+columns+` FROM documents WHERE id=$1 FOR UPDATE`, id))
	if err != nil {
		return store.Document{}, err
	}
	if d.Status == store.Deleting {
		return store.Document{}, store.ErrConflict
	}
	if maxQueued > 0 && d.Status != store.Pending && d.Status != store.Processing {
		if n, err := queueDepth(ctx, tx); err != nil {
			return store.Document{}, err
		} else if n >= maxQueued {
			return store.Document{}, store.ErrQueueFull
		}
	}
	now := s.now().UnixMilli()
	d, err = scanDoc(tx.QueryRow(ctx, `UPDATE documents SET status='pending', error='', generation=generation+1,
		enrich_status='', enrich_error='', updated_at=$1, queued_at=$1, claimed_by='', lease_until=NULL
		WHERE id=$2 RETURNING `+columns, now, id))
	if err != nil {
		return store.Document{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Document{}, fmt.Errorf("store: %w", err)
	}
	return d, nil
}

// RequeueReady puts a ready document whose points are missing back in the queue as a new
// generation, at the head, if it is still ready at generation gen (false otherwise).
func (s *Store) RequeueReady(ctx context.Context, id string, gen int64) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE documents SET status='pending', generation=generation+1, updated_at=$1,
		queued_at=(SELECT COALESCE(MIN(queued_at), 0) - 1 FROM documents), claimed_by='', lease_until=NULL
		WHERE id=$2 AND generation=$3 AND status='ready'`, s.now().UnixMilli(), id, gen)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// MarkDeleting flags a document for removal; it stays listed as deleting until Remove.
func (s *Store) MarkDeleting(ctx context.Context, id string) (store.Document, error) {
	return scanDoc(s.pool.QueryRow(ctx, `UPDATE documents SET status='deleting', updated_at=$1 WHERE id=$2 RETURNING `+columns,
		s.now().UnixMilli(), id))
}

// ListStatus returns documents in a status, oldest first (maintenance: deleting).
func (s *Store) ListStatus(ctx context.Context, st store.Status, limit int) ([]store.Document, error) {
	return s.listWhere(ctx, `status=$1 ORDER BY updated_at, seq LIMIT $2`, string(st), limit)
}

// ListTagsUnsynced returns settled documents whose points may carry old tags.
func (s *Store) ListTagsUnsynced(ctx context.Context, limit int) ([]store.Document, error) {
	return s.listWhere(ctx, `NOT tags_synced AND status IN ('ready','failed') ORDER BY updated_at, seq LIMIT $1`, limit)
}

func (s *Store) listWhere(ctx context.Context, where string, args ...any) ([]store.Document, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM documents WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	docs, err := scanDocs(rows)
	if len(docs) == 0 {
		docs = nil // as the SQLite store
	}
	return docs, err
}

// SetTags replaces a document's tags and marks its points unsynced until MarkTagsSynced.
func (s *Store) SetTags(ctx context.Context, id string, tags []string) (store.Document, error) {
	d, err := scanDoc(s.pool.QueryRow(ctx, `UPDATE documents SET tags=$1::text::jsonb, tags_synced=false, updated_at=$2
		WHERE id=$3 AND status!='deleting' RETURNING `+columns, store.JSONList(tags), s.now().UnixMilli(), id))
	if errors.Is(err, store.ErrNotFound) {
		if _, gerr := s.Get(ctx, id); gerr == nil {
			return store.Document{}, store.ErrConflict
		}
	}
	return d, err
}

// MarkTagsSynced records that the points carry tags, if those are still the document's tags.
func (s *Store) MarkTagsSynced(ctx context.Context, id string, tags []string) error {
	_, err := s.pool.Exec(ctx, `UPDATE documents SET tags_synced=true WHERE id=$1 AND tags=$2::text::jsonb`, id, store.JSONList(tags))
	return err
}

// ListReady pages through the ready documents by id (bytewise order, whatever the database's
// collation), with the chunk counts their points should have.
func (s *Store) ListReady(ctx context.Context, afterID string, limit int) ([]store.Expected, error) {
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.pool.Query(ctx, `SELECT id, generation, chunks FROM documents
		WHERE status='ready' AND id COLLATE "C" > $1 ORDER BY id COLLATE "C" LIMIT $2`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []store.Expected
	for rows.Next() {
		var e store.Expected
		if err := rows.Scan(&e.ID, &e.Generation, &e.Chunks); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Known returns which of ids have a row, in any status.
func (s *Store) Known(ctx context.Context, ids []string) (map[string]bool, error) {
	known := make(map[string]bool, len(ids))
	const batch = 5000
	for start := 0; start < len(ids); start += batch {
		rows, err := s.pool.Query(ctx, `SELECT id FROM documents WHERE id = ANY($1)`, ids[start:min(start+batch, len(ids))])
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: %w", err)
			}
			known[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	return known, nil
}

// ClaimEnrich takes the oldest ready document waiting for its summary and auto-tags (or whose
// enrichment holder's lease expired).
func (s *Store) ClaimEnrich(ctx context.Context) (store.Document, bool, error) {
	d, err := scanDoc(s.pool.QueryRow(ctx, `UPDATE documents SET enrich_status='running', enrich_claimed_by=$1,
		enrich_lease_until=now() + $2 * interval '1 millisecond'
		WHERE id = (SELECT id FROM documents WHERE status='ready'
			AND (enrich_status='pending' OR (enrich_status='running' AND enrich_lease_until < now()))
			ORDER BY updated_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+columns, s.id, s.leaseMillis()))
	if errors.Is(err, store.ErrNotFound) {
		return store.Document{}, false, nil
	}
	return d, err == nil, err
}

// FinishEnrich records the summary and auto-tags (or why they failed) for the generation, if
// this process still holds the enrichment claim.
func (s *Store) FinishEnrich(ctx context.Context, id string, gen int64, summary string, autoTags []string, failure error) error {
	st, msg := store.EnrichDone, ""
	if failure != nil {
		st, msg = store.EnrichFailed, failure.Error()
	}
	_, err := s.pool.Exec(ctx, `UPDATE documents SET enrich_status=$1, enrich_error=$2, summary=$3, auto_tags=$4::text::jsonb,
		enrich_claimed_by='', enrich_lease_until=NULL
		WHERE id=$5 AND generation=$6 AND enrich_status='running' AND enrich_claimed_by=$7`,
		string(st), msg, summary, store.JSONList(autoTags), id, gen, s.id)
	return err
}

// ReleaseEnrich puts an interrupted enrichment back in its queue (shutdown).
func (s *Store) ReleaseEnrich(ctx context.Context, id string, gen int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE documents SET enrich_status='pending', enrich_claimed_by='', enrich_lease_until=NULL
		WHERE id=$1 AND generation=$2 AND enrich_status='running' AND enrich_claimed_by=$3`, id, gen, s.id)
	return err
}
