package store

import (
	"errors"
	"testing"
)

func TestRenameSession(t *testing.T) {
	s := open(t, t.TempDir())
	a, err := s.CreateSession(ctx, "alice", "old", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateSession(ctx, "alice", "newer", 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.RenameSession(ctx, "alice", a.ID, " Renamed\x00\n title ")
	if err != nil || got.Title != "Renamed title" || got.ID != a.ID {
		t.Fatalf("rename: %+v %v", got, err)
	}
	// Not a use: the newer session stays first.
	list, _, err := s.ListSessions(ctx, "alice", 0, 0)
	if err != nil || len(list) != 2 || list[0].ID != b.ID {
		t.Fatalf("order after rename: %+v %v", list, err)
	}
	if _, err := s.RenameSession(ctx, "bob", a.ID, "mine"); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("bob renames alice's session: %v", err)
	}
	if _, err := s.RenameSession(ctx, "alice", "nope", "x"); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("missing session: %v", err)
	}
}
