package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/chunk"
	"github.com/ragstack/rag-operator/internal/ingest/fakes"
	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/parse"
	"github.com/ragstack/rag-operator/internal/parse/testdocs"
	"github.com/ragstack/rag-operator/internal/store"
	"github.com/ragstack/rag-operator/internal/vector"
)

type env struct {
	t      *testing.T
	st     *store.SQLite
	llm    *fakes.LLM
	vec    *fakes.Vector
	p      *Pipeline
	cancel context.CancelFunc
	done   chan struct{}
	dir    string
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, llm: &fakes.LLM{Dim: 8}, vec: fakes.NewVector(), dir: dir}
	if cfg.Chunk.Size == 0 {
		cfg.Chunk = chunk.Options{Size: 40, Overlap: 8}
	}
	cfg.EmbedModel, cfg.SummaryModel, cfg.TaggingModel = "embed", "sum", "tag"
	cfg.PollInterval = 20 * time.Millisecond
	cfg.UpsertBatch = 4
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	e.p = New(cfg, st, parse.New(parse.Options{}), e.llm, e.vec, nil)
	t.Cleanup(func() {
		e.stop()
		st.Close()
	})
	return e
}

func (e *env) start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go func() { e.p.Run(ctx); close(e.done) }()
}

func (e *env) stop() {
	if e.cancel != nil {
		e.cancel()
		<-e.done
		e.cancel = nil
	}
}

func (e *env) upload(name string, data []byte, tags ...string) store.Document {
	e.t.Helper()
	u, err := e.st.NewUpload(1 << 24)
	if err != nil {
		e.t.Fatal(err)
	}
	u.Write(data)
	typ, _ := parse.TypeOf(name)
	d, err := e.st.Create(context.Background(), u, store.NewDocument{Name: name, Type: string(typ), Tags: tags, Owner: "alice"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.p.Notify()
	return d
}

func (e *env) wait(id string, want store.Status) store.Document {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := e.st.Get(context.Background(), id)
		if err == nil && d.Status == want {
			return d
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("document %s: status %s (%s), want %s", id, d.Status, d.Error, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func words(n int, prefix string) string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return strings.Join(w, " ")
}

func TestIngestToReady(t *testing.T) {
	e := newEnv(t, Config{Workers: 2})
	e.start()
	txt := e.upload("a.txt", []byte(words(200, "t")), "hr")
	md := e.upload("b.md", []byte("# Title\n"+words(50, "m")+"\n## Part\n"+words(50, "p")))
	docx := e.upload("c.docx", testdocs.DOCX(testdocs.Paragraph{Style: "Heading1", Text: "Head"}, testdocs.Paragraph{Text: words(30, "d")}))
	for _, d := range []store.Document{txt, md, docx} {
		got := e.wait(d.ID, store.Ready)
		pts := e.vec.Chunks(d.ID)
		if got.Chunks == 0 || len(pts) != got.Chunks || !got.TagsSynced {
			t.Fatalf("%s: %d chunks, %d points, synced %v", d.Name, got.Chunks, len(pts), got.TagsSynced)
		}
		for i, p := range pts {
			if p.ChunkIndex != i || p.Name != d.Name || len(p.Vector) != 8 || !slices.Equal(p.Tags, d.Tags) {
				t.Fatalf("%s point %d: %+v", d.Name, i, p)
			}
		}
	}
	if pts := e.vec.Chunks(md.ID); pts[0].Section != "Title" || pts[len(pts)-1].Section != "Part" {
		t.Fatalf("sections %q … %q", pts[0].Section, pts[len(pts)-1].Section)
	}
	for _, l := range e.llm.Lanes {
		if l != llm.Background {
			t.Fatal("ingest used the interactive lane")
		}
	}
}

func TestConcurrencyBound(t *testing.T) {
	e := newEnv(t, Config{Workers: 2})
	gate := make(chan struct{})
	e.llm.SetGate(gate)
	e.start()
	var ids []string
	for i := 0; i < 6; i++ {
		ids = append(ids, e.upload(fmt.Sprintf("d%d.txt", i), []byte(words(20, fmt.Sprintf("x%d_", i)))).ID)
	}
	time.Sleep(100 * time.Millisecond)
	counts, _ := e.st.Counts(context.Background())
	if counts[store.Processing] != 2 || counts[store.Pending] != 4 {
		t.Fatalf("counts %v", counts)
	}
	go func() {
		for {
			select {
			case gate <- struct{}{}:
			case <-time.After(5 * time.Second):
				return
			}
		}
	}()
	for _, id := range ids {
		e.wait(id, store.Ready)
	}
	if _, maxIn, _ := e.llm.Stats(); maxIn > 2 {
		t.Fatalf("%d documents embedding at once", maxIn)
	}
}

func TestFailureRecordedWithoutPoints(t *testing.T) {
	e := newEnv(t, Config{Workers: 1})
	e.vec.SetErrors(errors.New("qdrant down"), nil)
	e.start()
	d := e.upload("a.txt", []byte(words(100, "w")))
	got := e.wait(d.ID, store.Failed)
	if !strings.Contains(got.Error, "qdrant down") || len(e.vec.Chunks(d.ID)) != 0 {
		t.Fatalf("error %q points %d", got.Error, len(e.vec.Chunks(d.ID)))
	}
	// Parse failures fail with a reason too.
	bad := e.upload("b.docx", []byte("PK\x03\x04 broken zip"))
	if got := e.wait(bad.ID, store.Failed); !strings.Contains(got.Error, "parse") {
		t.Fatalf("error %q", got.Error)
	}
	// Reprocess after the store recovers.
	e.vec.SetErrors(nil, nil)
	if _, err := e.p.Reprocess(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.wait(d.ID, store.Ready); got.Error != "" || got.Generation != 1 {
		t.Fatalf("after reprocess %+v", got)
	}
}

func TestReprocessKeepsPointsAndTrimsTail(t *testing.T) {
	e := newEnv(t, Config{Workers: 1})
	e.start()
	d := e.upload("a.txt", []byte(words(200, "w")))
	ready := e.wait(d.ID, store.Ready)
	// An older generation had more chunks than the new one will.
	extra := []vector.Chunk{{DocumentID: d.ID, ChunkIndex: ready.Chunks, Text: "old"}, {DocumentID: d.ID, ChunkIndex: ready.Chunks + 5, Text: "old"}}
	e.vec.Upsert(context.Background(), extra)
	if _, err := e.p.Reprocess(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	again := e.wait(d.ID, store.Ready)
	if again.Generation != ready.Generation+1 || len(e.vec.Chunks(d.ID)) != ready.Chunks {
		t.Fatalf("gen %d points %d want %d", again.Generation, len(e.vec.Chunks(d.ID)), ready.Chunks)
	}
	if e.vec.EmptyWindows != 0 {
		t.Fatal("the document was without points during reprocess")
	}
}

func TestDeleteWhileProcessing(t *testing.T) {
	e := newEnv(t, Config{Workers: 1})
	gate := make(chan struct{})
	e.llm.SetGate(gate)
	e.start()
	d := e.upload("a.txt", []byte(words(200, "w")))
	gate <- struct{}{} // first batch embedded and upserted
	e.wait(d.ID, store.Processing)
	deadline := time.Now().Add(5 * time.Second)
	for len(e.vec.Chunks(d.ID)) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := e.p.Delete(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Get(context.Background(), d.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("row: %v", err)
	}
	if _, err := os.Stat(e.st.OriginalPath(d.SHA256)); !os.IsNotExist(err) {
		t.Fatalf("file: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(e.vec.Documents()); n != 0 {
		t.Fatalf("%d documents have points after delete", n)
	}
}

func TestDeleteRetriedByRepair(t *testing.T) {
	e := newEnv(t, Config{Workers: 1})
	e.start()
	d := e.upload("a.txt", []byte(words(50, "w")))
	e.wait(d.ID, store.Ready)
	e.stop()
	// The process died after marking the document deleting.
	e.st.MarkDeleting(context.Background(), d.ID)
	e.p.Repair(context.Background())
	if _, err := e.st.Get(context.Background(), d.ID); !errors.Is(err, store.ErrNotFound) || len(e.vec.Documents()) != 0 {
		t.Fatalf("repair left row (%v) or points (%v)", err, e.vec.Documents())
	}
}

func TestShutdownReleasesAndResumes(t *testing.T) {
	e := newEnv(t, Config{Workers: 1})
	gate := make(chan struct{})
	e.llm.SetGate(gate)
	e.start()
	d := e.upload("a.txt", []byte(words(100, "w")))
	e.wait(d.ID, store.Processing)
	e.stop()
	if got, _ := e.st.Get(context.Background(), d.ID); got.Status != store.Pending {
		t.Fatalf("after shutdown: %s", got.Status)
	}
	e.llm.SetGate(nil)
	e.start()
	e.wait(d.ID, store.Ready)
}

func TestEnrichment(t *testing.T) {
	e := newEnv(t, Config{Workers: 1, Enrich: true})
	e.start()
	d := e.upload("a.txt", []byte(words(50, "w")))
	e.wait(d.ID, store.Ready)
	deadline := time.Now().Add(5 * time.Second)
	var got store.Document
	for time.Now().Before(deadline) {
		got, _ = e.st.Get(context.Background(), d.ID)
		if got.Enrich == store.EnrichDone {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got.Enrich != store.EnrichDone || got.Summary == "" || !slices.Equal(got.AutoTags, []string{"alpha", "beta"}) {
		t.Fatalf("enriched %+v", got)
	}
	// Summary and tags ask a thinking model not to think: its reasoning would use up their
	// token budgets and leave them empty.
	reqs := e.llm.ChatRequests()
	if len(reqs) != 2 {
		t.Fatalf("%d chat calls for one document, want summary and tags", len(reqs))
	}
	for _, r := range reqs {
		if r.Think == nil || *r.Think || r.MaxTokens <= 0 {
			t.Errorf("%s call: think %v, max tokens %d; want thinking off and a budget", r.Model, r.Think, r.MaxTokens)
		}
	}
	// A failing model is recorded and the document stays ready.
	e.llm.SetChatErr(errors.New("no background slot"))
	d2 := e.upload("b.txt", []byte(words(50, "v")))
	e.wait(d2.ID, store.Ready)
	deadline = time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		got, _ = e.st.Get(context.Background(), d2.ID)
		if got.Enrich == store.EnrichFailed {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got.Status != store.Ready || got.Enrich != store.EnrichFailed || !strings.Contains(got.EnrichErr, "no background slot") {
		t.Fatalf("failed enrichment %+v", got)
	}
}

func TestSetTags(t *testing.T) {
	e := newEnv(t, Config{Workers: 1})
	e.start()
	d := e.upload("a.txt", []byte(words(50, "w")), "hr")
	e.wait(d.ID, store.Ready)
	got, err := e.p.SetTags(context.Background(), d.ID, []string{"legal"})
	if err != nil || !got.TagsSynced {
		t.Fatalf("set tags %+v %v", got, err)
	}
	if n, _ := e.vec.Count(context.Background(), vector.Filter{AnyTags: []string{"legal"}}); n != got.Chunks {
		t.Fatalf("%d points tagged legal", n)
	}
	calls, _, _ := e.llm.Stats()
	// The vector store is down for the next change: it is retried by Repair, not re-embedded.
	e.vec.SetErrors(nil, errors.New("unavailable"))
	got, _ = e.p.SetTags(context.Background(), d.ID, []string{"finance"})
	if got.TagsSynced {
		t.Fatal("synced despite failure")
	}
	e.vec.SetErrors(nil, nil)
	e.p.Repair(context.Background())
	if n, _ := e.vec.Count(context.Background(), vector.Filter{AnyTags: []string{"finance"}}); n != got.Chunks {
		t.Fatalf("%d points tagged finance after repair", n)
	}
	if c, _, _ := e.llm.Stats(); c != calls {
		t.Fatal("tag update re-embedded")
	}
}

func TestReprocessQueueBound(t *testing.T) {
	e := newEnv(t, Config{Workers: 1, MaxQueued: 1})
	e.start()
	d := e.upload("a.txt", []byte(words(50, "w")))
	e.wait(d.ID, store.Ready)
	e.stop()
	e.upload("b.txt", []byte(words(50, "v"))) // fills the queue (no workers run)
	if _, err := e.p.Reprocess(context.Background(), d.ID); !errors.Is(err, store.ErrQueueFull) {
		t.Fatalf("reprocess with a full queue: %v", err)
	}
}

func TestParseTags(t *testing.T) {
	cases := map[string][]string{
		`["Finance", "Q3 Report!", "finance"]`:      {"finance", "q3 report"},
		"<think>hmm</think>\nbudget, hr;  planning": {"budget", "hr", "planning"},
		"":                      nil,
		`[1, 2]`:                {"1", "2"},
		strings.Repeat("x", 50): {strings.Repeat("x", 32)},
	}
	for in, want := range cases {
		if got := ParseTags(in); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("ParseTags(%q) = %q, want %q", in, got, want)
		}
	}
	var many []string
	for i := 0; i < 20; i++ {
		many = append(many, fmt.Sprintf("t%d", i))
	}
	if got := ParseTags(strings.Join(many, ",")); len(got) != maxAutoTags {
		t.Errorf("%d tags", len(got))
	}
}

// TestDeletedByAnotherReplicaLeavesNoPoints: another replica sharing the store deletes a
// document (points, then row) while this one is embedding it; the points this job upserts
// afterwards are removed when its result turns out stale, so no search finds a deleted document.
func TestDeletedByAnotherReplicaLeavesNoPoints(t *testing.T) {
	e := newEnv(t, Config{Workers: 1})
	gate := make(chan struct{})
	e.llm.SetGate(gate)
	e.start()
	d := e.upload("a.txt", []byte(words(30, "w")))
	e.wait(d.ID, store.Processing)
	ctx := context.Background()
	// The other replica's Delete: it cannot cancel this process's job.
	if _, err := e.st.MarkDeleting(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	e.vec.DeleteDocument(ctx, d.ID, -1)
	if err := e.st.Remove(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	close(gate)
	deadline := time.Now().Add(10 * time.Second)
	for e.vec.Upserts() == 0 || len(e.vec.Chunks(d.ID)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d upserts, %d points left of the deleted document", e.vec.Upserts(), len(e.vec.Chunks(d.ID)))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
