package vector

import (
	"context"
	"errors"
	"fmt"

	"github.com/qdrant/go-client/qdrant"
)

// ErrChunkNotFound is returned by GetChunk for a chunk the store does not hold.
var ErrChunkNotFound = errors.New("chunk not found")

// ChunkGetter reads one stored chunk back (a citation opened in the UI). Both stores implement
// it; it is a separate interface so test doubles of Store need not.
type ChunkGetter interface {
	// GetChunk returns the chunk without its vector, or ErrChunkNotFound.
	GetChunk(ctx context.Context, documentID string, chunkIndex int) (Chunk, error)
}

var (
	_ ChunkGetter = (*Memory)(nil)
	_ ChunkGetter = (*Qdrant)(nil)
)

// GetChunk reads the point from memory.
func (m *Memory) GetChunk(_ context.Context, documentID string, chunkIndex int) (Chunk, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, ok := m.docs[documentID][chunkIndex]
	if !ok {
		return Chunk{}, ErrChunkNotFound
	}
	c := p.Chunk
	c.Vector = nil
	c.Tags = append([]string(nil), p.Tags...)
	return c, nil
}

// GetChunk reads the point by its id (UUIDv5 of document:chunk), payload only.
func (q *Qdrant) GetChunk(ctx context.Context, documentID string, chunkIndex int) (Chunk, error) {
	var points []*qdrant.RetrievedPoint
	err := q.call(ctx, func(ctx context.Context) error {
		var err error
		points, err = q.client.Get(ctx, &qdrant.GetPoints{
			CollectionName: q.name,
			Ids:            []*qdrant.PointId{qdrant.NewID(PointID(documentID, chunkIndex))},
			WithPayload:    qdrant.NewWithPayloadInclude(KeyDocumentID, KeyName, KeyChunkIndex, KeyText, KeyTags, KeyPage, KeySection),
		})
		return err
	})
	if err != nil {
		return Chunk{}, fmt.Errorf("qdrant get: %w", err)
	}
	if len(points) == 0 {
		return Chunk{}, ErrChunkNotFound
	}
	return chunkFromPayload(points[0].GetPayload()), nil
}
