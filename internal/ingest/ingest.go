// Package ingest turns stored uploads into searchable chunks: parse → chunk → embed (on the
// background lane) → upsert, at most Workers documents at a time, then, off the critical
// path, a summary and auto-tags per document.
//
// Ownership: a document is worked on by exactly one goroutine at a time. Workers claim it in
// the store (pending → processing) and register it in memory under one mutex; delete and
// reprocess cancel the registered job and wait for it to stop before they change the
// document, so a cancelled worker can never write points after a delete removed them.
package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ragstack/rag-operator/internal/chunk"
	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/parse"
	"github.com/ragstack/rag-operator/internal/store"
	"github.com/ragstack/rag-operator/internal/vector"
)

// Config sets the pipeline's bounds and models.
type Config struct {
	// Workers is limits.maxConcurrentProcessing: documents parsed/chunked/embedded at once.
	Workers int
	// EnrichWorkers is limits.jobWorkers: concurrent summary/auto-tag jobs.
	EnrichWorkers int
	EmbedModel    string
	SummaryModel  string
	TaggingModel  string
	Chunk         chunk.Options
	// Enrich turns the summary/auto-tag step on.
	Enrich bool
	// MaxQueued is limits.maxQueuedDocuments, applied to reprocess as to uploads.
	MaxQueued int
	// UpsertBatch is how many chunks are embedded and upserted per step (memory stays bounded
	// for huge documents). Default 64.
	UpsertBatch int
	// DocTimeout bounds one document's processing. Default 30m.
	DocTimeout time.Duration
	// EnrichTimeout bounds one document's summary and tags. Default 10m.
	EnrichTimeout time.Duration
	// PollInterval is how often idle workers look for work without a Notify. Default 2s.
	PollInterval time.Duration
	// MaintainInterval is how often interrupted deletes and tag updates are retried. Default 30s.
	MaintainInterval time.Duration
	// OutageBackoff and OutageBackoffMax bound the wait after a job was put back in the queue
	// because Ollama or the vector store was unavailable: it doubles per failure from the first
	// to the second and resets on the next success. Defaults 1s and 30s.
	OutageBackoff, OutageBackoffMax time.Duration
	// Lister walks the document ids in the vector store for Reconcile; nil: the vector store
	// itself, when it implements vector.DocumentLister (a wrapper around it may not).
	Lister vector.DocumentLister
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	c.Workers = max(c.Workers, 1)
	c.EnrichWorkers = max(c.EnrichWorkers, 1)
	if c.UpsertBatch < 1 {
		c.UpsertBatch = 64
	}
	if c.DocTimeout <= 0 {
		c.DocTimeout = 30 * time.Minute
	}
	if c.EnrichTimeout <= 0 {
		c.EnrichTimeout = 10 * time.Minute
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 2 * time.Second
	}
	if c.MaintainInterval <= 0 {
		c.MaintainInterval = 30 * time.Second
	}
	if c.OutageBackoff <= 0 {
		c.OutageBackoff = time.Second
	}
	if c.OutageBackoffMax < c.OutageBackoff {
		c.OutageBackoffMax = max(30*time.Second, c.OutageBackoff)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Parser is what the pipeline needs from internal/parse.
type Parser interface {
	Parse(ctx context.Context, t parse.Type, r io.ReaderAt, size int64) (parse.Document, error)
}

// Why a job's context was cancelled.
var (
	errDeleted   = errors.New("document deleted")
	errRequeued  = errors.New("document reprocessed")
	errNoChunks  = errors.New("nothing to index: the text has no words")
	cleanupAfter = 30 * time.Second // bound on cleanup calls made after a job's context ended
)

type job struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// Pipeline runs the workers. Its methods are safe for concurrent use.
type Pipeline struct {
	cfg    Config
	st     store.Store
	parser Parser
	llm    llm.Client
	vec    vector.Store
	log    *slog.Logger
	m      *Metrics

	wake       chan struct{}
	enrichWake chan struct{}

	mu       sync.Mutex // held across Claim+register and MarkDeleting+lookup
	inflight map[string]*job

	// While Ollama or the vector store is unavailable, the workers of each kind pause instead of
	// failing every queued job (see dependency.go).
	docWait, enrichWait *backoff
}

// New builds a pipeline; Run starts it.
func New(cfg Config, st store.Store, p Parser, lc llm.Client, vs vector.Store, m *Metrics) *Pipeline {
	cfg = cfg.withDefaults()
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Pipeline{
		cfg: cfg, st: st, parser: p, llm: lc, vec: vs, log: cfg.Logger, m: m,
		wake:       make(chan struct{}, cfg.Workers),
		enrichWake: make(chan struct{}, cfg.EnrichWorkers),
		inflight:   map[string]*job{},
		docWait:    &backoff{min: cfg.OutageBackoff, max: cfg.OutageBackoffMax},
		enrichWait: &backoff{min: cfg.OutageBackoff, max: cfg.OutageBackoffMax},
	}
}

// DependencyBack is told that a dependency's probe passes again (ollama, vector, storage: the
// names of the server's readiness checks): workers waiting out a backoff for it try at once,
// instead of up to OutageBackoffMax later. A dependency they do not wait for changes nothing.
func (p *Pipeline) DependencyBack(dep string) {
	if p.docWait.back(dep) {
		p.log.Info("Dependency back by its probe, ingest resumes now", "job", jobDocument, "dependency", dep)
	}
	if p.enrichWait.back(dep) {
		p.log.Info("Dependency back by its probe, ingest resumes now", "job", jobEnrich, "dependency", dep)
	}
}

// Notify wakes idle workers: new work is queued.
func (p *Pipeline) Notify() {
	for i := 0; i < cap(p.wake); i++ {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

func (p *Pipeline) notifyEnrich() {
	select {
	case p.enrichWake <- struct{}{}:
	default:
	}
}

// Run processes documents until ctx ends, then puts unfinished work back in the queue and
// returns once every worker has stopped.
func (p *Pipeline) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < p.cfg.Workers; i++ {
		wg.Go(func() { p.worker(ctx) })
	}
	if p.cfg.Enrich {
		for i := 0; i < p.cfg.EnrichWorkers; i++ {
			wg.Go(func() { p.enrichWorker(ctx) })
		}
	}
	wg.Go(func() { p.maintain(ctx) })
	wg.Wait()
}

func (p *Pipeline) sleep(ctx context.Context, wake <-chan struct{}) {
	t := time.NewTimer(p.cfg.PollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-t.C:
	}
}

func (p *Pipeline) worker(ctx context.Context) {
	for p.docWait.waitOut(ctx) {
		d, j, ok, err := p.claim(ctx)
		if err != nil {
			if ctx.Err() == nil {
				// The claim is a write: a full or read-only volume stops every worker alike, so
				// they pause together and the volume is reported, instead of each polling.
				p.storageFailed(jobDocument, p.docWait, "claim a document", "", err)
			}
			continue
		}
		p.storageWorks(jobDocument, p.docWait)
		if !ok {
			p.sleep(ctx, p.wake)
			continue
		}
		p.process(ctx, d, j)
	}
}

// claim takes the next document and registers its job, under p.mu so a concurrent delete
// either sees the job or finds the document no longer claimable.
func (p *Pipeline) claim(ctx context.Context) (store.Document, *job, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok, err := p.st.Claim(ctx)
	if err != nil || !ok {
		return d, nil, false, err
	}
	jctx, cancel := context.WithCancelCause(ctx)
	j := &job{ctx: jctx, cancel: cancel, done: make(chan struct{})}
	p.inflight[d.ID] = j
	return d, j, true, nil
}

func (p *Pipeline) process(ctx context.Context, d store.Document, j *job) {
	defer func() {
		j.cancel(nil)
		p.mu.Lock()
		delete(p.inflight, d.ID)
		p.mu.Unlock()
		close(j.done)
	}()
	jctx, stop := context.WithTimeout(j.ctx, p.cfg.DocTimeout)
	defer stop()

	p.m.inFlight.Inc()
	defer p.m.inFlight.Dec()
	start := time.Now()
	out, err := p.ingest(jctx, d)
	cause := context.Cause(jctx)
	// Cleanup runs after the job's context may have ended, with its own bound.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupAfter)
	defer ccancel()
	switch {
	case err == nil:
		var ok bool
		ferr := p.retryStore(cctx, j.ctx, jobDocument, p.docWait, "record a processed document", d.ID, func(ctx context.Context) (err error) {
			ok, err = p.st.Finish(ctx, d.ID, d.Generation, out)
			return err
		})
		if ferr != nil {
			p.log.Error("Failed to record a processed document", "document", d.ID, "error", ferr)
			break
		}
		p.recovered(jobDocument, p.docWait)
		if ok {
			p.m.docs.WithLabelValues("ready").Inc()
			p.m.duration.Observe(time.Since(start).Seconds())
			p.log.Info("Document ready", "document", d.ID, "name", d.Name, "chunks", out.Chunks, "seconds", time.Since(start).Seconds())
			if out.Enrich {
				p.notifyEnrich()
			}
		} else {
			p.dropIfDeleted(cctx, d)
		}
	case errors.Is(cause, errDeleted), errors.Is(cause, errRequeued):
		// Whoever cancelled owns the document now and is waiting for this job to end.
	case ctx.Err() != nil:
		// Shutdown: the document goes back to the queue (Open would do it after a crash too).
		if rerr := p.st.Release(cctx, d.ID, d.Generation); rerr != nil {
			p.log.Error("Failed to release a document", "document", d.ID, "error", rerr)
		}
	case jctx.Err() == nil && errors.As(err, new(*DependencyError)):
		// Ollama or the vector store is down, overloaded or lacks a configured model, or the data
		// volume is full or read-only: not the document's fault. It goes back to the head of the queue, pending (its points are
		// overwritten by the retry, same ids), and the workers pause.
		if rerr := p.retryStore(cctx, j.ctx, jobDocument, p.docWait, "release a document", d.ID, func(ctx context.Context) error {
			return p.st.Release(ctx, d.ID, d.Generation)
		}); rerr != nil {
			p.log.Error("Failed to release a document", "document", d.ID, "error", rerr)
		}
		p.m.docs.WithLabelValues("retried").Inc()
		p.deferred(jobDocument, p.docWait, d, err)
	default:
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(cause, context.DeadlineExceeded) {
			err = fmt.Errorf("processing took longer than %s: %w", p.cfg.DocTimeout, err)
		}
		// No partial or stale points for a failed document: this job still owns it.
		if derr := p.vec.DeleteDocument(cctx, d.ID, -1); derr != nil {
			p.log.Error("Failed to remove a failed document's points", "document", d.ID, "error", derr)
		}
		if ferr := p.retryStore(cctx, j.ctx, jobDocument, p.docWait, "record a failed document", d.ID, func(ctx context.Context) error {
			_, err := p.st.Finish(ctx, d.ID, d.Generation, store.Outcome{Err: err, UsedTags: d.Tags})
			return err
		}); ferr != nil {
			p.log.Error("Failed to record a failed document", "document", d.ID, "error", ferr)
		}
		p.m.docs.WithLabelValues("failed").Inc()
		p.log.Warn("Document failed", "document", d.ID, "name", d.Name, "error", err)
	}
}

// dropIfDeleted removes the points a stale job wrote for a document deleted meanwhile by
// another replica sharing the store: that replica removed the points it could see, then the
// row, while this job was still upserting, and nothing else would remove these.
func (p *Pipeline) dropIfDeleted(ctx context.Context, d store.Document) {
	cur, err := p.st.Get(ctx, d.ID)
	if err == nil && cur.Status != store.Deleting || err != nil && !errors.Is(err, store.ErrNotFound) {
		return // reprocessed or taken over: the new job rewrites the same points
	}
	if err := p.vec.DeleteDocument(ctx, d.ID, -1); err != nil {
		p.log.Error("Failed to remove the points of a document deleted while it was processed", "document", d.ID, "error", err)
	}
}

// retryStore repeats a write to the store that records a job's end until it succeeds: with the
// data volume full or read-only the write fails, and a document left "processing" (or an
// enrichment left "running") with no worker would be stuck until the next restart. The first
// try has the cleanup context; later ones, a backoff apart, each get their own bound, for as
// long as owner lasts: for a document, while the job owns it (a delete, a reprocess or
// shutdown ends that: the new owner, or Open after a restart, takes the document from there);
// for an enrichment, until shutdown. While it fails, the workers of kind pause and the volume
// is reported blocked.
func (p *Pipeline) retryStore(cctx, owner context.Context, kind string, b *backoff, what, id string, fn func(context.Context) error) error {
	err := fn(cctx)
	for delay := p.cfg.OutageBackoff; err != nil && owner.Err() == nil; delay = min(2*delay, p.cfg.OutageBackoffMax) {
		p.storageFailed(kind, b, what, id, err)
		select {
		case <-owner.Done():
			return err
		case <-time.After(delay):
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(owner), cleanupAfter)
		err = fn(ctx)
		cancel()
	}
	if err == nil {
		p.storageWorks(kind, b)
	}
	return err
}

// storageFailed records a write to the store that failed: the workers of kind pause with the
// outage backoff and rag_ingest_blocked{dependency="storage"} is 1 until a write succeeds.
func (p *Pipeline) storageFailed(kind string, b *backoff, what, id string, err error) {
	reason := cmp.Or(storageReason(err), ReasonStoreError)
	wait := b.fail(DepStorage)
	p.m.blocked.WithLabelValues(kind, DepStorage).Set(1)
	p.log.Error("Failed to "+what+", will retry: the data volume cannot be written", "job", kind, "document", id,
		"reason", reason, "retryIn", wait.Round(time.Millisecond).String(), "error", err)
}

// storageWorks records a write to the store that succeeded.
func (p *Pipeline) storageWorks(kind string, b *backoff) {
	if b.clear(DepStorage) {
		p.m.blocked.WithLabelValues(kind, DepStorage).Set(0)
		p.log.Info("Data volume writable again", "job", kind)
	}
}

// deferred records a job put back in the queue for a dependency, pauses the workers of its
// kind and reports the dependency.
func (p *Pipeline) deferred(kind string, b *backoff, d store.Document, err error) {
	var de *DependencyError
	errors.As(err, &de)
	wait := b.fail(de.Dependency)
	p.m.deferred.WithLabelValues(kind, de.Dependency, de.Reason).Inc()
	p.m.blocked.WithLabelValues(kind, de.Dependency).Set(1)
	p.log.Warn("Dependency unavailable, job put back in the queue", "job", kind, "document", d.ID,
		"dependency", de.Dependency, "reason", de.Reason, "retryIn", wait.Round(time.Millisecond).String(), "error", err)
}

// recovered records a job of the kind that finished: its workers no longer wait.
func (p *Pipeline) recovered(kind string, b *backoff) {
	for _, dep := range b.ok() {
		p.m.blocked.WithLabelValues(kind, dep).Set(0)
		p.log.Info("Dependency available again", "job", kind, "dependency", dep)
	}
}

// excerptBytes is how much of the text the summary and tag steps read: about 1,000 tokens,
// the first pages, which hold what a three-sentence summary and a few topic tags need. It was
// 12,000: three times the prefill for every summary, and at one Ollama slot each summary held
// the chat model that long (docs/benchmarks/bench.md).
const excerptBytes = 4000

func (p *Pipeline) ingest(ctx context.Context, d store.Document) (store.Outcome, error) {
	f, err := p.st.OpenOriginal(ctx, d)
	if err != nil {
		// Unreadable for permissions is the volume's fault; a missing file is the document's.
		return store.Outcome{}, dependencyErr(DepStorage, fmt.Errorf("open original: %w", err))
	}
	defer f.Close()
	pd, err := p.parser.Parse(ctx, parse.Type(d.Type), f, d.Size)
	if err != nil {
		return store.Outcome{}, fmt.Errorf("parse: %w", err)
	}
	secs := make([]chunk.Section, len(pd.Sections))
	for i, s := range pd.Sections {
		secs[i] = chunk.Section(s)
	}
	chunks := chunk.Split(secs, p.cfg.Chunk)
	pd.Sections = nil // the chunks hold the text now
	if len(chunks) == 0 {
		return store.Outcome{}, errNoChunks
	}
	for i := 0; i < len(chunks); i += p.cfg.UpsertBatch {
		batch := chunks[i:min(i+p.cfg.UpsertBatch, len(chunks))]
		texts := make([]string, len(batch))
		for k, c := range batch {
			texts[k] = c.Text
		}
		vecs, err := p.llm.Embed(ctx, llm.Background, p.cfg.EmbedModel, texts)
		if err != nil {
			return store.Outcome{}, dependencyErr(DepOllama, fmt.Errorf("embed chunks %d-%d: %w", i, i+len(batch)-1, err))
		}
		if len(vecs) != len(batch) {
			return store.Outcome{}, fmt.Errorf("embed chunks %d-%d: got %d vectors for %d texts", i, i+len(batch)-1, len(vecs), len(batch))
		}
		points := make([]vector.Chunk, len(batch))
		for k, c := range batch {
			points[k] = vector.Chunk{
				DocumentID: d.ID, Name: d.Name, ChunkIndex: c.Index, Text: c.Text,
				Tags: d.Tags, Page: c.Page, Section: c.Section, Vector: vecs[k],
			}
		}
		if err := p.vec.Upsert(ctx, points); err != nil {
			return store.Outcome{}, dependencyErr(DepVector, fmt.Errorf("upsert chunks %d-%d: %w", i, i+len(batch)-1, err))
		}
		p.m.chunks.Add(float64(len(batch)))
	}
	// The new chunks are all in place: only now trim what an older generation had beyond them,
	// so the document is never without points.
	if err := p.vec.DeleteDocument(ctx, d.ID, len(chunks)); err != nil {
		return store.Outcome{}, dependencyErr(DepVector, fmt.Errorf("trim old chunks: %w", err))
	}
	var ex strings.Builder
	for _, c := range chunks {
		if ex.Len()+len(c.Text) > excerptBytes {
			break
		}
		if ex.Len() > 0 {
			ex.WriteString("\n")
		}
		ex.WriteString(c.Text)
	}
	if ex.Len() == 0 {
		ex.WriteString(truncate(chunks[0].Text, excerptBytes))
	}
	return store.Outcome{Chunks: len(chunks), Pages: pd.Pages, Excerpt: ex.String(), UsedTags: d.Tags, Enrich: p.cfg.Enrich}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n]
}

// cancelJob cancels a document's job, if any, and waits for it to stop.
func (p *Pipeline) cancelJob(id string, why error) {
	p.mu.Lock()
	j := p.inflight[id]
	p.mu.Unlock()
	if j != nil {
		j.cancel(why)
		<-j.done
	}
}

// Delete removes a document: it is marked deleting (no worker can claim it), its job is
// stopped, its points removed, then its row and file. If the vector store fails, the
// document stays "deleting" and maintenance finishes the job later.
func (p *Pipeline) Delete(ctx context.Context, id string) error {
	p.mu.Lock()
	d, err := p.st.MarkDeleting(ctx, id)
	p.mu.Unlock()
	if err != nil {
		return err
	}
	p.cancelJob(id, errDeleted)
	return p.finishDelete(ctx, d)
}

func (p *Pipeline) finishDelete(ctx context.Context, d store.Document) error {
	if err := p.vec.DeleteDocument(ctx, d.ID, -1); err != nil {
		return fmt.Errorf("delete points: %w", err)
	}
	return p.st.Remove(ctx, d.ID)
}

// Reprocess queues a new generation of a document. Its points stay searchable until the new
// chunks replace them.
func (p *Pipeline) Reprocess(ctx context.Context, id string) (store.Document, error) {
	for {
		p.cancelJob(id, errRequeued)
		p.mu.Lock()
		if _, busy := p.inflight[id]; busy { // claimed again meanwhile: stop that one too
			p.mu.Unlock()
			continue
		}
		d, err := p.st.Requeue(ctx, id, p.cfg.MaxQueued)
		p.mu.Unlock()
		if err == nil {
			p.Notify()
		}
		return d, err
	}
}

// SetTags replaces a document's tags in the store and on its points, without re-embedding.
// A document being processed gets them from its worker (the store notices a change made
// meanwhile); a vector store failure is retried by maintenance.
func (p *Pipeline) SetTags(ctx context.Context, id string, tags []string) (store.Document, error) {
	d, err := p.st.SetTags(ctx, id, tags)
	if err != nil {
		return d, err
	}
	if d.Status == store.Ready || d.Status == store.Failed {
		p.syncTags(ctx, &d)
	}
	return d, nil
}

func (p *Pipeline) syncTags(ctx context.Context, d *store.Document) {
	if err := p.vec.SetTags(ctx, d.ID, d.Tags); err != nil {
		p.log.Warn("Failed to update tags on points, will retry", "document", d.ID, "error", err)
		return
	}
	if err := p.st.MarkTagsSynced(ctx, d.ID, d.Tags); err == nil {
		d.TagsSynced = true
	}
}

func (p *Pipeline) busy(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.inflight[id]
	return ok
}

// maintain finishes interrupted deletes and tag updates, and refreshes the document gauges.
func (p *Pipeline) maintain(ctx context.Context) {
	gauges := time.NewTicker(5 * time.Second)
	defer gauges.Stop()
	repair := time.NewTimer(0)
	defer repair.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-gauges.C:
			p.refreshGauges(ctx)
		case <-repair.C:
			p.refreshGauges(ctx)
			p.Repair(ctx)
			repair.Reset(p.cfg.MaintainInterval)
		}
	}
}

// Repair retries deletes left in "deleting" and tag updates not yet on the points.
func (p *Pipeline) Repair(ctx context.Context) {
	dels, err := p.st.ListStatus(ctx, store.Deleting, 100)
	if err != nil {
		p.log.Error("Failed to list deleting documents", "error", err)
	}
	for _, d := range dels {
		if p.busy(d.ID) { // a Delete call is stopping its job right now
			continue
		}
		if err := p.finishDelete(ctx, d); err != nil {
			p.log.Warn("Failed to finish deleting a document, will retry", "document", d.ID, "error", err)
		}
	}
	tags, err := p.st.ListTagsUnsynced(ctx, 100)
	if err != nil {
		p.log.Error("Failed to list documents with unsynced tags", "error", err)
	}
	for _, d := range tags {
		if !p.busy(d.ID) {
			p.syncTags(ctx, &d)
		}
	}
}

func (p *Pipeline) refreshGauges(ctx context.Context) {
	counts, err := p.st.Counts(ctx)
	if err != nil {
		return
	}
	for st, n := range counts {
		p.m.byStatus.WithLabelValues(string(st)).Set(float64(n))
	}
	p.m.queue.Set(float64(counts[store.Pending] + counts[store.Processing]))
}
