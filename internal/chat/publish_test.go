package chat

import (
	"context"
	"testing"

	"github.com/ragstack/rag-operator/internal/vector"
)

// TestPublishOnWriteAfterLocalBump: every write, failed ones too, is published once, after
// the local cache was bumped; reads publish nothing.
func TestPublishOnWriteAfterLocalBump(t *testing.T) {
	c := NewCache(10)
	var published []uint64 // the local generation when each publish ran
	vs := PublishOnWrite(InvalidateOnWrite(newMemoryStore(t, testDocs), c), func(context.Context) error {
		published = append(published, c.Generation())
		return nil
	}, nil)
	ctx := context.Background()
	vs.Upsert(ctx, []vector.Chunk{{DocumentID: "new", Name: "n", Text: "fresh text", Tags: []string{"hr"}, Vector: bagOfWords("fresh text")}})
	vs.SetTags(ctx, "new", []string{"eng"})
	vs.DeleteDocument(ctx, "new", -1)
	if err := vs.Upsert(ctx, []vector.Chunk{{DocumentID: "bad", Vector: []float32{1}}}); err == nil {
		t.Fatal("a wrong-sized vector was accepted")
	}
	vs.Search(ctx, bagOfWords("fresh text"), vector.SearchOptions{Limit: 3})
	vs.Count(ctx, vector.Filter{})
	if len(published) != 4 {
		t.Fatalf("%d publishes for 4 writes", len(published))
	}
	for i, gen := range published {
		if gen != uint64(i+1) {
			t.Fatalf("publish %d ran at local generation %d: not after the local bump", i+1, gen)
		}
	}
}
