package vector

import (
	"context"
	"errors"
	"testing"
)

// TestGetChunk: both stores read one chunk back by document and index, payload only, and say
// ErrChunkNotFound for a chunk they do not hold (another index, a trimmed tail, another document).
func TestGetChunk(t *testing.T) {
	for name, mk := range backends() {
		t.Run(name, func(t *testing.T) {
			s := open(t, mk(t), cosine4)
			mustUpsert(t, s, chunk("a", 0, []float32{1, 0, 0, 0}, "t1"), chunk("a", 1, []float32{0, 1, 0, 0}, "t1"))
			g := s.(ChunkGetter)
			c, err := g.GetChunk(context.Background(), "a", 1)
			if err != nil {
				t.Fatal(err)
			}
			if c.DocumentID != "a" || c.ChunkIndex != 1 || c.Text != "a chunk 1" || c.Page != 2 || c.Section != "Intro" ||
				c.Name != "a.pdf" || len(c.Tags) != 1 || c.Vector != nil {
				t.Fatalf("chunk %+v", c)
			}
			if err := s.DeleteDocument(context.Background(), "a", 1); err != nil {
				t.Fatal(err)
			}
			for _, ref := range []struct {
				doc string
				i   int
			}{{"a", 1}, {"a", 7}, {"b", 0}} {
				if _, err := g.GetChunk(context.Background(), ref.doc, ref.i); !errors.Is(err, ErrChunkNotFound) {
					t.Errorf("%s:%d: %v, want ErrChunkNotFound", ref.doc, ref.i, err)
				}
			}
		})
	}
}
