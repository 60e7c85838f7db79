package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/store"
	"github.com/ragstack/rag-operator/internal/store/postgres"
	pgtest "github.com/ragstack/rag-operator/internal/testbed/postgres"
)

// The behaviour every store must have, run against both: the embedded SQLite store and
// PostgreSQL (a real server from the test bed; one per test binary, a database per test).

var ctx = context.Background()

// lease is short so that tests of expiry take seconds; renewal runs every third of it.
const lease = time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

// backend opens stores of one kind. fresh makes a new, empty store and returns a function
// that opens it, as many times as a test wants: for PostgreSQL each is another replica; for
// SQLite, reopening is a restart of the one process that owns the file.
type backend struct {
	name  string
	fresh func(t *testing.T) func(t *testing.T) store.Store
	// replicas: several open handles may run at once (PostgreSQL); SQLite has one.
	replicas bool
}

func backends() []backend {
	return []backend{
		{name: "sqlite", fresh: func(t *testing.T) func(t *testing.T) store.Store {
			dir := t.TempDir()
			return func(t *testing.T) store.Store {
				s, err := store.Open(ctx, dir)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
		}},
		{name: "postgres", replicas: true, fresh: func(t *testing.T) func(t *testing.T) store.Store {
			uri := pgtest.Shared(t).NewDatabase(t)
			return func(t *testing.T) store.Store {
				s, err := postgres.Open(ctx, postgres.Options{URI: uri, SpoolDir: t.TempDir(), Lease: lease})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
		}},
	}
}

// each runs fn once per backend with a fresh store.
func each(t *testing.T, fn func(t *testing.T, s store.Store)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { fn(t, b.fresh(t)(t)) })
	}
}

func upload(t *testing.T, s store.Store, content string, nd store.NewDocument) (store.Document, error) {
	t.Helper()
	u, err := s.NewUpload(8 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if nd.Name == "" {
		nd.Name, nd.Type = "x.txt", "txt"
	}
	return s.Create(ctx, u, nd)
}

func mustUpload(t *testing.T, s store.Store, content string, tags ...string) store.Document {
	t.Helper()
	d, err := upload(t, s, content, store.NewDocument{Tags: tags, Owner: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func original(t *testing.T, s store.Store, d store.Document) string {
	t.Helper()
	f, err := s.OpenOriginal(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, d.Size+1))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCreateGetOriginalDuplicate(t *testing.T) {
	each(t, func(t *testing.T, s store.Store) {
		d := mustUpload(t, s, "hello world", "hr")
		if d.Status != store.Pending || d.Size != 11 || len(d.SHA256) != 64 || !slices.Equal(d.Tags, []string{"hr"}) {
			t.Fatalf("doc %+v", d)
		}
		got, err := s.Get(ctx, d.ID)
		if err != nil || got.Name != "x.txt" || got.Owner != "alice" || got.Status != store.Pending || !got.TagsSynced {
			t.Fatalf("get %+v %v", got, err)
		}
		if c := original(t, s, got); c != "hello world" {
			t.Fatalf("original %q", c)
		}
		_, err = upload(t, s, "hello world", store.NewDocument{Tags: []string{"hr"}})
		var dup *store.DuplicateError
		if !errors.As(err, &dup) || dup.ID != d.ID {
			t.Fatalf("duplicate: %v", err)
		}
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}
		u, _ := s.NewUpload(4)
		if _, err := u.Write([]byte("12345")); !errors.Is(err, store.ErrTooLarge) {
			t.Fatalf("over the limit: %v", err)
		}
		u.Abort()
		if _, err := s.Create(ctx, u, store.NewDocument{Name: "x", Type: "txt"}); err == nil {
			t.Fatal("an aborted upload was stored")
		}
	})
}

// TestLargeOriginalRoundTrip: a file of several MiB (several parts in PostgreSQL) comes back
// byte for byte.
func TestLargeOriginalRoundTrip(t *testing.T) {
	each(t, func(t *testing.T, s store.Store) {
		var b bytes.Buffer
		for i := 0; b.Len() < 3<<20+12345; i++ {
			fmt.Fprintf(&b, "line %d of a large file\n", i)
		}
		d := mustUpload(t, s, b.String())
		if got := original(t, s, d); got != b.String() {
			t.Fatalf("original: %d bytes back of %d", len(got), b.Len())
		}
	})
}

func seesAny(mine ...string) func([]string) bool {
	return func(tags []string) bool {
		for _, t := range tags {
			if slices.Contains(mine, t) {
				return true
			}
		}
		return false
	}
}

// TestDuplicatesScopedToTagsAndVisibility: the same content is a duplicate only of a document
// with the same tag set that the uploader can see; deleting documents keeps the shared
// original readable until the last one goes, and the content can then be uploaded again.
func TestDuplicatesScopedToTagsAndVisibility(t *testing.T) {
	each(t, func(t *testing.T, s store.Store) {
		as := func(canSee func([]string) bool, tags ...string) (store.Document, error) {
			return upload(t, s, "same bytes", store.NewDocument{Tags: tags, Owner: "k", CanSee: canSee})
		}
		hr, err := as(seesAny("hr"), "hr")
		if err != nil {
			t.Fatal(err)
		}
		fin, err := as(seesAny("finance"), "finance")
		if err != nil || fin.ID == hr.ID || fin.SHA256 != hr.SHA256 {
			t.Fatalf("other tenant: %+v %v", fin, err)
		}
		both, err := as(seesAny("hr", "finance", "shared"), "shared", "hr")
		if err != nil {
			t.Fatalf("other tag set: %v", err)
		}
		var dup *store.DuplicateError
		if _, err := as(seesAny("hr", "shared"), "hr", "shared"); !errors.As(err, &dup) || dup.ID != both.ID {
			t.Fatalf("same tags: %v", err)
		}
		if _, err := as(func([]string) bool { return false }, "hr"); err != nil {
			t.Fatalf("invisible same-tag document blocked the upload: %v", err)
		}
		if _, err := as(nil, "finance"); !errors.As(err, &dup) || dup.ID != fin.ID {
			t.Fatalf("admin duplicate: %v", err)
		}
		docs, total, err := s.List(ctx, store.Query{})
		if err != nil || total != 4 {
			t.Fatalf("list: %d %v", total, err)
		}
		for i, d := range docs {
			if err := s.Remove(ctx, d.ID); err != nil {
				t.Fatal(err)
			}
			if i < len(docs)-1 {
				if c := original(t, s, docs[i+1]); c != "same bytes" {
					t.Fatalf("after removing %d of %d: original %q", i+1, len(docs), c)
				}
			}
		}
		if _, err := as(nil, "hr"); err != nil {
			t.Fatalf("upload again after all were removed: %v", err)
		}
	})
}

func TestQueueBound(t *testing.T) {
	each(t, func(t *testing.T, s store.Store) {
		for i := range 2 {
			if _, err := upload(t, s, fmt.Sprint(i), store.NewDocument{MaxQueued: 2}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := upload(t, s, "third", store.NewDocument{MaxQueued: 2}); !errors.Is(err, store.ErrQueueFull) {
			t.Fatalf("third: %v", err)
		}
		if n, _ := s.QueueDepth(ctx); n != 2 {
			t.Fatalf("depth %d", n)
		}
	})
}

func TestFinishGenerations(t *testing.T) {
	each(t, func(t *testing.T, s store.Store) {
		d := mustUpload(t, s, "x y z", "hr")
		c, _, _ := s.Claim(ctx)
		if _, err := s.Requeue(ctx, d.ID, 0); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.Finish(ctx, d.ID, c.Generation, store.Outcome{Chunks: 3, UsedTags: c.Tags}); ok {
			t.Fatal("stale finish accepted")
		}
		c2, ok, _ := s.Claim(ctx)
		if !ok || c2.Generation != c.Generation+1 {
			t.Fatalf("claim gen %d", c2.Generation)
		}
		s.SetTags(ctx, d.ID, []string{"legal"})
		if ok, err := s.Finish(ctx, d.ID, c2.Generation, store.Outcome{Chunks: 3, Pages: 1, Excerpt: "x y z", UsedTags: c2.Tags, Enrich: true}); !ok || err != nil {
			t.Fatalf("finish %v %v", ok, err)
		}
		got, _ := s.Get(ctx, d.ID)
		if got.Status != store.Ready || got.Chunks != 3 || got.Pages != 1 || got.TagsSynced || got.Enrich != store.EnrichPending {
			t.Fatalf("doc %+v", got)
		}
		if l, _ := s.ListTagsUnsynced(ctx, 10); len(l) != 1 {
			t.Fatalf("unsynced %d", len(l))
		}
		s.MarkTagsSynced(ctx, d.ID, []string{"legal"})
		if l, _ := s.ListTagsUnsynced(ctx, 10); len(l) != 0 {
			t.Fatalf("still unsynced %d", len(l))
		}
		e, ok, _ := s.ClaimEnrich(ctx)
		if !ok || e.ID != d.ID {
			t.Fatal("no enrich claim")
		}
		if _, ok, _ := s.ClaimEnrich(ctx); ok {
			t.Fatal("enrichment claimed twice")
		}
		s.FinishEnrich(ctx, d.ID, e.Generation, "a summary", []string{"auto"}, nil)
		got, _ = s.Get(ctx, d.ID)
		if got.Enrich != store.EnrichDone || got.Summary != "a summary" || !slices.Equal(got.AutoTags, []string{"auto"}) {
			t.Fatalf("enriched %+v", got)
		}
		s.Requeue(ctx, d.ID, 0)
		c3, _, _ := s.Claim(ctx)
		s.Finish(ctx, d.ID, c3.Generation, store.Outcome{Err: errors.New("parse: boom")})
		got, _ = s.Get(ctx, d.ID)
		if got.Status != store.Failed || got.Error != "parse: boom" || got.Attempts != 3 {
			t.Fatalf("failed %+v", got)
		}
		// Release puts a claimed document back; RequeueReady puts a ready one at the head.
		other := mustUpload(t, s, "another")
		c4, _, _ := s.Claim(ctx)
		if c4.ID != other.ID {
			t.Fatalf("claimed %s, want the only pending one", c4.ID)
		}
		if err := s.Release(ctx, c4.ID, c4.Generation); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, other.ID); got.Status != store.Pending {
			t.Fatalf("released: %s", got.Status)
		}
	})
}

func TestDeleteAndRequeueReady(t *testing.T) {
	each(t, func(t *testing.T, s store.Store) {
		d := mustUpload(t, s, "bye")
		later := mustUpload(t, s, "later")
		c, _, _ := s.Claim(ctx)
		s.Finish(ctx, c.ID, c.Generation, store.Outcome{Chunks: 1})
		exp, err := s.ListReady(ctx, "", 10)
		if err != nil || len(exp) != 1 || exp[0].ID != d.ID || exp[0].Chunks != 1 {
			t.Fatalf("ready %+v %v", exp, err)
		}
		if ok, err := s.RequeueReady(ctx, d.ID, c.Generation); !ok || err != nil {
			t.Fatalf("requeue ready %v %v", ok, err)
		}
		if c2, _, _ := s.Claim(ctx); c2.ID != d.ID || c2.Generation != c.Generation+1 {
			t.Fatalf("requeued document not at the head: got %s gen %d (later is %s)", c2.ID, c2.Generation, later.ID)
		}
		known, err := s.Known(ctx, []string{d.ID, "gone", later.ID})
		if err != nil || len(known) != 2 || !known[d.ID] || !known[later.ID] {
			t.Fatalf("known %v %v", known, err)
		}
		if _, err := s.MarkDeleting(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Requeue(ctx, d.ID, 0); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("requeue deleting: %v", err)
		}
		if _, err := s.SetTags(ctx, d.ID, []string{"x"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("tag deleting: %v", err)
		}
		if l, _ := s.ListStatus(ctx, store.Deleting, 10); len(l) != 1 {
			t.Fatal("not listed as deleting")
		}
		if err := s.Remove(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatal("row left")
		}
		if err := s.Remove(ctx, d.ID); err != nil {
			t.Fatalf("second remove: %v", err)
		}
		if _, err := upload(t, s, "bye", store.NewDocument{}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestListFilters(t *testing.T) {
	each(t, func(t *testing.T, s store.Store) {
		upload(t, s, "1", store.NewDocument{Name: "Report_2025.pdf", Type: "pdf", Tags: []string{"finance"}})
		upload(t, s, "2", store.NewDocument{Name: "notes.md", Type: "md", Tags: []string{"hr", "finance"}})
		upload(t, s, "3", store.NewDocument{Name: "100%_sure.txt", Type: "txt", Tags: []string{"legal"}})
		check := func(q store.Query, want int) {
			t.Helper()
			docs, total, err := s.List(ctx, q)
			if err != nil || total != want || len(docs) != want {
				t.Fatalf("%+v: %d/%d %v", q, len(docs), total, err)
			}
		}
		check(store.Query{}, 3)
		check(store.Query{Tag: "finance"}, 2)
		check(store.Query{Name: "report"}, 1)
		check(store.Query{Name: "%"}, 1) // escaped, not a wildcard
		check(store.Query{Name: "_"}, 2)
		check(store.Query{AnyTag: []string{"hr", "legal"}}, 2)
		check(store.Query{AnyTag: []string{}}, 0)
		check(store.Query{Status: store.Ready}, 0)
		check(store.Query{Status: store.Pending, Tag: "finance", AnyTag: []string{"hr"}}, 1)
		docs, total, _ := s.List(ctx, store.Query{Limit: 1, Offset: 1})
		if len(docs) != 1 || total != 3 {
			t.Fatal("paging")
		}
		counts, err := s.Counts(ctx)
		if err != nil || counts[store.Pending] != 3 || counts[store.Ready] != 0 || len(counts) != len(store.Statuses) {
			t.Fatalf("counts %v %v", counts, err)
		}
	})
}

func TestSessions(t *testing.T) {
	each(t, func(t *testing.T, s store.Store) {
		a, err := s.CreateSession(ctx, "alice", "  Vacation\x00 questions\n", 2)
		if err != nil || a.Title != "Vacation questions" {
			t.Fatalf("session %+v %v", a, err)
		}
		untitled, _ := s.CreateSession(ctx, "alice", "", 2)
		if _, err := s.CreateSession(ctx, "alice", "third", 2); !errors.Is(err, store.ErrTooManySessions) {
			t.Fatalf("third session of two allowed: %v", err)
		}
		if _, err := s.GetSession(ctx, "bob", a.ID); !errors.Is(err, store.ErrSessionNotFound) {
			t.Fatalf("bob gets alice's session: %v", err)
		}
		if _, err := s.AppendTurn(ctx, "bob", a.ID, store.Turn{Question: "q", Answer: "a"}, 0); !errors.Is(err, store.ErrSessionNotFound) {
			t.Fatalf("bob appends: %v", err)
		}
		if _, err := s.RenameSession(ctx, "bob", a.ID, "mine"); !errors.Is(err, store.ErrSessionNotFound) {
			t.Fatalf("bob renames: %v", err)
		}
		if err := s.DeleteSession(ctx, "bob", a.ID); !errors.Is(err, store.ErrSessionNotFound) {
			t.Fatalf("bob deletes: %v", err)
		}
		for i := range 5 {
			ss, err := s.AppendTurn(ctx, "alice", a.ID, store.Turn{Question: fmt.Sprint("q", i), Answer: fmt.Sprint("a", i), NoContext: i == 4}, 3)
			if err != nil || ss.Turns != min(i+1, 3) {
				t.Fatalf("after turn %d: %+v %v", i, ss, err)
			}
		}
		turns, err := s.SessionTurns(ctx, "alice", a.ID, 0)
		if err != nil || len(turns) != 3 || turns[0].Question != "q2" || turns[2].Question != "q4" || !turns[2].NoContext || turns[0].Sources != "[]" {
			t.Fatalf("turns %+v %v", turns, err)
		}
		if last, _ := s.SessionTurns(ctx, "alice", a.ID, 1); len(last) != 1 || last[0].Question != "q4" {
			t.Fatalf("newest turn %+v", last)
		}
		ss, _ := s.AppendTurn(ctx, "alice", untitled.ID, store.Turn{Question: "first question", Answer: "x"}, 0)
		if ss.Title != "first question" {
			t.Fatalf("untitled session took %q", ss.Title)
		}
		list, total, err := s.ListSessions(ctx, "alice", 0, 0)
		if err != nil || total != 2 || list[0].ID != untitled.ID {
			t.Fatalf("most recently used first: %+v %d %v", list, total, err)
		}
		if r, err := s.RenameSession(ctx, "alice", a.ID, "renamed"); err != nil || r.Title != "renamed" || !r.UpdatedAt.Equal(list[1].UpdatedAt) {
			t.Fatalf("rename %+v %v", r, err)
		}
		if err := s.DeleteSession(ctx, "alice", a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SessionTurns(ctx, "alice", a.ID, 0); !errors.Is(err, store.ErrSessionNotFound) {
			t.Fatalf("turns of a deleted session: %v", err)
		}
	})
}

// TestClaimersNeverShareAJob: many workers claim at once (for PostgreSQL on two replicas) and
// every document is handed out exactly once.
func TestClaimersNeverShareAJob(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			open := b.fresh(t)
			stores := []store.Store{open(t)}
			if b.replicas {
				stores = append(stores, open(t))
			}
			const docs = 60
			for i := range docs {
				mustUpload(t, stores[0], fmt.Sprint("document ", i))
			}
			var mu sync.Mutex
			claimed := map[string]int{}
			var wg sync.WaitGroup
			for w := range 8 {
				s := stores[w%len(stores)]
				wg.Go(func() {
					for {
						d, ok, err := s.Claim(ctx)
						if err != nil {
							t.Error(err)
							return
						}
						if !ok {
							return
						}
						mu.Lock()
						claimed[d.ID]++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(claimed) != docs {
				t.Fatalf("%d of %d documents claimed", len(claimed), docs)
			}
			for id, n := range claimed {
				if n != 1 {
					t.Fatalf("document %s claimed %d times", id, n)
				}
			}
		})
	}
}

// TestInterruptedWorkIsTakenOver: a document whose worker's process dies is claimed again.
// SQLite: at the next Open of its one process. PostgreSQL: by another replica once the dead
// one's lease expires, and not before while its holder lives (the lease is renewed); the old
// claim then no longer counts.
func TestInterruptedWorkIsTakenOver(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			open := b.fresh(t)
			a := open(t)
			d := mustUpload(t, a, "content one")
			c, ok, err := a.Claim(ctx)
			if err != nil || !ok || c.ID != d.ID || c.Status != store.Processing || c.Attempts != 1 {
				t.Fatalf("claim %+v %v %v", c, ok, err)
			}
			if !b.replicas {
				a.Close() // the process dies
				a2 := open(t)
				got, ok, _ := a2.Claim(ctx)
				if !ok || got.ID != d.ID || got.Attempts != 2 {
					t.Fatalf("after restart: %+v %v", got, ok)
				}
				return
			}
			b2 := open(t)
			time.Sleep(2 * lease) // a lives and renews
			if got, ok, _ := b2.Claim(ctx); ok {
				t.Fatalf("a live holder's document was taken: %+v", got)
			}
			a.Close() // no release: as if killed
			start := time.Now()
			var got store.Document
			for {
				if got, ok, err = b2.Claim(ctx); err != nil || ok {
					break
				}
				if time.Since(start) > 3*lease {
					t.Fatalf("not taken over %s after the holder died (lease %s)", time.Since(start), lease)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil || got.ID != d.ID || got.Attempts != 2 || got.Generation != c.Generation {
				t.Fatalf("takeover %+v %v", got, err)
			}
			t.Logf("taken over %s after the holder died (lease %s)", time.Since(start).Round(10*time.Millisecond), lease)
			// A third replica cannot finish or release what b2 holds.
			c3 := open(t)
			if ok, _ := c3.Finish(ctx, d.ID, got.Generation, store.Outcome{Chunks: 1}); ok {
				t.Fatal("a replica that does not hold the claim finished it")
			}
			c3.Release(ctx, d.ID, got.Generation)
			if ok, err := b2.Finish(ctx, d.ID, got.Generation, store.Outcome{Chunks: 1}); !ok || err != nil {
				t.Fatalf("holder's finish: %v %v", ok, err)
			}
		})
	}
}
