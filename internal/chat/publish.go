package chat

import (
	"context"
	"log/slog"
	"time"

	"github.com/ragstack/rag-operator/internal/vector"
)

// PublishOnWrite returns vs with publish called after every write (Upsert, DeleteDocument,
// SetTags), whatever its outcome, for replicas that share one knowledge base: InvalidateOnWrite
// drops this replica's cache, publish tells the others (store.ChangeFeed), whose watchers then
// Bump their own caches. Wrap the store InvalidateOnWrite returned, so the local Bump comes
// first. A failed publish is logged: the write itself stands, and the other replicas may serve
// answers from before it until their next change.
func PublishOnWrite(vs vector.Store, publish func(context.Context) error, log *slog.Logger) vector.Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &publishing{Store: vs, publish: publish, log: log}
}

type publishing struct {
	vector.Store
	publish func(context.Context) error
	log     *slog.Logger
}

func (s *publishing) after(ctx context.Context) {
	// The write's own context may have ended; the other replicas must hear of it anyway.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.publish(pctx); err != nil {
		s.log.Warn("Failed to tell other replicas the knowledge base changed; their answer caches may be stale", "error", err)
	}
}

func (s *publishing) Upsert(ctx context.Context, chunks []vector.Chunk) error {
	defer s.after(ctx)
	return s.Store.Upsert(ctx, chunks)
}

func (s *publishing) DeleteDocument(ctx context.Context, documentID string, keepChunks int) error {
	defer s.after(ctx)
	return s.Store.DeleteDocument(ctx, documentID, keepChunks)
}

func (s *publishing) SetTags(ctx context.Context, documentID string, tags []string) error {
	defer s.after(ctx)
	return s.Store.SetTags(ctx, documentID, tags)
}
