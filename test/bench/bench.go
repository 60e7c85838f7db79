package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// report is the whole result, written as JSON and rendered as Markdown and PNG.
type report struct {
	Machine        machineInfo    `json:"machine"`
	Command        string         `json:"command"`
	RuntimeSeconds float64        `json:"runtimeSeconds"`
	Settings       settings       `json:"settings"`
	Corpus         corpusStats    `json:"corpus"`
	Ollama         []ollamaInfo   `json:"ollama"`
	Limits         []limitEntry   `json:"limits"`
	Phases         []*phaseResult `json:"phases"`
	// PerRepeat are the phases before pooling (each repeat's timeline is in Phases' first).
	PerRepeat []*phaseResult `json:"-"`
	Goals     []goal         `json:"goals"`
	Notes     []string       `json:"notes,omitempty"`
	Scale     *scaleResult   `json:"scale,omitempty"`
}

type machineInfo struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpuModel"`
	MemoryGiB int    `json:"memoryGiB,omitempty"`
	GoVersion string `json:"goVersion"`
	OS        string `json:"os"`
	Date      string `json:"date"`
}

type settings struct {
	Docs            int     `json:"docs"`
	Scale           float64 `json:"scale"`
	WordsPerPage    int     `json:"wordsPerPage"`
	Seed            uint64  `json:"seed"`
	NumParallel     []int   `json:"numParallel"`
	HealthIntervalS float64 `json:"healthIntervalSeconds"`
	ChatIntervalS   float64 `json:"chatIntervalSeconds"`
	IdleChats       int     `json:"idleChats"`
	ClientTimeoutS  float64 `json:"baselineClientTimeoutSeconds"`
	PhaseTimeoutS   float64 `json:"phaseTimeoutSeconds"`
	UploadWorkers   int     `json:"uploadWorkers"`
	Chunking        string  `json:"chunking"`
	ServerLimits    string  `json:"serverLimits"`
}

type corpusStats struct {
	Docs          int     `json:"docs"`
	Pages         int     `json:"pages"`
	Words         int     `json:"words"`
	Chunks        int     `json:"chunks"`
	Bytes         int64   `json:"bytes"`
	PagesMin      int     `json:"pagesMin"`
	PagesMax      int     `json:"pagesMax"`
	ChunksPerDoc  float64 `json:"chunksPerDoc"`
	ChunksMax     int     `json:"chunksPerDocMax"`
	WordsPerChunk float64 `json:"wordsPerChunk"`
}

type ollamaInfo struct {
	NumParallel int               `json:"numParallel"`
	Version     string            `json:"version"`
	Env         map[string]string `json:"env"`
}

// limitEntry is the raw limit on one Ollama: every measurement, and their median.
type limitEntry struct {
	NumParallel    int           `json:"numParallel"`
	Batch          int           `json:"batch"`
	ChunksPerSec   float64       `json:"chunksPerSecMedian"`
	Min            float64       `json:"chunksPerSecMin"`
	Max            float64       `json:"chunksPerSecMax"`
	TokensPerChunk float64       `json:"modelTokensPerChunk"`
	Calls          int           `json:"calls"`
	Runs           []limitResult `json:"runs"`
}

func (e *limitEntry) summarize() {
	var xs []float64
	tokens, chunks := 0.0, 0
	for _, r := range e.Runs {
		xs = append(xs, r.ChunksPerSec)
		e.Calls += r.Calls
		tokens += r.TokensPerChunk * float64(r.Chunks)
		chunks += r.Chunks
	}
	e.ChunksPerSec, e.Min, e.Max = percentile(xs, 50), percentile(xs, 0), percentile(xs, 100)
	if chunks > 0 {
		e.TokensPerChunk = tokens / float64(chunks)
	}
}

// rotate returns xs starting at offset (modulo its length), wrapping around.
func rotate(xs []string, offset int) []string {
	if len(xs) == 0 {
		return xs
	}
	k := offset % len(xs)
	return append(slices.Clone(xs[k:]), xs[:k]...)
}

// goal is one of the targets, printed beside what was measured. Met is nil when the
// figure could not be measured.
type goal struct {
	Goal     string `json:"goal"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      *bool  `json:"met"`
}

// run runs every phase and writes the results (when cfg.Out is set).
func run(ctx context.Context, cfg config, stdout io.Writer) (*report, error) {
	began := time.Now()
	cfg.EnrichDocs = min(max(cfg.EnrichDocs, 1), cfg.Docs)
	if cfg.Log == nil {
		cfg.Log = stdout
	}
	tmp, err := os.MkdirTemp("", "rag-bench-")
	if err != nil {
		return nil, err
	}
	if cfg.Keep {
		logf(cfg, "work directory kept: %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	copts := corpusOptions{Docs: cfg.Docs, Scale: cfg.Scale, WordsPerPage: cfg.WordsPerPage, Seed: cfg.Seed}
	c, err := newCorpus(copts)
	if err != nil {
		return nil, err
	}
	rep := &report{Machine: machine(), Command: cfg.Command, Corpus: stats(c), Settings: settings{
		Docs: cfg.Docs, Scale: cfg.Scale, WordsPerPage: cfg.WordsPerPage, Seed: cfg.Seed, NumParallel: cfg.Parallel,
		HealthIntervalS: cfg.HealthInterval.Seconds(), ChatIntervalS: cfg.ChatInterval.Seconds(), IdleChats: cfg.IdleChats,
		ClientTimeoutS: cfg.ClientTimeout.Seconds(), PhaseTimeoutS: cfg.PhaseTimeout.Seconds(), UploadWorkers: cfg.UploadWorkers,
		Chunking:     fmt.Sprintf("internal/chunk, %d tokens, %d overlap, for every strategy", chunkOptions.Size, chunkOptions.Overlap),
		ServerLimits: "operator defaults: embedConcurrency 2, embedBatchSize 32, maxConcurrentProcessing 3, jobWorkers 3, ragTimeout 60s, warmingMaxConcurrentQueries min(3, numParallel-1); ours+enrich: warming 3 at every numParallel",
	}}
	logf(cfg, "corpus: %d documents, %d pages (%d-%d per document), %d words, %d chunks (%.1f per document, at most %d), %.1f MB",
		rep.Corpus.Docs, rep.Corpus.Pages, rep.Corpus.PagesMin, rep.Corpus.PagesMax, rep.Corpus.Words, rep.Corpus.Chunks,
		rep.Corpus.ChunksPerDoc, rep.Corpus.ChunksMax, float64(rep.Corpus.Bytes)/1e6)
	if cfg.DryRun {
		return rep, nil
	}
	var texts []string
	for _, d := range c.Docs {
		for _, ch := range d.Chunks {
			texts = append(texts, ch.Text)
		}
	}

	needServer := cfg.runs(phaseScale) || cfg.runs(phaseIngest) && (cfg.Enrich || cfg.SLO || slices.Contains(cfg.Strategies, stratOurs))
	bin := cfg.ServerBin
	if needServer && bin == "" {
		logf(cfg, "building cmd/rag-server")
		if bin, err = buildServer(ctx, tmp); err != nil {
			return nil, err
		}
	}

	for _, np := range cfg.Parallel {
		if !cfg.runs(phaseIngest) {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		logf(cfg, "NUM_PARALLEL=%d: starting Ollama %s and creating the models", np, ollamatest.Version)
		ol, env, err := startOllama(ctx, np, cfg.MultiuserCache)
		if err != nil {
			return nil, err
		}
		info := ollamaInfo{NumParallel: np, Env: env, Version: ollamaVersion(ctx, ol.URL)}
		rep.Ollama = append(rep.Ollama, info)

		// The raw limit is measured before the first phase and after every phase; each phase is
		// compared with the mean of the two measurements around it.
		entry := limitEntry{NumParallel: np, Batch: cfg.LimitBatch}
		offset := 0
		calibrate := func() limitResult {
			settle(ctx, ol.URL)
			l := measureLimit(ctx, ol.URL, rotate(texts, offset)[:min(cfg.LimitChunks, len(texts))], cfg.LimitBatch, cfg.LimitTime)
			offset += l.Chunks
			entry.Runs = append(entry.Runs, l)
			logf(cfg, "  limit: %.2f chunks/s (%d chunks in %.1f s, batches of %d, %.0f model tokens per chunk)%s",
				l.ChunksPerSec, l.Chunks, l.Seconds, l.Batch, l.TokensPerChunk, errSuffix(l.Error))
			return l
		}
		before := calibrate()

		phases := slices.Clone(cfg.Strategies)
		if cfg.Enrich {
			phases = append(phases, stratEnrich)
		}
		if cfg.SLO {
			phases = append(phases, stratSLOTight, stratSLOLoose)
		}
		for rp := 1; rp <= cfg.Repeats; rp++ {
			for i, strat := range phases {
				if rp > 1 && r0SLO(strat) {
					continue // the objective's phases show the throttle's course; once is enough
				}
				docs := c.Docs
				if enriching(strat) {
					docs = c.Docs[:cfg.EnrichDocs]
				}
				var best *phaseResult
				// A phase during which the machine was disturbed (the limit before and after it differ
				// more than 2×: another tenant's work) is run once more.
				for attempt := 1; attempt <= 2; attempt++ {
					if err := ctx.Err(); err != nil {
						ol.Close()
						return nil, err
					}
					dir := filepath.Join(tmp, fmt.Sprintf("np%d-r%d-%d-%d", np, rp, i, attempt))
					if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
						ol.Close()
						return nil, err
					}
					r := &phaseResult{NumParallel: np, Strategy: strat, Docs: len(docs)}
					r.SLO = sloFor(cfg, strat, rep.phase(np, stratEnrich))
					if err := runStrategy(ctx, cfg, strat, np, bin, dir, ol.URL, c, docs, r); err != nil {
						ol.Close()
						return nil, fmt.Errorf("NUM_PARALLEL=%d %s: %w", np, strat, err)
					}
					after := calibrate()
					r.LimitChunksPerSec = (before.ChunksPerSec + after.ChunksPerSec) / 2
					if r.LimitChunksPerSec > 0 {
						r.RatioToLimit = r.ChunksPerSec / r.LimitChunksPerSec
					}
					disturbed := min(before.ChunksPerSec, after.ChunksPerSec) < 0.5*max(before.ChunksPerSec, after.ChunksPerSec)
					if disturbed {
						r.Notes = append(r.Notes, fmt.Sprintf("machine disturbed during attempt %d (limit %.2f before, %.2f after)", attempt, before.ChunksPerSec, after.ChunksPerSec))
					}
					before = after
					if cfg.Repeats > 1 {
						logf(cfg, "  (repeat %d of %d)", rp, cfg.Repeats)
					}
					logf(cfg, "  %-12s %6.1f docs/min %6.2f chunks/s (%.2f of limit)  failed %d timed out %d  healthz p99 %s (control %s)  TTFT p95 ingest %s idle %s  RSS %.0f MiB  load %.1f→%.1f%s",
						strat, r.DocsPerMin, r.ChunksPerSec, r.RatioToLimit, r.DocsFailed, r.DocsTimedOut, fmtMs(r.Health.P99), fmtMs(r.Control.P99),
						fmtMs(r.ChatIngest.P95), fmtMs(r.ChatIdle.P95), r.PeakRSSMiB, r.LoadAvg[0], r.LoadAvg[1], enrichSuffix(r))
					if r.SLO != nil {
						logf(cfg, "  %-12s %s", "", sloLine(r))
					}
					// Keep the attempt the machine disturbed least: the lower control p99 (the bare
					// handler probed during the phase).
					if best == nil || r.Control.P99 < best.Control.P99 {
						if best != nil {
							r.Notes = append(best.Notes, r.Notes...)
						}
						best = r
					} else {
						best.Notes = append(best.Notes, r.Notes...)
					}
					if !disturbed || !cfg.RetryDisturbed {
						break
					}
					if attempt == 1 {
						logf(cfg, "  (machine disturbed: running %s once more)", strat)
					}
				}
				rep.Phases = append(rep.Phases, best)
			}
		}
		entry.summarize()
		rep.Limits = append(rep.Limits, entry)
		ol.Close()
	}
	if cfg.runs(phaseScale) {
		if rep.Scale, err = scalePhase(ctx, cfg, bin, tmp, c); err != nil {
			return nil, err
		}
	}
	if cfg.runs(phaseIngest) {
		rep.PerRepeat = rep.Phases
		rep.Phases = poolRepeats(rep.Phases)
		rep.Goals = evaluateGoals(rep)
		rep.Notes = reportNotes(rep)
	}
	rep.RuntimeSeconds = time.Since(began).Seconds()

	if cfg.runs(phaseIngest) {
		fmt.Fprintln(stdout)
		fmt.Fprint(stdout, markdownTable(rep))
		fmt.Fprintln(stdout)
		fmt.Fprint(stdout, markdownGoals(rep))
		if t := markdownSLO(rep); t != "" {
			fmt.Fprintln(stdout)
			fmt.Fprint(stdout, t)
		}
	}
	if rep.Scale != nil {
		fmt.Fprintln(stdout)
		fmt.Fprint(stdout, scaleMarkdown(rep.Scale))
	}
	if cfg.Out != "" {
		paths, err := writeResults(rep, cfg.Out, cfg.Name)
		if err != nil {
			return rep, err
		}
		fmt.Fprintf(stdout, "\nwrote %s\n", strings.Join(paths, ", "))
	}
	fmt.Fprintf(stdout, "reproduce: %s   (%.0f s)\n", rep.Command, rep.RuntimeSeconds)
	return rep, nil
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " error: " + e
}

func enrichSuffix(r *phaseResult) string {
	if !enriching(r.Strategy) {
		return ""
	}
	return fmt.Sprintf("  enriched %d (+%d failed): %.1f docs/min", r.Enriched, r.EnrichFailed, r.EnrichDocsPerMin)
}

// runStrategy runs one phase of strategy on the Ollama at ollamaURL, with a fresh Qdrant.
func runStrategy(ctx context.Context, cfg config, strat string, np int, bin, dir, ollamaURL string, c *corpus, docs []document, r *phaseResult) error {
	q, err := freshQdrant(ctx)
	if err != nil {
		return err
	}
	defer q.Stop()
	questions := newQuestions(cfg.Seed)
	switch strat {
	case stratOurs, stratEnrich, stratSLOTight, stratSLOLoose:
		warming := min(3, np-1) // the operator's CEL rule: warming < numParallel
		enrich := enriching(strat)
		if enrich {
			warming = 3
			if np <= warming {
				r.Notes = append(r.Notes, fmt.Sprintf("warmingMaxConcurrentQueries 3 with NUM_PARALLEL %d: the operator refuses this (warming must be below numParallel, so ours would skip summaries); set here to measure the guide's claim with only NUM_PARALLEL changed", np))
			}
		}
		scfg := serverConfig(filepath.Join(dir, "data"), ollamaURL, q.Address(), warming)
		if r.SLO != nil {
			// The same server as ours+enrich, with only the objective added.
			scfg.SLO = serverconfig.SLO{ChatTTFTP95: r.SLO.target().String()}
		}
		var extra []string
		if enrich && cfg.PreemptBackground >= 0 {
			extra = append(extra, fmt.Sprintf("--preempt-background=%d", cfg.PreemptBackground))
			r.Notes = append(r.Notes, fmt.Sprintf("--preempt-background=%d: answers cut running summary and tag steps", cfg.PreemptBackground))
		}
		if enrich && cfg.QuestionWindow >= 0 {
			extra = append(extra, fmt.Sprintf("--question-window=%s", cfg.QuestionWindow))
			r.Notes = append(r.Notes, fmt.Sprintf("--question-window=%s: summaries and tags one at a time for this long after a question (0: off)", cfg.QuestionWindow))
		}
		// As in the pod: the init container compiles the PDF engine into the fresh data volume,
		// then the server starts and loads it.
		initStart := time.Now()
		ic := exec.CommandContext(ctx, bin, "pdf-engine-compile", "--data-dir", scfg.DataDir)
		ic.SysProcAttr = childProcAttr()
		if out, err := ic.CombinedOutput(); err != nil {
			return fmt.Errorf("rag-server pdf-engine-compile: %w\n%s", err, out)
		}
		r.InitSeconds, r.InitPeakRSSMiB = time.Since(initStart).Seconds(), maxRSSMiB(ic.ProcessState)
		srv, err := startServer(ctx, bin, dir, scfg, enrich, cfg.ServerLogLevel, cfg.ServerCPUProfile, extra...)
		if err != nil {
			return err
		}
		// The ingest starts once the server has loaded its PDF engine.
		if waited, err := waitPDFEngine(ctx, srv.MetricsURL, 3*time.Minute); err != nil {
			r.Notes = append(r.Notes, "PDF engine: "+err.Error())
		} else if waited > 0 {
			logf(cfg, "  (%s: waited %.1f s for the server's PDF engine to load)", strat, waited.Seconds())
		}
		r.IdleRSSMiB = rssMiB(srv.cmd.Process.Pid)
		tg := &serverTarget{cfg: cfg, srv: srv, docs: docs, enrich: enrich, client: probeClient()}
		if sc, why := detectServerChat(ctx, srv.URL); sc != nil {
			tg.chatter = sc
		} else {
			tg.chatter = &directChat{ollama: ollamaURL, client: probeClient(), context: fixedContext(c)}
			r.Notes = append(r.Notes, "chat TTFT measured on the server-independent path: "+why)
		}
		runPhase(ctx, cfg, tg, r, questions)
	case stratSemaphore, stratUnbounded:
		spec := baselineSpecFor(strat)
		spec.OllamaURL, spec.QdrantAddr, spec.Collection = ollamaURL, q.Address(), collectionName
		spec.Corpus = corpusOptions{Docs: cfg.Docs, Scale: cfg.Scale, WordsPerPage: cfg.WordsPerPage, Seed: cfg.Seed}
		spec.ClientTimeout = cfg.ClientTimeout
		tg, err := startBaseline(ctx, dir, spec)
		if err != nil {
			return err
		}
		runPhase(ctx, cfg, tg, r, questions)
		r.Notes = append(r.Notes, fmt.Sprintf("%d documents at a time, %s, batches of %d gathered, %s client timeout, whole-batch retry up to %d attempts; embed call latency p50 %s p99 %s",
			spec.DocWorkers, semDesc(spec.Semaphore), spec.Batch, spec.ClientTimeout, spec.MaxAttempts, fmtMs(r.EmbedCallMsP50), fmtMs(r.EmbedCallMsP99)))
	default:
		return fmt.Errorf("unknown strategy %q", strat)
	}
	return nil
}

func semDesc(n int) string {
	if n == 0 {
		return "no limit on calls in flight"
	}
	return fmt.Sprintf("at most %d calls in flight", n)
}

// fixedContext is three chunks of the corpus, standing in for retrieval on the direct path.
func fixedContext(c *corpus) string {
	var b strings.Builder
	n := 0
	for _, d := range c.Docs {
		for _, ch := range d.Chunks {
			if n == 3 {
				return b.String()
			}
			fmt.Fprintf(&b, "[%d] %s\n\n", n+1, ch.Text)
			n++
		}
	}
	return b.String()
}

// settle waits (at most 2 minutes) until a one-word embedding answers within a second: calls
// abandoned by a previous phase's client timeouts may still be queued inside Ollama.
func settle(ctx context.Context, ollamaURL string) {
	client := probeClient()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := postJSON(cctx, client, ollamaURL+"/api/embed", map[string]any{"model": embedModel, "input": "settle"}, nil)
		cancel()
		if err == nil && time.Since(start) < time.Second {
			return
		}
		time.Sleep(time.Second)
	}
}

func ollamaVersion(ctx context.Context, url string) string {
	var v struct {
		Version string `json:"version"`
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/version", nil)
	resp, err := probeClient().Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	_ = decodeJSON(resp.Body, &v)
	return v.Version
}

func machine() machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		Date: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryGiB = (kb + 512<<10) >> 20
		}
	}
	return m
}

func stats(c *corpus) corpusStats {
	s := corpusStats{Docs: len(c.Docs), Pages: c.Pages, Words: c.Words, Chunks: c.Chunks, Bytes: c.Bytes, PagesMin: 1 << 30}
	words := 0
	for _, d := range c.Docs {
		s.PagesMin = min(s.PagesMin, d.Pages)
		s.PagesMax = max(s.PagesMax, d.Pages)
		s.ChunksMax = max(s.ChunksMax, len(d.Chunks))
		for _, ch := range d.Chunks {
			words += ch.Words
		}
	}
	if s.Docs > 0 {
		s.ChunksPerDoc = float64(c.Chunks) / float64(s.Docs)
	}
	if c.Chunks > 0 {
		s.WordsPerChunk = float64(words) / float64(c.Chunks)
	}
	return s
}

// r0SLO says whether a strategy is one of the objective's phases, run in the first repeat only.
func r0SLO(strat string) bool { return strat == stratSLOTight || strat == stratSLOLoose }
