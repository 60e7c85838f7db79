package main

// The scale phase (issue 12): the same corpus ingested and the same questions asked on the same
// Ollama by one RAG server on SQLite (the default), one on PostgreSQL, and three replicas
// sharing one PostgreSQL and one Qdrant double, the client spreading uploads and questions
// round-robin over the replicas. Figures are ratios to the SQLite run measured minutes before;
// every run also checks that each acknowledged document ended ready exactly once (documents
// listed by every replica, points in the vector store, upserts per document).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/testbed/postgres"
)

// Phases selectable with -phases.
const (
	phaseIngest = "ingest" // the strategies and ours+enrich, per NUM_PARALLEL
	phaseScale  = "scale"  // replicas on PostgreSQL versus one on SQLite
)

// scaleSetup is one run of the scale phase.
type scaleSetup struct {
	Name     string `json:"name"`
	Driver   string `json:"driver"` // serverconfig.DriverEmbedded or DriverPostgres
	Replicas int    `json:"replicas"`
}

// scaleSetups are the runs, the baseline first: the ratios divide by it.
var scaleSetups = []scaleSetup{
	{Name: "sqlite-1", Driver: serverconfig.DriverEmbedded, Replicas: 1},
	{Name: "postgres-1", Driver: serverconfig.DriverPostgres, Replicas: 1},
	{Name: "postgres-3", Driver: serverconfig.DriverPostgres, Replicas: 3},
}

// scaleRun is what one setup measured.
type scaleRun struct {
	scaleSetup
	Docs         int     `json:"docs"`
	Accepted     int     `json:"accepted"`
	Ready        int     `json:"ready"`
	Failed       int     `json:"failed"`
	Unfinished   int     `json:"unfinished"`
	Chunks       int     `json:"chunks"`  // sum of the ready documents' chunk counts
	Seconds      float64 `json:"seconds"` // first upload to the last document ready
	DocsPerMin   float64 `json:"docsPerMin"`
	ChunksPerSec float64 `json:"chunksPerSec"`

	ChatIngest latencyStats `json:"chatIngest"` // one question every -chat-interval during the ingest
	ChatIdle   latencyStats `json:"chatIdle"`   // -scale-questions one after another, after it

	// Per replica: uploads accepted, documents it ingested (its own metrics), questions it answered.
	UploadsByReplica   []int `json:"uploadsByReplica"`
	IngestedByReplica  []int `json:"ingestedByReplica"`
	QuestionsByReplica []int `json:"questionsByReplica"`

	// CPUSeconds is every replica's user + system CPU time during the ingest; PeakRSSMiB their
	// peak RSS added up. PostgreSQL's own processes are not in either.
	CPUSeconds float64    `json:"cpuSecondsIngest"`
	PeakRSSMiB float64    `json:"peakRSSMiB"`
	LoadAvg    [2]float64 `json:"loadAvg1m"`

	Check integrity `json:"check"`
	Notes []string  `json:"notes,omitempty"`
}

// integrity is the after-ingest count: nothing acknowledged lost, nothing processed twice.
type integrity struct {
	Listed          int   `json:"listed"`          // documents the first replica lists
	ListedByReplica []int `json:"listedByReplica"` // every replica must list them all
	DistinctIDs     int   `json:"distinctIds"`
	DistinctNames   int   `json:"distinctNames"`
	Missing         int   `json:"missing"`  // acknowledged ids not listed
	NotReady        int   `json:"notReady"` // acknowledged ids listed but not ready
	Points          int   `json:"points"`   // points in the collection
	ChunksListed    int   `json:"chunksListed"`
	Upserted        int   `json:"upserted"` // points written by upserts, all documents
	// UpsertedTwice counts documents whose points were written more than once (processed
	// twice); Orphans documents with points but not listed.
	UpsertedTwice int      `json:"upsertedTwice"`
	Orphans       int      `json:"orphans"`
	Problems      []string `json:"problems,omitempty"`
}

// scaleRatio is one setup against the SQLite baseline.
type scaleRatio struct {
	Name       string  `json:"name"`
	DocsPerMin float64 `json:"docsPerMin"`    // setup / baseline: above 1 is faster
	TTFTP95    float64 `json:"ttftP95Idle"`   // setup / baseline: above 1 is slower
	TTFTP95Ing float64 `json:"ttftP95Ingest"` // the same during the ingest
	CPU        float64 `json:"cpuSeconds"`    // app CPU during the ingest, setup / baseline
}

// scaleResult is the phase in bench.json.
type scaleResult struct {
	NumParallel   int          `json:"numParallel"`
	Docs          int          `json:"docs"`
	Questions     int          `json:"questions"`
	UploadWorkers int          `json:"uploadWorkers"`
	Postgres      string       `json:"postgres"`
	Runs          []*scaleRun  `json:"runs"`
	Ratios        []scaleRatio `json:"ratios"`
	Notes         []string     `json:"notes"`
	Error         string       `json:"error,omitempty"` // why it was not measured
}

// ratio is a/b, NaN when either is missing (no samples, nothing done).
func ratio(a, b float64) float64 {
	if !(a > 0) || !(b > 0) || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return math.NaN()
	}
	return a / b
}

// scaleRatios compares every run after the first with the first.
func scaleRatios(runs []*scaleRun) []scaleRatio {
	if len(runs) < 2 {
		return nil
	}
	base := runs[0]
	out := make([]scaleRatio, 0, len(runs)-1)
	for _, r := range runs[1:] {
		out = append(out, scaleRatio{Name: r.Name,
			DocsPerMin: ratio(r.DocsPerMin, base.DocsPerMin),
			TTFTP95:    ratio(r.ChatIdle.P95, base.ChatIdle.P95),
			TTFTP95Ing: ratio(r.ChatIngest.P95, base.ChatIngest.P95),
			CPU:        ratio(r.CPUSeconds, base.CPUSeconds)})
	}
	return out
}

// rotor hands out 0, 1, …, n-1, 0, … to concurrent callers: the client's round-robin.
type rotor struct {
	n int
	c atomic.Uint64
}

func (r *rotor) next() int { return int((r.c.Add(1) - 1) % uint64(r.n)) }

// roundRobinChat asks each question of the replica whose turn it is, counting per replica.
type roundRobinChat struct {
	rot   rotor
	chats []chatter
	asked []atomic.Int64
}

func newRoundRobinChat(chats []chatter) *roundRobinChat {
	return &roundRobinChat{rot: rotor{n: len(chats)}, chats: chats, asked: make([]atomic.Int64, len(chats))}
}

func (c *roundRobinChat) ttft(ctx context.Context, q string) (answerStart, error) {
	i := c.rot.next()
	c.asked[i].Add(1)
	return c.chats[i].ttft(ctx, q)
}

func (c *roundRobinChat) path() string {
	return fmt.Sprintf("%s, round-robin over %d replicas", c.chats[0].path(), len(c.chats))
}

func (c *roundRobinChat) counts() []int {
	out := make([]int, len(c.asked))
	for i := range c.asked {
		out[i] = int(c.asked[i].Load())
	}
	return out
}

// listedDoc is the part of GET /api/documents the checks read.
type listedDoc struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	Error     string    `json:"error"`
	Chunks    int       `json:"chunks"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// listDocuments pages through GET /api/documents (every status).
func listDocuments(ctx context.Context, c *http.Client, base string) ([]listedDoc, error) {
	var all []listedDoc
	for offset := 0; ; {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/documents?limit=1000&offset=%d", base, offset), nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		var out struct {
			Documents []listedDoc `json:"documents"`
			Total     int         `json:"total"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("list documents: status %d: %w", resp.StatusCode, err)
		}
		all = append(all, out.Documents...)
		offset += len(out.Documents)
		if len(out.Documents) == 0 || offset >= out.Total {
			return all, nil
		}
	}
}

// checkIntegrity compares what the client had acknowledged with what the replicas list and
// what the vector store holds. upserted is points written per document id (the double counts
// every successful upsert), points the collection's size.
func checkIntegrity(accepted []string, listed []listedDoc, listedByReplica []int, upserted map[string]int, points int) integrity {
	ck := integrity{Listed: len(listed), ListedByReplica: listedByReplica, Points: points}
	byID := map[string]listedDoc{}
	names := map[string]bool{}
	for _, d := range listed {
		byID[d.ID] = d
		names[d.Name] = true
		if d.Status == "ready" {
			ck.ChunksListed += d.Chunks
		}
	}
	ck.DistinctIDs, ck.DistinctNames = len(byID), len(names)
	for _, id := range accepted {
		d, ok := byID[id]
		switch {
		case !ok:
			ck.Missing++
		case d.Status != "ready":
			ck.NotReady++
		}
	}
	for id, n := range upserted {
		ck.Upserted += n
		d, ok := byID[id]
		switch {
		case !ok:
			ck.Orphans++
		case n > d.Chunks:
			ck.UpsertedTwice++
		}
	}
	add := func(format string, args ...any) { ck.Problems = append(ck.Problems, fmt.Sprintf(format, args...)) }
	if ck.Missing > 0 {
		add("%d acknowledged documents not listed", ck.Missing)
	}
	if ck.NotReady > 0 {
		add("%d acknowledged documents not ready", ck.NotReady)
	}
	if ck.Listed != len(accepted) || ck.DistinctIDs != ck.Listed || ck.DistinctNames != ck.Listed {
		add("%d documents listed (%d ids, %d names) for %d acknowledged uploads", ck.Listed, ck.DistinctIDs, ck.DistinctNames, len(accepted))
	}
	for i, n := range listedByReplica {
		if n != ck.Listed {
			add("replica %d lists %d documents, replica 0 %d", i, n, ck.Listed)
		}
	}
	if ck.Points != ck.ChunksListed {
		add("%d points in the vector store for %d chunks of ready documents", ck.Points, ck.ChunksListed)
	}
	if ck.UpsertedTwice > 0 {
		add("%d documents upserted more than once (processed twice)", ck.UpsertedTwice)
	}
	if ck.Orphans > 0 {
		add("%d documents with points but no row", ck.Orphans)
	}
	return ck
}

// scalePhase runs the scale phase. After the ingest phases a failure (PostgreSQL not
// installed, say) is reported in its section instead of losing their figures; run alone, it
// is the bench's error.
func scalePhase(ctx context.Context, cfg config, bin, tmp string, c *corpus) (*scaleResult, error) {
	res, err := runScale(ctx, cfg, bin, tmp, c)
	if err == nil || ctx.Err() != nil || !cfg.runs(phaseIngest) {
		return res, err
	}
	logf(cfg, "scale: not measured: %v", err)
	return &scaleResult{Error: err.Error()}, nil
}

// runScale runs the scale phase on a fresh Ollama (the last -parallel value) and returns its
// result, or an error when a setup could not run (a failed check is a result, not an error).
func runScale(ctx context.Context, cfg config, bin, tmp string, c *corpus) (*scaleResult, error) {
	np := cfg.Parallel[len(cfg.Parallel)-1]
	res := &scaleResult{NumParallel: np, Docs: len(c.Docs), Questions: cfg.ScaleQuestions, UploadWorkers: cfg.UploadWorkers}
	logf(cfg, "scale: NUM_PARALLEL=%d: starting Ollama %s and PostgreSQL", np, ollamatest.Version)
	pg, err := postgres.Serve()
	if err != nil {
		return nil, fmt.Errorf("scale: PostgreSQL: %w", err)
	}
	defer pg.Stop()
	res.Postgres = postgresVersion(ctx, pg.URI)
	ol, _, err := startOllama(ctx, np, cfg.MultiuserCache)
	if err != nil {
		return nil, err
	}
	defer ol.Close()
	for i, setup := range scaleSetups {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dir := filepath.Join(tmp, "scale-"+setup.Name)
		r, err := runScaleSetup(ctx, cfg, setup, i, bin, dir, ol.URL, pg, c)
		if err != nil {
			return nil, fmt.Errorf("scale %s: %w", setup.Name, err)
		}
		logf(cfg, "  %-11s %6.1f docs/min  TTFT p95 idle %s ingest %s  app CPU %.1f s  ready %d/%d  uploads %v ingested %v questions %v  %s",
			r.Name, r.DocsPerMin, fmtMs(r.ChatIdle.P95), fmtMs(r.ChatIngest.P95), r.CPUSeconds, r.Ready, r.Docs,
			r.UploadsByReplica, r.IngestedByReplica, r.QuestionsByReplica, checkSummary(r.Check))
		res.Runs = append(res.Runs, r)
	}
	res.Ratios = scaleRatios(res.Runs)
	res.Notes = scaleNotes(res)
	return res, nil
}

// runScaleSetup starts setup's replicas on a fresh Qdrant double (and a fresh database),
// ingests the corpus and asks the questions round-robin, checks the counts and stops them.
func runScaleSetup(ctx context.Context, cfg config, setup scaleSetup, index int, bin, dir, ollamaURL string, pg *postgres.Server, c *corpus) (*scaleRun, error) {
	r := &scaleRun{scaleSetup: setup, Docs: len(c.Docs)}
	q, err := freshQdrant(ctx)
	if err != nil {
		return nil, err
	}
	defer q.Stop()
	var uriFile string
	if setup.Driver == serverconfig.DriverPostgres {
		if uriFile, err = newDatabase(ctx, pg, fmt.Sprintf("scale_%d", index), dir); err != nil {
			return nil, err
		}
	}
	// Replicas share one Ollama: the operator divides the declared totals among them
	// (controllers/ragserver.go, perReplica); the bench declares the operator defaults.
	warming := min(3, cfg.Parallel[len(cfg.Parallel)-1]-1) / setup.Replicas
	var srvs []*serverProc
	defer func() {
		for _, s := range srvs {
			r.PeakRSSMiB += s.stop()
		}
	}()
	for i := range setup.Replicas {
		rdir := filepath.Join(dir, fmt.Sprintf("replica-%d", i))
		if err := os.MkdirAll(filepath.Join(rdir, "data"), 0o755); err != nil {
			return nil, err
		}
		scfg := serverConfig(filepath.Join(rdir, "data"), ollamaURL, q.Address(), warming)
		scfg.Limits.EmbedConcurrency = max(1, scfg.Limits.EmbedConcurrency/setup.Replicas)
		if uriFile != "" {
			scfg.Database = serverconfig.Database{Driver: serverconfig.DriverPostgres, URIFile: uriFile}
		}
		s, err := startServer(ctx, bin, rdir, scfg, false, cfg.ServerLogLevel, false)
		if err != nil {
			return nil, fmt.Errorf("replica %d: %w", i, err)
		}
		srvs = append(srvs, s)
	}
	// As in the ingest phases, each fresh server's PDF engine compile is not charged to the ingest.
	for _, s := range srvs {
		if _, err := waitPDFEngine(ctx, metricsBase(s), 3*time.Minute); err != nil {
			r.Notes = append(r.Notes, "PDF engine: "+err.Error())
		}
	}
	bases := make([]string, len(srvs))
	chats := make([]chatter, len(srvs))
	sc, why := detectServerChat(ctx, srvs[0].URL)
	if sc == nil {
		return nil, errors.New("chat: " + why)
	}
	for i, s := range srvs {
		bases[i] = s.URL
		chats[i] = &sseChat{url: s.URL + "/api/chat", body: sc.body, client: probeClient(), label: sc.label}
	}
	rr := newRoundRobinChat(chats)
	questions := newQuestions(cfg.Seed)
	client := probeClient()

	r.LoadAvg[0] = loadAvg()
	cpu0 := 0.0
	for _, s := range srvs {
		cpu0 += cpuSeconds(s.cmd.Process.Pid)
	}
	t0 := time.Now()
	pctx, stopChats := context.WithCancel(ctx)
	var chatSeries series
	waitChats := chatLoop(pctx, rr, questions, t0, cfg.ChatInterval, 60*time.Second, &chatSeries)
	var (
		accepted []string
		upErr    map[string]int
		upDone   = make(chan struct{})
	)
	r.UploadsByReplica = make([]int, len(bases))
	go func() {
		defer close(upDone)
		accepted, upErr = uploadRoundRobin(ctx, bases, c.Docs, cfg.UploadWorkers, r.UploadsByReplica)
	}()
	// Done when the uploads are over and every accepted document is ready or failed, as the
	// first replica lists them (with PostgreSQL every replica lists all of them).
	var last time.Time
	deadline := time.Now().Add(cfg.PhaseTimeout)
	for {
		uploading := true
		select {
		case <-upDone:
			uploading = false
		default:
		}
		if !uploading {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			counts, _, l, err := documentCounts(cctx, client, bases[0])
			cancel()
			if err == nil && counts["ready"]+counts["failed"] >= len(accepted) {
				last = l
				break
			}
		}
		if time.Now().After(deadline) {
			r.Notes = append(r.Notes, fmt.Sprintf("phase timeout (%s) reached", cfg.PhaseTimeout))
			break
		}
		select {
		case <-ctx.Done():
			stopChats()
			waitChats()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	ingestEnd := time.Now()
	cpu1 := 0.0
	for _, s := range srvs {
		cpu1 += cpuSeconds(s.cmd.Process.Pid)
	}
	r.CPUSeconds = cpu1 - cpu0
	r.LoadAvg[1] = loadAvg()
	stopChats()
	waitChats()
	<-upDone
	r.Accepted = len(accepted)
	for k, n := range upErr {
		r.Notes = append(r.Notes, fmt.Sprintf("%d uploads refused: %s", n, k))
	}
	r.Seconds = ingestEnd.Sub(t0).Seconds()
	if !last.IsZero() && last.After(t0) && last.Before(ingestEnd) {
		r.Seconds = last.Sub(t0).Seconds() // the last document's own timestamp, not the 0.5 s poll
	}

	// The counts: every replica's listing, the vector store, each replica's own metrics.
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	listed, err := listDocuments(cctx, client, bases[0])
	if err != nil {
		return nil, err
	}
	byReplica := []int{len(listed)}
	for _, b := range bases[1:] {
		other, err := listDocuments(cctx, client, b)
		if err != nil {
			return nil, err
		}
		byReplica = append(byReplica, len(other))
	}
	r.Check = checkIntegrity(accepted, listed, byReplica, q.UpsertedByDocument(collectionName), q.Points(collectionName))
	for _, d := range listed {
		switch d.Status {
		case "ready":
			r.Ready++
		case "failed":
			r.Failed++
		}
	}
	r.Unfinished = r.Docs - r.Ready - r.Failed
	r.Chunks = r.Check.ChunksListed
	for _, s := range srvs {
		n := 0
		if m, err := scrape(cctx, client, metricsBase(s)); err == nil {
			n = int(m.sum("rag_ingest_documents_total", `outcome="ready"`))
		}
		r.IngestedByReplica = append(r.IngestedByReplica, n)
	}
	if r.Seconds > 0 {
		r.DocsPerMin = float64(r.Ready) / r.Seconds * 60
		r.ChunksPerSec = float64(r.Chunks) / r.Seconds
	}

	// Idle: the questions one after another, round-robin, after the ingest.
	idleChats(ctx, rr, questions, t0, cfg.ScaleQuestions, 60*time.Second, &chatSeries)
	r.QuestionsByReplica = rr.counts()
	cs := chatSeries.snapshot()
	r.ChatIngest = summarize(cs, func(s sample) bool { return s.Phase == "ingest" })
	r.ChatIdle = summarize(cs, func(s sample) bool { return s.Phase == "idle" })
	chatErrs := map[string]int{}
	for _, x := range cs {
		if x.Err != "" {
			chatErrs[x.Phase+": "+firstLine(x.Err)]++
		}
	}
	for _, k := range slices.Sorted(maps.Keys(chatErrs)) {
		r.Notes = append(r.Notes, fmt.Sprintf("%d× chat failed (%s)", chatErrs[k], k))
	}
	return r, nil
}

// metricsBase is where a server's /metrics is served without a key (its metrics listener).
func metricsBase(s *serverProc) string { return s.MetricsURL }

// uploadRoundRobin uploads every document once, workers at a time, each to the replica whose
// turn it is; byReplica counts the accepted uploads per replica.
func uploadRoundRobin(ctx context.Context, bases []string, docs []document, workers int, byReplica []int) (ids []string, failed map[string]int) {
	client := probeClient()
	rot := rotor{n: len(bases)}
	var mu sync.Mutex
	failed = map[string]int{}
	next := make(chan document, len(docs))
	for _, d := range docs {
		next <- d
	}
	close(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for d := range next {
				i := rot.next()
				id, err := uploadOne(ctx, client, bases[i], d)
				mu.Lock()
				if err != nil {
					failed[firstLine(err.Error())]++
				} else {
					ids = append(ids, id)
					byReplica[i]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ids, failed
}

// newDatabase creates database name on pg and writes its URI into dir/database-uri, the file
// database.uriFile names (as the operator mounts CloudNativePG's Secret).
func newDatabase(ctx context.Context, pg *postgres.Server, name, dir string) (string, error) {
	conn, err := pgx.Connect(ctx, pg.URI)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(pg.URI)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "database-uri")
	return path, os.WriteFile(path, []byte(u.String()+"\n"), 0o600)
}

func postgresVersion(ctx context.Context, uri string) string {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return ""
	}
	defer conn.Close(ctx)
	var v string
	_ = conn.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v
}

func checkSummary(ck integrity) string {
	if len(ck.Problems) == 0 {
		return fmt.Sprintf("check: %d listed by every replica, %d points = chunks, none upserted twice", ck.Listed, ck.Points)
	}
	return "check FAILED: " + strings.Join(ck.Problems, "; ")
}

// ---- report ----

// sanitizeScale replaces NaN (no samples, no baseline) with fix, as sanitize does for the
// ingest phases: JSON cannot carry NaN.
func sanitizeScale(s *scaleResult, fix func(*float64)) {
	for _, r := range s.Runs {
		for _, st := range []*latencyStats{&r.ChatIdle, &r.ChatIngest} {
			fix(&st.P50)
			fix(&st.P95)
			fix(&st.P99)
			fix(&st.Max)
		}
	}
	for i := range s.Ratios {
		x := &s.Ratios[i]
		fix(&x.DocsPerMin)
		fix(&x.TTFTP95)
		fix(&x.TTFTP95Ing)
		fix(&x.CPU)
	}
}

func scaleNotes(res *scaleResult) []string {
	return []string{
		"What this shows on this machine: whether replicas cost anything and lose anything, not whether they speed anything up. Every replica and Ollama share the same 2 cores (and the machine is shared with other work), and the embedding model runs one request at a time inside the one Ollama, so three replicas cannot ingest faster than one: a docs/min ratio near 1.00× and no document lost or processed twice is the result to expect. Replicas add throughput where they run on their own nodes and the GPU, not the RAG server, is not the limit; that is not measured here.",
		fmt.Sprintf("Each run starts fresh replicas (the real cmd/rag-server, --insecure-no-auth, without summaries and tags), a fresh Qdrant gRPC double as vector store (one shared by the three replicas: they cannot share the embedded vector store, and every run uses the double so the three compare like with like) and, for PostgreSQL, a fresh database on one real PostgreSQL %s (internal/testbed/postgres). The same Ollama (NUM_PARALLEL %d) serves all three runs, after the ingest phases' Ollamas are gone.", res.Postgres, res.NumParallel),
		fmt.Sprintf("The client uploads the same %d documents (one file per request, %d uploads at a time) and asks the same questions, each to the next replica in turn (round-robin). docs/min runs from the first upload to the last document ready. Chat TTFT: during the ingest one question every chat interval; idle, %d questions one after another once every document is done. Questions are distinct, so no answer cache helps.", res.Docs, res.UploadWorkers, res.Questions),
		"Replicas divide the operator's concurrency totals as the operator renders them (embedConcurrency 2 → 1 per replica with three, warmingMaxConcurrentQueries divided and rounded down): together they send Ollama no more than one server does.",
		"Check: after the ingest every acknowledged upload must be listed, ready, by every replica; the number of documents, ids and names must equal the uploads; the collection's points must equal the ready documents' chunks; and no document's points may have been upserted more than once (the Qdrant double counts every upserted point per document).",
		"App CPU is the replicas' user + system CPU during the ingest, added up (from /proc/<pid>/stat); PostgreSQL's own CPU is not in it (it is in docs/min: the same cores).",
	}
}

// scaleMarkdown is the "Scale" section.
func scaleMarkdown(s *scaleResult) string {
	var b strings.Builder
	b.WriteString("## Scale\n\n")
	if s.Error != "" {
		fmt.Fprintf(&b, "Not measured: `%s`.\n", firstLine(s.Error))
		return b.String()
	}
	fmt.Fprintf(&b, "One RAG server on SQLite (the default) against one and three replicas on one PostgreSQL, on the same Ollama (NUM_PARALLEL %d) and corpus (%d documents), uploads and questions round-robin over the replicas. Ratios are to the SQLite run.\n\n", s.NumParallel, s.Docs)
	b.WriteString("| setup | docs/min | × SQLite | chat TTFT p50 / p95 idle | × SQLite (p95) | chat TTFT p50 / p95 ingest | app CPU during ingest | × SQLite | peak RSS (all replicas) | uploads / ingested / questions per replica | lost or duplicated |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	ratios := map[string]scaleRatio{}
	for _, x := range s.Ratios {
		ratios[x.Name] = x
	}
	for i, r := range s.Runs {
		rd, rt, rc := "1.00×", "1.00×", "1.00×"
		if i > 0 {
			x := ratios[r.Name]
			rd, rt, rc = fmtRatio(x.DocsPerMin), fmtRatio(x.TTFTP95), fmtRatio(x.CPU)
		}
		check := "none"
		if len(r.Check.Problems) > 0 {
			check = "**" + strings.Join(r.Check.Problems, "; ") + "**"
		}
		fmt.Fprintf(&b, "| %s | %.1f | %s | %s / %s (%s) | %s | %s / %s (%s) | %.1f s | %s | %.0f MiB | %s / %s / %s | %s |\n",
			r.Name, r.DocsPerMin, rd, fmtMs(r.ChatIdle.P50), fmtMs(r.ChatIdle.P95), countFailed(r.ChatIdle), rt,
			fmtMs(r.ChatIngest.P50), fmtMs(r.ChatIngest.P95), countFailed(r.ChatIngest), r.CPUSeconds, rc, r.PeakRSSMiB,
			joinInts(r.UploadsByReplica), joinInts(r.IngestedByReplica), joinInts(r.QuestionsByReplica), check)
	}
	b.WriteString("\n")
	for _, n := range s.Notes {
		b.WriteString("- " + n + "\n")
	}
	for _, r := range s.Runs {
		fmt.Fprintf(&b, "- **%s**: %d/%d ready (%d failed, %d unfinished) in %.1f s, %d chunks; listed %v by the replicas, %d points, %d upserted; load average %.1f → %.1f; chat errors %d idle, %d ingest.",
			r.Name, r.Ready, r.Docs, r.Failed, r.Unfinished, r.Seconds, r.Chunks, r.Check.ListedByReplica, r.Check.Points, r.Check.Upserted,
			r.LoadAvg[0], r.LoadAvg[1], r.ChatIdle.Errors, r.ChatIngest.Errors)
		for _, n := range r.Notes {
			b.WriteString(" " + strings.TrimSuffix(n, ".") + ".")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// scaleOnlyMarkdown is the whole file when only the scale phase ran (-phases scale).
func scaleOnlyMarkdown(r *report) string {
	var b strings.Builder
	m := r.Machine
	b.WriteString("# RAG server replicas on PostgreSQL versus one on SQLite\n\n")
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %d GiB, %s, %s, %s. Ollama %s (the project's CPU build, tiny generated models under the production names). Runtime %.0f s.\n\n",
		m.CPUs, m.CPUModel, m.MemoryGiB, m.OS, m.GoVersion, m.Date, ollamatest.Version, r.RuntimeSeconds)
	fmt.Fprintf(&b, "Reproduce: `%s`. `make bench` runs this phase after the ingest phases and writes it into bench.md.\n\n", r.Command)
	c := r.Corpus
	fmt.Fprintf(&b, "Corpus: %d generated text documents, %d pages in all (%d–%d per document), %d words, %.2f MB → %d chunks by the bench's own chunking.\n\n",
		c.Docs, c.Pages, c.PagesMin, c.PagesMax, c.Words, float64(c.Bytes)/1e6, c.Chunks)
	if d := defaultConfig(); c.Docs < d.Docs || r.Scale.Questions < d.ScaleQuestions {
		fmt.Fprintf(&b, "A small run (%d documents and %d idle questions per setup; `make bench` uses %d and %d): one sample of each setup, so the ratios carry the noise of a shared machine; the load average at each run's start and end is below.\n\n",
			c.Docs, r.Scale.Questions, d.Docs, d.ScaleQuestions)
	}
	b.WriteString(scaleMarkdown(r.Scale))
	return b.String()
}

// countFailed is "n" questions, with how many failed (counted with their time to failure) and
// how many were answered without the model (retrieval found nothing yet: early in an ingest).
func countFailed(st latencyStats) string {
	out := fmt.Sprint(st.N)
	if st.Errors > 0 {
		out += fmt.Sprintf(", %d failed", st.Errors)
	}
	if st.NoContext > 0 {
		out += fmt.Sprintf(", %d without context", st.NoContext)
	}
	return out
}

func joinInts(xs []int) string {
	if len(xs) == 0 {
		return "–"
	}
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, "+")
}

// parsePhases reads -phases: a comma-separated subset of ingest and scale, in no particular
// order (the ingest phases always run first).
func parsePhases(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		switch p = strings.TrimSpace(p); p {
		case phaseIngest, phaseScale:
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		case "":
		default:
			return nil, fmt.Errorf("-phases: unknown phase %q (want %s, %s)", p, phaseIngest, phaseScale)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-phases: none given")
	}
	sort.Strings(out)
	return out, nil
}

func (c config) runs(phase string) bool { return slices.Contains(c.Phases, phase) }
