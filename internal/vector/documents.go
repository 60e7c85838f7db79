package vector

import (
	"context"
	"fmt"
	"slices"

	"github.com/qdrant/go-client/qdrant"
)

// DocumentLister walks the ids of the documents that have points, a page at a time, so a
// caller can compare them with its own records without holding them all (the RAG server's
// startup reconciliation). Both stores implement it; it is a separate interface so test
// doubles of Store need not.
type DocumentLister interface {
	// DocumentPages calls fn with the distinct document ids of each page of about pageSize
	// points (or ids), until the store is walked or fn fails. An id may come up in more than
	// one page. Points deleted by fn are not seen again; points written meanwhile may or may
	// not be.
	DocumentPages(ctx context.Context, pageSize int, fn func(ids []string) error) error
}

var (
	_ DocumentLister = (*Memory)(nil)
	_ DocumentLister = (*Qdrant)(nil)
)

// DocumentPages pages through the document ids in sorted order. Every point is in memory
// already; only the ids of a page are copied out, and the lock is not held while fn runs.
func (m *Memory) DocumentPages(ctx context.Context, pageSize int, fn func(ids []string) error) error {
	if pageSize <= 0 {
		pageSize = 256
	}
	after, first := "", true
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m.mu.RLock()
		if m.closed.Load() {
			m.mu.RUnlock()
			return ErrClosed
		}
		var page []string
		for id := range m.docs {
			if !first && id <= after {
				continue
			}
			// Keep the pageSize smallest ids above after: a bounded insertion.
			if len(page) == pageSize && id >= page[len(page)-1] {
				continue
			}
			i, _ := slices.BinarySearch(page, id)
			page = slices.Insert(page, i, id)
			if len(page) > pageSize {
				page = page[:pageSize]
			}
		}
		m.mu.RUnlock()
		if len(page) == 0 {
			return nil
		}
		if err := fn(page); err != nil {
			return err
		}
		after, first = page[len(page)-1], false
		if len(page) < pageSize {
			return nil
		}
	}
}

// DocumentPages scrolls the collection in point-id order, pageSize points per request, reading
// only each point's document_id (no vectors, no text).
func (q *Qdrant) DocumentPages(ctx context.Context, pageSize int, fn func(ids []string) error) error {
	if pageSize <= 0 {
		pageSize = 256
	}
	limit := uint32(pageSize)
	var offset *qdrant.PointId
	for {
		var resp []*qdrant.RetrievedPoint
		var next *qdrant.PointId
		err := q.call(ctx, func(ctx context.Context) error {
			r, err := q.reader.GetPointsClient().Scroll(ctx, &qdrant.ScrollPoints{
				CollectionName: q.name,
				Offset:         offset,
				Limit:          &limit,
				WithPayload:    qdrant.NewWithPayloadInclude(KeyDocumentID),
				WithVectors:    qdrant.NewWithVectors(false),
			})
			if err != nil {
				return err
			}
			resp, next = r.GetResult(), r.GetNextPageOffset()
			return nil
		})
		if err != nil {
			return fmt.Errorf("qdrant scroll: %w", err)
		}
		seen := map[string]bool{}
		var ids []string
		for _, p := range resp {
			id := p.GetPayload()[KeyDocumentID].GetStringValue()
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			if err := fn(ids); err != nil {
				return err
			}
		}
		if next == nil {
			return nil
		}
		offset = next
	}
}
