package chat

import (
	"context"
	"testing"

	"github.com/ragstack/rag-operator/internal/vector"
)

func TestInvalidateOnWriteBumpsAfterEveryWrite(t *testing.T) {
	if InvalidateOnWrite(nil, nil) != nil {
		t.Fatal("no cache: the store must be returned unwrapped")
	}
	st := newMemoryStore(t, testDocs)
	c := NewCache(10)
	vs := InvalidateOnWrite(st, c)
	ctx := context.Background()
	writes := []struct {
		name string
		do   func() error
	}{
		{"upsert", func() error {
			return vs.Upsert(ctx, []vector.Chunk{{DocumentID: "new", Name: "n", Text: "fresh text", Tags: []string{"hr"}, Vector: bagOfWords("fresh text")}})
		}},
		{"set tags", func() error { return vs.SetTags(ctx, "new", []string{"eng"}) }},
		{"trim", func() error { return vs.DeleteDocument(ctx, "new", 1) }},
		{"delete", func() error { return vs.DeleteDocument(ctx, "new", -1) }},
		{"failed upsert", func() error { return vs.Upsert(ctx, []vector.Chunk{{DocumentID: "bad", Vector: []float32{1}}}) }},
	}
	for _, w := range writes {
		c.put(c.Generation(), "k", Response{Answer: "old"})
		gen := c.Generation()
		err := w.do()
		if (err != nil) != (w.name == "failed upsert") {
			t.Fatalf("%s: %v", w.name, err)
		}
		if c.Generation() != gen+1 || c.Len() != 0 {
			t.Errorf("%s: generation %d → %d, %d cached", w.name, gen, c.Generation(), c.Len())
		}
	}
	// Reads go through untouched and do not bump.
	gen := c.Generation()
	if _, err := vs.Search(ctx, bagOfWords("vacation"), vector.SearchOptions{Limit: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := vs.Count(ctx, vector.Filter{}); err != nil || c.Generation() != gen {
		t.Fatalf("reads bumped: %v", err)
	}
}
