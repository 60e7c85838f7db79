// Package ollamaexporter exports Prometheus metrics for one Ollama server from its own API
// (/api/version, /api/tags, /api/ps), queried on every scrape. Ollama has no /metrics of its
// own (ollama/ollama#3144), so this is how an operator of the appliance sees which models are
// loaded, how much memory they hold and when they will be unloaded.
//
// It runs as `rag-server ollama-exporter` (see Main), a sidecar in the Ollama pod: the
// rag-server image already ships, and the sidecar reaches Ollama on loopback.
package ollamaexporter

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names. The dashboard and the alerts in charts/rag-operator use them; a test checks
// each name they use is exported against a real Ollama.
const (
	MetricUp                = "ollama_up"
	MetricVersion           = "ollama_version_info"
	MetricModelsAvailable   = "ollama_models_available"
	MetricAvailableSize     = "ollama_model_available_size_bytes"
	MetricModelsLoaded      = "ollama_models_loaded"
	MetricLoadedSize        = "ollama_model_loaded_size_bytes"
	MetricLoadedVRAM        = "ollama_model_loaded_vram_bytes"
	MetricLoadedContext     = "ollama_model_loaded_context_length"
	MetricLoadedExpiry      = "ollama_model_loaded_expiry_seconds"
	MetricModelDeclared     = "ollama_model_declared"
	MetricScrapeDurationSec = "ollama_exporter_scrape_duration_seconds"
)

var (
	upDesc = prometheus.NewDesc(MetricUp,
		"1 if Ollama answered /api/version, /api/tags and /api/ps on this scrape, else 0.", nil, nil)
	versionDesc = prometheus.NewDesc(MetricVersion,
		"Ollama's version (/api/version), as a label; always 1.", []string{"version"}, nil)
	availableDesc = prometheus.NewDesc(MetricModelsAvailable,
		"Models in Ollama's store (/api/tags).", nil, nil)
	availableSizeDesc = prometheus.NewDesc(MetricAvailableSize,
		"Size on disk of each model in Ollama's store (/api/tags).",
		[]string{"model", "family", "parameter_size", "quantization_level"}, nil)
	loadedDesc = prometheus.NewDesc(MetricModelsLoaded,
		"Models loaded in memory (/api/ps).", nil, nil)
	loadedSizeDesc = prometheus.NewDesc(MetricLoadedSize,
		"Memory a loaded model holds, weights and KV cache (/api/ps size).", []string{"model"}, nil)
	loadedVRAMDesc = prometheus.NewDesc(MetricLoadedVRAM,
		"Part of a loaded model's memory resident on the GPU (/api/ps size_vram); below the size means layers run on the CPU.", []string{"model"}, nil)
	contextDesc = prometheus.NewDesc(MetricLoadedContext,
		"Context length (tokens) a loaded model was started with (/api/ps context_length).", []string{"model"}, nil)
	expiryDesc = prometheus.NewDesc(MetricLoadedExpiry,
		"Seconds until Ollama unloads an idle model (/api/ps expires_at less now); +Inf when kept loaded forever (negative keep-alive).", []string{"model"}, nil)
	declaredDesc = prometheus.NewDesc(MetricModelDeclared,
		"1 for each model the appliance declares (--declared-model), so alerts can tell a declared model that is not loaded.", []string{"model"}, nil)
	scrapeDesc = prometheus.NewDesc(MetricScrapeDurationSec,
		"How long this scrape's calls to Ollama took.", nil, nil)
)

// Options configure a Collector.
type Options struct {
	// URL of Ollama, e.g. http://127.0.0.1:11434.
	URL string
	// Timeout bounds the three API calls of one scrape together (default 5s): a hung Ollama
	// must answer up=0 before Prometheus's scrape timeout gives up on the whole target.
	Timeout time.Duration
	// Declared models are exported as ollama_model_declared, normalised the way Ollama names
	// models (":latest" added when no tag is given).
	Declared []string
	// HTTPClient; default a client with Timeout.
	HTTPClient *http.Client
}

// Collector is a prometheus.Collector that asks Ollama on every Collect. It holds no state
// between scrapes, so what it reports is never older than the scrape.
type Collector struct {
	client   *api.Client
	timeout  time.Duration
	declared []string
}

// New builds a Collector; it does not contact Ollama.
func New(o Options) (*Collector, error) {
	u, err := url.Parse(strings.TrimRight(o.URL, "/"))
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: o.Timeout}
	}
	seen := map[string]bool{}
	var declared []string
	for _, m := range o.Declared {
		if m = NormalizeModel(m); m != "" && !seen[m] {
			seen[m] = true
			declared = append(declared, m)
		}
	}
	sort.Strings(declared)
	return &Collector{client: api.NewClient(u, hc), timeout: o.Timeout, declared: declared}, nil
}

// NormalizeModel writes a model name the way /api/ps and /api/tags report it: a name without
// a tag gets ":latest" (Ollama's default tag).
func NormalizeModel(name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		return ""
	}
	// A tag follows the last ':' after the last '/' (a registry host may carry a port).
	if !strings.Contains(name[strings.LastIndexByte(name, '/')+1:], ":") {
		name += ":latest"
	}
	return name
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{upDesc, versionDesc, availableDesc, availableSizeDesc, loadedDesc,
		loadedSizeDesc, loadedVRAMDesc, contextDesc, expiryDesc, declaredDesc, scrapeDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the three calls run in parallel under one timeout.
// Whatever answered is exported even when another call failed; up says whether all did.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	var (
		wg                         sync.WaitGroup
		version                    string
		tags                       *api.ListResponse
		ps                         *api.ProcessResponse
		errVersion, errTags, errPs error
	)
	wg.Go(func() { version, errVersion = c.client.Version(ctx) })
	wg.Go(func() { tags, errTags = c.client.List(ctx) })
	wg.Go(func() { ps, errPs = c.client.ListRunning(ctx) })
	wg.Wait()
	now := time.Now()

	up := 0.0
	if errVersion == nil && errTags == nil && errPs == nil {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(scrapeDesc, prometheus.GaugeValue, now.Sub(start).Seconds())
	// Declared models are exported whether Ollama answers or not: the alert on a declared model
	// that is not loaded is silenced by up==0 (OllamaDown fires instead), not by a missing series.
	for _, m := range c.declared {
		ch <- prometheus.MustNewConstMetric(declaredDesc, prometheus.GaugeValue, 1, m)
	}
	if errVersion == nil {
		ch <- prometheus.MustNewConstMetric(versionDesc, prometheus.GaugeValue, 1, version)
	}
	if errTags == nil {
		ch <- prometheus.MustNewConstMetric(availableDesc, prometheus.GaugeValue, float64(len(tags.Models)))
		for _, m := range dedupe(tags.Models, func(m api.ListModelResponse) string { return m.Name }) {
			ch <- prometheus.MustNewConstMetric(availableSizeDesc, prometheus.GaugeValue, float64(m.Size),
				m.Name, m.Details.Family, m.Details.ParameterSize, m.Details.QuantizationLevel)
		}
	}
	if errPs == nil {
		ch <- prometheus.MustNewConstMetric(loadedDesc, prometheus.GaugeValue, float64(len(ps.Models)))
		for _, m := range dedupe(ps.Models, func(m api.ProcessModelResponse) string { return m.Name }) {
			ch <- prometheus.MustNewConstMetric(loadedSizeDesc, prometheus.GaugeValue, float64(m.Size), m.Name)
			ch <- prometheus.MustNewConstMetric(loadedVRAMDesc, prometheus.GaugeValue, float64(m.SizeVRAM), m.Name)
			ch <- prometheus.MustNewConstMetric(contextDesc, prometheus.GaugeValue, float64(m.ContextLength), m.Name)
			ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, expiry(m.ExpiresAt, now), m.Name)
		}
	}
}

// foreverAfter: Ollama keeps a model with a negative keep-alive until now+MaxInt64ns (~292
// years); anything beyond a century is "forever".
const foreverAfter = 100 * 365 * 24 * time.Hour

func expiry(at, now time.Time) float64 {
	d := at.Sub(now)
	if d > foreverAfter {
		return math.Inf(1)
	}
	return d.Seconds()
}

// dedupe keeps the first entry per name: two entries with one name would make the registry
// refuse the whole scrape (duplicate series).
func dedupe[T any](in []T, name func(T) string) []T {
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, m := range in {
		if n := name(m); !seen[n] {
			seen[n] = true
			out = append(out, m)
		}
	}
	return out
}
