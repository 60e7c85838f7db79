package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ragstack/rag-operator/internal/store"
)

// Sessions follow the SQLite store (see store/sessions.go): ownership in every WHERE clause,
// turns cascade with their session. Writes for one owner take an advisory lock on the owner,
// so the per-owner limit and the strictly increasing "last used" time hold across replicas.

func lockOwner(ctx context.Context, tx pgx.Tx, owner string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockNSOwner, owner); err != nil {
		return fmt.Errorf("store: lock: %w", err)
	}
	return nil
}

// CreateSession creates an empty session for owner; maxPerOwner > 0 bounds an owner's sessions.
func (s *Store) CreateSession(ctx context.Context, owner, title string, maxPerOwner int) (store.Session, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Session{}, fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := lockOwner(ctx, tx, owner); err != nil {
		return store.Session{}, err
	}
	if maxPerOwner > 0 {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM sessions WHERE owner=$1`, owner).Scan(&n); err != nil {
			return store.Session{}, fmt.Errorf("store: %w", err)
		}
		if n >= maxPerOwner {
			return store.Session{}, fmt.Errorf("%w: %d of at most %d", store.ErrTooManySessions, n, maxPerOwner)
		}
	}
	now := s.now()
	updated, err := nextUpdatedAt(ctx, tx, owner, now.UnixMilli())
	if err != nil {
		return store.Session{}, err
	}
	ss := store.Session{ID: uuid.NewString(), Owner: owner, Title: store.CleanTitle(title), CreatedAt: msTime(now.UnixMilli()), UpdatedAt: msTime(updated)}
	if _, err := tx.Exec(ctx, `INSERT INTO sessions (id, owner, title, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)`,
		ss.ID, ss.Owner, ss.Title, now.UnixMilli(), updated); err != nil {
		return store.Session{}, fmt.Errorf("store: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Session{}, fmt.Errorf("store: %w", err)
	}
	return ss, nil
}

func nextUpdatedAt(ctx context.Context, tx pgx.Tx, owner string, now int64) (int64, error) {
	var last int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(updated_at), 0) FROM sessions WHERE owner=$1`, owner).Scan(&last); err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	return max(now, last+1), nil
}

const sessionColumns = `id, owner, title, turns, created_at, updated_at`

func scanSession(r pgx.Row) (store.Session, error) {
	var ss store.Session
	var created, updated int64
	err := r.Scan(&ss.ID, &ss.Owner, &ss.Title, &ss.Turns, &created, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Session{}, store.ErrSessionNotFound
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("store: %w", err)
	}
	ss.CreatedAt, ss.UpdatedAt = msTime(created), msTime(updated)
	return ss, nil
}

// GetSession returns owner's session id.
func (s *Store) GetSession(ctx context.Context, owner, id string) (store.Session, error) {
	return scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id=$1 AND owner=$2`, id, owner))
}

// ListSessions returns owner's sessions, most recently used first, and how many it has.
func (s *Store) ListSessions(ctx context.Context, owner string, limit, offset int) ([]store.Session, int, error) {
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM sessions WHERE owner=$1`, owner).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: %w", err)
	}
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE owner=$1
		ORDER BY updated_at DESC, created_at DESC, id LIMIT $2 OFFSET $3`, owner, min(limit, 1000), max(offset, 0))
	if err != nil {
		return nil, 0, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	out := []store.Session{}
	for rows.Next() {
		ss, err := scanSession(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, ss)
	}
	return out, total, rows.Err()
}

// SessionTurns returns the newest limit turns (all when limit <= 0) of owner's session, oldest first.
func (s *Store) SessionTurns(ctx context.Context, owner, id string, limit int) ([]store.Turn, error) {
	if _, err := s.GetSession(ctx, owner, id); err != nil {
		return nil, err
	}
	var lim *int // NULL: no limit
	if limit > 0 {
		lim = &limit
	}
	rows, err := s.pool.Query(ctx, `SELECT id, question, answer, sources, no_context, created_at FROM (
		SELECT * FROM session_turns WHERE session_id=$1 ORDER BY id DESC LIMIT $2) t ORDER BY id`, id, lim)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	out := []store.Turn{}
	for rows.Next() {
		var t store.Turn
		var created int64
		if err := rows.Scan(&t.ID, &t.Question, &t.Answer, &t.Sources, &t.NoContext, &created); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		t.CreatedAt = msTime(created)
		out = append(out, t)
	}
	return out, rows.Err()
}

// AppendTurn adds a turn to owner's session, keeps at most maxTurns (0: no bound) and returns
// the session as updated; an untitled session takes its first question as title.
func (s *Store) AppendTurn(ctx context.Context, owner, id string, t store.Turn, maxTurns int) (store.Session, error) {
	if t.Sources == "" {
		t.Sources = "[]"
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Session{}, fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := lockOwner(ctx, tx, owner); err != nil {
		return store.Session{}, err
	}
	if _, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id=$1 AND owner=$2`, id, owner)); err != nil {
		return store.Session{}, err
	}
	now := s.now().UnixMilli()
	if _, err := tx.Exec(ctx, `INSERT INTO session_turns (session_id, question, answer, sources, no_context, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, id, t.Question, t.Answer, t.Sources, t.NoContext, now); err != nil {
		return store.Session{}, fmt.Errorf("store: %w", err)
	}
	if maxTurns > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM session_turns WHERE session_id=$1 AND id NOT IN (
			SELECT id FROM session_turns WHERE session_id=$1 ORDER BY id DESC LIMIT $2)`, id, maxTurns); err != nil {
			return store.Session{}, fmt.Errorf("store: %w", err)
		}
	}
	updated, err := nextUpdatedAt(ctx, tx, owner, now)
	if err != nil {
		return store.Session{}, err
	}
	ss, err := scanSession(tx.QueryRow(ctx, `UPDATE sessions SET
		turns=(SELECT COUNT(*) FROM session_turns WHERE session_id=$1),
		title=CASE WHEN title='' THEN $2 ELSE title END, updated_at=$3
		WHERE id=$1 AND owner=$4 RETURNING `+sessionColumns, id, store.CleanTitle(t.Question), updated, owner))
	if err != nil {
		return store.Session{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Session{}, fmt.Errorf("store: %w", err)
	}
	return ss, nil
}

// DeleteSession removes owner's session and its turns.
func (s *Store) DeleteSession(ctx context.Context, owner, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE id=$1 AND owner=$2`, id, owner)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrSessionNotFound
	}
	return nil
}

// RenameSession sets the title of owner's session; it does not count as a use.
func (s *Store) RenameSession(ctx context.Context, owner, id, title string) (store.Session, error) {
	return scanSession(s.pool.QueryRow(ctx, `UPDATE sessions SET title=$1 WHERE id=$2 AND owner=$3 RETURNING `+sessionColumns,
		store.CleanTitle(title), id, owner))
}
