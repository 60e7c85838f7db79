package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/testbed/qdrantdouble"
	"github.com/ragstack/rag-operator/internal/vector"
)

// A server started on a vector store holding points of documents its store never saw (a
// re-created appliance meeting an old Qdrant volume) deletes them in the background, says so in
// its metrics and log, and is ready meanwhile. Ollama is not needed for that: its URL goes
// nowhere. Both vector stores.
func TestStartupSweepsUnknownPoints(t *testing.T) {
	for _, backend := range []string{"memory", "qdrant"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			cfg := testConfig(t.TempDir(), "http://127.0.0.1:1")
			var vs vector.Store
			var err error
			if backend == "qdrant" {
				srv := qdrantdouble.Start(t)
				host, port := srv.Addr()
				cfg.Qdrant.Address = net.JoinHostPort(host, strconv.Itoa(port))
				vs, err = vector.NewQdrant(ctx, vector.QdrantOptions{Addr: cfg.Qdrant.Address, Collection: cfg.Qdrant.Collection,
					SkipCompatibilityCheck: true, CreateIfMissing: true})
			} else {
				vs, err = vector.NewMemory(filepath.Join(cfg.DataDir, "vectors"), cfg.Qdrant.Collection)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := vs.EnsureCollection(ctx); err != nil {
				t.Fatal(err)
			}
			vec := make([]float32, ollamatest.EmbedDim)
			vec[0] = 1
			var stray []vector.Chunk
			for i := range 5 {
				stray = append(stray, vector.Chunk{DocumentID: "4b1d0c56-0000-4000-8000-00000000000" + strconv.Itoa(i%2), ChunkIndex: i, Text: "old", Vector: vec})
			}
			if err := vs.Upsert(ctx, stray); err != nil {
				t.Fatal(err)
			}
			if backend == "memory" {
				vs.Close() // one process per directory: the server opens it next
			} else {
				defer vs.Close()
			}

			keys := filepath.Join(t.TempDir(), "keys.json")
			os.WriteFile(keys, []byte(`[{"name":"admin","token":"`+adminToken+`","role":"admin"}]`), 0o600)
			srv := startServer(t, cfg, keys, false)
			defer srv.stop(t)
			count := func() int {
				v := vs
				if backend == "memory" {
					v = srv.app.vec
				}
				n, err := v.Count(ctx, vector.Filter{})
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			deadline := time.Now().Add(30 * time.Second)
			for count() != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%d unknown points left after 30s", count())
				}
				time.Sleep(50 * time.Millisecond)
			}
			if code := request(t, "GET", srv.url+"/readyz", nil, "", nil); code != 200 {
				t.Errorf("readyz %d", code)
			}
			// /metrics can take a while on a busy machine: it waits for the PDF engine's compile.
			deadline = time.Now().Add(3 * time.Minute)
			for {
				m := getBody(t, srv.metricsURL+"/metrics")
				if strings.Contains(m, "rag_reconcile_done 1") {
					if !strings.Contains(m, `rag_reconcile_documents_total{action="swept"} 2`) ||
						!strings.Contains(m, "rag_reconcile_swept_points_total 5") ||
						!strings.Contains(m, `rag_reconcile_documents_total{action="requeued"} 0`) {
						t.Fatalf("reconcile metrics:\n%s", grepLines(m, "rag_reconcile"))
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("reconciliation not reported:\n%s", grepLines(m, "rag_reconcile"))
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
