package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Sessions are chat conversations kept for the API key that created them: the answers' turns,
// so /api/chat can feed a conversation's history into the prompt's history allowance and a UI
// can show it again later.
//
// They live in the same database as documents (one file to back up, one WAL), in their own
// tables created by sessionsSchema at every Open. Ownership is enforced here, in every query's
// WHERE clause, rather than by the HTTP layer alone: a session of another owner is simply not
// found, so no caller can forget the check.

// ErrSessionNotFound is returned for a session that does not exist or belongs to another owner
// (the two are indistinguishable on purpose: the API answers 404 either way).
var ErrSessionNotFound = errors.New("session not found")

// ErrTooManySessions is returned by CreateSession when the owner has its maximum.
var ErrTooManySessions = errors.New("too many sessions")

// MaxTitleRunes bounds a session title.
const MaxTitleRunes = 200

// sessionsSchema is applied at every Open after the documents schema, in the same idempotent
// style (IF NOT EXISTS), and raises user_version to 2 to record that the tables exist. A
// session's turns go with it (ON DELETE CASCADE; the DSN turns foreign keys on for every
// connection).
const sessionsSchema = `
CREATE TABLE IF NOT EXISTS sessions (
  id          TEXT PRIMARY KEY,
  owner       TEXT NOT NULL,
  title       TEXT NOT NULL DEFAULT '',
  turns       INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_owner ON sessions(owner, updated_at);
CREATE TABLE IF NOT EXISTS session_turns (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  question    TEXT NOT NULL,
  answer      TEXT NOT NULL,
  sources     TEXT NOT NULL DEFAULT '[]',
  no_context  INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS session_turns_session ON session_turns(session_id, id);
PRAGMA user_version = 2;
`

func (s *SQLite) initSessions(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, sessionsSchema); err != nil {
		return fmt.Errorf("store: sessions schema: %w", err)
	}
	return nil
}

// Session is one conversation.
type Session struct {
	ID        string
	Owner     string // API key name
	Title     string
	Turns     int // turns kept
	CreatedAt time.Time
	UpdatedAt time.Time // the last turn, or creation
}

// Turn is one question and its answer.
type Turn struct {
	ID       int64
	Question string
	Answer   string
	// Sources is the cited sources as the HTTP layer encoded them (a JSON array); the store
	// keeps it opaque so it does not depend on the answering package's types.
	Sources   string
	NoContext bool
	CreatedAt time.Time
}

// CleanTitle makes a title safe to store and show: control characters become spaces, white
// space is collapsed, and it is cut to MaxTitleRunes.
func CleanTitle(title string) string {
	title = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return ' '
		}
		return r
	}, title)
	title = strings.Join(strings.Fields(title), " ")
	if utf8.RuneCountInString(title) > MaxTitleRunes {
		title = strings.TrimSpace(string([]rune(title)[:MaxTitleRunes-1])) + "…"
	}
	return title
}

// CreateSession creates an empty session for owner. maxPerOwner > 0 refuses
// (ErrTooManySessions) an owner that has that many already.
func (s *SQLite) CreateSession(ctx context.Context, owner, title string, maxPerOwner int) (Session, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Session{}, fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	if maxPerOwner > 0 {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE owner=?`, owner).Scan(&n); err != nil {
			return Session{}, fmt.Errorf("store: %w", err)
		}
		if n >= maxPerOwner {
			return Session{}, fmt.Errorf("%w: %d of at most %d", ErrTooManySessions, n, maxPerOwner)
		}
	}
	now := s.now()
	updated, err := nextUpdatedAt(ctx, tx, owner, now.UnixMilli())
	if err != nil {
		return Session{}, err
	}
	ss := Session{ID: uuid.NewString(), Owner: owner, Title: CleanTitle(title), CreatedAt: now, UpdatedAt: time.UnixMilli(updated)}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (id, owner, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		ss.ID, ss.Owner, ss.Title, now.UnixMilli(), updated); err != nil {
		return Session{}, fmt.Errorf("store: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Session{}, fmt.Errorf("store: %w", err)
	}
	return ss, nil
}

// nextUpdatedAt is now, or 1 ms after owner's most recently used session when that is not
// earlier: "most recently used first" must not depend on two uses landing in different
// milliseconds (a tie would fall back to the random id).
func nextUpdatedAt(ctx context.Context, tx *sql.Tx, owner string, now int64) (int64, error) {
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(updated_at), 0) FROM sessions WHERE owner=?`, owner).Scan(&last); err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	return max(now, last+1), nil
}

const sessionColumns = `id, owner, title, turns, created_at, updated_at`

func scanSession(r scanner) (Session, error) {
	var ss Session
	var created, updated int64
	err := r.Scan(&ss.ID, &ss.Owner, &ss.Title, &ss.Turns, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrSessionNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("store: %w", err)
	}
	ss.CreatedAt, ss.UpdatedAt = time.UnixMilli(created), time.UnixMilli(updated)
	return ss, nil
}

// GetSession returns owner's session id.
func (s *SQLite) GetSession(ctx context.Context, owner, id string) (Session, error) {
	return scanSession(s.db.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id=? AND owner=?`, id, owner))
}

// ListSessions returns owner's sessions, most recently used first, and how many it has.
// limit defaults to 100 and is at most 1000.
func (s *SQLite) ListSessions(ctx context.Context, owner string, limit, offset int) ([]Session, int, error) {
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE owner=?`, owner).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: %w", err)
	}
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE owner=?
		ORDER BY updated_at DESC, created_at DESC, id LIMIT ? OFFSET ?`, owner, min(limit, 1000), max(offset, 0))
	if err != nil {
		return nil, 0, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	out := []Session{}
	for rows.Next() {
		ss, err := scanSession(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, ss)
	}
	return out, total, rows.Err()
}

// SessionTurns returns the newest limit turns (all when limit <= 0) of owner's session, oldest
// first: the order a conversation is read and the order history is given to the prompt.
func (s *SQLite) SessionTurns(ctx context.Context, owner, id string, limit int) ([]Turn, error) {
	if _, err := s.GetSession(ctx, owner, id); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, question, answer, sources, no_context, created_at FROM (
		SELECT * FROM session_turns WHERE session_id=? ORDER BY id DESC LIMIT ?) ORDER BY id`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	out := []Turn{}
	for rows.Next() {
		var t Turn
		var noCtx int
		var created int64
		if err := rows.Scan(&t.ID, &t.Question, &t.Answer, &t.Sources, &noCtx, &created); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		t.NoContext, t.CreatedAt = noCtx != 0, time.UnixMilli(created)
		out = append(out, t)
	}
	return out, rows.Err()
}

// AppendTurn adds a turn to owner's session and returns the session as updated. A session
// keeps at most maxTurns turns (0: no bound): the oldest go first, since the prompt only ever
// uses the newest turns that fit its history allowance and an unbounded session would grow the
// database without end. An untitled session takes its first question, shortened, as title.
func (s *SQLite) AppendTurn(ctx context.Context, owner, id string, t Turn, maxTurns int) (Session, error) {
	if t.Sources == "" {
		t.Sources = "[]"
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Session{}, fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	if _, err := scanSession(tx.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id=? AND owner=?`, id, owner)); err != nil {
		return Session{}, err
	}
	now := s.now().UnixMilli()
	noCtx := 0
	if t.NoContext {
		noCtx = 1
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO session_turns (session_id, question, answer, sources, no_context, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, id, t.Question, t.Answer, t.Sources, noCtx, now); err != nil {
		return Session{}, fmt.Errorf("store: %w", err)
	}
	if maxTurns > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM session_turns WHERE session_id=? AND id NOT IN (
			SELECT id FROM session_turns WHERE session_id=? ORDER BY id DESC LIMIT ?)`, id, id, maxTurns); err != nil {
			return Session{}, fmt.Errorf("store: %w", err)
		}
	}
	updated, err := nextUpdatedAt(ctx, tx, owner, now)
	if err != nil {
		return Session{}, err
	}
	ss, err := scanSession(tx.QueryRowContext(ctx, `UPDATE sessions SET
		turns=(SELECT COUNT(*) FROM session_turns WHERE session_id=?),
		title=CASE WHEN title='' THEN ? ELSE title END, updated_at=?
		WHERE id=? AND owner=? RETURNING `+sessionColumns, id, CleanTitle(t.Question), updated, id, owner))
	if err != nil {
		return Session{}, err
	}
	if err := tx.Commit(); err != nil {
		return Session{}, fmt.Errorf("store: %w", err)
	}
	return ss, nil
}

// DeleteSession removes owner's session and its turns.
func (s *SQLite) DeleteSession(ctx context.Context, owner, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id=? AND owner=?`, id, owner)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrSessionNotFound
	}
	return nil
}

// RenameSession sets the title of owner's session (cleaned by CleanTitle). It does not count as
// a use: the session keeps its place in the most-recently-used order.
func (s *SQLite) RenameSession(ctx context.Context, owner, id, title string) (Session, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET title=? WHERE id=? AND owner=?`, CleanTitle(title), id, owner)
	if err != nil {
		return Session{}, fmt.Errorf("store: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Session{}, ErrSessionNotFound
	}
	return s.GetSession(ctx, owner, id)
}
