package store

import (
	"context"
	"io"
)

// Store is the RAG server's durable state, whichever database keeps it: SQLite on the data
// volume (Open: one replica, the default) or PostgreSQL shared by every replica
// (internal/store/postgres). Ingest, chat and the HTTP API see only this interface; both
// implementations pass the same behaviour tests (conformance_test.go).
//
// Queue semantics common to both: Claim hands a pending document to exactly one worker and
// Finish/Release only count for the generation claimed and while it is still processing, so a
// stale worker's result is dropped. What happens to work in flight when a process dies
// differs: SQLite puts it back at the next Open (one process owns the file); PostgreSQL gives
// every claim a lease that the owning process keeps renewing, and any replica takes a document
// whose lease expired.
type Store interface {
	// Ping checks the database answers.
	Ping(ctx context.Context) error
	// Close releases the database; claims held are not released (see Release).
	Close() error
	// Space is the state of the local volume uploads are spooled on.
	Space() (Space, error)

	NewUpload(limit int64) (*Upload, error)
	Create(ctx context.Context, u *Upload, nd NewDocument) (Document, error)
	// OpenOriginal opens a document's uploaded file; Close releases it.
	OpenOriginal(ctx context.Context, d Document) (Original, error)

	Get(ctx context.Context, id string) (Document, error)
	List(ctx context.Context, q Query) ([]Document, int, error)
	QueueDepth(ctx context.Context) (int, error)
	Counts(ctx context.Context) (map[Status]int, error)

	Claim(ctx context.Context) (Document, bool, error)
	Finish(ctx context.Context, id string, gen int64, o Outcome) (bool, error)
	Release(ctx context.Context, id string, gen int64) error
	Requeue(ctx context.Context, id string, maxQueued int) (Document, error)
	RequeueReady(ctx context.Context, id string, gen int64) (bool, error)
	MarkDeleting(ctx context.Context, id string) (Document, error)
	Remove(ctx context.Context, id string) error
	ListStatus(ctx context.Context, st Status, limit int) ([]Document, error)
	ListTagsUnsynced(ctx context.Context, limit int) ([]Document, error)
	SetTags(ctx context.Context, id string, tags []string) (Document, error)
	MarkTagsSynced(ctx context.Context, id string, tags []string) error
	ListReady(ctx context.Context, afterID string, limit int) ([]Expected, error)
	Known(ctx context.Context, ids []string) (map[string]bool, error)

	ClaimEnrich(ctx context.Context) (Document, bool, error)
	FinishEnrich(ctx context.Context, id string, gen int64, summary string, autoTags []string, failure error) error
	ReleaseEnrich(ctx context.Context, id string, gen int64) error

	CreateSession(ctx context.Context, owner, title string, maxPerOwner int) (Session, error)
	GetSession(ctx context.Context, owner, id string) (Session, error)
	ListSessions(ctx context.Context, owner string, limit, offset int) ([]Session, int, error)
	SessionTurns(ctx context.Context, owner, id string, limit int) ([]Turn, error)
	AppendTurn(ctx context.Context, owner, id string, t Turn, maxTurns int) (Session, error)
	DeleteSession(ctx context.Context, owner, id string) error
	RenameSession(ctx context.Context, owner, id, title string) (Session, error)
}

// Original is an uploaded file opened for parsing.
type Original interface {
	io.ReaderAt
	io.Closer
}

// ChangeFeed is implemented by a store shared between replicas: a replica that changed the
// knowledge base publishes it, and every other replica hears of it, so each can drop its
// answer cache. A single-process store needs none (its writer and its cache are one process).
type ChangeFeed interface {
	// PublishChange records that the knowledge base changed.
	PublishChange(ctx context.Context) error
	// WatchChanges calls onChange for every change another replica publishes (and, if
	// notifications were lost, once on noticing a missed one) until ctx ends.
	WatchChanges(ctx context.Context, onChange func())
}

var _ Store = (*SQLite)(nil)
