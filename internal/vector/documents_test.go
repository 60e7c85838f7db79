package vector

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// DocumentPages walks every document that has points, a page at a time, on both stores; a
// document deleted by the callback is not seen again, and the pages hold no more than asked.
func TestDocumentPages(t *testing.T) {
	for name, mk := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t, mk(t), cosine4)
			ctx := context.Background()
			var want []string
			var chunks []Chunk
			for d := range 130 {
				id := fmt.Sprintf("doc-%03d", d)
				want = append(want, id)
				for c := range 1 + d%3 { // 1 to 3 points each: 259 points
					chunks = append(chunks, Chunk{DocumentID: id, ChunkIndex: c, Text: "x", Vector: []float32{1, float32(d), float32(c), 1}})
				}
			}
			if err := s.Upsert(ctx, chunks); err != nil {
				t.Fatal(err)
			}
			lister := s.(DocumentLister)
			seen := map[string]int{}
			pages := 0
			err := lister.DocumentPages(ctx, 40, func(ids []string) error {
				pages++
				if len(ids) == 0 || len(ids) > 40 {
					t.Errorf("page of %d ids, want 1..40", len(ids))
				}
				if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != len(ids) {
					t.Errorf("page repeats an id: %v", ids)
				}
				for _, id := range ids {
					seen[id]++
					// Deleting what was just listed must not disturb the walk.
					if id == "doc-007" || id == "doc-100" {
						if err := s.DeleteDocument(ctx, id, -1); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if pages < 4 {
				t.Errorf("%d pages of at most 40 for 130 documents", pages)
			}
			got := slices.Sorted(func(yield func(string) bool) {
				for id := range seen {
					if !yield(id) {
						return
					}
				}
			})
			if !slices.Equal(got, want) {
				t.Errorf("walked %d documents, want %d; missing or extra: %v", len(got), len(want), symmetricDiff(got, want))
			}
			if name == "memory" {
				for id, n := range seen {
					if n != 1 {
						t.Errorf("memory store listed %s %d times", id, n)
					}
				}
			}
			for _, id := range []string{"doc-007", "doc-100"} {
				if n, _ := s.Count(ctx, Filter{DocumentIDs: []string{id}}); n != 0 {
					t.Errorf("%s still has %d points", id, n)
				}
			}
			// An empty store calls nothing.
			for _, id := range want {
				if err := s.DeleteDocument(ctx, id, -1); err != nil {
					t.Fatal(err)
				}
			}
			calls := 0
			if err := lister.DocumentPages(ctx, 40, func([]string) error { calls++; return nil }); err != nil || calls != 0 {
				t.Errorf("empty store: %d calls, %v", calls, err)
			}
		})
	}
}

func symmetricDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, "+"+x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, "-"+x)
		}
	}
	return out
}
