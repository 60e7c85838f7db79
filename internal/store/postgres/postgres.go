// Package postgres keeps the RAG server's state in PostgreSQL (github.com/jackc/pgx/v5, pure
// Go), so several RAG server replicas share one store: documents and their queue, the
// enrichment queue, the uploaded originals, sessions, and the knowledge-base generation that
// keeps the answer caches of all replicas fresh. It implements store.Store with the behaviour
// of the SQLite store, except where several processes change the rules:
//
//   - Claims carry a lease (Options.Lease) that a goroutine renews while this process lives. A
//     replica that dies stops renewing, and any replica claims the document once the lease has
//     expired: no startup step puts "processing" rows back, since other replicas own most of
//     them. Finish and Release count only for the claim's holder, so a replica that was
//     paused past its lease cannot overwrite the new holder's result.
//   - Originals live in the database (chunked bytea, originals.go): every replica reads every
//     document without a ReadWriteMany volume, and an upload is acknowledged only after the
//     transaction holding both its bytes and its row commits.
//   - Upload and removal of the same content are ordered by a transaction-scoped advisory lock
//     per SHA-256 (the SQLite store's mutex, across processes), which also makes duplicate
//     detection exact between replicas.
//   - The schema is versioned (migrate.go) and applied at Open under an advisory lock.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ragstack/rag-operator/internal/store"
)

// Options open a store.
type Options struct {
	// URI is a libpq connection URI or key/value string (e.g. the `uri` key of the Secret
	// CloudNativePG generates); sslmode, sslrootcert and the rest are honoured by pgx.
	URI string
	// SpoolDir is a local directory for uploads being received and originals being parsed.
	SpoolDir string
	// Lease is how long a claim survives its holder's death; default 30 s. Renewed every third.
	Lease time.Duration
	// MaxConns bounds the pool; default 8.
	MaxConns int32
	Logger   *slog.Logger
}

// Store is safe for concurrent use, by any number of processes on one database.
type Store struct {
	pool  *pgxpool.Pool
	id    string // this process's claims: claimed_by
	lease time.Duration
	spool string
	log   *slog.Logger
	now   func() time.Time
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

var (
	_ store.Store      = (*Store)(nil)
	_ store.ChangeFeed = (*Store)(nil)
)

// Open connects, migrates the schema and starts renewing this process's leases.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.URI == "" {
		return nil, errors.New("postgres: empty connection URI")
	}
	if o.SpoolDir == "" {
		return nil, errors.New("postgres: no spool directory")
	}
	cfg, err := pgxpool.ParseConfig(o.URI)
	if err != nil {
		return nil, fmt.Errorf("postgres: connection URI: %w", err) // pgconn redacts the password
	}
	cfg.MaxConns = o.MaxConns
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 8
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.SpoolDir, 0o750); err != nil {
		return nil, fmt.Errorf("postgres: spool: %w", err)
	}
	// Partial uploads of a previous run were never acknowledged (the directory is this
	// replica's own).
	if ents, err := os.ReadDir(o.SpoolDir); err == nil {
		for _, e := range ents {
			os.Remove(filepath.Join(o.SpoolDir, e.Name()))
		}
	}
	host, _ := os.Hostname()
	s := &Store{id: host + "/" + uuid.NewString()[:8], lease: o.Lease, spool: o.SpoolDir, log: o.Logger, now: time.Now}
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := s.pool.Ping(pctx); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s:%d database %q as %q: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port,
			cfg.ConnConfig.Database, cfg.ConnConfig.User, err)
	}
	if err := migrate(ctx, s.pool, s.log); err != nil {
		s.pool.Close()
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Go(func() { s.renewLeases(bg) })
	return s, nil
}

// ID names this process's claims (host name and a random suffix).
func (s *Store) ID() string { return s.id }

// Close stops renewing leases and closes the pool. Claims still held expire after the lease
// (the pipeline releases its documents before the store closes on a clean shutdown).
func (s *Store) Close() error {
	s.stop()
	s.wg.Wait()
	s.pool.Close()
	return nil
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Space reports the spool volume: uploads land there before they are copied into the database.
func (s *Store) Space() (store.Space, error) { return store.VolumeSpace(s.spool, s.spool) }

// NewUpload starts a file of at most limit bytes in the spool directory.
func (s *Store) NewUpload(limit int64) (*store.Upload, error) {
	return store.NewUploadIn(s.spool, limit)
}

// leaseMillis is the lease as the SQL below takes it: now() + $n * interval '1 millisecond'.
func (s *Store) leaseMillis() int64 { return s.lease.Milliseconds() }

// renewLeases extends every claim this process holds, three times per lease.
func (s *Store) renewLeases(ctx context.Context) {
	t := time.NewTicker(s.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, s.lease/3)
		_, err := s.pool.Exec(cctx, `UPDATE documents SET
			lease_until = CASE WHEN claimed_by=$1 AND status='processing' THEN now() + $2 * interval '1 millisecond' ELSE lease_until END,
			enrich_lease_until = CASE WHEN enrich_claimed_by=$1 AND enrich_status='running' THEN now() + $2 * interval '1 millisecond' ELSE enrich_lease_until END
			WHERE (claimed_by=$1 AND status='processing') OR (enrich_claimed_by=$1 AND enrich_status='running')`, s.id, s.leaseMillis())
		cancel()
		if err != nil && ctx.Err() == nil {
			s.log.Warn("Failed to renew the leases of claimed documents", "error", err, "lease", s.lease)
		}
	}
}
