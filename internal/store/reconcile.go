package store

import (
	"context"
	"fmt"
	"strings"
)

// Expected is what the vector store should hold for a ready document: points for chunk
// indexes 0..Chunks-1, written by Generation.
type Expected struct {
	ID         string
	Generation int64
	Chunks     int
}

// ListReady pages through the ready documents by id (keyset paging: ids after afterID, at most
// limit), with the chunk counts their points should have. The startup reconciliation reads
// them in pages, so its memory does not grow with the number of documents.
func (s *SQLite) ListReady(ctx context.Context, afterID string, limit int) ([]Expected, error) {
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, generation, chunks FROM documents
		WHERE status='ready' AND id > ? ORDER BY id LIMIT ?`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []Expected
	for rows.Next() {
		var e Expected
		if err := rows.Scan(&e.ID, &e.Generation, &e.Chunks); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Known returns which of ids have a row, in any status (deleting included: maintenance owns
// those points until the row goes).
func (s *SQLite) Known(ctx context.Context, ids []string) (map[string]bool, error) {
	known := make(map[string]bool, len(ids))
	const batch = 500 // below SQLite's bound on host parameters
	for start := 0; start < len(ids); start += batch {
		part := ids[start:min(start+batch, len(ids))]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		ph := strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")
		rows, err := s.db.QueryContext(ctx, `SELECT id FROM documents WHERE id IN (`+ph+`)`, args...)
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
		err = rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	return known, nil
}

// RequeueReady puts a ready document whose points are missing back in the queue as a new
// generation, at the head, if it is still ready at generation gen (a reprocess or delete
// meanwhile wins: false). Unlike Requeue it ignores the queue bound: the document was
// acknowledged long ago. Its summary and tags are kept and not asked for again.
func (s *SQLite) RequeueReady(ctx context.Context, id string, gen int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE documents SET status='pending', generation=generation+1, updated_at=?,
		queued_at=(SELECT COALESCE(MIN(queued_at), 0) - 1 FROM documents)
		WHERE id=? AND generation=? AND status='ready'`, s.now().UnixMilli(), id, gen)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
