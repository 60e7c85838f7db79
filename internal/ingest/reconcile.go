package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/ragstack/rag-operator/internal/vector"
)

// Startup reconciliation. The store (SQLite, on the RAG server's volume) and the vector store
// (Qdrant, on its own claims, or the embedded store) can disagree after either was replaced or
// restored alone: points of documents the store never saw are retrievable by chat but cannot be
// listed or deleted, and a ready document whose points are gone is listed but never found.
// Reconcile walks both, a page at a time, and repairs each side:
//
//   - points whose document has no row are deleted (swept);
//   - a ready document with fewer points than its chunks is put back in the queue (requeued),
//     at the head, as a new generation; its summary and tags are kept.
//
// It is safe to run beside the workers: a row is created before its first point is written and
// removed only after its points are, so a point without a row is never work in progress; and a
// document is requeued only if it is still ready at the generation that was counted.

// ReconcileReport is what one pass found and did.
type ReconcileReport struct {
	Swept         int // documents without a row whose points were deleted
	SweptPoints   int // points deleted with them
	Checked       int // ready documents whose points were counted
	Requeued      int // of those, put back in the queue for missing points
	MissingPoints int // points the requeued documents lacked
	VectorDocs    int // document ids seen in the vector store (with repeats across pages)
	Duration      time.Duration
}

// reconcilePage is how many points (Qdrant) or ids are read per request, and how many store
// rows per query: what the pass holds in memory at once.
const reconcilePage = 256

// Reconcile runs one pass (see above). It needs a vector store that implements
// vector.DocumentLister; with another one it does nothing.
func (p *Pipeline) Reconcile(ctx context.Context) (ReconcileReport, error) {
	start := time.Now()
	var r ReconcileReport
	lister := p.cfg.Lister
	if lister == nil {
		var ok bool
		if lister, ok = p.vec.(vector.DocumentLister); !ok {
			return r, nil
		}
	}
	err := lister.DocumentPages(ctx, reconcilePage, func(ids []string) error {
		r.VectorDocs += len(ids)
		known, err := p.st.Known(ctx, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if known[id] {
				continue
			}
			n, err := p.vec.Count(ctx, vector.Filter{DocumentIDs: []string{id}})
			if err != nil {
				return fmt.Errorf("count points of unknown document %s: %w", id, err)
			}
			if err := p.vec.DeleteDocument(ctx, id, -1); err != nil {
				return fmt.Errorf("delete points of unknown document %s: %w", id, err)
			}
			r.Swept++
			r.SweptPoints += n
			p.m.reconciled.WithLabelValues("swept").Inc()
			p.m.sweptPoints.Add(float64(n))
			p.log.Info("Deleted points of a document the store does not know", "document", id, "points", n)
		}
		return nil
	})
	if err != nil {
		r.Duration = time.Since(start)
		return r, fmt.Errorf("reconcile: sweep: %w", err)
	}
	after := ""
	for {
		docs, err := p.st.ListReady(ctx, after, reconcilePage)
		if err != nil {
			r.Duration = time.Since(start)
			return r, fmt.Errorf("reconcile: %w", err)
		}
		for _, d := range docs {
			n, err := p.vec.Count(ctx, vector.Filter{DocumentIDs: []string{d.ID}})
			if err != nil {
				r.Duration = time.Since(start)
				return r, fmt.Errorf("reconcile: count points of %s: %w", d.ID, err)
			}
			r.Checked++
			if n >= d.Chunks {
				continue
			}
			ok, err := p.st.RequeueReady(ctx, d.ID, d.Generation)
			if err != nil {
				r.Duration = time.Since(start)
				return r, fmt.Errorf("reconcile: %w", err)
			}
			if ok {
				r.Requeued++
				r.MissingPoints += d.Chunks - n
				p.m.reconciled.WithLabelValues("requeued").Inc()
				p.log.Info("Document's points are missing, queued again", "document", d.ID, "chunks", d.Chunks, "points", n)
				p.Notify()
			}
		}
		if len(docs) < reconcilePage {
			break
		}
		after = docs[len(docs)-1].ID
	}
	r.Duration = time.Since(start)
	return r, nil
}

// ReconcileAtStart runs Reconcile in the background until one pass completes, retrying with a
// backoff while the vector store or the store fails, and logs what it swept and requeued.
// Readiness does not wait for it.
func (p *Pipeline) ReconcileAtStart(ctx context.Context) {
	for delay := p.cfg.OutageBackoff; ; delay = min(2*delay, p.cfg.OutageBackoffMax) {
		r, err := p.Reconcile(ctx)
		if err == nil {
			p.m.reconcileDone.Set(1)
			p.log.Info("Vector store reconciled with the document store", "sweptDocuments", r.Swept, "sweptPoints", r.SweptPoints,
				"requeuedDocuments", r.Requeued, "missingPoints", r.MissingPoints, "checkedDocuments", r.Checked,
				"seconds", r.Duration.Seconds())
			return
		}
		if ctx.Err() != nil {
			return
		}
		p.log.Warn("Reconciliation of the vector store failed, will retry", "error", err, "retryIn", delay.String(),
			"sweptSoFar", r.Swept, "requeuedSoFar", r.Requeued)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}
