package ingest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ragstack/rag-operator/internal/chunk"
	"github.com/ragstack/rag-operator/internal/ingest/fakes"
	"github.com/ragstack/rag-operator/internal/parse"
	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/store"
	"github.com/ragstack/rag-operator/internal/testbed/qdrantdouble"
	"github.com/ragstack/rag-operator/internal/vector"
)

// The startup reconciliation against both real vector stores: points of documents the store
// never saw are deleted, ready documents whose points are gone (all or some) are queued again
// and come back ready with every point, and nothing else is touched.
func TestReconcileVectorStore(t *testing.T) {
	coll := serverconfig.Collection{Name: "documents", VectorSize: 8, Distance: "Cosine"}
	stores := map[string]func(t *testing.T) vector.Store{
		"memory": func(t *testing.T) vector.Store {
			m, err := vector.NewMemory(t.TempDir(), coll)
			if err != nil {
				t.Fatal(err)
			}
			return m
		},
		"qdrant": func(t *testing.T) vector.Store {
			srv := qdrantdouble.Start(t)
			host, port := srv.Addr()
			q, err := vector.NewQdrant(context.Background(), vector.QdrantOptions{
				Addr: net.JoinHostPort(host, strconv.Itoa(port)), Collection: coll,
				SkipCompatibilityCheck: true, CreateIfMissing: true, UpsertBatch: 16,
			})
			if err != nil {
				t.Fatal(err)
			}
			return q
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testReconcile(t, mk(t))
		})
	}
}

func testReconcile(t *testing.T, vs vector.Store) {
	ctx := context.Background()
	t.Cleanup(func() { vs.Close() })
	if err := vs.EnsureCollection(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lc := &fakes.LLM{Dim: 8}
	reg := prometheus.NewRegistry()
	p := New(Config{
		Workers: 2, Enrich: true, EmbedModel: "embed", SummaryModel: "sum", TaggingModel: "tag",
		Chunk: chunk.Options{Size: 40, Overlap: 8}, UpsertBatch: 4, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, st, parse.New(parse.Options{}), lc, vs, NewMetrics(reg))
	run := func() (stop func()) {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { p.Run(rctx); close(done) }()
		return func() { cancel(); <-done }
	}
	upload := func(name, text string) string {
		u, err := st.NewUpload(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		u.Write([]byte(text))
		d, err := st.Create(ctx, u, store.NewDocument{Name: name, Type: "txt"})
		if err != nil {
			t.Fatal(err)
		}
		return d.ID
	}
	points := func(id string) int {
		n, err := vs.Count(ctx, vector.Filter{DocumentIDs: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	settled := func(ids ...string) map[string]store.Document {
		out := map[string]store.Document{}
		deadline := time.Now().Add(20 * time.Second)
		for _, id := range ids {
			for {
				d, err := st.Get(ctx, id)
				if err == nil && (d.Status == store.Failed || d.Status == store.Ready && d.Enrich == store.EnrichDone) {
					out[id] = d
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("document %s not settled: %+v", id, d)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		return out
	}

	keep := upload("keep.txt", words(120, "k"))
	gone := upload("gone.txt", words(120, "g"))
	part := upload("part.txt", words(120, "p"))
	failed := upload("empty.txt", " \n ")
	stop := run()
	before := settled(keep, gone, part, failed)
	stop()
	if before[failed].Status != store.Failed || before[keep].Chunks < 2 || before[part].Chunks < 2 {
		t.Fatalf("setup: %+v", before)
	}
	chats := len(lc.ChatRequests())

	// The vector store drifts from the store: one document loses every point, one its tail,
	// and two documents the store never saw have points (one across several scroll pages).
	if err := vs.DeleteDocument(ctx, gone, -1); err != nil {
		t.Fatal(err)
	}
	if err := vs.DeleteDocument(ctx, part, 1); err != nil {
		t.Fatal(err)
	}
	strangers := map[string]int{uuid.NewString(): 3, uuid.NewString(): 2*reconcilePage + 5}
	for id, n := range strangers {
		var cs []vector.Chunk
		for i := range n {
			cs = append(cs, vector.Chunk{DocumentID: id, Name: "stray.txt", ChunkIndex: i, Text: "stray", Vector: []float32{1, 2, 3, 4, 5, 6, 7, float32(i)}})
		}
		if err := vs.Upsert(ctx, cs); err != nil {
			t.Fatal(err)
		}
	}

	r, err := p.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantMissing := before[gone].Chunks + before[part].Chunks - 1
	if r.Swept != 2 || r.SweptPoints != 3+2*reconcilePage+5 || r.Requeued != 2 || r.Checked != 3 || r.MissingPoints != wantMissing {
		t.Errorf("report %+v; want 2 swept with %d points, 3 checked, 2 requeued missing %d points", r, 3+2*reconcilePage+5, wantMissing)
	}
	for id := range strangers {
		if n := points(id); n != 0 {
			t.Errorf("unknown document %s keeps %d points", id, n)
		}
	}
	for _, id := range []string{gone, part} {
		d, _ := st.Get(ctx, id)
		if d.Status != store.Pending || d.Generation != before[id].Generation+1 || d.Summary == "" || d.Enrich != store.EnrichDone {
			t.Errorf("%s after reconcile: %s gen %d (was %d), enrich %s; want pending, next generation, summary kept",
				before[id].Name, d.Status, d.Generation, before[id].Generation, d.Enrich)
		}
	}
	if d, _ := st.Get(ctx, keep); d.Status != store.Ready || d.Generation != before[keep].Generation || points(keep) != d.Chunks {
		t.Errorf("intact document changed: %+v, %d points", d, points(keep))
	}
	if got := testutil.ToFloat64(p.m.reconciled.WithLabelValues("swept")); got != 2 {
		t.Errorf("rag_reconcile_documents_total{action=swept} = %v", got)
	}
	if got := testutil.ToFloat64(p.m.reconciled.WithLabelValues("requeued")); got != 2 {
		t.Errorf("rag_reconcile_documents_total{action=requeued} = %v", got)
	}

	// A second pass finds nothing to do: the requeued documents are pending, not ready.
	if r2, err := p.Reconcile(ctx); err != nil || r2.Swept != 0 || r2.Requeued != 0 || r2.Checked != 1 {
		t.Errorf("second pass %+v, %v; want nothing swept or requeued, 1 checked", r2, err)
	}

	// The workers bring them back with every point; summaries are not asked for again.
	stop = run()
	after := settled(gone, part)
	stop()
	for _, id := range []string{gone, part} {
		if after[id].Status != store.Ready || after[id].Chunks != before[id].Chunks || points(id) != before[id].Chunks {
			t.Errorf("%s: %s with %d points, want ready with %d", before[id].Name, after[id].Status, points(id), before[id].Chunks)
		}
	}
	if n := len(lc.ChatRequests()); n != chats {
		t.Errorf("%d summary/tag calls after the requeue, want none", n-chats)
	}
	if r3, err := p.Reconcile(ctx); err != nil || r3.Swept+r3.Requeued != 0 || r3.Checked != 3 {
		t.Errorf("pass after recovery %+v, %v", r3, err)
	}
}
