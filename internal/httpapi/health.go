package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The names the server's probes report under; requests name the dependencies they need with them.
const (
	DepStore  = "store"  // the SQLite database: documents, the job queue, sessions
	DepOllama = "ollama" // embeddings and answers
	DepVector = "vector" // the vector store (Qdrant, or the embedded one)
)

// answerDeps are what answering a question needs: its embedding (Ollama), the search (vector
// store) and the answer (Ollama).
var answerDeps = []string{DepOllama, DepVector}

// Check is one probe of the server's own state or of a dependency.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
	// Self marks a part of the server itself (its database): /readyz fails while it fails. Any
	// other check is a dependency: while it is down only the requests that need it are refused,
	// so an Ollama rollout or model load does not take the whole API out of its Service.
	Self bool
	// Parts, when set, lists the parts of a dependency that has several (the servers of an
	// Ollama pool). Each is reported as "<name>/<part>" beside the whole, in
	// /api/health/dependencies and rag_dependency_up; only the whole decides which requests
	// are refused (a part down means one server out of rotation, the others serve).
	Parts func() map[string]CheckResult
}

// CheckResult is the last outcome of a probe.
type CheckResult struct {
	OK        bool      `json:"ok"`
	Error     string    `json:"error,omitempty"`
	CheckedAt time.Time `json:"checkedAt"`
	LatencyMS int64     `json:"latencyMs"`
	// Address is a part's own address (an Ollama server's URL), shown to admin keys only.
	Address string `json:"address,omitempty"`
}

// Readiness probes the server and its dependencies in the background and serves the cached
// results, so /readyz and the requests that check a dependency answer at once however slow or
// dead it is.
type Readiness struct {
	checks   []Check
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger

	mu        sync.RWMutex
	results   map[string]CheckResult
	draining  atomic.Bool
	onRecover func(name string)
}

// NewReadiness probes every interval, each probe bounded by timeout.
func NewReadiness(interval, timeout time.Duration, checks ...Check) *Readiness {
	return &Readiness{checks: checks, interval: interval, timeout: timeout, results: map[string]CheckResult{}}
}

// AddCheck adds a check (before Run); one with the same name is replaced.
func (r *Readiness) AddCheck(c Check) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = slices.DeleteFunc(r.checks, func(o Check) bool { return o.Name == c.Name })
	r.checks = append(r.checks, c)
}

// WithLogger logs each check going down and coming back.
func (r *Readiness) WithLogger(l *slog.Logger) *Readiness {
	r.log = l
	return r
}

// OnRecover calls f (set before Run) with a check's name when its probe passes again after a
// failure: the ingest then stops waiting out its backoff for that dependency.
func (r *Readiness) OnRecover(f func(name string)) *Readiness {
	r.onRecover = f
	return r
}

// Run probes now and then every interval until ctx ends.
func (r *Readiness) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.ProbeOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ProbeOnce runs every probe concurrently and records the results.
func (r *Readiness) ProbeOnce(ctx context.Context) {
	var wg sync.WaitGroup
	r.mu.RLock()
	checks := slices.Clone(r.checks)
	r.mu.RUnlock()
	for _, c := range checks {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, r.timeout)
			defer cancel()
			start := time.Now()
			err := c.Probe(pctx)
			res := CheckResult{OK: err == nil, CheckedAt: time.Now().UTC(), LatencyMS: time.Since(start).Milliseconds()}
			if err != nil {
				res.Error = err.Error()
			}
			r.mu.Lock()
			prev, seen := r.results[c.Name]
			r.results[c.Name] = res
			r.mu.Unlock()
			if res.OK && seen && !prev.OK && r.onRecover != nil && ctx.Err() == nil {
				r.onRecover(c.Name)
			}
			if r.log == nil || ctx.Err() != nil {
				return
			}
			switch {
			case !res.OK && (!seen || prev.OK):
				r.log.Warn("Dependency unavailable", "dependency", c.Name, "error", res.Error)
			case res.OK && seen && !prev.OK:
				r.log.Info("Dependency available again", "dependency", c.Name)
			}
		})
	}
	wg.Wait()
}

// SetDraining makes the server report not ready (shutdown: take it out of the Service first).
func (r *Readiness) SetDraining() { r.draining.Store(true) }

// Draining reports whether SetDraining was called.
func (r *Readiness) Draining() bool { return r.draining.Load() }

// Ready reports whether the server itself can serve: not draining, and every Self check's last
// probe passed. Dependencies do not count.
func (r *Readiness) Ready() bool {
	if r.draining.Load() {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, c := range r.checks {
		if c.Self && !r.results[c.Name].OK { // not probed yet: not ready either
			return false
		}
	}
	return true
}

// Snapshot is the cached state: Ready, and every check's last result.
func (r *Readiness) Snapshot() (bool, map[string]CheckResult) {
	ready := r.Ready()
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]CheckResult, len(r.checks))
	for _, c := range r.checks {
		res, ok := r.results[c.Name]
		if !ok {
			res = CheckResult{Error: "not checked yet"}
		}
		out[c.Name] = res
		if c.Parts != nil {
			for part, pr := range c.Parts() {
				out[c.Name+"/"+part] = pr
			}
		}
	}
	return ready, out
}

// Down returns the first of names whose last probe failed. One not probed yet counts as up:
// the request then finds out for itself rather than being refused on no evidence.
func (r *Readiness) Down(names ...string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, n := range names {
		if res, ok := r.results[n]; ok && !res.OK {
			return n, true
		}
	}
	return "", false
}

var (
	readyDesc = prometheus.NewDesc("rag_server_ready",
		"1 while /readyz passes (the server itself can serve: store open, not draining), else 0.", nil, nil)
	depUpDesc = prometheus.NewDesc("rag_dependency_up",
		"1 if the dependency's last background probe passed, else 0 (store, ollama, vector); with several Ollama servers also ollama/<index>, 1 while that server is in rotation.", []string{"dependency"}, nil)
	depLatencyDesc = prometheus.NewDesc("rag_dependency_probe_duration_seconds",
		"How long the dependency's last background probe took.", []string{"dependency"}, nil)
)

// Describe implements prometheus.Collector.
func (r *Readiness) Describe(ch chan<- *prometheus.Desc) {
	ch <- readyDesc
	ch <- depUpDesc
	ch <- depLatencyDesc
}

// Collect implements prometheus.Collector from the cached results (a dependency not probed yet
// has no series).
func (r *Readiness) Collect(ch chan<- prometheus.Metric) {
	ready, results := r.Snapshot()
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, b2f(ready))
	for name, res := range results {
		if res.CheckedAt.IsZero() {
			continue
		}
		ch <- prometheus.MustNewConstMetric(depUpDesc, prometheus.GaugeValue, b2f(res.OK), name)
		ch <- prometheus.MustNewConstMetric(depLatencyDesc, prometheus.GaugeValue, float64(res.LatencyMS)/1000, name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// readyz is readiness: the server itself, not its dependencies (see Check.Self). Anonymous
// callers learn only ready or not; the details are behind a key at /api/health/dependencies.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.d.Ready == nil || s.d.Ready.Ready() {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
}

// DependenciesResponse is GET /api/health/dependencies.
type DependenciesResponse struct {
	// Status is "ready", "not ready" (a part of the server itself failed) or "draining".
	Status       string                 `json:"status"`
	Dependencies map[string]CheckResult `json:"dependencies"`
}

// dependencies serves GET /api/health/dependencies, always 200 with the cached probe results.
// Error texts name internal addresses, so only an admin key sees them; a user key sees which
// dependency is down and since when, enough to know why questions are refused.
func (s *Server) dependencies(w http.ResponseWriter, r *http.Request) {
	out := DependenciesResponse{Status: "ready", Dependencies: map[string]CheckResult{}}
	if s.d.Ready == nil {
		writeJSON(w, http.StatusOK, out)
		return
	}
	ready, checks := s.d.Ready.Snapshot()
	switch {
	case s.d.Ready.Draining():
		out.Status = "draining"
	case !ready:
		out.Status = "not ready"
	}
	admin := principal(r).IsAdmin()
	for name, res := range checks {
		if !admin && res.Error != "" {
			res.Error = "unavailable"
		}
		if !admin {
			res.Address = ""
		}
		out.Dependencies[name] = res
	}
	writeJSON(w, http.StatusOK, out)
}

// dependencyLabels name the dependencies in refusals.
var dependencyLabels = map[string]string{
	DepStore:   "the server's database",
	DepOllama:  "the language model server (Ollama)",
	DepVector:  "the vector store",
	DepStorage: "the data volume",
}

// answerUnavailable refuses a question at once, from the cached probes, when Ollama or the
// vector store is down: 503 with Retry-After in the API's own error shape (write), instead of a
// 502 after the call times out. It reports whether it refused.
func (s *Server) answerUnavailable(w http.ResponseWriter, api string, write func(http.ResponseWriter, int, string, ...any)) bool {
	if s.d.Ready == nil {
		return false
	}
	name, down := s.d.Ready.Down(answerDeps...)
	if !down {
		return false
	}
	s.chatM.answers.WithLabelValues(api, "unavailable").Inc()
	w.Header().Set("Retry-After", fmt.Sprint(int(s.cfg.RetryAfter/time.Second)))
	write(w, http.StatusServiceUnavailable, "%s is unavailable, so questions cannot be answered now; "+
		"documents, uploads and sessions still work. Retry later", dependencyLabels[name])
	return true
}
