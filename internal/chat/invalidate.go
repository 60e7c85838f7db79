package chat

import (
	"context"

	"github.com/ragstack/rag-operator/internal/vector"
)

// InvalidateOnWrite returns vs with c.Bump called after every write (Upsert, DeleteDocument,
// SetTags), whatever its outcome. Give the returned store to ingest and the original to the
// Answerer.
//
// Why at the vector store rather than at the HTTP routes or in ingest: answers are built from
// what the vector store returns, so a write there is exactly "the knowledge base changed" —
// a document finishing ingest (its upserts), a reprocess replacing chunks, a delete, a tag
// update, and the maintenance loop's retries of interrupted deletes and tag updates, which no
// HTTP route sees. A failed write bumps too: it may have been partly applied.
//
// Bumping after the write, not before, is what makes it safe: an answer whose retrieval could
// have seen the old data read the generation before this Bump, so Cache.put drops it.
func InvalidateOnWrite(vs vector.Store, c *Cache) vector.Store {
	if c == nil {
		return vs
	}
	return &invalidating{Store: vs, cache: c}
}

type invalidating struct {
	vector.Store
	cache *Cache
}

func (s *invalidating) Upsert(ctx context.Context, chunks []vector.Chunk) error {
	defer s.cache.Bump()
	return s.Store.Upsert(ctx, chunks)
}

func (s *invalidating) DeleteDocument(ctx context.Context, documentID string, keepChunks int) error {
	defer s.cache.Bump()
	return s.Store.DeleteDocument(ctx, documentID, keepChunks)
}

func (s *invalidating) SetTags(ctx context.Context, documentID string, tags []string) error {
	defer s.cache.Bump()
	return s.Store.SetTags(ctx, documentID, tags)
}
