package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSessionsCRUDAndOwnership(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	a, err := s.CreateSession(ctx, "alice", "  Vacation\x00 questions\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Title != "Vacation questions" || a.Owner != "alice" || a.Turns != 0 || a.ID == "" {
		t.Fatalf("session %+v", a)
	}
	untitled, err := s.CreateSession(ctx, "alice", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSession(ctx, "bob", "bob's", 0); err != nil {
		t.Fatal(err)
	}

	// Another owner does not find it, whatever the operation.
	if _, err := s.GetSession(ctx, "bob", a.ID); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("bob gets alice's session: %v", err)
	}
	if _, err := s.SessionTurns(ctx, "bob", a.ID, 0); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("bob reads alice's turns: %v", err)
	}
	if _, err := s.AppendTurn(ctx, "bob", a.ID, Turn{Question: "q", Answer: "a"}, 0); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("bob appends to alice's session: %v", err)
	}
	if err := s.DeleteSession(ctx, "bob", a.ID); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("bob deletes alice's session: %v", err)
	}

	// Turns: appended in order, the count and last use tracked, the newest N kept.
	for i := range 5 {
		ss, err := s.AppendTurn(ctx, "alice", a.ID, Turn{Question: "q" + string(rune('0'+i)), Answer: "a" + string(rune('0'+i)),
			Sources: `[{"document_id":"d","chunk_index":1}]`, NoContext: i == 4}, 3)
		if err != nil {
			t.Fatal(err)
		}
		if ss.Turns != min(i+1, 3) || ss.Title != "Vacation questions" {
			t.Fatalf("after turn %d: %+v", i, ss)
		}
	}
	turns, err := s.SessionTurns(ctx, "alice", a.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var qs []string
	for _, tr := range turns {
		qs = append(qs, tr.Question)
	}
	if strings.Join(qs, ",") != "q2,q3,q4" || !turns[2].NoContext || turns[0].NoContext || turns[0].Sources != `[{"document_id":"d","chunk_index":1}]` {
		t.Fatalf("turns %+v", turns)
	}
	if last2, _ := s.SessionTurns(ctx, "alice", a.ID, 2); len(last2) != 2 || last2[0].Question != "q3" || last2[1].Question != "q4" {
		t.Fatalf("newest two %+v", last2)
	}

	// An untitled session is named after its first question.
	long := strings.Repeat("word ", 100)
	ss, err := s.AppendTurn(ctx, "alice", untitled.ID, Turn{Question: long, Answer: "x"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(ss.Title)); n != MaxTitleRunes || !strings.HasSuffix(ss.Title, "…") {
		t.Fatalf("title %q (%d runes)", ss.Title, n)
	}

	list, total, err := s.ListSessions(ctx, "alice", 0, 0)
	if err != nil || total != 2 || len(list) != 2 {
		t.Fatalf("list %+v %d %v", list, total, err)
	}
	if list[0].ID != untitled.ID { // most recently used first
		t.Fatalf("order %s, %s", list[0].ID, list[1].ID)
	}

	// Survives a reopen (the schema runs again at Open without harm).
	s.Close()
	s = open(t, dir)
	var version int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil || version != 2 {
		t.Fatalf("user_version %d %v", version, err)
	}
	if got, err := s.GetSession(ctx, "alice", a.ID); err != nil || got.Turns != 3 || got.UpdatedAt.Before(got.CreatedAt) {
		t.Fatalf("after reopen %+v %v", got, err)
	}

	// Delete takes the turns with it.
	if err := s.DeleteSession(ctx, "alice", a.ID); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM session_turns WHERE session_id=?`, a.ID).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d turns left after delete (%v)", left, err)
	}
	if _, err := s.GetSession(ctx, "alice", a.ID); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
	if err := s.DeleteSession(ctx, "alice", a.ID); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestSessionsPerOwnerLimit(t *testing.T) {
	s := open(t, t.TempDir())
	for range 2 {
		if _, err := s.CreateSession(ctx, "alice", "", 2); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateSession(ctx, "alice", "", 2); !errors.Is(err, ErrTooManySessions) {
		t.Fatalf("third session: %v", err)
	}
	if _, err := s.CreateSession(ctx, "bob", "", 2); err != nil { // per owner
		t.Fatal(err)
	}
}

func TestSessionTimestamps(t *testing.T) {
	s := open(t, t.TempDir())
	now := time.UnixMilli(1_700_000_000_000)
	s.now = func() time.Time { return now }
	ss, err := s.CreateSession(ctx, "alice", "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	up, err := s.AppendTurn(ctx, "alice", ss.ID, Turn{Question: "q", Answer: "a"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !up.CreatedAt.Equal(ss.CreatedAt) || up.UpdatedAt.Sub(up.CreatedAt) != time.Minute {
		t.Fatalf("created %v updated %v", up.CreatedAt, up.UpdatedAt)
	}
	turns, _ := s.SessionTurns(ctx, "alice", ss.ID, 0)
	if len(turns) != 1 || !turns[0].CreatedAt.Equal(now) || turns[0].Sources != "[]" {
		t.Fatalf("turns %+v", turns)
	}
}

// Uses within one millisecond still order "most recently used first" (a tie would fall back
// to the random id): the clock is frozen here.
func TestSessionRecencyWithinOneMillisecond(t *testing.T) {
	s := open(t, t.TempDir())
	now := time.UnixMilli(1_700_000_000_000)
	s.now = func() time.Time { return now }
	var ids []string
	for range 3 {
		ss, err := s.CreateSession(ctx, "alice", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ss.ID)
	}
	for _, i := range []int{2, 0, 1, 0} { // the last use of each: 2, 1, 0 (0 most recent)
		if _, err := s.AppendTurn(ctx, "alice", ids[i], Turn{Question: "q", Answer: "a"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	list, _, err := s.ListSessions(ctx, "alice", 0, 0)
	if err != nil || len(list) != 3 {
		t.Fatalf("list %+v %v", list, err)
	}
	if got := []string{list[0].ID, list[1].ID, list[2].ID}; got[0] != ids[0] || got[1] != ids[1] || got[2] != ids[2] {
		t.Fatalf("order %v, want %v", got, ids)
	}
	// Another owner's sessions do not push bob's times forward.
	if b, err := s.CreateSession(ctx, "bob", "", 0); err != nil || !b.UpdatedAt.Equal(now) {
		t.Fatalf("bob's first session updated %v (want %v): %v", b.UpdatedAt, now, err)
	}
}
