package postgres

import (
	"context"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragstack/rag-operator/internal/store"
	pgtest "github.com/ragstack/rag-operator/internal/testbed/postgres"
)

var ctx = context.Background()

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

func open(t *testing.T, uri string) *Store {
	t.Helper()
	s, err := Open(ctx, Options{URI: uri, SpoolDir: t.TempDir(), Lease: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestReplicasStartingTogetherMigrateOnce: five replicas open a new database at once; all
// start, and each schema version was applied exactly once. A database migrated by a newer
// server is then refused with a message saying so, and left as it is.
func TestReplicasStartingTogetherMigrateOnce(t *testing.T) {
	srv := pgtest.Shared(t)
	uri := srv.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Go(func() {
			s, err := Open(ctx, Options{URI: uri, SpoolDir: t.TempDir()})
			if err == nil {
				s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, maxVersion int
	if err := conn.QueryRow(ctx, `SELECT COUNT(*), MAX(version) FROM rag_schema_migrations`).Scan(&rows, &maxVersion); err != nil {
		t.Fatal(err)
	}
	if rows != SchemaVersion() || maxVersion != SchemaVersion() {
		t.Fatalf("%d migration rows up to version %d, want %d", rows, maxVersion, SchemaVersion())
	}

	if _, err := conn.Exec(ctx, `INSERT INTO rag_schema_migrations (version) VALUES ($1)`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, Options{URI: uri, SpoolDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "newer than this server") {
		t.Fatalf("a newer schema: %v", err)
	}
}

// TestBadURIs: a malformed URI, a server that is not there and a database that does not
// exist each give an error naming the problem, without the password.
func TestBadURIs(t *testing.T) {
	srv := pgtest.Shared(t)
	for _, c := range []struct{ uri, want string }{
		{"postgres://u:secret@127.0.0.1:notaport/db", "connection URI"},
		{"postgres://u:secret@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", `connect to 127.0.0.1:1 database "db" as "u"`},
		{strings.Replace(srv.URI, "/postgres?", "/missing?", 1), `database "missing" does not exist`},
	} {
		_, err := Open(ctx, Options{URI: c.uri, SpoolDir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v, want an error with %q and no password", c.uri, err, c.want)
		}
	}
}

// TestChangesReachOtherReplicas: a change published by one replica reaches the others' watchers
// promptly, and not the publisher's own (its cache was already dropped where the write was made).
func TestChangesReachOtherReplicas(t *testing.T) {
	srv := pgtest.Shared(t)
	uri := srv.NewDatabase(t)
	a, b := open(t, uri), open(t, uri)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var heardA, heardB atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() { a.WatchChanges(wctx, func() { heardA.Add(1) }) })
	wg.Go(func() { b.WatchChanges(wctx, func() { heardB.Add(1) }) })
	defer wg.Wait()
	defer cancel()
	time.Sleep(500 * time.Millisecond) // both listening (a change before is caught by the poll instead)
	waitFor := func(what string, n *atomic.Int32, want int32) time.Duration {
		t.Helper()
		start := time.Now()
		for n.Load() < want {
			if time.Since(start) > 2*time.Second {
				t.Fatalf("%s: heard %d changes, want %d", what, n.Load(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(start)
	}
	if err := a.PublishChange(ctx); err != nil {
		t.Fatal(err)
	}
	took := waitFor("b after a's change", &heardB, 1)
	t.Logf("a change reached the other replica in %s", took.Round(time.Millisecond))
	if err := b.PublishChange(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor("a after b's change", &heardA, 1)
	time.Sleep(200 * time.Millisecond)
	if heardA.Load() != 1 || heardB.Load() != 1 {
		t.Fatalf("replicas heard their own changes: a %d, b %d", heardA.Load(), heardB.Load())
	}
}

// TestDatabaseDownIsUnavailable: with its PostgreSQL stopped, the store's errors read as the
// database being unavailable (the API answers 503 + Retry-After), not as an internal error.
func TestDatabaseDownIsUnavailable(t *testing.T) {
	srv := pgtest.Start(t)
	s := open(t, srv.NewDatabase(t))
	if _, err := s.QueueDepth(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	u, err := s.NewUpload(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = u.Write([]byte("a memo about the boiler"))
	_, err = s.Create(ctx, u, store.NewDocument{Name: "memo.txt", Type: "txt"})
	if err == nil || !store.IsUnavailable(err) {
		t.Fatalf("create with the database down: %v (IsUnavailable %v)", err, store.IsUnavailable(err))
	}
	if _, err := s.QueueDepth(ctx); err == nil || !store.IsUnavailable(err) {
		t.Fatalf("queue depth with the database down: %v", err)
	}
}
