package ingest

import (
	"context"
	"fmt"
	"net/http"
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
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("embed chunks 0-3: %w", llm.ErrBusy), true},
		{fmt.Errorf("embed: %w", &llm.StatusError{Op: "embed", StatusCode: http.StatusServiceUnavailable}), true},
		{fmt.Errorf("embed: %w", &llm.StatusError{Op: "embed", StatusCode: http.StatusTooManyRequests}), true},
		{fmt.Errorf("embed: %w", &llm.StatusError{Op: "embed", StatusCode: http.StatusBadRequest}), false},
		{fmt.Errorf("embed: %w", &llm.StatusError{Op: "embed", StatusCode: http.StatusNotImplemented}), false},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{fmt.Errorf("upsert: %w", status.Error(codes.Unavailable, "connection refused")), true},
		{fmt.Errorf("upsert: %w", status.Error(codes.InvalidArgument, "Wrong input: Vector dimension error")), false},
		{fmt.Errorf("parse: %w", parse.ErrMalformed), false},
		{errNoChunks, false},
	}
	for _, tt := range tests {
		if got := Transient(tt.err); got != tt.want {
			t.Errorf("Transient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// A dependency outage does not fail documents: they wait and finish when it returns.
func TestOutageRetriesInsteadOfFailing(t *testing.T) {
	e := newEnv(t, Config{Workers: 1})
	e.llm.SetEmbedErr(fmt.Errorf("embed: %w", &llm.StatusError{Op: "embed", StatusCode: http.StatusServiceUnavailable}))
	e.start()
	d := e.upload("a.txt", []byte(words(100, "w")))
	time.Sleep(300 * time.Millisecond)
	if got, _ := e.st.Get(context.Background(), d.ID); got.Status == store.Failed {
		t.Fatalf("failed during an outage: %s", got.Error)
	}
	e.llm.SetEmbedErr(nil)
	// The pause after the first failure is 1 s.
	got := e.wait(d.ID, store.Ready)
	if got.Error != "" || len(e.vec.Chunks(d.ID)) == 0 {
		t.Fatalf("%+v", got)
	}
}

// Against the real Ollama: it is stopped mid-ingest and comes back; every document ends ready.
func TestOllamaStoppedMidIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("real Ollama skipped in -short mode")
	}
	srv := ollamatest.Start(t, ollamatest.Options{})
	ctx := context.Background()
	if err := ollamatest.CreateBaseModel(ctx, srv.Client(), ollamatest.EmbedModel); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vs, err := vector.NewMemory(t.TempDir(), serverconfig.Collection{Name: "documents", VectorSize: ollamatest.EmbedDim, Distance: "Cosine"})
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	lc := llm.New(llm.Options{BaseURL: srv.URL, EmbedConcurrency: 2, EmbedBatchSize: 8, BackgroundMax: 1, CallTimeout: 10 * time.Second,
		Retry: llm.RetryPolicy{MaxAttempts: 2, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}})
	p := New(Config{Workers: 2, EmbedModel: ollamatest.EmbedModel, Chunk: chunk.Options{Size: 40, Overlap: 8}, PollInterval: 20 * time.Millisecond},
		st, parse.New(parse.Options{}), lc, vs, nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	var ids []string
	for i := range 12 {
		u, err := st.NewUpload(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		u.Write([]byte(words(120, fmt.Sprintf("doc%d-", i))))
		d, err := st.Create(ctx, u, store.NewDocument{Name: fmt.Sprintf("d%d.txt", i), Type: "txt", Owner: "t"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	p.Notify()
	waitCount := func(status store.Status, n int, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			c := 0
			for _, id := range ids {
				if d, _ := st.Get(ctx, id); d.Status == status {
					c++
				}
				if d, _ := st.Get(ctx, id); d.Status == store.Failed {
					t.Fatalf("document %s failed: %s", id, d.Error)
				}
			}
			if c >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d documents %s after %s", c, n, status, timeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitCount(store.Ready, 2, 60*time.Second)
	srv.Stop()
	ready := 0
	for _, id := range ids {
		if d, _ := st.Get(ctx, id); d.Status == store.Ready {
			ready++
		}
	}
	if ready == len(ids) {
		t.Fatal("every document was ready before the outage: the test proves nothing")
	}
	time.Sleep(1500 * time.Millisecond) // documents in flight hit the outage
	srv.Restart()
	waitCount(store.Ready, len(ids), 120*time.Second)
	if retried := testutil.ToFloat64(p.m.docs.WithLabelValues("retried")); retried == 0 {
		t.Error("no document went through the retry path")
	}
	for _, id := range ids {
		n, err := vs.Count(ctx, vector.Filter{DocumentIDs: []string{id}})
		if err != nil || n == 0 {
			t.Fatalf("document %s has %d points (%v)", id, n, err)
		}
	}
}
