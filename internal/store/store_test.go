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
