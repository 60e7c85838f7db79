package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var ctx = context.Background()

func open(t *testing.T, dir string) *SQLite {
	t.Helper()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func create(t *testing.T, s *SQLite, name, content string, tags ...string) (Document, error) {
	t.Helper()
	u, err := s.NewUpload(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	return s.Create(ctx, u, NewDocument{Name: name, Type: "txt", Tags: tags, Owner: "alice"})
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"originals", "tmp"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			out = append(out, sub+"/"+e.Name())
		}
	}
	return out
}

func TestCreateGetDuplicate(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	d, err := create(t, s, "a.txt", "hello world", "hr")
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != Pending || d.Size != 11 || len(d.SHA256) != 64 || d.Tags[0] != "hr" {
		t.Fatalf("doc %+v", d)
	}
	got, err := s.Get(ctx, d.ID)
	if err != nil || got.Name != "a.txt" || got.Owner != "alice" {
		t.Fatalf("get %+v %v", got, err)
	}
	data, err := os.ReadFile(s.OriginalPath(d.SHA256))
	if err != nil || string(data) != "hello world" {
		t.Fatalf("original %q %v", data, err)
	}
	_, err = create(t, s, "b.txt", "hello world", "hr")
	var dup *DuplicateError
	if !errors.As(err, &dup) || dup.ID != d.ID {
		t.Fatalf("duplicate: %v", err)
	}
	// The rejected duplicate left no temp file.
	if fs := files(t, dir); len(fs) != 1 {
		t.Fatalf("files after duplicate: %v", fs)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func TestUploadLimitAndAbort(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	u, _ := s.NewUpload(4)
	if _, err := u.Write([]byte("12345")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over limit: %v", err)
	}
	u.Abort()
	if fs := files(t, dir); len(fs) != 0 {
		t.Fatalf("abort left %v", fs)
	}
}

func TestQueueBound(t *testing.T) {
	s := open(t, t.TempDir())
	for i := 0; i < 2; i++ {
		u, _ := s.NewUpload(100)
		u.Write([]byte{byte(i)})
		if _, err := s.Create(ctx, u, NewDocument{Name: "x", Type: "txt", MaxQueued: 2}); err != nil {
			t.Fatal(err)
		}
	}
	u, _ := s.NewUpload(100)
	u.Write([]byte("third"))
	if _, err := s.Create(ctx, u, NewDocument{Name: "x", Type: "txt", MaxQueued: 2}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third: %v", err)
	}
	if n, _ := s.QueueDepth(ctx); n != 2 {
		t.Fatalf("depth %d", n)
	}
}

// TestCrashResume: a document claimed by a worker when the process dies is pending again
// after reopening, and is claimed again.
func TestCrashResume(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := create(t, s, "a.txt", "content one")
	create(t, s, "b.txt", "content two")
	c, ok, err := s.Claim(ctx)
	if err != nil || !ok || c.ID != d.ID || c.Status != Processing || c.Attempts != 1 {
		t.Fatalf("claim %+v %v %v", c, ok, err)
	}
	// Crash: no Finish, the database is simply closed.
	s.Close()

	s = open(t, dir)
	got, _ := s.Get(ctx, d.ID)
	if got.Status != Pending {
		t.Fatalf("after restart: %s", got.Status)
	}
	counts, _ := s.Counts(ctx)
	if counts[Pending] != 2 || counts[Processing] != 0 {
		t.Fatalf("counts %v", counts)
	}
	c, ok, _ = s.Claim(ctx)
	if !ok || c.ID != d.ID || c.Attempts != 2 {
		t.Fatalf("reclaim %+v", c)
	}
}

func TestOrphansSwept(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	d, _ := create(t, s, "a.txt", "kept")
	s.Close()
	// A crash between rename and commit leaves a file without a row; one mid-upload a temp.
	os.WriteFile(filepath.Join(dir, "originals", strings.Repeat("ab", 32)), []byte("orphan"), 0o600)
	os.WriteFile(filepath.Join(dir, "tmp", "upload-123"), []byte("partial"), 0o600)
	open(t, dir)
	if fs := files(t, dir); len(fs) != 1 || fs[0] != "originals/"+d.SHA256 {
		t.Fatalf("files %v", fs)
	}
}

func TestFinishGenerations(t *testing.T) {
	s := open(t, t.TempDir())
	d, _ := create(t, s, "a.txt", "x y z", "hr")
	c, _, _ := s.Claim(ctx)
	// A reprocess while processing: the old generation's result is stale.
	if _, err := s.Requeue(ctx, d.ID, 0); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Finish(ctx, d.ID, c.Generation, Outcome{Chunks: 3, UsedTags: c.Tags}); ok {
		t.Fatal("stale finish accepted")
	}
	c2, ok, _ := s.Claim(ctx)
	if !ok || c2.Generation != c.Generation+1 {
		t.Fatalf("claim gen %d", c2.Generation)
	}
	// Tags changed while processing: the result stands but the tags are unsynced.
	s.SetTags(ctx, d.ID, []string{"legal"})
	if ok, err := s.Finish(ctx, d.ID, c2.Generation, Outcome{Chunks: 3, Pages: 1, Excerpt: "x y z", UsedTags: c2.Tags, Enrich: true}); !ok || err != nil {
		t.Fatalf("finish %v %v", ok, err)
	}
	got, _ := s.Get(ctx, d.ID)
	if got.Status != Ready || got.Chunks != 3 || got.TagsSynced || got.Enrich != EnrichPending {
		t.Fatalf("doc %+v", got)
	}
	if l, _ := s.ListTagsUnsynced(ctx, 10); len(l) != 1 {
		t.Fatalf("unsynced %d", len(l))
	}
	s.MarkTagsSynced(ctx, d.ID, []string{"legal"})
	if l, _ := s.ListTagsUnsynced(ctx, 10); len(l) != 0 {
		t.Fatalf("still unsynced %d", len(l))
	}
	// Enrichment claim/finish.
	e, ok, _ := s.ClaimEnrich(ctx)
	if !ok || e.ID != d.ID {
		t.Fatal("no enrich claim")
	}
	s.FinishEnrich(ctx, d.ID, e.Generation, "a summary", []string{"auto"}, nil)
	got, _ = s.Get(ctx, d.ID)
	if got.Enrich != EnrichDone || got.Summary != "a summary" || got.AutoTags[0] != "auto" {
		t.Fatalf("enriched %+v", got)
	}
	// Failure text is kept.
	s.Requeue(ctx, d.ID, 0)
	c3, _, _ := s.Claim(ctx)
	s.Finish(ctx, d.ID, c3.Generation, Outcome{Err: errors.New("parse: boom")})
	got, _ = s.Get(ctx, d.ID)
	if got.Status != Failed || got.Error != "parse: boom" {
		t.Fatalf("failed %+v", got)
	}
}

func TestDeleteRemovesRowAndFile(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	d, _ := create(t, s, "a.txt", "bye")
	if _, err := s.MarkDeleting(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Requeue(ctx, d.ID, 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("requeue deleting: %v", err)
	}
	if _, err := s.SetTags(ctx, d.ID, []string{"x"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("tag deleting: %v", err)
	}
	if l, _ := s.ListStatus(ctx, Deleting, 10); len(l) != 1 {
		t.Fatal("not listed as deleting")
	}
	if err := s.Remove(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, d.ID); !errors.Is(err, ErrNotFound) {
		t.Fatal("row left")
	}
	if fs := files(t, dir); len(fs) != 0 {
		t.Fatalf("files left %v", fs)
	}
	// The same content can be uploaded again.
	if _, err := create(t, s, "a.txt", "bye"); err != nil {
		t.Fatal(err)
	}
}

func TestListFilters(t *testing.T) {
	s := open(t, t.TempDir())
	create(t, s, "Report_2025.pdf", "1", "finance")
	create(t, s, "notes.md", "2", "hr", "finance")
	create(t, s, "100%_sure.txt", "3", "legal")
	check := func(q Query, want int) {
		t.Helper()
		docs, total, err := s.List(ctx, q)
		if err != nil || total != want || len(docs) != want {
			t.Fatalf("%+v: %d/%d %v", q, len(docs), total, err)
		}
	}
	check(Query{}, 3)
	check(Query{Tag: "finance"}, 2)
	check(Query{Name: "report"}, 1)
	check(Query{Name: "%"}, 1) // escaped, not a wildcard
	check(Query{Name: "_"}, 2)
	check(Query{AnyTag: []string{"hr", "legal"}}, 2)
	check(Query{AnyTag: []string{}}, 0)
	check(Query{Status: Ready}, 0)
	check(Query{Status: Pending, Tag: "finance", AnyTag: []string{"hr"}}, 1)
	docs, total, _ := s.List(ctx, Query{Limit: 1, Offset: 1})
	if len(docs) != 1 || total != 3 {
		t.Fatal("paging")
	}
}
