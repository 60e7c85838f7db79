package store

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func createAs(t *testing.T, s *SQLite, content string, canSee func([]string) bool, tags ...string) (Document, error) {
	t.Helper()
	u, err := s.NewUpload(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	return s.Create(ctx, u, NewDocument{Name: "x.txt", Type: "txt", Tags: tags, Owner: "k", CanSee: canSee})
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
// with the same tag set that the uploader can see; otherwise it is a document of its own, and
// deleting one leaves the other's original in place.
func TestDuplicatesScopedToTagsAndVisibility(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	hr, err := createAs(t, s, "same bytes", seesAny("hr"), "hr")
	if err != nil {
		t.Fatal(err)
	}
	// Another tenant: a document of its own, nothing learnt about hr's.
	fin, err := createAs(t, s, "same bytes", seesAny("finance"), "finance")
	if err != nil || fin.ID == hr.ID || fin.SHA256 != hr.SHA256 {
		t.Fatalf("other tenant: %+v %v", fin, err)
	}
	// A key seeing both, storing under a third tag set: its own document.
	both, err := createAs(t, s, "same bytes", seesAny("hr", "finance", "shared"), "shared", "hr")
	if err != nil {
		t.Fatalf("other tag set: %v", err)
	}
	// Same tags (any order) and visible: duplicate of that one.
	var dup *DuplicateError
	if _, err := createAs(t, s, "same bytes", seesAny("hr", "shared"), "hr", "shared"); !errors.As(err, &dup) || dup.ID != both.ID {
		t.Fatalf("same tags: %v", err)
	}
	// Same tags but the caller cannot see it (nil CanSee is an admin: sees all).
	if _, err := createAs(t, s, "same bytes", func([]string) bool { return false }, "hr"); err != nil {
		t.Fatalf("invisible same-tag document blocked the upload: %v", err)
	}
	if _, err := createAs(t, s, "same bytes", nil, "finance"); !errors.As(err, &dup) || dup.ID != fin.ID {
		t.Fatalf("admin duplicate: %v", err)
	}
	// Deleting documents keeps the shared original until the last one goes.
	docs, total, err := s.List(ctx, Query{})
	if err != nil || total != 4 {
		t.Fatalf("list: %d %v", total, err)
	}
	for i, d := range docs {
		if err := s.Remove(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		_, err := os.Stat(s.OriginalPath(hr.SHA256))
		if last := i == len(docs)-1; last != errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after removing %d of %d: original stat %v", i+1, len(docs), err)
		}
	}
	if fs := files(t, dir); len(fs) != 0 {
		t.Fatalf("left behind: %v", fs)
	}
}

// TestMigrateUniqueSHA opens a database made with sha256 UNIQUE: its rows survive and the same
// content can then be stored under other tags.
func TestMigrateUniqueSHA(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	old, err := createAs(t, s, "legacy", nil, "hr")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Rebuild the table as the old schema had it.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "rag.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER TABLE documents RENAME TO d0`,
		`CREATE TABLE documents (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  type          TEXT NOT NULL,
  sha256        TEXT NOT NULL UNIQUE,
  size          INTEGER NOT NULL,
  tags          TEXT NOT NULL DEFAULT '[]',
  owner         TEXT NOT NULL DEFAULT '',
  status        TEXT NOT NULL,
  error         TEXT NOT NULL DEFAULT '',
  chunks        INTEGER NOT NULL DEFAULT 0,
  pages         INTEGER NOT NULL DEFAULT 0,
  generation    INTEGER NOT NULL DEFAULT 0,
  attempts      INTEGER NOT NULL DEFAULT 0,
  tags_synced   INTEGER NOT NULL DEFAULT 1,
  enrich_status TEXT NOT NULL DEFAULT '',
  enrich_error  TEXT NOT NULL DEFAULT '',
  summary       TEXT NOT NULL DEFAULT '',
  auto_tags     TEXT NOT NULL DEFAULT '[]',
  excerpt       TEXT NOT NULL DEFAULT '',
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL,
  queued_at     INTEGER NOT NULL
)`,
		`INSERT INTO documents SELECT * FROM d0`,
		`DROP TABLE d0`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	db.Close()
	s = open(t, dir)
	got, err := s.Get(ctx, old.ID)
	if err != nil || got.SHA256 != old.SHA256 || got.Tags[0] != "hr" {
		t.Fatalf("row after migration: %+v %v", got, err)
	}
	if _, err := createAs(t, s, "legacy", nil, "finance"); err != nil {
		t.Fatalf("same content under other tags after migration: %v", err)
	}
}
