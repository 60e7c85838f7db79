package llm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPoolsAndLoaded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/ps" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"models":[{"name":"qwen3:8b","model":"qwen3:8b","size":5368709120,"size_vram":5368709120,
			"context_length":8192,"expires_at":"2030-01-01T00:00:00Z"}]}`))
	}))
	defer srv.Close()
	o := New(Options{BaseURL: srv.URL, NumParallel: 4, BackgroundMax: 3, EmbedConcurrency: 2, EmbedBackgroundMax: 1})
	release, err := o.chat.acquire(context.Background(), Interactive, true)
	if err != nil {
		t.Fatal(err)
	}
	hold := o.HoldBackground()
	pools := o.Pools()
	hold()
	release()
	if len(pools) != 2 || pools[0].Pool != "chat" || pools[0].Capacity != 4 || pools[0].BackgroundMax != 3 ||
		pools[0].InFlight.Interactive != 1 || pools[0].Holds != 1 || pools[1].Pool != "embed" || pools[1].Capacity != 2 {
		t.Fatalf("pools %+v", pools)
	}
	if p := New(Options{BaseURL: srv.URL}).Pools(); p[0].Capacity != 0 {
		t.Fatalf("unknown NumParallel: capacity %d, want 0 (unbounded)", p[0].Capacity)
	}
	models, err := o.Loaded(context.Background())
	if err != nil || len(models) != 1 || models[0].Name != "qwen3:8b" || models[0].SizeVRAM != 5<<30 || models[0].Context != 8192 {
		t.Fatalf("loaded %+v %v", models, err)
	}
	if _, err := New(Options{BaseURL: "http://127.0.0.1:1"}).Loaded(context.Background()); err == nil {
		t.Fatal("no error from a closed port")
	}
}
