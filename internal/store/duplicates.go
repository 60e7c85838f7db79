package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// duplicateOf returns the id of a document that makes nd a duplicate: same content, same tag
// set, not being deleted, and visible to the uploader. "" when there is none.
func duplicateOf(ctx context.Context, tx *sql.Tx, sha string, nd NewDocument) (string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, tags FROM documents WHERE sha256=? AND status!='deleting' ORDER BY created_at, rowid`, sha)
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	want := sortedSet(nd.Tags)
	for rows.Next() {
		var id, raw string
		if err := rows.Scan(&id, &raw); err != nil {
			return "", fmt.Errorf("store: %w", err)
		}
		var tags []string
		json.Unmarshal([]byte(raw), &tags)
		if sameTags(tags, want) && nd.canSee(tags) {
			return id, nil
		}
	}
	return "", rows.Err()
}

// DuplicatedBy reports whether an existing document with the same content and these tags
// makes nd a duplicate: the same tag set (in any order) and visible to the uploader. Every
// store applies this one rule, so duplicate detection never reveals another tenant's content.
func (nd NewDocument) DuplicatedBy(tags []string) bool {
	return sameTags(tags, sortedSet(nd.Tags)) && nd.canSee(tags)
}

func (nd NewDocument) canSee(tags []string) bool { return nd.CanSee == nil || nd.CanSee(tags) }

func sameTags(tags, wantSorted []string) bool { return slices.Equal(sortedSet(tags), wantSorted) }

func sortedSet(tags []string) []string {
	out := slices.Clone(tags)
	slices.Sort(out)
	return slices.Compact(out)
}

var shaUnique = regexp.MustCompile(`(?i)(sha256\s+TEXT\s+NOT\s+NULL)\s+UNIQUE`)

// migrateSHAUnique rebuilds a documents table made before the same content could be stored
// twice (sha256 was UNIQUE; SQLite cannot drop a constraint in place). The rows are copied
// as they are, in one transaction.
func (s *SQLite) migrateSHAUnique(ctx context.Context) error {
	var ddl string
	err := s.db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type='table' AND name='documents'`).Scan(&ddl)
	if err == sql.ErrNoRows || (err == nil && !shaUnique.MatchString(ddl)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	newDDL := shaUnique.ReplaceAllString(ddl, "$1")
	newDDL = strings.Replace(newDDL, "documents", "documents_migrated", 1)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []string{
		`DROP TABLE IF EXISTS documents_migrated`,
		newDDL,
		`INSERT INTO documents_migrated SELECT * FROM documents`,
		`DROP TABLE documents`,
		`ALTER TABLE documents_migrated RENAME TO documents`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}
