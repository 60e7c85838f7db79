// Package scale tests the RAG server past one replica: several real rag-server processes
// sharing one PostgreSQL and one vector store.
package scale

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	pgtest "github.com/ragstack/rag-operator/internal/testbed/postgres"
	"github.com/ragstack/rag-operator/internal/testbed/qdrantdouble"
	"github.com/ragstack/rag-operator/internal/testbed/ragproc"
	"github.com/ragstack/rag-operator/internal/vector"
)

const (
	docs       = 100
	workers    = 2               // limits.maxConcurrentProcessing per replica
	lease      = 3 * time.Second // --store-lease
	collection = "docs"
)

var ctx = context.Background()

// TestReplicasShareOnePostgres: three rag-server processes on one PostgreSQL and one Qdrant
// ingest 100 documents uploaded through all of them, while one is killed with SIGKILL holding
// documents mid-ingest and another is restarted (SIGTERM, then started again). Every
// acknowledged upload ends ready, none is lost or stored twice, the dead replica's documents
// are taken over within its lease, and only documents that were interrupted are embedded more
// than once (counted as points upserted per document by the Qdrant double).
func TestReplicasShareOnePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server, starts PostgreSQL and Ollama")
	}
	began := time.Now()
	bin := filepath.Join(t.TempDir(), "rag-server")
	if err := ragproc.Build(ctx, bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built the server in %s", time.Since(began).Round(time.Second))
	pg := pgtest.Start(t)
	uri := pg.NewDatabase(t)
	uriFile := filepath.Join(t.TempDir(), "uri")
	os.WriteFile(uriFile, []byte(uri+"\n"), 0o600)
	db, err := pgxpool.New(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	qd := qdrantdouble.Start(t)
	coll := serverconfig.Collection{Name: collection, VectorSize: ollamatest.EmbedDim, Distance: "Cosine"}
	vs, err := vector.NewQdrant(ctx, vector.QdrantOptions{Addr: qd.Address(), Collection: coll, SkipCompatibilityCheck: true, CreateIfMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := vs.EnsureCollection(ctx); err != nil { // the operator's part
		t.Fatal(err)
	}
	vs.Close()
	ol := ollamatest.StartWithModels(t, ollamatest.Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_KEEP_ALIVE": "-1"}})

	cfg := serverconfig.Default()
	cfg.Listen = ""
	cfg.Ollama.URL, cfg.Ollama.KeepAlive = ol.URL, "-1"
	cfg.Qdrant.Address, cfg.Qdrant.Collection = qd.Address(), coll
	cfg.Models = serverconfig.Models{Chat: ollamatest.ChatModel, Embedding: ollamatest.EmbedModel, Summary: ollamatest.ChatModel, Tagging: ollamatest.ChatModel}
	cfg.Limits.MaxConcurrentProcessing, cfg.Limits.EmbedBatchSize = workers, 16
	cfg.Uploads.MinFreeBytes = 0 // a shared CI disk's free space is not under test here
	cfg.Database = serverconfig.Database{Driver: serverconfig.DriverPostgres, URIFile: uriFile}
	token := ragproc.NewToken()
	opts := func(i int) ragproc.Options {
		return ragproc.Options{Binary: bin, Dir: filepath.Join(t.TempDir(), fmt.Sprint("replica", i)), Config: cfg,
			Keys: []ragproc.Key{{Name: "admin", Token: token, Role: "admin"}}, Args: []string{"--enrich=false", "--store-lease=" + lease.String()}}
	}

	// Three replicas start together on an empty database: one migrates, the others wait for it.
	reps := make([]*replica, 3)
	var wg sync.WaitGroup
	for i := range reps {
		o := opts(i)
		os.MkdirAll(o.Dir, 0o755)
		reps[i] = &replica{t: t, opts: o}
		wg.Go(reps[i].start)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	defer func() {
		for _, r := range reps {
			r.proc.Stop()
			if t.Failed() {
				t.Logf("%s log:\n%s", r.opts.Dir, r.proc.LogTail())
			}
		}
	}()

	files := corpus(docs)
	var acked []string
	upload := func(to []*replica, names []string) {
		t.Helper()
		for i := 0; len(names) > 0; i++ {
			n := min(5, len(names))
			acked = append(acked, to[i%len(to)].upload(names[:n], files)...)
			names = names[n:]
		}
	}
	names := sortedNames(files)

	// Half the documents through all three; replica 0 dies (SIGKILL) as soon as it holds some.
	ingestStart := time.Now()
	upload(reps, names[:50])
	held := waitClaims(t, db, reps[0].id, time.Minute)
	reps[0].proc.Kill()
	killed := time.Now()
	heldIDs, err := claimedBy(db, reps[0].id) // frozen now: its holder is gone
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed replica 0 holding %d documents (%d seen before the kill)", len(heldIDs), held)
	takeover := make(chan time.Duration, 1) // until no document is claimed by the dead replica
	go func() {
		for time.Since(killed) < 2*time.Minute {
			if ids, err := claimedBy(db, reps[0].id); err == nil && len(ids) == 0 {
				takeover <- time.Since(killed)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// The rest through the two alive, replica 1 restarted in the middle.
	upload(reps[1:], names[50:70])
	stopping := time.Now()
	// A stop is graceful (its documents released) unless the server takes over 30 s, e.g. while
	// it still compiles the PDF engine on a loaded machine; then ragproc kills it.
	err = reps[1].proc.Stop()
	t.Logf("restarting replica 1: stopped in %s (%v)", time.Since(stopping).Round(100*time.Millisecond), err)
	reps[1].start()
	upload(reps[1:], names[70:])

	// Taken over once the lease expired and a worker was free (busy ones finish their document
	// first; an idle one looks every 2 s).
	select {
	case d := <-takeover:
		if d > lease+30*time.Second {
			t.Fatalf("the dead replica's documents were taken over %s after the kill (lease %s)", d, lease)
		}
		t.Logf("the dead replica's documents were taken over %s after the kill (lease %s)", d.Round(100*time.Millisecond), lease)
	case <-time.After(time.Until(killed.Add(2 * time.Minute))):
		t.Fatalf("documents of the dead replica still claimed by it %s after the kill (lease %s)", time.Since(killed), lease)
	}

	rows := waitSettled(t, db, docs, 5*time.Minute)
	t.Logf("%d documents uploaded and settled in %s", docs, time.Since(ingestStart).Round(time.Second))
	if len(acked) != docs {
		t.Fatalf("%d uploads acknowledged of %d", len(acked), docs)
	}
	byID := map[string]row{}
	shas := map[string]bool{}
	for _, r := range rows {
		byID[r.id] = r
		shas[r.sha] = true
	}
	if len(rows) != docs || len(shas) != docs {
		t.Fatalf("%d rows with %d distinct contents, want %d of each", len(rows), len(shas), docs)
	}
	upserted := qd.UpsertedByDocument(collection)
	reprocessed, points := 0, 0
	for _, id := range acked {
		r, ok := byID[id]
		switch {
		case !ok:
			t.Fatalf("acknowledged document %s is lost", id)
		case r.status != "ready":
			t.Fatalf("document %s ended %s (%q)", id, r.status, r.err)
		case r.chunks < 1:
			t.Fatalf("document %s is ready with %d chunks", id, r.chunks)
		case r.attempts == 1 && upserted[id] != r.chunks:
			t.Fatalf("document %s, claimed once, had %d points upserted for %d chunks", id, upserted[id], r.chunks)
		case upserted[id] < r.chunks || upserted[id] > r.attempts*r.chunks:
			t.Fatalf("document %s: %d points upserted for %d chunks in %d claims", id, upserted[id], r.chunks, r.attempts)
		}
		if r.attempts > 1 {
			reprocessed++
		}
		points += r.chunks
	}
	for _, id := range heldIDs {
		if byID[id].attempts < 2 {
			t.Errorf("document %s held by the dead replica was never claimed again", id)
		}
	}
	// Only work in flight at the kill and at the restart is done again.
	if reprocessed > 2*workers {
		t.Fatalf("%d documents claimed more than once; at most %d were interrupted", reprocessed, 2*workers)
	}
	if n := qd.Points(collection); n != points {
		t.Fatalf("%d points in the collection, the documents have %d chunks", n, points)
	}
	t.Logf("%d documents ready, %d chunks; %d claimed again after an interruption", len(rows), points, reprocessed)
}

type replica struct {
	t    *testing.T
	opts ragproc.Options
	proc *ragproc.Proc
	id   string // its claims in the documents table
}

var replicaID = regexp.MustCompile(`"msg":"State store is PostgreSQL"[^\n]*"replica":"([^"]+)"`)

func (r *replica) start() {
	p, err := ragproc.Start(r.opts)
	if err != nil {
		r.t.Error(err)
		return
	}
	r.proc = p
	b, _ := os.ReadFile(p.LogPath)
	m := replicaID.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		r.t.Errorf("no replica id in the log:\n%s", p.LogTail())
		return
	}
	r.id = string(m[len(m)-1][1])
}

// upload sends names in one multipart request and returns the acknowledged ids.
func (r *replica) upload(names []string, files map[string][]byte) []string {
	r.t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, n := range names {
		w, _ := mw.CreateFormFile("file", n)
		w.Write(files[n])
	}
	mw.Close()
	req, _ := http.NewRequest("POST", r.proc.URL+"/api/documents", &b)
	req.Header.Set("Authorization", "Bearer "+r.opts.Keys[0].Token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		IDs   []string          `json:"ids"`
		Files []json.RawMessage `json:"files"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusAccepted || len(out.IDs) != len(names) {
		r.t.Fatalf("upload to %s: %d, %d ids for %d files: %s", r.proc.URL, resp.StatusCode, len(out.IDs), len(names), out.Files)
	}
	return out.IDs
}

// corpus is n small text documents of one chunk each, each with its own words.
func corpus(n int) map[string][]byte {
	out := map[string][]byte{}
	for i := range n {
		var b strings.Builder
		for w := range 30 {
			fmt.Fprintf(&b, "doc%d word%d ", i, w%89)
			if w%12 == 11 {
				b.WriteString("end. ")
			}
		}
		out[fmt.Sprintf("doc%03d.txt", i)] = []byte(b.String())
	}
	return out
}

func sortedNames(m map[string][]byte) []string {
	var out []string
	for i := range len(m) {
		out = append(out, fmt.Sprintf("doc%03d.txt", i))
	}
	return out
}

type row struct {
	id, sha, status, err string
	chunks, attempts     int
}

func claimedBy(db *pgxpool.Pool, holder string) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT id FROM documents WHERE status='processing' AND claimed_by=$1`, holder)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// waitClaims waits until holder has documents claimed and returns how many.
func waitClaims(t *testing.T, db *pgxpool.Pool, holder string, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ids, err := claimedBy(db, holder)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) > 0 {
			return len(ids)
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s claimed nothing in %s", holder, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSettled waits until want documents exist and none is pending or processing.
func waitSettled(t *testing.T, db *pgxpool.Pool, want int, timeout time.Duration) []row {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rs, err := db.Query(ctx, `SELECT id, sha256, status, error, chunks, attempts FROM documents`)
		if err != nil {
			t.Fatal(err)
		}
		var out []row
		settled := 0
		for rs.Next() {
			var r row
			if err := rs.Scan(&r.id, &r.sha, &r.status, &r.err, &r.chunks, &r.attempts); err != nil {
				t.Fatal(err)
			}
			if r.status == "ready" || r.status == "failed" {
				settled++
			}
			out = append(out, r)
		}
		rs.Close()
		if settled == len(out) && len(out) >= want {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d documents settled after %s", settled, len(out), timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
