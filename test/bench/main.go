// Command bench measures the DGX Spark guide's scenario side by side on one real Ollama: a bulk
// upload ingested while /healthz is probed every 100 ms and a chat question is asked every 2 s.
//
// For each Ollama NUM_PARALLEL (1 and 4) it measures, on the same Ollama in the same run:
//
//   - limit:       raw batched /api/embed throughput, nothing else running;
//   - ours:        the real cmd/rag-server binary (a separate process), documents uploaded over
//     POST /api/documents;
//   - semaphore-4: the guide's fix, one /api/embeddings call per chunk, four at a time;
//   - unbounded:   the guide's failure, one call per chunk, a whole batch of 100 at once, with the
//     Python app's 60 s client timeout;
//   - ours+enrich: ours with summaries and auto-tags (--enrich), for the guide's "4x" claim.
//
// Then the scale phase (scale.go): one RAG server on SQLite against one and three replicas on
// one PostgreSQL, on one Ollama, reported as ratios (-phases scale runs it alone).
//
// The baselines run in a child process that emulates the Python app's single event loop (see
// baseline.go); its health endpoint is served through that loop. Results go to
// docs/benchmarks/bench.{json,md,png}.
//
//	go run ./test/bench                     # the defaults (5–15 min on 2 shared cores)
//	go run ./test/bench -docs 200 -scale 1  # the guide's real sizes (hours on a CPU)
//	go run ./test/bench -phases scale       # only the replicas (docs/benchmarks/scale.*)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// roleEnv makes the binary run as the baseline app (a child of the bench) instead of the bench.
const roleEnv = "RAG_BENCH_ROLE"

func main() {
	if os.Getenv(roleEnv) == "baseline" {
		os.Exit(baselineMain(os.Args[1:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(mainCode(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func mainCode(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if _, err := run(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// config is the whole bench setting; flags map onto it one to one.
type config struct {
	Docs         int
	Scale        float64 // multiplies each document's page count (real: mostly 5–50 pages)
	WordsPerPage int
	Seed         uint64
	Parallel     []int    // OLLAMA_NUM_PARALLEL values, one Ollama each
	Strategies   []string // of ours, semaphore-4, unbounded
	Enrich       bool     // also run ours with --enrich per NUM_PARALLEL
	EnrichDocs   int      // documents uploaded in the --enrich phases (the first of the corpus)
	// Phases are ingest (the strategies per NUM_PARALLEL) and scale (replicas, scale.go).
	Phases         []string
	ScaleQuestions int // idle questions per scale run
	// SLO adds, per NUM_PARALLEL, ours+enrich with a tight and a loose chat TTFT objective
	// (slo.chatTTFTP95): the throttle's level over time and the p95 attained against each.
	SLO bool
	// SLOTight is the tight target; 0: 1.2× the idle TTFT p95 ours+enrich measured on the same
	// Ollama just before (1 s when it did not run). SLOLoose is the loose one.
	SLOTight, SLOLoose time.Duration
	// PreemptBackground is the rag-server's --preempt-background in the phases with summaries.
	PreemptBackground int
	// QuestionWindow is the rag-server's --question-window in the phases with summaries
	// (negative: the server's default).
	QuestionWindow time.Duration

	HealthInterval time.Duration
	ChatInterval   time.Duration
	IdleChats      int
	LimitChunks    int           // chunks per raw /api/embed measurement
	LimitTime      time.Duration // bound on one raw /api/embed measurement
	LimitBatch     int
	PhaseTimeout   time.Duration // a phase's documents not done by then count as timed out
	ClientTimeout  time.Duration // the baselines' per-call timeout (the Python app's httpx 60 s)
	UploadWorkers  int
	// RetryDisturbed runs a phase once more when the limit measured before and after it differ
	// more than 2× (another tenant's work on a shared machine).
	RetryDisturbed bool
	// Repeats runs every phase this many times, interleaved, and pools them (repeat.go).
	Repeats int
	// MultiuserCache adds OLLAMA_MULTIUSER_CACHE=true (the guide's §1) to Ollama's settings.
	MultiuserCache bool

	Out       string // directory for the result files; "" writes none
	Name      string // file name stem: <Name>.json, .md, .png
	ServerBin string // a prebuilt rag-server; "" builds ./cmd/rag-server
	// Keep leaves the work directory (each phase's server config, data and log) in place.
	Keep bool
	// ServerLogLevel is the rag-server's --log-level ("info" logs every answer with its timings).
	ServerLogLevel string
	// ServerCPUProfile makes each server phase write cpu.pprof into its work directory.
	ServerCPUProfile bool
	Command          string // how the figures are reproduced, printed in the report
	Verbose          bool
	DryRun           bool // print the corpus and exit
	Log              io.Writer
}

func defaultConfig() config {
	return config{
		Docs: 24, Scale: 0.1, WordsPerPage: RealWordsPerPage, Seed: 1,
		Parallel:          []int{1, 4},
		Strategies:        []string{stratOurs, stratSemaphore, stratUnbounded},
		Enrich:            true,
		EnrichDocs:        10,
		Phases:            []string{phaseIngest, phaseScale},
		ScaleQuestions:    30,
		SLO:               true,
		SLOLoose:          30 * time.Second,
		HealthInterval:    100 * time.Millisecond,
		ChatInterval:      2 * time.Second,
		IdleChats:         20, // × 3 repeats: 60 idle questions per phase, so that p95 is not the second slowest
		LimitChunks:       128,
		LimitTime:         2 * time.Minute,
		LimitBatch:        64,
		PhaseTimeout:      4 * time.Minute,
		ClientTimeout:     60 * time.Second,
		UploadWorkers:     4,
		RetryDisturbed:    true,
		Repeats:           3,
		PreemptBackground: -1,
		QuestionWindow:    -1,
		Out:               "docs/benchmarks",
		Name:              "bench",
	}
}

const (
	stratLimit     = "limit"
	stratOurs      = "ours"
	stratSemaphore = "semaphore-4"
	stratUnbounded = "unbounded"
	stratEnrich    = "ours+enrich"
	stratSLOTight  = "ours+slo-tight"
	stratSLOLoose  = "ours+slo-loose"
)

// enriching says whether a phase runs ours with summaries and tags (and so ingests EnrichDocs).
func enriching(strat string) bool {
	return strat == stratEnrich || strat == stratSLOTight || strat == stratSLOLoose
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := defaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.Docs, "docs", c.Docs, "documents to upload per strategy")
	fs.Float64Var(&c.Scale, "scale", c.Scale, "multiplies each document's page count (real documents: mostly 5-50 pages; 1 = real sizes)")
	fs.IntVar(&c.WordsPerPage, "words-per-page", c.WordsPerPage, "words per page (one word is one token of the test embedding model)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "corpus seed")
	parallel := fs.String("parallel", "1,4", "OLLAMA_NUM_PARALLEL values, comma separated (one Ollama each)")
	strategies := fs.String("strategies", strings.Join(c.Strategies, ","), "ingest strategies: ours, semaphore-4, unbounded")
	fs.BoolVar(&c.Enrich, "enrich", c.Enrich, "also run ours with --enrich (summaries and tags) per NUM_PARALLEL")
	fs.IntVar(&c.EnrichDocs, "enrich-docs", c.EnrichDocs, "documents uploaded in the --enrich phases (the first ones of the corpus)")
	phases := fs.String("phases", strings.Join(c.Phases, ","), "phases to run: ingest (the strategies per NUM_PARALLEL), scale (1 and 3 replicas on PostgreSQL vs 1 on SQLite, on the last -parallel value); with scale alone the results go to scale.{json,md} unless -name is given")
	fs.IntVar(&c.ScaleQuestions, "scale-questions", c.ScaleQuestions, "idle chat questions per scale run, round-robin over the replicas")
	fs.BoolVar(&c.SLO, "slo", c.SLO, "also run ours+enrich with a tight and a loose chat TTFT objective per NUM_PARALLEL (the background throttle)")
	fs.DurationVar(&c.SLOTight, "slo-tight", c.SLOTight, "the tight chat TTFT p95 target (0: 1.2x the idle p95 ours+enrich measured just before, else 1s)")
	fs.DurationVar(&c.SLOLoose, "slo-loose", c.SLOLoose, "the loose chat TTFT p95 target")
	fs.IntVar(&c.PreemptBackground, "preempt-background", -1, "the rag-server's --preempt-background in the phases with summaries (answers cut running summary and tag steps, at most N times each; -1: the server's default, 8)")
	fs.DurationVar(&c.QuestionWindow, "question-window", -1, "the rag-server's --question-window in the phases with summaries (summaries and tags one at a time for this long after a question; 0: off; negative: the server's default, 30s)")
	fs.DurationVar(&c.HealthInterval, "health-interval", c.HealthInterval, "health probe interval")
	fs.DurationVar(&c.ChatInterval, "chat-interval", c.ChatInterval, "chat question interval during ingest")
	fs.IntVar(&c.IdleChats, "idle-chats", c.IdleChats, "chat questions asked idle, after each ingest")
	fs.IntVar(&c.LimitChunks, "limit-chunks", c.LimitChunks, "chunks embedded per raw /api/embed measurement (one before the first phase and one after every phase)")
	fs.DurationVar(&c.LimitTime, "limit-time", c.LimitTime, "time bound of one raw /api/embed measurement")
	fs.IntVar(&c.LimitBatch, "limit-batch", c.LimitBatch, "inputs per /api/embed call for the raw limit")
	fs.DurationVar(&c.PhaseTimeout, "phase-timeout", c.PhaseTimeout, "documents not done this long after the first upload count as timed out")
	fs.DurationVar(&c.ClientTimeout, "client-timeout", c.ClientTimeout, "the baselines' per-call timeout (the Python app's 60 s)")
	fs.IntVar(&c.UploadWorkers, "upload-workers", c.UploadWorkers, "concurrent uploads to the server")
	fs.BoolVar(&c.MultiuserCache, "multiuser-cache", false, "add the guide's OLLAMA_MULTIUSER_CACHE=true (Ollama 0.24's llama.cpp runner then aborts on parallel tagging calls)")
	fs.IntVar(&c.Repeats, "repeats", c.Repeats, "run every phase this many times (interleaved) and pool them: percentiles over all samples, each repeat's spread printed")
	fs.BoolVar(&c.RetryDisturbed, "retry-disturbed", c.RetryDisturbed, "run a phase once more when the raw limit before and after it differ more than 2x (a shared machine)")
	fs.StringVar(&c.Out, "out", c.Out, "directory for <name>.json, .md and .png (empty: write none)")
	fs.StringVar(&c.Name, "name", c.Name, "file name stem of the results")
	fs.StringVar(&c.ServerBin, "server-bin", "", "prebuilt rag-server binary (default: go build ./cmd/rag-server)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the work directory (server configs, data and logs per phase) and print its path")
	fs.BoolVar(&c.ServerCPUProfile, "server-cpu-profile", false, "have the rag-server write a CPU profile (cpu.pprof) into each phase's work directory (with -keep)")
	fs.StringVar(&c.ServerLogLevel, "server-log-level", "warn", "the rag-server's --log-level (info logs every answer with its first-token time)")
	fs.BoolVar(&c.Verbose, "v", false, "log progress details")
	fs.BoolVar(&c.DryRun, "dry-run", false, "generate the corpus, print its size and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var err error
	if c.Parallel, err = parseInts(*parallel); err != nil {
		fmt.Fprintf(stderr, "-parallel: %v\n", err)
		return c, err
	}
	if c.Phases, err = parsePhases(*phases); err != nil {
		fmt.Fprintln(stderr, err)
		return c, err
	}
	if !c.runs(phaseIngest) && !flagSet(fs, "name") {
		c.Name = "scale" // a scale-only run leaves the ingest phases' bench.* as they are
	}
	c.Strategies = nil
	for _, s := range strings.Split(*strategies, ",") {
		switch s = strings.TrimSpace(s); s {
		case stratOurs, stratSemaphore, stratUnbounded:
			c.Strategies = append(c.Strategies, s)
		case "":
		default:
			err = fmt.Errorf("-strategies: unknown strategy %q", s)
			fmt.Fprintln(stderr, err)
			return c, err
		}
	}
	c.EnrichDocs = min(c.EnrichDocs, c.Docs)
	if c.Docs < 1 || c.Repeats < 1 || c.EnrichDocs < 1 || c.Scale <= 0 || c.WordsPerPage < 10 || c.IdleChats < 1 || c.ScaleQuestions < 1 || c.LimitBatch < 1 || c.LimitChunks < 1 || c.UploadWorkers < 1 ||
		c.HealthInterval <= 0 || c.ChatInterval <= 0 || c.SLOTight < 0 || c.SLOLoose <= 0 || c.LimitTime <= 0 || c.PhaseTimeout <= 0 || c.ClientTimeout <= 0 {
		err = errors.New("-docs, -scale, -idle-chats, -scale-questions, -limit-batch, -limit-chunks, -upload-workers and the durations must be positive; -words-per-page at least 10")
		fmt.Fprintln(stderr, err)
		return c, err
	}
	c.Command = "go run ./test/bench"
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-v" || a == "--v" || a == "-v=true": // logging only: not part of the result
		case a == "-server-bin" || a == "--server-bin": // a prebuilt binary of the same code
			i++
		case strings.HasPrefix(a, "-server-bin=") || strings.HasPrefix(a, "--server-bin="):
		default:
			c.Command += " " + a
		}
	}
	return c, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 16 {
			return nil, fmt.Errorf("%q: want integers between 1 and 16", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
