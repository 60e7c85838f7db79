package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ragstack/rag-operator/internal/chunk"
	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/parse"
	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/store"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/vector"
)

func TestTransient(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		dep    string
		err    error
		reason string // "": the document's own failure
	}{
		{DepOllama, fmt.Errorf("embed chunks 0-3: %w", llm.ErrBusy), ReasonBusy},
		{DepOllama, fmt.Errorf("embed: %w", &llm.StatusError{Op: "embed", StatusCode: http.StatusServiceUnavailable}), ReasonBusy},
		{DepOllama, fmt.Errorf("embed: %w", &llm.StatusError{Op: "embed", StatusCode: http.StatusTooManyRequests}), ReasonBusy},
		{DepOllama, fmt.Errorf("embed: %w", &llm.StatusError{Op: "embed", StatusCode: http.StatusBadGateway}), ReasonServerError},
		{DepOllama, fmt.Errorf("embed: %w", &llm.StatusError{Op: "embed", StatusCode: http.StatusNotFound, Message: "model 'nomic-embed-text' not found"}), ReasonModelMissing},
		{DepOllama, fmt.Errorf("chat: %w", &llm.StatusError{Op: "chat", StatusCode: http.StatusNotFound, Message: `model "qwen3:8b" not found, try pulling it first`}), ReasonModelMissing},
		{DepOllama, fmt.Errorf("embed: %w", &llm.StatusError{Op: "embed", StatusCode: http.StatusBadRequest, Message: "invalid input type"}), ""},
		{DepOllama, fmt.Errorf("embed: %w", &llm.StatusError{Op: "embed", StatusCode: http.StatusNotImplemented}), ""},
		{DepOllama, fmt.Errorf("dial: %w", syscall.ECONNREFUSED), ReasonUnreachable},
		{DepOllama, fmt.Errorf("ollama chat: giving up after 4 attempts: %w", &url.Error{Op: "Post", URL: "http://ollama:11434/api/chat", Err: refused}), ReasonUnreachable},
		{DepOllama, fmt.Errorf("reading answer: %w", io.ErrUnexpectedEOF), ReasonUnreachable},
		{DepOllama, fmt.Errorf("ollama embed texts 0..3: giving up after 4 attempts: %w", context.DeadlineExceeded), ReasonTimeout},
		{DepOllama, context.Canceled, ""},
		{DepVector, fmt.Errorf("upsert: %w", status.Error(codes.Unavailable, "connection refused")), ReasonUnreachable},
		{DepVector, fmt.Errorf("upsert: %w", status.Error(codes.DeadlineExceeded, "deadline")), ReasonTimeout},
		{DepVector, fmt.Errorf("upsert: %w", status.Error(codes.ResourceExhausted, "too many")), ReasonBusy},
		{DepVector, fmt.Errorf("upsert: %w", status.Error(codes.NotFound, "Collection `documents` doesn't exist!")), ReasonCollectionMissing},
		{DepVector, fmt.Errorf("upsert: %w", status.Error(codes.InvalidArgument, "Wrong input: Vector dimension error")), ""},
		{DepVector, fmt.Errorf("parse: %w", parse.ErrMalformed), ""},
		{DepVector, errNoChunks, ""},
	}
	for _, tt := range tests {
		err := dependencyErr(tt.dep, tt.err)
		var de *DependencyError
		got := ""
		if errors.As(err, &de) {
			got = de.Reason
			if de.Dependency != tt.dep || !errors.Is(err, tt.err) {
				t.Errorf("%v: wrapped as %+v", tt.err, de)
			}
		}
		if got != tt.reason {
			t.Errorf("dependencyErr(%s, %v): reason %q, want %q", tt.dep, tt.err, got, tt.reason)
		}
		if Transient(tt.err) != (tt.reason != "") {
			t.Errorf("Transient(%v) = %v", tt.err, !(tt.reason != ""))
		}
	}
}

// A full or read-only data volume is the volume's outage wherever it surfaces; a missing file is
// not.
func TestStorageErrorsAreOutages(t *testing.T) {
	for _, tt := range []struct {
		err    error
		reason string
	}{
		{fmt.Errorf("upsert: vector: writing log: %w", &os.PathError{Op: "write", Path: "/d/x.wal", Err: syscall.ENOSPC}), ReasonFull},
		{fmt.Errorf("upsert: %w", &os.PathError{Op: "write", Path: "/d/x.wal", Err: syscall.EDQUOT}), ReasonFull},
		{fmt.Errorf("open original: %w", &os.PathError{Op: "open", Path: "/d/originals/ab", Err: syscall.EACCES}), ReasonReadOnly},
		{fmt.Errorf("snapshot: %w", &os.PathError{Op: "open", Path: "/d/x", Err: syscall.EROFS}), ReasonReadOnly},
		{fmt.Errorf("store: %w", sqliteErr(13)), ReasonFull},         // SQLITE_FULL
		{fmt.Errorf("store: %w", sqliteErr(8|5<<8)), ReasonReadOnly}, // SQLITE_READONLY_CANTINIT
		{fmt.Errorf("store: %w", sqliteErr(10|3<<8)), ReasonIOError}, // SQLITE_IOERR_WRITE: EROFS on a remount
		{fmt.Errorf("open original: %w", &os.PathError{Op: "open", Path: "/d/originals/ab", Err: syscall.ENOENT}), ""},
		{fmt.Errorf("store: %w", sqliteErr(19)), ""}, // SQLITE_CONSTRAINT: a bug, not the volume
	} {
		err := dependencyErr(DepVector, tt.err)
		var de *DependencyError
		got := ""
		if errors.As(err, &de) {
			got = de.Reason
			if de.Dependency != DepStorage {
				t.Errorf("%v: dependency %s, want storage", tt.err, de.Dependency)
			}
		}
		if got != tt.reason || Transient(tt.err) != (tt.reason != "") {
			t.Errorf("%v: reason %q (transient %v), want %q", tt.err, got, Transient(tt.err), tt.reason)
		}
	}
}

// sqliteErr has the Code method of modernc.org/sqlite's errors (extended result code).
type sqliteErr int

func (e sqliteErr) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e sqliteErr) Code() int     { return int(e) }

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// outageConfig retries quickly: the tests wait for recoveries.
func outageConfig(c Config) Config {
	c.OutageBackoff, c.OutageBackoffMax = 20*time.Millisecond, 100*time.Millisecond
	return c
}

// notFailed fails the test if any of the documents failed, and returns how many are ready.
func notFailed(t *testing.T, st *store.SQLite, ids []string) (ready int) {
	t.Helper()
	for _, id := range ids {
		d, err := st.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status == store.Failed || d.Enrich == store.EnrichFailed {
			t.Fatalf("document %s failed during an outage: %q / enrichment %q", id, d.Error, d.EnrichErr)
		}
		if d.Status == store.Ready {
			ready++
		}
	}
	return ready
}

// A dependency outage does not fail documents: they wait, pending, and finish when it returns;
// the deferral and the wait are in the metrics.
func TestOutageRetriesInsteadOfFailing(t *testing.T) {
	for _, tc := range []struct {
		name, dep, reason string
		set               func(e *env, err error)
		err               error
	}{
		{"ollama 503", DepOllama, ReasonBusy, func(e *env, err error) { e.llm.SetEmbedErr(err) },
			fmt.Errorf("embed: %w", &llm.StatusError{Op: "embed", StatusCode: http.StatusServiceUnavailable})},
		{"ollama refused", DepOllama, ReasonUnreachable, func(e *env, err error) { e.llm.SetEmbedErr(err) },
			&url.Error{Op: "Post", URL: "http://127.0.0.1:1/api/embed", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}},
		{"embedding model missing", DepOllama, ReasonModelMissing, func(e *env, err error) { e.llm.SetEmbedErr(err) },
			&llm.StatusError{Op: "embed", StatusCode: http.StatusNotFound, Message: "model 'embed' not found"}},
		{"qdrant unavailable", DepVector, ReasonUnreachable, func(e *env, err error) { e.vec.SetErrors(err, nil) },
			status.Error(codes.Unavailable, "connection refused")},
		{"qdrant deadline", DepVector, ReasonTimeout, func(e *env, err error) { e.vec.SetErrors(err, nil) },
			status.Error(codes.DeadlineExceeded, "context deadline exceeded")},
		// The embedded vector store writes its log on the data volume.
		{"data volume full", DepStorage, ReasonFull, func(e *env, err error) { e.vec.SetErrors(err, nil) },
			fmt.Errorf("vector: writing log: %w", &os.PathError{Op: "write", Path: "/data/vectors/documents.wal", Err: syscall.ENOSPC})},
		{"data volume read-only", DepStorage, ReasonReadOnly, func(e *env, err error) { e.vec.SetErrors(err, nil) },
			fmt.Errorf("vector: writing log: %w", &os.PathError{Op: "write", Path: "/data/vectors/documents.wal", Err: syscall.EROFS})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, outageConfig(Config{Workers: 2}))
			tc.set(e, tc.err)
			e.start()
			var ids []string
			for i := range 5 {
				ids = append(ids, e.upload(fmt.Sprintf("d%d.txt", i), []byte(words(60, fmt.Sprintf("d%d-", i)))).ID)
			}
			deferred := e.p.m.deferred.WithLabelValues(jobDocument, tc.dep, tc.reason)
			waitFor(t, "documents deferred", func() bool { return testutil.ToFloat64(deferred) >= 3 })
			// The gauge is set when the deferring worker pauses, a moment after the counter moves.
			blocked := e.p.m.blocked.WithLabelValues(jobDocument, tc.dep)
			waitFor(t, "rag_ingest_blocked{job=document,dependency="+tc.dep+"} = 1 during the outage", func() bool { return testutil.ToFloat64(blocked) == 1 })
			if n := notFailed(t, e.st, ids); n != 0 {
				t.Fatalf("%d documents ready during the outage", n)
			}
			for _, id := range ids {
				if d, _ := e.st.Get(context.Background(), id); d.Status != store.Pending && d.Status != store.Processing {
					t.Fatalf("document %s is %s during the outage", id, d.Status)
				}
			}
			tc.set(e, nil)
			waitFor(t, "every document ready", func() bool { return notFailed(t, e.st, ids) == len(ids) })
			for _, id := range ids {
				if len(e.vec.Chunks(id)) == 0 {
					t.Fatalf("document %s has no points", id)
				}
			}
			if got := testutil.ToFloat64(e.p.m.blocked.WithLabelValues(jobDocument, tc.dep)); got != 0 {
				t.Errorf("rag_ingest_blocked = %v after recovery, want 0", got)
			}
		})
	}
}

// What the document itself causes still fails it, with the reason: an input the embedding
// model rejects, a file that does not parse, a file without text.
func TestDocumentDefectsFail(t *testing.T) {
	e := newEnv(t, outageConfig(Config{Workers: 1}))
	e.llm.SetEmbedErr(fmt.Errorf("ollama embed texts 0..1: %w", &llm.StatusError{Op: "embed", StatusCode: http.StatusBadRequest, Message: "invalid input"}))
	e.start()
	d := e.upload("a.txt", []byte(words(20, "w")))
	if got := e.wait(d.ID, store.Failed); !strings.Contains(got.Error, "invalid input") {
		t.Fatalf("error %q", got.Error)
	}
	e.llm.SetEmbedErr(nil)
	bad := e.upload("b.docx", []byte("PK\x03\x04 broken zip"))
	if got := e.wait(bad.ID, store.Failed); !strings.Contains(got.Error, "parse") {
		t.Fatalf("error %q", got.Error)
	}
	blank := e.upload("c.txt", []byte(" \n\t \n"))
	if got := e.wait(blank.ID, store.Failed); !strings.Contains(got.Error, "no text") {
		t.Fatalf("error %q", got.Error)
	}
	for _, dep := range []string{DepOllama, DepVector} {
		if got := testutil.ToFloat64(e.p.m.blocked.WithLabelValues(jobDocument, dep)); got != 0 {
			t.Errorf("blocked on %s by document defects", dep)
		}
	}
}

// Summaries and tags wait for Ollama too: a refused connection or a missing summary model puts
// the job back in its queue; it finishes when Ollama is back, and is never recorded failed.
func TestEnrichmentWaitsForOllama(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
		err          error
	}{
		{"refused", ReasonUnreachable, fmt.Errorf("ollama chat: giving up after 4 attempts: %w",
			&url.Error{Op: "Post", URL: "http://ollama:11434/api/chat", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}})},
		{"summary model missing", ReasonModelMissing, fmt.Errorf("ollama chat: %w", &llm.StatusError{Op: "chat", StatusCode: http.StatusNotFound, Message: "model 'sum' not found"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, outageConfig(Config{Workers: 2, EnrichWorkers: 2, Enrich: true}))
			e.llm.SetChatErr(tc.err)
			e.start()
			var ids []string
			for i := range 4 {
				ids = append(ids, e.upload(fmt.Sprintf("d%d.txt", i), []byte(words(30, fmt.Sprintf("d%d-", i)))).ID)
			}
			waitFor(t, "documents ready", func() bool { return notFailed(t, e.st, ids) == len(ids) })
			deferred := e.p.m.deferred.WithLabelValues(jobEnrich, DepOllama, tc.reason)
			waitFor(t, "enrichment deferred", func() bool { return testutil.ToFloat64(deferred) >= 3 })
			notFailed(t, e.st, ids)
			if got := testutil.ToFloat64(e.p.m.blocked.WithLabelValues(jobEnrich, DepOllama)); got != 1 {
				t.Errorf("rag_ingest_blocked{job=enrich} = %v during the outage", got)
			}
			e.llm.SetChatErr(nil)
			waitFor(t, "every document enriched", func() bool {
				notFailed(t, e.st, ids)
				for _, id := range ids {
					if d, _ := e.st.Get(context.Background(), id); d.Enrich != store.EnrichDone || d.Summary == "" || len(d.AutoTags) == 0 {
						return false
					}
				}
				return true
			})
			if got := testutil.ToFloat64(e.p.m.enrich.WithLabelValues("failed")); got != 0 {
				t.Errorf("%v enrichments failed", got)
			}
			if got := testutil.ToFloat64(e.p.m.blocked.WithLabelValues(jobEnrich, DepOllama)); got != 0 {
				t.Errorf("rag_ingest_blocked{job=enrich} = %v after recovery", got)
			}
		})
	}
}

// realPipeline runs a pipeline against a real Ollama with the embedded vector store, summaries
// and tags on the chat model, and quick outage retries.
type realPipeline struct {
	st  *store.SQLite
	vs  *vector.Memory
	p   *Pipeline
	ids []string
}

func startRealPipeline(t *testing.T, srv *ollamatest.Server, workers int) *realPipeline {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	vs, err := vector.NewMemory(t.TempDir(), serverconfig.Collection{Name: "documents", VectorSize: ollamatest.EmbedDim, Distance: "Cosine"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vs.Close() })
	lc := llm.New(llm.Options{BaseURL: srv.URL, EmbedConcurrency: 2, EmbedBatchSize: 8, BackgroundMax: 1, CallTimeout: 20 * time.Second,
		Retry: llm.RetryPolicy{MaxAttempts: 2, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}})
	p := New(Config{Workers: workers, EnrichWorkers: 1, Enrich: true, EmbedModel: ollamatest.EmbedModel,
		SummaryModel: ollamatest.ChatModel, TaggingModel: ollamatest.ChatModel, Chunk: chunk.Options{Size: 40, Overlap: 8},
		PollInterval: 20 * time.Millisecond, OutageBackoff: 100 * time.Millisecond, OutageBackoffMax: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, st, parse.New(parse.Options{}), lc, vs, nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &realPipeline{st: st, vs: vs, p: p}
}

// upload queues n short documents (one chunk each: on a loaded CPU the summaries and tags,
// two chat calls per document, are what takes time).
func (r *realPipeline) upload(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		u, err := r.st.NewUpload(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		u.Write([]byte(words(25, fmt.Sprintf("doc%d-", i))))
		d, err := r.st.Create(context.Background(), u, store.NewDocument{Name: fmt.Sprintf("d%d.txt", i), Type: "txt", Owner: "t"})
		if err != nil {
			t.Fatal(err)
		}
		r.ids = append(r.ids, d.ID)
	}
	r.p.Notify()
}

// count returns how many documents are ready and how many of those have their summary and tags;
// any failed document or enrichment fails the test.
func (r *realPipeline) count(t *testing.T) (ready, enriched int) {
	t.Helper()
	for _, id := range r.ids {
		d, err := r.st.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status == store.Failed || d.Enrich == store.EnrichFailed {
			t.Fatalf("document %s failed: %q / enrichment %q", id, d.Error, d.EnrichErr)
		}
		if d.Status == store.Ready {
			ready++
			if d.Enrich == store.EnrichDone && d.Summary != "" && len(d.AutoTags) > 0 {
				enriched++
			}
		}
	}
	return ready, enriched
}

func (r *realPipeline) waitFor(t *testing.T, what string, timeout time.Duration, cond func(ready, enriched int) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ready, enriched := r.count(t)
		if cond(ready, enriched) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d documents ready, %d enriched after %s", what, ready, len(r.ids), enriched, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *realPipeline) deferred(job, reason string) float64 {
	return testutil.ToFloat64(r.p.m.deferred.WithLabelValues(job, DepOllama, reason))
}

// Against the real Ollama: it is stopped mid-ingest, with documents and summaries in flight,
// and comes back; every document ends ready with its summary and tags, none failed.
func TestOllamaStoppedMidIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("real Ollama skipped in -short mode")
	}
	srv := ollamatest.Start(t, ollamatest.Options{})
	ctx := context.Background()
	for _, m := range []string{ollamatest.EmbedModel, ollamatest.ChatModel} {
		if err := ollamatest.CreateBaseModel(ctx, srv.Client(), m); err != nil {
			t.Fatal(err)
		}
	}
	r := startRealPipeline(t, srv, 2)
	r.upload(t, 10)
	r.waitFor(t, "before the outage", 3*time.Minute, func(ready, enriched int) bool { return ready >= 2 && enriched >= 1 })
	srv.Stop()
	ready, enriched := r.count(t)
	if enriched == len(r.ids) {
		t.Fatal("every document was enriched before the outage: the test proves nothing")
	}
	t.Logf("Ollama stopped with %d of %d documents ready, %d enriched", ready, len(r.ids), enriched)
	time.Sleep(2 * time.Second) // work in flight meets the outage
	r.count(t)
	srv.Restart()
	r.waitFor(t, "after the outage", 6*time.Minute, func(ready, enriched int) bool { return enriched == len(r.ids) })
	docs := r.deferred(jobDocument, ReasonUnreachable) + r.deferred(jobDocument, ReasonTimeout) + r.deferred(jobDocument, ReasonServerError)
	enrich := r.deferred(jobEnrich, ReasonUnreachable) + r.deferred(jobEnrich, ReasonTimeout) + r.deferred(jobEnrich, ReasonServerError)
	t.Logf("deferred during the outage: %v documents, %v enrichments", docs, enrich)
	if docs+enrich == 0 {
		t.Error("no job went through the deferral path")
	}
	if ready < len(r.ids) && docs == 0 {
		t.Error("documents were pending at the outage, yet none was deferred")
	}
	for _, id := range r.ids {
		n, err := r.vs.Count(ctx, vector.Filter{DocumentIDs: []string{id}})
		if err != nil || n == 0 {
			t.Fatalf("document %s has %d points (%v)", id, n, err)
		}
	}
}

// Against the real Ollama: the configured models are missing (404 from /api/embed, then from
// /api/chat); documents and their summaries wait, none failed, and resume once the models are
// created.
func TestOllamaModelMissingThenCreated(t *testing.T) {
	if testing.Short() {
		t.Skip("real Ollama skipped in -short mode")
	}
	srv := ollamatest.Start(t, ollamatest.Options{})
	ctx := context.Background()
	r := startRealPipeline(t, srv, 2)
	r.upload(t, 6)
	r.waitFor(t, "documents deferred for the embedding model", time.Minute, func(ready, _ int) bool {
		if ready > 0 {
			t.Fatalf("%d documents ready without an embedding model", ready)
		}
		return r.deferred(jobDocument, ReasonModelMissing) >= 3
	})
	if err := ollamatest.CreateBaseModel(ctx, srv.Client(), ollamatest.EmbedModel); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "documents ready once the embedding model exists", 2*time.Minute, func(ready, enriched int) bool {
		if enriched > 0 {
			t.Fatalf("%d documents enriched without a chat model", enriched)
		}
		return ready == len(r.ids) && r.deferred(jobEnrich, ReasonModelMissing) >= 2
	})
	if err := ollamatest.CreateBaseModel(ctx, srv.Client(), ollamatest.ChatModel); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "documents enriched once the chat model exists", 2*time.Minute, func(_, enriched int) bool { return enriched == len(r.ids) })
}

// When the server's probe sees the dependency back, the workers stop waiting out a long backoff
// and the queue moves at once.
func TestDependencyBackResumesAtOnce(t *testing.T) {
	// One worker: with two, the second could claim a document after the first deferred and
	// embed it once the error is cleared, before any DependencyBack.
	cfg := Config{Workers: 1, OutageBackoff: time.Minute, OutageBackoffMax: time.Minute}
	e := newEnv(t, cfg)
	e.llm.SetEmbedErr(&url.Error{Op: "Post", URL: "http://127.0.0.1:1/api/embed", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}})
	e.start()
	var ids []string
	for i := range 3 {
		ids = append(ids, e.upload(fmt.Sprintf("d%d.txt", i), []byte(words(30, fmt.Sprintf("d%d-", i)))).ID)
	}
	deferred := e.p.m.deferred.WithLabelValues(jobDocument, DepOllama, ReasonUnreachable)
	waitFor(t, "a document deferred", func() bool { return testutil.ToFloat64(deferred) >= 1 })
	e.llm.SetEmbedErr(nil)
	e.p.DependencyBack(DepVector) // not what the workers wait for: they keep waiting
	time.Sleep(300 * time.Millisecond)
	if n := notFailed(t, e.st, ids); n != 0 {
		t.Fatalf("%d ready before Ollama was reported back", n)
	}
	start := time.Now()
	e.p.DependencyBack(DepOllama)
	waitFor(t, "every document ready", func() bool { return notFailed(t, e.st, ids) == len(ids) })
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("documents ready %s after Ollama was reported back; the backoff is a minute", took)
	}
}
