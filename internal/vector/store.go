// Package vector stores chunk embeddings and searches them. Two implementations sit behind
// Store: Qdrant over gRPC (what the operator deploys) and an embedded exact-search store, the
// default when no Qdrant address is configured.
package vector

import (
	"context"
	"errors"
)

// Chunk is one embedded chunk with its payload. ID is UUIDv5(document_id + ":" + chunk_index)
// (see PointID), so re-upserting a chunk overwrites it.
type Chunk struct {
	DocumentID string
	Name       string // document name
	ChunkIndex int
	Text       string
	Tags       []string
	Page       int    // 1-based page, 0 when the format has none
	Section    string // nearest heading, "" when none
	Vector     []float32
}

// Filter restricts a search or count. AnyTags: a point matches when it carries at least one of
// the tags (an API key limited to tags searches with them); empty means no tag restriction.
type Filter struct {
	AnyTags     []string
	DocumentIDs []string
}

// SearchOptions are per-query settings.
type SearchOptions struct {
	Limit int // 0: 10
	// ScoreThreshold drops hits scoring below it; 0 means no threshold. Higher is better for
	// every distance: Euclid and Manhattan hits score minus the distance, so -0.5 keeps hits
	// within distance 0.5.
	ScoreThreshold float32
	HNSWEf         int // search-time ef (0: the store's default); ignored by the exact store
	Filter         Filter
}

// Hit is a search result.
type Hit struct {
	Chunk // Vector is not returned
	Score float32
}

// ErrDimension is returned (wrapped) when a vector's length differs from the collection's.
var ErrDimension = errors.New("vector dimension mismatch")

// Store is what the RAG server needs from a vector database.
type Store interface {
	// EnsureCollection checks the collection exists with the configured size and distance (the
	// operator creates it; the embedded store creates its own).
	EnsureCollection(ctx context.Context) error
	// Upsert writes chunks in batches; all succeed or an error says which batch failed.
	Upsert(ctx context.Context, chunks []Chunk) error
	// DeleteDocument removes a document's points. When keepChunks >= 0 only chunks with
	// ChunkIndex >= keepChunks are removed (reprocess: upsert the new chunks first, then trim
	// the old tail, so the document is never without points).
	DeleteDocument(ctx context.Context, documentID string, keepChunks int) error
	// SetTags replaces the tags of a document's points without re-embedding.
	SetTags(ctx context.Context, documentID string, tags []string) error
	// Search returns the best hits, best first.
	Search(ctx context.Context, vector []float32, opts SearchOptions) ([]Hit, error)
	// Count counts points matching a filter.
	Count(ctx context.Context, f Filter) (int, error)
	// Ping checks the store answers (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}
