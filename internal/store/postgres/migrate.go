package postgres

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema versions in order: migrations[i] brings version i to i+1. Never
// edit one that was released; append. Each runs in one transaction with the row recording
// it, so a database is at a version or the one before, never in between.
var migrations = []string{
	// 1: the SQLite store's tables, plus originals (their bytes in 1 MiB parts), claim leases
	// and the knowledge-base generation. Times are Unix milliseconds as in SQLite, except the
	// leases, which use the database's clock so replicas with skewed clocks agree.
	`
CREATE TABLE originals (
  sha256     text PRIMARY KEY,
  size       bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE original_parts (
  sha256 text NOT NULL REFERENCES originals(sha256) ON DELETE CASCADE,
  seq    integer NOT NULL,
  data   bytea NOT NULL,
  PRIMARY KEY (sha256, seq)
);
CREATE TABLE documents (
  seq                bigint GENERATED ALWAYS AS IDENTITY,
  id                 text PRIMARY KEY,
  name               text NOT NULL,
  type               text NOT NULL,
  sha256             text NOT NULL REFERENCES originals(sha256),
  size               bigint NOT NULL,
  tags               jsonb NOT NULL DEFAULT '[]',
  owner              text NOT NULL DEFAULT '',
  status             text NOT NULL,
  error              text NOT NULL DEFAULT '',
  chunks             integer NOT NULL DEFAULT 0,
  pages              integer NOT NULL DEFAULT 0,
  generation         bigint NOT NULL DEFAULT 0,
  attempts           integer NOT NULL DEFAULT 0,
  tags_synced        boolean NOT NULL DEFAULT true,
  enrich_status      text NOT NULL DEFAULT '',
  enrich_error       text NOT NULL DEFAULT '',
  summary            text NOT NULL DEFAULT '',
  auto_tags          jsonb NOT NULL DEFAULT '[]',
  excerpt            text NOT NULL DEFAULT '',
  created_at         bigint NOT NULL,
  updated_at         bigint NOT NULL,
  queued_at          bigint NOT NULL,
  claimed_by         text NOT NULL DEFAULT '',
  lease_until        timestamptz,
  enrich_claimed_by  text NOT NULL DEFAULT '',
  enrich_lease_until timestamptz
);
CREATE INDEX documents_pending ON documents (queued_at, seq) WHERE status = 'pending';
CREATE INDEX documents_leases ON documents (lease_until) WHERE status = 'processing';
CREATE INDEX documents_enrich ON documents (updated_at, seq) WHERE enrich_status IN ('pending', 'running');
CREATE INDEX documents_status ON documents (status, updated_at);
CREATE INDEX documents_sha256 ON documents (sha256);
CREATE TABLE sessions (
  id         text PRIMARY KEY,
  owner      text NOT NULL,
  title      text NOT NULL DEFAULT '',
  turns      integer NOT NULL DEFAULT 0,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL
);
CREATE INDEX sessions_owner ON sessions (owner, updated_at);
CREATE TABLE session_turns (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  session_id text NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  question   text NOT NULL,
  answer     text NOT NULL,
  sources    text NOT NULL DEFAULT '[]',
  no_context boolean NOT NULL DEFAULT false,
  created_at bigint NOT NULL
);
CREATE INDEX session_turns_session ON session_turns (session_id, id);
CREATE TABLE knowledge (
  one        boolean PRIMARY KEY DEFAULT true CHECK (one),
  generation bigint NOT NULL
);
INSERT INTO knowledge (generation) VALUES (0);
`,
}

// Advisory lock keys (one namespace per use; the two-key form for per-row locks).
const (
	lockMigrate   int64 = 0x7261675f6d696772 // "rag_migr"
	lockNSContent int32 = 0x72616701         // per original (SHA-256)
	lockNSOwner   int32 = 0x72616702         // per session owner
)

// SchemaVersion is the version this build migrates to.
func SchemaVersion() int { return len(migrations) }

// migrate brings the schema to SchemaVersion under a session advisory lock: replicas that
// start together wait for the first, then find nothing to do. A database newer than this
// build (a rollback after an upgrade) is refused rather than used with a schema it does not
// know.
func migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockMigrate); err != nil {
		return fmt.Errorf("postgres: migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockMigrate)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS rag_schema_migrations (
		version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	var cur int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM rag_schema_migrations`).Scan(&cur); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if cur > len(migrations) {
		return fmt.Errorf("postgres: the database schema is at version %d, newer than this server's %d: run a server at least as new as the one that migrated it", cur, len(migrations))
	}
	for v := cur + 1; v <= len(migrations); v++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return fmt.Errorf("postgres: migrate to %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("postgres: migrate to %d (left at %d): %w", v, v-1, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rag_schema_migrations (version) VALUES ($1)`, v); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("postgres: migrate to %d (left at %d): %w", v, v-1, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("postgres: migrate to %d (left at %d): %w", v, v-1, err)
		}
		log.Info("Migrated the database schema", "version", v)
	}
	return nil
}
