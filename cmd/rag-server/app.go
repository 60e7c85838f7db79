package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ragstack/rag-operator/internal/auth"
	"github.com/ragstack/rag-operator/internal/chat"
	"github.com/ragstack/rag-operator/internal/chunk"
	"github.com/ragstack/rag-operator/internal/httpapi"
	"github.com/ragstack/rag-operator/internal/ingest"
	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/parse"
	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/slo"
	"github.com/ragstack/rag-operator/internal/store"
	"github.com/ragstack/rag-operator/internal/vector"
)

// options are the command-line settings that are not in the config file.
type options struct {
	insecureNoAuth  bool
	enrich          bool
	keysReload      time.Duration
	shutdownTimeout time.Duration
	probeInterval   time.Duration
	// sloProbeInterval is how often the server probes its own /healthz for the objective.
	sloProbeInterval time.Duration
	// answerCacheSize > 0 turns the answer cache on with that many answers (see chat.Cache for
	// why it is off by default).
	answerCacheSize int
	// storeLease: how long a replica's claim on a document outlives the replica (PostgreSQL).
	storeLease time.Duration
	// preemptBackground > 0 lets an answer cut running summaries and tags (llm.SetPreemption).
	preemptBackground int
	// questionWindow: how long after a question background chat stays one call at a time
	// (llm.Options.QuestionWindow); 0 turns that off.
	questionWindow time.Duration
}

// app is the assembled server; newApp builds it, serve runs it until ctx ends.
type app struct {
	cfg    serverconfig.Config
	opts   options
	log    *slog.Logger
	st     store.Store
	vec    vector.Store
	llm    *llm.Pool
	parser *parse.Parser
	keys   *auth.Keys
	pipe   *ingest.Pipeline
	answer *chat.Answerer
	ready  *httpapi.Readiness
	slo    *slo.Tracker
	http   *http.Server
	// metrics serves only /metrics and /healthz, without a key, on metricsListen (nil: none).
	metrics *http.Server

	// changes, with PostgreSQL and the answer cache on: other replicas' writes empty cache.
	changes store.ChangeFeed
	cache   *chat.Cache
}

func newApp(ctx context.Context, cfg serverconfig.Config, opts options, log *slog.Logger) (a *app, err error) {
	a = &app{cfg: cfg, opts: opts, log: log}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var authn auth.Authenticator
	switch {
	case opts.insecureNoAuth:
		log.Warn("Authentication is OFF (--insecure-no-auth): every request is an admin. For local use only")
		authn = auth.Anonymous{}
	case cfg.Auth.KeysFile == "":
		return a, errors.New("auth.keysFile: must be set (or start with --insecure-no-auth, for local use only)")
	default:
		if a.keys, err = auth.LoadFile(cfg.Auth.KeysFile, log); err != nil {
			return a, fmt.Errorf("auth.keysFile: %w", err)
		}
		authn = a.keys
	}

	if a.st, err = openStore(ctx, cfg, opts, log); err != nil {
		return a, err
	}

	lopts, err := llm.FromConfig(cfg)
	if err != nil {
		return a, err
	}
	lopts.Metrics = reg
	lopts.QuestionWindow = opts.questionWindow
	if opts.questionWindow == 0 {
		lopts.QuestionWindow = -1 // off; llm's zero value means its default
	}
	a.llm = llm.NewPool(llm.PoolOptions{Options: lopts, URLs: cfg.Ollama.URLs, Warm: warmModels(cfg), Logger: log})
	a.llm.SetPreemption(opts.preemptBackground)

	if cfg.Qdrant.Address != "" {
		qo, err := qdrantOptions(cfg)
		if err != nil {
			return a, err
		}
		if a.vec, err = vector.NewQdrant(ctx, qo); err != nil {
			return a, err
		}
	} else if a.vec, err = vector.NewMemory(filepath.Join(cfg.DataDir, "vectors"), cfg.Qdrant.Collection); err != nil {
		return a, err
	}

	a.parser = parse.New(parse.Options{
		PDFInstances: cfg.Limits.MaxConcurrentProcessing + 1, // +1: upload validation never waits for ingest
		PDFCacheDir:  pdfCacheDir(cfg.DataDir),
	})

	// The Answerer reads the vector store directly; ingest writes through InvalidateOnWrite, so
	// every change to what retrieval can return (a document ready, reprocessed, deleted or
	// re-tagged, and maintenance's retries of those) empties the answer cache.
	ccfg := chat.FromServerConfig(cfg)
	if opts.answerCacheSize > 0 {
		ccfg.Cache = chat.NewCache(opts.answerCacheSize)
	}
	if a.answer, err = chat.New(a.llm, a.vec, ccfg); err != nil {
		return a, err
	}
	ingestVec := chat.InvalidateOnWrite(a.vec, ccfg.Cache) // the store itself when the cache is off
	lister, _ := a.vec.(vector.DocumentLister)             // both stores: the startup reconciliation
	if feed, ok := a.st.(store.ChangeFeed); ok && ccfg.Cache != nil {
		// Replicas share the knowledge base: this one's writes empty the others' caches too.
		ingestVec = chat.PublishOnWrite(ingestVec, feed.PublishChange, log)
		a.changes, a.cache = feed, ccfg.Cache
	}

	enrich := opts.enrich
	if enrich && cfg.Limits.WarmingMaxConcurrentQueries == 0 {
		log.Warn("Summaries and auto-tags are off: limits.warmingMaxConcurrentQueries is 0, so background work has no chat slot")
		enrich = false
	}
	a.pipe = ingest.New(ingest.Config{
		Workers:       cfg.Limits.MaxConcurrentProcessing,
		EnrichWorkers: cfg.Limits.JobWorkers,
		EmbedModel:    cfg.Models.Embedding,
		SummaryModel:  cfg.Models.Summary,
		TaggingModel:  cfg.Models.Tagging,
		Chunk:         chunk.Options{Size: cfg.Chunk.Size, Overlap: cfg.Chunk.Overlap},
		Enrich:        enrich,
		MaxQueued:     cfg.Limits.MaxQueuedDocuments,
		Lister:        lister,
		Logger:        log,
	}, a.st, a.parser, a.llm, ingestVec, ingest.NewMetrics(reg))
	// The PDF engine compiles PDFium in the background at start (seconds of CPU on a small
	// machine, once per data volume thanks to its cache): this says when it is done.
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rag_pdf_engine_ready",
		Help: "1 once the PDF engine (PDFium in WebAssembly) is compiled and ready, 0 while it compiles at start.",
	}, func() float64 {
		if a.parser.PDFReady() {
			return 1
		}
		return 0
	}))

	// The latency objective: measured whether declared or not; a chat target also steers
	// background work (the Ollama client's throttle) to hold it.
	targets, err := cfg.SLO.Targets()
	if err != nil {
		return a, err
	}
	a.slo = slo.New(targets, slo.Options{Actuator: a.llm})
	reg.MustRegister(a.slo)

	// Only the store decides readiness: with Ollama or the vector store down, the API stays in
	// its Service and refuses just the questions (503), while documents and sessions keep working.
	a.ready = httpapi.NewReadiness(opts.probeInterval, 2*time.Second,
		httpapi.Check{Name: httpapi.DepStore, Probe: a.st.Ping, Self: true},
		httpapi.Check{Name: httpapi.DepOllama, Probe: a.llm.Ping, Parts: a.ollamaServers},
		httpapi.Check{Name: httpapi.DepVector, Probe: a.vec.Ping},
	).WithLogger(log).OnRecover(a.pipe.DependencyBack) // ingest waiting out a backoff resumes at once
	srv, err := httpapi.New(httpapi.Config{
		MaxFileBytes: cfg.Uploads.MaxFileBytes,
		MaxFiles:     cfg.Uploads.MaxFilesPerRequest,
		AllowedTypes: cfg.Uploads.AllowedTypes,
		MaxQueued:    cfg.Limits.MaxQueuedDocuments,
		ChatModel:    cfg.Models.Chat,
		ModelAliases: cfg.Models.ChatAliases,
		RagTimeout:   cfg.RagTimeout(),
		// Upload limits; a 0 in the file turns the threshold or the minimum rate off.
		MaxRequestBytes:      cfg.Uploads.MaxRequestBytes,
		SpoolBytes:           cfg.Uploads.SpoolBytes,
		MinFreeBytes:         cmp.Or(cfg.Uploads.MinFreeBytes, -1),
		MinBytesPerSecond:    cmp.Or(cfg.Uploads.MinBytesPerSecond, -1),
		MaxConcurrentUploads: cfg.Uploads.MaxConcurrent,
		MaxUploadsPerKey:     cfg.Uploads.MaxConcurrentPerKey,
	}, httpapi.Deps{Store: a.st, Pipeline: a.pipe, Validator: a.parser, Auth: authn, Ready: a.ready, Registry: reg, Logger: log,
		Chat: a.answer, Console: a.console(), SLO: a.slo})
	if err != nil {
		return a, err
	}
	a.http = &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// Uploads of maxFilesPerRequest × maxFileBytes over a slow link need minutes.
		ReadTimeout: 15 * time.Minute,
		// Responses are small JSON; answers that stream (chat) extend their own deadline
		// through http.ResponseController.
		WriteTimeout:   15 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.MetricsListen != "" {
		a.metrics = &http.Server{
			Handler:           srv.MetricsHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	return a, nil
}

// warmModels are the configured models, each once: the embedding model loaded with an empty
// embed, the others with an empty generate.
func warmModels(cfg serverconfig.Config) []llm.WarmModel {
	out := []llm.WarmModel{{Name: cfg.Models.Embedding, Embedding: true}}
	seen := map[string]bool{cfg.Models.Embedding: true}
	for _, m := range []string{cfg.Models.Chat, cfg.Models.Summary, cfg.Models.Tagging} {
		if !seen[m] {
			seen[m] = true
			out = append(out, llm.WarmModel{Name: m})
		}
	}
	return out
}

// ollamaServers is the pool's per-server state for the health view and rag_dependency_up
// ("ollama/<index>"): up while in rotation; nil with one server.
func (a *app) ollamaServers() map[string]httpapi.CheckResult {
	servers := a.llm.Servers()
	if servers == nil {
		return nil
	}
	out := make(map[string]httpapi.CheckResult, len(servers))
	for _, s := range servers {
		at := s.CheckedAt
		if s.Since.After(at) {
			at = s.Since
		}
		out[s.Name] = httpapi.CheckResult{OK: s.InRotation, Error: s.Error, CheckedAt: at.UTC(), LatencyMS: s.Latency.Milliseconds(), Address: s.URL}
	}
	return out
}

// qdrantOptions maps qdrant.* onto the client. The address is plain host:port (gRPC); the
// config has no TLS switch, so the connection is plaintext, as inside a cluster network.
func qdrantOptions(cfg serverconfig.Config) (vector.QdrantOptions, error) {
	o := vector.QdrantOptions{
		Addr:        cfg.Qdrant.Address,
		Collection:  cfg.Qdrant.Collection,
		HNSWEf:      cfg.Search.HNSWEf,
		UpsertBatch: cfg.Limits.EmbedBatchSize,
	}
	if cfg.Qdrant.APIKeyFile != "" {
		key, err := os.ReadFile(cfg.Qdrant.APIKeyFile)
		if err != nil {
			return o, fmt.Errorf("qdrant.apiKeyFile: %w", err)
		}
		o.APIKey = strings.TrimSpace(string(key))
	}
	if cfg.Qdrant.ReadOnlyAPIKeyFile != "" {
		key, err := os.ReadFile(cfg.Qdrant.ReadOnlyAPIKeyFile)
		if err != nil {
			return o, fmt.Errorf("qdrant.readOnlyApiKeyFile: %w", err)
		}
		o.ReadOnlyAPIKey = strings.TrimSpace(string(key))
	}
	return o, nil
}

// serve runs everything until ctx ends, then shuts down in order: report not ready, stop
// taking requests and finish those in flight, stop the workers (their documents go back to
// the queue), close the stores. metricsLn is the metrics listener (nil when metricsListen is
// empty).
func (a *app) serve(ctx context.Context, ln, metricsLn net.Listener) error {
	defer a.close()
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	var wg sync.WaitGroup
	wg.Go(func() { a.ready.Run(bg) })
	if a.llm.Size() > 1 {
		// Every server of the pool gets the models before the first calls need them.
		wg.Go(func() { a.llm.WarmUp(bg) })
	}
	if a.keys != nil {
		wg.Go(func() { a.keys.Watch(bg, a.opts.keysReload) })
	}
	if a.changes != nil {
		wg.Go(func() { a.changes.WatchChanges(bg, a.cache.Bump) })
	}
	wg.Go(func() {
		start := time.Now()
		if err := a.parser.WarmUp(bg); err != nil {
			a.log.Error("PDF engine failed to start: PDF uploads will fail", "error", err)
			return
		}
		// Loaded from the cache (pdf-engine-compile ran first) this freed little; after a
		// compile here it returns ~300 MiB now, which the runtime would otherwise keep for minutes.
		debug.FreeOSMemory()
		a.log.Info("PDF engine ready", "seconds", time.Since(start).Seconds())
	})
	var pipeDone sync.WaitGroup
	pipeDone.Go(func() {
		if err := a.ensureCollection(bg); err != nil {
			return
		}
		// Points of documents this store never saw are swept and documents whose points are
		// gone are queued again, beside the workers; readiness does not wait for it.
		pipeDone.Go(func() { a.pipe.ReconcileAtStart(bg) })
		a.pipe.Run(bg)
	})

	wg.Go(func() { a.slo.Run(bg) })
	wg.Go(func() {
		a.slo.ProbeHealthz(bg, selfURL(ln.Addr())+"/healthz", cmp.Or(a.opts.sloProbeInterval, time.Second))
	})

	errc := make(chan error, 2)
	go func() { errc <- a.http.Serve(ln) }()
	a.log.Info("RAG server listening", "addr", ln.Addr().String(), "dataDir", a.cfg.DataDir)
	if a.metrics != nil && metricsLn != nil {
		go func() { errc <- a.metrics.Serve(metricsLn) }()
		a.log.Info("Metrics listening (no key needed)", "addr", metricsLn.Addr().String())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	a.log.Info("Shutting down")
	a.ready.SetDraining()
	sctx, cancel := context.WithTimeout(context.Background(), a.opts.shutdownTimeout)
	defer cancel()
	if err := a.http.Shutdown(sctx); err != nil {
		a.log.Warn("HTTP shutdown incomplete", "error", err)
	}
	if a.metrics != nil {
		a.metrics.Shutdown(sctx)
	}
	stopBG()
	pipeDone.Wait()
	wg.Wait()
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

// ensureCollection retries until the vector store has the collection: ingesting into a
// missing one would only fail documents.
func (a *app) ensureCollection(ctx context.Context) error {
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := a.vec.EnsureCollection(cctx)
		cancel()
		if err == nil {
			return nil
		}
		a.log.Error("Vector collection not usable, ingest waits", "collection", a.cfg.Qdrant.Collection.Name, "error", err, "retryIn", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

func (a *app) close() {
	if a.llm != nil {
		a.llm.Close()
	}
	if a.parser != nil {
		a.parser.Close()
	}
	if a.vec != nil {
		a.vec.Close()
	}
	if a.st != nil {
		a.st.Close()
	}
}

// console is what the web UI's routes read: chunks from the vector store, the Ollama client's
// lanes and loaded models, the configured models.
func (a *app) console() *httpapi.Console {
	c := &httpapi.Console{LLM: a.llm, VectorStore: "embedded", Models: map[string]string{
		"chat": a.cfg.Models.Chat, "embedding": a.cfg.Models.Embedding, "summary": a.cfg.Models.Summary, "tagging": a.cfg.Models.Tagging,
	}}
	if a.cfg.Qdrant.Address != "" {
		c.VectorStore = "qdrant"
	}
	c.Chunks, _ = a.vec.(vector.ChunkGetter)
	return c
}

// selfURL is how the server reaches its own listener: a wildcard address is dialled on the
// loopback interface.
func selfURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}
