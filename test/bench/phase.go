package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/testbed/qdrantdouble"
	"github.com/ragstack/rag-operator/internal/vector"
)

// progressSample is the ingest state at T seconds into a phase.
type progressSample struct {
	T        float64 `json:"t"`
	Done     int     `json:"done"` // ready
	Failed   int     `json:"failed"`
	Chunks   int     `json:"chunks"`
	Enriched int     `json:"enriched,omitempty"` // enrichment done or failed
	// With an objective: the server's background throttle level and its chat TTFT p95 over
	// the window (rag_background_throttle, rag_slo_chat_ttft_p95_seconds).
	Throttle float64 `json:"throttle,omitempty"`
	SLOP95   float64 `json:"sloP95,omitempty"`
}

// timeline is everything measured over a phase, for the plot.
type timeline struct {
	Health   []sample         `json:"health"`
	Chat     []sample         `json:"chat"`
	Progress []progressSample `json:"progress"`
	// IngestEnd is when the last document was done (and enriched, with --enrich).
	IngestEnd float64 `json:"ingestEnd"`
}

// phaseResult is one strategy on one Ollama.
type phaseResult struct {
	NumParallel  int     `json:"numParallel"`
	Strategy     string  `json:"strategy"`
	Docs         int     `json:"docs"`
	DocsReady    int     `json:"docsReady"`
	DocsFailed   int     `json:"docsFailed"`
	DocsTimedOut int     `json:"docsTimedOut"`
	Chunks       int     `json:"chunks"`
	Seconds      float64 `json:"seconds"` // first upload to last document ready
	DocsPerMin   float64 `json:"docsPerMin"`
	ChunksPerSec float64 `json:"chunksPerSec"`
	// LimitChunksPerSec is the raw /api/embed throughput measured right before and right after
	// the phase (their mean): the machine is shared, so the limit is taken where the phase ran.
	LimitChunksPerSec float64    `json:"limitChunksPerSec"`
	RatioToLimit      float64    `json:"ratioToLimit"`
	LoadAvg           [2]float64 `json:"loadAvg1m"` // /proc/loadavg at the phase's start and end

	EmbedCalls        int64   `json:"embedCalls"`
	EmbedCallErrors   int64   `json:"embedCallErrors"`
	EmbedCallTimeouts int64   `json:"embedCallTimeouts"`
	EmbedCallMsP50    float64 `json:"embedCallMsP50,omitempty"`
	EmbedCallMsP99    float64 `json:"embedCallMsP99,omitempty"`

	Health     latencyStats `json:"health"`
	HealthPath string       `json:"healthPath"`
	// Control is the same probe against a bare handler in the bench's own process, at the same
	// time: what the machine alone (CPU contention, scheduling) adds to any HTTP answer.
	Control    latencyStats `json:"control"`
	ChatIngest latencyStats `json:"chatIngest"`
	ChatIdle   latencyStats `json:"chatIdle"`
	TTFTRatio  float64      `json:"ttftP95IngestOverIdle"`
	// StepsIdle and StepsIngest are the medians of where each answer's time went, from the
	// answering side's done events (nil when it reports none).
	StepsIdle   *stepMedians `json:"stepsIdle,omitempty"`
	StepsIngest *stepMedians `json:"stepsIngest,omitempty"`
	// StepsIdleSlowest are the same medians over the slowest tenth of the idle answers (by
	// TTFT, at least 3): what the tail that sets p95 is made of.
	StepsIdleSlowest *stepMedians `json:"stepsIdleSlowest,omitempty"`
	ChatPath         string       `json:"chatPath"`
	PeakRSSMiB       float64      `json:"peakRSSMiB"`
	// IdleRSSMiB is ours' resident set once started and ready, before the first upload.
	IdleRSSMiB float64 `json:"idleRSSMiB,omitempty"`
	// InitSeconds and InitPeakRSSMiB are `rag-server pdf-engine-compile` run on the phase's
	// fresh data directory before the server, as the operator's init container runs it.
	InitSeconds    float64 `json:"initSeconds,omitempty"`
	InitPeakRSSMiB float64 `json:"initPeakRSSMiB,omitempty"`
	// CPUSeconds is the measured process's CPU time (user + system) during the ingest: what it
	// took from cores that Ollama needs too.
	CPUSeconds float64 `json:"cpuSecondsIngest"`

	// With --enrich: documents ready and summarised/tagged, per minute.
	Enriched         int     `json:"enriched,omitempty"`
	EnrichFailed     int     `json:"enrichFailed,omitempty"`
	EnrichSeconds    float64 `json:"enrichSeconds,omitempty"`
	EnrichDocsPerMin float64 `json:"enrichedDocsPerMin,omitempty"`

	// SLO is the objective's outcome in the ours+slo-* phases.
	SLO *sloResult `json:"slo,omitempty"`

	// Repeats are each repeat's own figures (the rest of the result pools them; repeat.go).
	Repeats []repeatFigures `json:"repeats,omitempty"`
	// control is the control probe's samples, kept for pooling repeats.
	control []sample

	Notes    []string       `json:"notes,omitempty"`
	Failures map[string]int `json:"failures,omitempty"`
	// Timeline is written to bench.json separately (see writeResults), one compact line per phase.
	Timeline timeline `json:"timeline,omitzero"`
}

// target is what a phase measures: our server, or the baseline app.
type target interface {
	healthURL() string
	chat() chatter
	// begin starts the ingest (uploads, or the baseline's start signal).
	begin(ctx context.Context, t0 time.Time)
	// poll reports progress and whether the ingest is complete.
	poll(ctx context.Context) (progressSample, bool, error)
	// finish fills in the counts, calls and failures once the ingest is over.
	finish(ctx context.Context, r *phaseResult)
	// stop ends the process and returns its peak RSS in MiB.
	stop() float64
	// pid is the process measured (its CPU time during the ingest).
	pid() int
}

// runPhase ingests the corpus through tg while probing health and chat, then asks the idle
// questions, then stops tg.
func runPhase(ctx context.Context, cfg config, tg target, r *phaseResult, questions *questionSource) {
	r.LoadAvg[0] = loadAvg()
	t0 := time.Now()
	pctx, stopProbes := context.WithCancel(ctx)
	var health, control, chats series
	waitHealth := healthProbe(pctx, tg.healthURL(), t0, cfg.HealthInterval, 10*time.Second, &health)
	waitControl := healthProbe(pctx, controlURL(), t0, cfg.HealthInterval, 10*time.Second, &control)
	waitChat := chatLoop(pctx, tg.chat(), questions, t0, cfg.ChatInterval, 60*time.Second, &chats)
	r.ChatPath = tg.chat().path()
	r.HealthPath = tg.healthURL()

	cpu0 := cpuSeconds(tg.pid())
	tg.begin(ctx, t0)
	deadline := time.NewTimer(cfg.PhaseTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var prog []progressSample
	timedOut := false
	for {
		p, complete, err := tg.poll(ctx)
		if err == nil {
			p.T = time.Since(t0).Seconds()
			prog = append(prog, p)
		} else if cfg.Verbose {
			logf(cfg, "  poll: %v", err)
		}
		if complete {
			break
		}
		select {
		case <-ctx.Done():
		case <-deadline.C:
			timedOut = true
		case <-tick.C:
			continue
		}
		break
	}
	ingestEnd := time.Since(t0).Seconds()
	if cpu1 := cpuSeconds(tg.pid()); cpu1 > 0 {
		r.CPUSeconds = cpu1 - cpu0
	}
	r.LoadAvg[1] = loadAvg()
	stopProbes()
	waitHealth()
	waitControl()
	waitChat()
	if timedOut {
		r.Notes = append(r.Notes, fmt.Sprintf("phase timeout (%s) reached: unfinished documents count as timed out", cfg.PhaseTimeout))
	}
	tg.finish(ctx, r) // the counts as the ingest ended (or timed out)
	if ctx.Err() == nil {
		idleChats(ctx, tg.chat(), questions, t0, cfg.IdleChats, 60*time.Second, &chats)
	}
	r.PeakRSSMiB = tg.stop()

	hs, cs := health.snapshot(), chats.snapshot()
	during := func(s sample) bool { return s.T <= ingestEnd }
	r.Health = summarize(hs, during)
	r.control = control.snapshot()
	r.Control = summarize(r.control, during)
	r.ChatIngest = summarize(cs, func(s sample) bool { return s.Phase == "ingest" })
	r.ChatIdle = summarize(cs, func(s sample) bool { return s.Phase == "idle" })
	if r.ChatIdle.P95 > 0 {
		r.TTFTRatio = r.ChatIngest.P95 / r.ChatIdle.P95
	}
	r.StepsIdle = medianSteps(cs, func(s sample) bool { return s.Phase == "idle" })
	r.StepsIngest = medianSteps(cs, func(s sample) bool { return s.Phase == "ingest" })
	r.StepsIdleSlowest = slowestSteps(cs, func(s sample) bool { return s.Phase == "idle" })
	if n := health.skipped.Load(); n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d health probe ticks skipped (100 probes outstanding)", n))
	}
	if n := chats.skipped.Load(); n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d chat ticks skipped (4 questions outstanding)", n))
	}
	r.Timeline = timeline{Health: hs, Chat: cs, Progress: prog, IngestEnd: ingestEnd}
	if r.Seconds == 0 { // never complete: rates over the whole phase
		r.Seconds = ingestEnd
	}
	if r.SLO != nil {
		r.SLO.summarize(prog)
	}
	if enriching(r.Strategy) && r.EnrichSeconds == 0 {
		r.EnrichSeconds = ingestEnd
	}
	r.DocsTimedOut = max(0, r.Docs-r.DocsReady-r.DocsFailed)
	if r.Seconds > 0 {
		r.DocsPerMin = float64(r.DocsReady) / r.Seconds * 60
		r.ChunksPerSec = float64(r.Chunks) / r.Seconds
	}
	if r.EnrichSeconds > 0 {
		r.EnrichDocsPerMin = float64(r.Enriched) / r.EnrichSeconds * 60
	}
}

// loadAvg is the 1-minute load average (0 where /proc/loadavg is missing).
func loadAvg() float64 {
	var v float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscanf(string(b), "%f", &v)
	}
	return v
}

// controlURL is a bare health handler served by the bench itself (started once).
var controlURL = sync.OnceValue(func() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}` + "\n"))
	}))
	return "http://" + ln.Addr().String() + "/healthz"
})

func logf(cfg config, format string, args ...any) {
	if cfg.Log != nil {
		fmt.Fprintf(cfg.Log, format+"\n", args...)
	}
}

// freshQdrant starts a Qdrant double with an empty collection (one per phase, so no phase
// searches or pays for another's points).
func freshQdrant(ctx context.Context) (*qdrantdouble.Server, error) {
	q, err := qdrantdouble.Serve("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	v, err := vector.NewQdrant(ctx, vector.QdrantOptions{Addr: q.Address(), CreateIfMissing: true, SkipCompatibilityCheck: true,
		Collection: serverconfig.Collection{Name: collectionName, VectorSize: ollamatest.EmbedDim, Distance: "Cosine"}})
	if err != nil {
		q.Stop()
		return nil, err
	}
	defer v.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := v.EnsureCollection(cctx); err != nil {
		q.Stop()
		return nil, fmt.Errorf("create collection: %w", err)
	}
	return q, nil
}

// ---- our server ----

type serverTarget struct {
	cfg     config
	srv     *serverProc
	docs    []document
	chunks  map[string]int // document name → chunks
	enrich  bool
	client  *http.Client
	chatter chatter

	mu        sync.Mutex
	uploading bool
	accepted  int
	uploadErr map[string]int
	uploadMs  []float64
	t0        time.Time
	readyAt   time.Time
	enrichAt  time.Time
}

func (s *serverTarget) healthURL() string { return s.srv.URL + "/healthz" }
func (s *serverTarget) chat() chatter     { return s.chatter }

func (s *serverTarget) begin(ctx context.Context, t0 time.Time) {
	s.mu.Lock()
	s.t0, s.uploading = t0, true
	s.mu.Unlock()
	go func() {
		ids, failed, upMs := uploadAll(ctx, s.srv.URL, s.docs, s.cfg.UploadWorkers)
		s.mu.Lock()
		s.uploading, s.accepted, s.uploadErr, s.uploadMs = false, len(ids), failed, upMs
		s.mu.Unlock()
	}()
}

func (s *serverTarget) poll(ctx context.Context) (progressSample, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := scrape(cctx, s.client, s.srv.MetricsURL)
	if err != nil {
		return progressSample{}, false, err
	}
	p := progressSample{
		Done:     int(m.sum("rag_ingest_documents_total", `outcome="ready"`)),
		Failed:   int(m.sum("rag_ingest_documents_total", `outcome="failed"`)),
		Chunks:   int(m.sum("rag_ingest_chunks_embedded_total")),
		Enriched: int(m.sum("rag_enrich_documents_total")),
		Throttle: m.sum("rag_background_throttle"),
		SLOP95:   m.sum("rag_slo_chat_ttft_p95_seconds"),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.uploading {
		return p, false, nil
	}
	now := time.Now()
	ingested := p.Done+p.Failed >= s.accepted
	if ingested && s.readyAt.IsZero() {
		s.readyAt = now
	}
	if !s.enrich {
		return p, ingested, nil
	}
	enriched := ingested && p.Enriched >= p.Done
	if enriched && s.enrichAt.IsZero() {
		s.enrichAt = now
	}
	return p, enriched, nil
}

func (s *serverTarget) finish(ctx context.Context, r *phaseResult) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Failures = maps.Clone(s.uploadErr)
	if r.Failures == nil {
		r.Failures = map[string]int{}
	}
	counts, errs, last, err := documentCounts(cctx, s.client, s.srv.URL)
	if err != nil {
		r.Notes = append(r.Notes, "listing documents: "+err.Error())
	}
	maps.Copy(r.Failures, errs)
	r.DocsReady, r.DocsFailed = counts["ready"], counts["failed"]
	if m, err := scrape(cctx, s.client, s.srv.MetricsURL); err == nil {
		r.EmbedCalls = int64(m.sum("rag_llm_ollama_request_duration_seconds_count", `op="embed"`))
		r.Chunks = int(m.sum("rag_ingest_chunks_embedded_total"))
		r.Enriched = int(m.sum("rag_enrich_documents_total", `outcome="done"`))
		r.EnrichFailed = int(m.sum("rag_enrich_documents_total", `outcome="failed"`))
		if r.SLO != nil {
			r.SLO.AttainedP95 = m.sum("rag_slo_chat_ttft_p95_seconds")
			r.SLO.Samples = int(m.sum("rag_slo_samples", `objective="chat_ttft_p95"`))
		}
		if n := m.sum("rag_llm_rejected_total"); n > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%.0f LLM calls refused with 'busy' (queue full)", n))
		}
		if n := m.sum("rag_ingest_documents_total", `outcome="retried"`); n > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%.0f documents sent back to the queue after a transient error", n))
		}
	}
	if !s.readyAt.IsZero() {
		r.Seconds = s.readyAt.Sub(s.t0).Seconds()
		if !s.enrich && !last.IsZero() && last.After(s.t0) && last.Before(s.readyAt) {
			r.Seconds = last.Sub(s.t0).Seconds() // exact: the last document's own timestamp, not the 0.5 s poll
		}
	}
	if !s.enrichAt.IsZero() {
		r.EnrichSeconds = s.enrichAt.Sub(s.t0).Seconds()
	}
	if len(s.uploadMs) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("uploads: p50 %.0f ms, p99 %.0f ms (%d workers, one file per request)",
			percentile(s.uploadMs, 50), percentile(s.uploadMs, 99), s.cfg.UploadWorkers))
	}
}

func (s *serverTarget) stop() float64 { return s.srv.stop() }
func (s *serverTarget) pid() int      { return s.srv.cmd.Process.Pid }

// ---- the baseline app (child process) ----

type baselineTarget struct {
	cmd     *exec.Cmd
	done    chan struct{}
	url     string
	spec    baselineSpec
	client  *http.Client
	chatter chatter
	logPath string
	started time.Time
}

// startBaseline runs this binary as the baseline app and waits for its address.
func startBaseline(ctx context.Context, dir string, spec baselineSpec) (*baselineTarget, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	spec.ResultPath = filepath.Join(dir, "result.json")
	specPath := filepath.Join(dir, "spec.json")
	data, _ := json.Marshal(spec)
	if err := os.WriteFile(specPath, data, 0o644); err != nil {
		return nil, err
	}
	b := &baselineTarget{spec: spec, done: make(chan struct{}), client: probeClient(), logPath: filepath.Join(dir, "baseline.log")}
	logf, err := os.Create(b.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	b.cmd = exec.Command(self, specPath)
	b.cmd.Env = append(os.Environ(), roleEnv+"=baseline")
	b.cmd.Stderr = logf
	b.cmd.SysProcAttr = childProcAttr()
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := b.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
				addr <- a
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case a := <-addr:
		b.url = "http://" + a
	case <-b.done:
		return nil, fmt.Errorf("baseline exited: %v\n%s", b.cmd.ProcessState, tailFile(b.logPath, 4<<10))
	case <-time.After(2 * time.Minute):
		b.stop()
		return nil, fmt.Errorf("baseline did not start\n%s", tailFile(b.logPath, 4<<10))
	case <-ctx.Done():
		b.stop()
		return nil, ctx.Err()
	}
	b.chatter = &sseChat{url: b.url + "/chat", client: probeClient(), label: "baseline app POST /chat (query embedding, search, streamed Ollama chat; steps on its event loop)",
		body: func(q string) any { return map[string]string{"question": q} }}
	return b, nil
}

func (b *baselineTarget) healthURL() string { return b.url + "/health" }
func (b *baselineTarget) chat() chatter     { return b.chatter }

func (b *baselineTarget) begin(ctx context.Context, t0 time.Time) {
	b.started = t0
	_, _ = postJSON(ctx, b.client, b.url+"/start", map[string]string{}, nil)
}

func (b *baselineTarget) poll(ctx context.Context) (progressSample, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(cctx, http.MethodGet, b.url+"/progress", nil)
	resp, err := b.client.Do(req)
	if err != nil {
		return progressSample{}, false, err
	}
	defer resp.Body.Close()
	var p progress
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return progressSample{}, false, err
	}
	return progressSample{Done: p.Done, Failed: p.Failed, Chunks: p.Chunks}, p.Finished, nil
}

func (b *baselineTarget) finish(ctx context.Context, r *phaseResult) {
	data, err := os.ReadFile(b.spec.ResultPath)
	if err != nil {
		// Not finished in time: take the live counters.
		p, _, perr := b.poll(ctx)
		if perr == nil {
			r.DocsReady, r.DocsFailed, r.Chunks = p.Done, p.Failed, p.Chunks
		}
		r.Seconds = time.Since(b.started).Seconds()
		r.Notes = append(r.Notes, "baseline did not finish: counts are those at the phase timeout")
		return
	}
	var res baselineResult
	if err := json.Unmarshal(data, &res); err != nil {
		r.Notes = append(r.Notes, "baseline result: "+err.Error())
		return
	}
	r.DocsReady, r.DocsFailed, r.Chunks, r.Seconds = res.DocsDone, res.DocsFailed, res.Chunks, res.Seconds
	r.EmbedCalls, r.EmbedCallErrors, r.EmbedCallTimeouts = res.Calls, res.CallErrors, res.CallTimeouts
	r.EmbedCallMsP50, r.EmbedCallMsP99 = res.CallMsP50, res.CallMsP99
	r.Failures = res.Failures
}

func (b *baselineTarget) stop() float64 { return stopProcess(b.cmd, b.done) }
func (b *baselineTarget) pid() int      { return b.cmd.Process.Pid }
