package vector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ragstack/rag-operator/internal/serverconfig"
)

// state is everything a store answers, for comparing a store before and after a reopen.
func state(t *testing.T, s Store) []string {
	t.Helper()
	var out []string
	for _, h := range search(t, s, []float32{1, 0, 0, 0}, SearchOptions{Limit: 1000}) {
		out = append(out, fmt.Sprintf("%s|%s|%s|%s|%d|%v|%.5f", ids([]Hit{h})[0], h.Name, h.Text, h.Section, h.Page, h.Tags, h.Score))
	}
	return out
}

func populate(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	for d := range 4 {
		doc := string(rune('a' + d))
		var cs []Chunk
		for i := range 6 {
			cs = append(cs, chunk(doc, i, []float32{1, float32(d), float32(i), 0.5}, "t"+doc))
		}
		mustUpsert(t, s, cs...)
	}
	if err := s.DeleteDocument(ctx, "b", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDocument(ctx, "c", -1); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTags(ctx, "d", []string{"retagged"}); err != nil {
		t.Fatal(err)
	}
}

func TestMemorySurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	m, err := NewMemory(dir, cosine4)
	if err != nil {
		t.Fatal(err)
	}
	populate(t, m)
	want := state(t, m)
	if len(want) != 6+2+6 {
		t.Fatalf("%d points before reopen", len(want))
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Search(context.Background(), []float32{1, 0, 0, 0}, SearchOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("search after close: %v", err)
	}
	if err := m.Upsert(context.Background(), []Chunk{chunk("z", 0, []float32{1, 0, 0, 0})}); !errors.Is(err, ErrClosed) {
		t.Errorf("upsert after close: %v", err)
	}

	m2, err := NewMemory(dir, cosine4)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if err := m2.EnsureCollection(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := state(t, m2); !slices.Equal(got, want) {
		t.Fatalf("after reopen:\n%v\nwant\n%v", got, want)
	}
	if n := count(t, m2, Filter{AnyTags: []string{"retagged"}}); n != 6 {
		t.Errorf("SetTags lost: %d", n)
	}
}

// A crash in the middle of an append leaves a torn record: it is cut off at open, everything
// acknowledged before it is there, and the log keeps working.
func TestMemoryTornLogTail(t *testing.T) {
	dir := t.TempDir()
	m, err := NewMemory(dir, cosine4)
	if err != nil {
		t.Fatal(err)
	}
	populate(t, m)
	want := state(t, m)
	m.Close()

	wal := filepath.Join(dir, "docs.wal")
	b, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	// The start of another record: a plausible header and half a payload.
	torn := append(slices.Clone(b), b[:walHeader+5]...)
	if err := os.WriteFile(wal, torn, 0o640); err != nil {
		t.Fatal(err)
	}
	m2, err := NewMemory(dir, cosine4)
	if err != nil {
		t.Fatal(err)
	}
	if got := state(t, m2); !slices.Equal(got, want) {
		t.Fatalf("after torn tail:\n%v\nwant\n%v", got, want)
	}
	if fi, _ := os.Stat(wal); fi.Size() != int64(len(b)) {
		t.Errorf("log is %d bytes, want the torn tail cut to %d", fi.Size(), len(b))
	}
	mustUpsert(t, m2, chunk("e", 0, []float32{1, 0, 0, 0}))
	want = state(t, m2)
	m2.Close()

	m3, err := NewMemory(dir, cosine4)
	if err != nil {
		t.Fatal(err)
	}
	defer m3.Close()
	if got := state(t, m3); !slices.Equal(got, want) {
		t.Fatalf("write after the cut lost:\n%v\nwant\n%v", got, want)
	}
}

// Compaction folds the log into the snapshot; a crash between the snapshot's rename and the
// log's truncation replays the old log over the new snapshot without applying anything twice.
func TestMemoryCompaction(t *testing.T) {
	dir := t.TempDir()
	m, err := NewMemory(dir, cosine4)
	if err != nil {
		t.Fatal(err)
	}
	populate(t, m)
	oldLog, err := os.ReadFile(filepath.Join(dir, "docs.wal"))
	if err != nil {
		t.Fatal(err)
	}
	seq := m.seq
	if err := m.compactNow(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "docs.wal")); fi.Size() != 0 {
		t.Fatalf("log %d bytes after compaction", fi.Size())
	}
	want := state(t, m)
	m.Close()

	// As if the crash came before the truncation.
	if err := os.WriteFile(filepath.Join(dir, "docs.wal"), oldLog, 0o640); err != nil {
		t.Fatal(err)
	}
	m2, err := NewMemory(dir, cosine4)
	if err != nil {
		t.Fatal(err)
	}
	if m2.seq != seq {
		t.Errorf("seq %d after replay, want %d: ops in the snapshot were applied again", m2.seq, seq)
	}
	if got := state(t, m2); !slices.Equal(got, want) {
		t.Fatalf("after replaying an untruncated log:\n%v\nwant\n%v", got, want)
	}
	// Automatic compaction: every write past the threshold folds the log.
	m2.compactAt = 1
	mustUpsert(t, m2, chunk("f", 0, []float32{0, 1, 0, 0}))
	if m2.logSize != 0 {
		t.Errorf("log %d bytes after an automatic compaction", m2.logSize)
	}
	want = state(t, m2)
	m2.Close()
	m3, err := NewMemory(dir, cosine4)
	if err != nil {
		t.Fatal(err)
	}
	defer m3.Close()
	if got := state(t, m3); !slices.Equal(got, want) {
		t.Fatalf("after automatic compaction and reopen:\n%v\nwant\n%v", got, want)
	}
}

func TestMemoryDamagedSnapshotRefused(t *testing.T) {
	dir := t.TempDir()
	m, err := NewMemory(dir, cosine4)
	if err != nil {
		t.Fatal(err)
	}
	populate(t, m)
	if err := m.compactNow(); err != nil {
		t.Fatal(err)
	}
	m.Close()
	snap := filepath.Join(dir, "docs.snapshot")
	b, _ := os.ReadFile(snap)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(snap, b, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMemory(dir, cosine4); err == nil {
		t.Fatal("a damaged snapshot was accepted")
	}
}

func TestMemoryBadConfig(t *testing.T) {
	for _, cfg := range []struct{ name, dist string }{{"../escape", "Cosine"}, {"docs", "Hamming"}} {
		if _, err := NewMemory(t.TempDir(), serverconfig.Collection{Name: cfg.name, VectorSize: 4, Distance: cfg.dist}); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func TestPointID(t *testing.T) {
	// Independent check: Python's uuid.uuid5(uuid.NAMESPACE_URL, "doc-1:0").
	if got := PointID("doc-1", 0); got != "96bfba1f-a026-5f29-9cb6-eef33495c01d" {
		t.Fatalf("PointID = %s", got)
	}
	if PointID("doc-1", 1) == PointID("doc-1", 0) || PointID("doc-1", 10) == PointID("doc-11", 0) {
		t.Fatal("ids collide")
	}
}
