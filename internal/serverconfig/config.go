// Package serverconfig is the RAG server's configuration file: the operator renders it into
// a ConfigMap and the server loads it at start. One type on both sides keeps them in step.
package serverconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config is the whole file. Durations are Go duration strings.
type Config struct {
	Listen string `json:"listen"`
	// MetricsListen is a second address serving only /metrics (and /healthz) without an API
	// key, for Prometheus (e.g. ":9090"); empty: none, and /metrics on Listen needs an admin key.
	MetricsListen string  `json:"metricsListen,omitempty"`
	DataDir       string  `json:"dataDir"`
	Ollama        Ollama  `json:"ollama"`
	Qdrant        Qdrant  `json:"qdrant"`
	Models        Models  `json:"models"`
	Limits        Limits  `json:"limits"`
	Tokens        Tokens  `json:"tokens"`
	Chunk         Chunk   `json:"chunking"`
	Search        Search  `json:"search"`
	Uploads       Uploads `json:"uploads"`
	Auth          Auth    `json:"auth"`
	// Database is where documents, the queue and sessions live; omitted when zero, which
	// means embedded, so files rendered before it existed stay byte for byte the same.
	Database Database `json:"database,omitzero"`
	// SLO is the declared latency objective (the CRD's spec.slo); absent: none. omitzero keeps
	// a file without one byte for byte what it was.
	SLO SLO `json:"slo,omitzero"`
}

// SLO is the latency objective the server measures and holds. Durations are Go duration
// strings; an empty target declares no objective of that kind.
type SLO struct {
	// ChatTTFTP95 is the target for chat time to first token at the 95th percentile (e.g.
	// "2s"). Set, the server throttles its background work (summaries, tags, ingest embedding
	// batches) to hold it.
	ChatTTFTP95 string `json:"chatTTFTP95,omitempty"`
	// HealthzP99 is the target for /healthz latency at the 99th percentile (e.g. "100ms");
	// measured and reported, it steers nothing.
	HealthzP99 string `json:"healthzP99,omitempty"`
	// Window is how far back the reported quantiles look (e.g. "10m"); empty: DefaultSLOWindow.
	Window string `json:"window,omitempty"`
}

// DefaultSLOWindow is the window of an SLO that names none.
const DefaultSLOWindow = 10 * time.Minute

// SLOTargets is an SLO parsed (Validate has checked it): zero targets declare no objective.
type SLOTargets struct {
	ChatTTFTP95, HealthzP99, Window time.Duration
}

// Targets parses the SLO; Validate reports the same errors by field.
func (s SLO) Targets() (SLOTargets, error) {
	var t SLOTargets
	var errs []error
	parse := func(field, v string, dst *time.Duration) {
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be a positive duration like 2s, got %q", field, v))
			return
		}
		*dst = d
	}
	parse("slo.chatTTFTP95", s.ChatTTFTP95, &t.ChatTTFTP95)
	parse("slo.healthzP99", s.HealthzP99, &t.HealthzP99)
	parse("slo.window", s.Window, &t.Window)
	if t.Window == 0 {
		t.Window = DefaultSLOWindow
	}
	return t, errors.Join(errs...)
}

// Ollama is where the models are served. Ollama's slot count (OLLAMA_NUM_PARALLEL) is not
// here on purpose: the operator validates limits.warmingMaxConcurrentQueries < numParallel, so
// capping background calls at warmingMaxConcurrentQueries always leaves a chat slot free, and
// retuning Ollama does not restart the RAG server.
type Ollama struct {
	URL string `json:"url"`
	// URLs are the servers of a pool (one per Ollama pod, e.g.
	// http://rag-ollama-0.rag-ollama-headless.ns.svc:11434); when set they replace URL and the
	// server balances its calls across them (see internal/llm.Pool).
	URLs      []string `json:"urls,omitempty"`
	KeepAlive string   `json:"keepAlive"`
}

// Endpoints are the Ollama servers to use: URLs when set, else URL alone.
func (o Ollama) Endpoints() []string {
	if len(o.URLs) > 0 {
		return o.URLs
	}
	return []string{o.URL}
}

// Qdrant is the vector store; an empty Address selects the embedded exact-search store.
type Qdrant struct {
	// Address is Qdrant's gRPC host:port.
	Address    string `json:"address,omitempty"`
	APIKeyFile string `json:"apiKeyFile,omitempty"`
	// ReadOnlyAPIKeyFile holds Qdrant's read-only key, used for searches and counts.
	ReadOnlyAPIKeyFile string     `json:"readOnlyApiKeyFile,omitempty"`
	Collection         Collection `json:"collection"`
}

// Collection mirrors the collection the operator creates.
type Collection struct {
	Name       string `json:"name"`
	VectorSize int    `json:"vectorSize"`
	Distance   string `json:"distance"`
}

// Models are the variant names per task.
type Models struct {
	Chat      string `json:"chat"`
	Embedding string `json:"embedding"`
	Summary   string `json:"summary"`
	Tagging   string `json:"tagging"`
	// ChatAliases are other model names the OpenAI-compatible API accepts for the chat model
	// (and lists); any other name is 404 model_not_found.
	ChatAliases []string `json:"chatAliases,omitempty"`
}

// Limits bound every queue and call.
type Limits struct {
	EmbedConcurrency        int    `json:"embedConcurrency"`
	EmbedBatchSize          int    `json:"embedBatchSize"`
	MaxConcurrentProcessing int    `json:"maxConcurrentProcessing"`
	JobWorkers              int    `json:"jobWorkers"`
	RagTimeout              string `json:"ragTimeout"`
	// WarmingMaxConcurrentQueries caps background LLM calls (summaries, tags, warming) in
	// flight; 0 turns background LLM work off (a one-slot Ollama keeps its slot for chat).
	WarmingMaxConcurrentQueries int `json:"warmingMaxConcurrentQueries"`
	MaxQueuedDocuments          int `json:"maxQueuedDocuments"`
}

// Tokens is the prompt budget.
type Tokens struct {
	Context  int `json:"context"`
	History  int `json:"history"`
	System   int `json:"system"`
	Response int `json:"response"`
	// NumCtx is the chat variant's context window; the budget must fit in it.
	NumCtx int `json:"numCtx"`
}

// Chunk is the chunker's setting, in tokens.
type Chunk struct {
	Size    int `json:"size"`
	Overlap int `json:"overlap"`
}

// Search are retrieval settings.
type Search struct {
	TopK                 int     `json:"topK"`
	ScoreThreshold       float64 `json:"scoreThreshold"`
	MaxChunksPerDocument int     `json:"maxChunksPerDocument"`
	HNSWEf               int     `json:"hnswEf"`
	// DocumentTitles heads each document's sources in the prompt with its name (the CRD's
	// retrieval.documentTitles); off, the model sees the sources grouped by document, unnamed.
	DocumentTitles bool `json:"documentTitles,omitempty"`
}

// Uploads bound what is accepted.
type Uploads struct {
	MaxFileBytes       int64    `json:"maxFileBytes"`
	MaxFilesPerRequest int      `json:"maxFilesPerRequest"`
	AllowedTypes       []string `json:"allowedTypes"`
	// MaxRequestBytes bounds one upload request's body (checked against Content-Length before
	// reading); at least maxFileBytes.
	MaxRequestBytes int64 `json:"maxRequestBytes,omitempty"`
	// SpoolBytes bounds what all uploads in progress hold on the data volume; at least
	// maxRequestBytes.
	SpoolBytes int64 `json:"spoolBytes,omitempty"`
	// MinFreeBytes: below this much free space on the data volume uploads are refused (507);
	// 0: no threshold.
	MinFreeBytes int64 `json:"minFreeBytes,omitempty"`
	// MinBytesPerSecond is the slowest average rate an upload body may arrive at (after 10 s);
	// 0: no minimum.
	MinBytesPerSecond int64 `json:"minBytesPerSecond,omitempty"`
	// MaxConcurrent bounds uploads received at once; MaxConcurrentPerKey those of one API key.
	MaxConcurrent       int `json:"maxConcurrent,omitempty"`
	MaxConcurrentPerKey int `json:"maxConcurrentPerKey,omitempty"`
}

// Auth says where API keys are read from.
type Auth struct {
	// KeysFile is a JSON list of key records (see internal/auth); empty disables auth, which
	// the server allows only when explicitly started with --insecure-no-auth.
	KeysFile string `json:"keysFile,omitempty"`
}

// Database drivers.
const (
	DriverEmbedded = "embedded" // SQLite on the data volume: one replica
	DriverPostgres = "postgres" // PostgreSQL shared by every replica
)

// Database selects the state store.
type Database struct {
	// Driver is "embedded" (the default; "" means the same) or "postgres".
	Driver string `json:"driver"`
	// URIFile is a file holding a libpq connection URI, e.g. the `uri` key of the
	// `<cluster>-app` Secret CloudNativePG generates, mounted as a file; sslmode and the other
	// parameters are honoured. Required with postgres, refused otherwise.
	URIFile string `json:"uriFile"`
}

// Marshal renders the file deterministically (struct order, two-space indent, trailing newline).
func (c Config) Marshal() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		panic(err) // only plain fields: cannot fail
	}
	return buf.Bytes()
}

// Default is the configuration of a server started without a config file: a laptop with a
// plain Ollama on its default port and the models under their Ollama library names, the
// embedded vector store, the guide's limits and token budget. Every field is valid, except
// that auth.keysFile is empty (the server then needs --insecure-no-auth or a keys file).
func Default() Config {
	return Config{
		Listen:  "127.0.0.1:8080",
		DataDir: "rag-data",
		Ollama:  Ollama{URL: "http://127.0.0.1:11434", KeepAlive: "24h"},
		Qdrant:  Qdrant{Collection: Collection{Name: "documents", VectorSize: 768, Distance: "Cosine"}},
		Models:  Models{Chat: "qwen3:8b", Embedding: "nomic-embed-text", Summary: "qwen3:8b", Tagging: "qwen3:8b"},
		Limits: Limits{EmbedConcurrency: 2, EmbedBatchSize: 32, MaxConcurrentProcessing: 3, JobWorkers: 3,
			RagTimeout: "60s", WarmingMaxConcurrentQueries: 1, MaxQueuedDocuments: 10000},
		Tokens: Tokens{Context: 6000, History: 1500, System: 500, Response: 192, NumCtx: 8192},
		Chunk:  Chunk{Size: 200, Overlap: 40},
		Search: Search{TopK: 8, ScoreThreshold: 0.3, MaxChunksPerDocument: 3, HNSWEf: 128},
		Uploads: Uploads{MaxFileBytes: 100 << 20, MaxFilesPerRequest: 100, AllowedTypes: []string{"txt", "md", "html", "csv", "pdf", "docx"},
			MaxRequestBytes: 512 << 20, SpoolBytes: 1 << 30, MinFreeBytes: 1 << 30, MinBytesPerSecond: 16 << 10,
			MaxConcurrent: 16, MaxConcurrentPerKey: 4},
		Database: Database{Driver: DriverEmbedded},
	}
}

// Decode reads a file's bytes strictly (unknown fields and trailing data are errors) over
// base: a field the file leaves out keeps base's value. It does not validate.
func Decode(base Config, data []byte) (Config, error) {
	c := base
	if list := c.Uploads.AllowedTypes; list != nil {
		c.Uploads.AllowedTypes = append([]string(nil), list...)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return Config{}, errors.New("config: more than one JSON value")
	}
	return c, nil
}

// Parse reads a file's bytes strictly (unknown fields are errors) and validates them.
func Parse(data []byte) (Config, error) {
	c, err := Decode(Config{}, data)
	if err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// Load reads and validates the file at path.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate names the first field that is wrong, and every other one too.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	positive := func(field string, v int) {
		if v < 1 {
			bad(field, "must be at least 1, got %d", v)
		}
	}
	if c.Listen == "" {
		bad("listen", "must be set (e.g. :8080)")
	}
	if c.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(c.MetricsListen); err != nil || port == "" {
			bad("metricsListen", "must be host:port or :port (e.g. :9090), or empty for none, got %q", c.MetricsListen)
		} else if c.MetricsListen == c.Listen && port != "0" {
			bad("metricsListen", "must differ from listen (%q): the API port needs a key for /metrics", c.Listen)
		}
	}
	if c.DataDir == "" {
		bad("dataDir", "must be set")
	}
	if len(c.Ollama.URLs) == 0 {
		if u, err := url.Parse(c.Ollama.URL); err != nil || u.Scheme == "" || u.Host == "" {
			bad("ollama.url", "must be an absolute URL, got %q", c.Ollama.URL)
		}
	}
	seen := map[string]int{}
	for i, s := range c.Ollama.URLs {
		field := fmt.Sprintf("ollama.urls[%d]", i)
		if u, err := url.Parse(s); err != nil || u.Scheme == "" || u.Host == "" {
			bad(field, "must be an absolute URL, got %q", s)
		} else if j, dup := seen[strings.TrimRight(s, "/")]; dup {
			// The same server twice would get twice its share and be counted as two in health.
			bad(field, "repeats ollama.urls[%d] (%q)", j, s)
		} else {
			seen[strings.TrimRight(s, "/")] = i
		}
	}
	if c.Qdrant.Address != "" {
		if host, port, err := net.SplitHostPort(c.Qdrant.Address); err != nil || host == "" || port == "" {
			bad("qdrant.address", "must be host:port (Qdrant's gRPC port), got %q", c.Qdrant.Address)
		}
	}
	if c.Qdrant.Collection.Name == "" {
		bad("qdrant.collection.name", "must be set")
	}
	positive("qdrant.collection.vectorSize", c.Qdrant.Collection.VectorSize)
	switch c.Qdrant.Collection.Distance {
	case "Cosine", "Dot", "Euclid", "Manhattan":
	default:
		bad("qdrant.collection.distance", "must be Cosine, Dot, Euclid or Manhattan, got %q", c.Qdrant.Collection.Distance)
	}
	for _, m := range [][2]string{{"models.chat", c.Models.Chat}, {"models.embedding", c.Models.Embedding},
		{"models.summary", c.Models.Summary}, {"models.tagging", c.Models.Tagging}} {
		if strings.TrimSpace(m[1]) == "" {
			bad(m[0], "must name a model")
		}
	}
	positive("limits.embedConcurrency", c.Limits.EmbedConcurrency)
	positive("limits.embedBatchSize", c.Limits.EmbedBatchSize)
	positive("limits.maxConcurrentProcessing", c.Limits.MaxConcurrentProcessing)
	positive("limits.jobWorkers", c.Limits.JobWorkers)
	positive("limits.maxQueuedDocuments", c.Limits.MaxQueuedDocuments)
	if d, err := time.ParseDuration(c.Limits.RagTimeout); err != nil || d <= 0 {
		bad("limits.ragTimeout", "must be a positive duration, got %q", c.Limits.RagTimeout)
	}
	if c.Limits.WarmingMaxConcurrentQueries < 0 {
		bad("limits.warmingMaxConcurrentQueries", "must be 0 (no background LLM work) or more, got %d", c.Limits.WarmingMaxConcurrentQueries)
	}
	if sum := c.Tokens.Context + c.Tokens.History + c.Tokens.System + c.Tokens.Response; c.Tokens.NumCtx > 0 && sum > c.Tokens.NumCtx {
		bad("tokens", "context+history+system+response = %d exceeds numCtx %d", sum, c.Tokens.NumCtx)
	}
	positive("tokens.response", c.Tokens.Response)
	positive("chunking.size", c.Chunk.Size)
	if c.Chunk.Overlap < 0 || c.Chunk.Overlap >= c.Chunk.Size {
		bad("chunking.overlap", "must be between 0 and chunking.size-1, got %d", c.Chunk.Overlap)
	}
	positive("search.topK", c.Search.TopK)
	positive("search.maxChunksPerDocument", c.Search.MaxChunksPerDocument)
	positive("search.hnswEf", c.Search.HNSWEf)
	if c.Uploads.MaxFileBytes < 1 {
		bad("uploads.maxFileBytes", "must be at least 1, got %d", c.Uploads.MaxFileBytes)
	}
	positive("uploads.maxFilesPerRequest", c.Uploads.MaxFilesPerRequest)
	if u := c.Uploads; u.MaxRequestBytes != 0 && u.MaxRequestBytes < u.MaxFileBytes {
		bad("uploads.maxRequestBytes", "must be at least uploads.maxFileBytes (%d), got %d", u.MaxFileBytes, u.MaxRequestBytes)
	}
	if u := c.Uploads; u.SpoolBytes != 0 && u.SpoolBytes < max(u.MaxRequestBytes, u.MaxFileBytes) {
		bad("uploads.spoolBytes", "must be at least uploads.maxRequestBytes (%d), got %d", max(u.MaxRequestBytes, u.MaxFileBytes), u.SpoolBytes)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"uploads.minFreeBytes", c.Uploads.MinFreeBytes}, {"uploads.minBytesPerSecond", c.Uploads.MinBytesPerSecond},
		{"uploads.maxConcurrent", int64(c.Uploads.MaxConcurrent)}, {"uploads.maxConcurrentPerKey", int64(c.Uploads.MaxConcurrentPerKey)}} {
		if f.v < 0 {
			bad(f.name, "must not be negative, got %d", f.v)
		}
	}
	if len(c.Uploads.AllowedTypes) == 0 {
		bad("uploads.allowedTypes", "must list at least one type")
	}
	switch c.Database.Driver {
	case "", DriverEmbedded:
		if c.Database.URIFile != "" {
			bad("database.uriFile", "is only used with database.driver %q, got %q with driver %q", DriverPostgres, c.Database.URIFile, c.Database.Driver)
		}
	case DriverPostgres:
		if strings.TrimSpace(c.Database.URIFile) == "" {
			bad("database.uriFile", "must name the file holding the connection URI when database.driver is %q (e.g. the uri key of CloudNativePG's <cluster>-app Secret)", DriverPostgres)
		}
	default:
		bad("database.driver", "must be %q or %q, got %q", DriverEmbedded, DriverPostgres, c.Database.Driver)
	}
	if _, err := c.SLO.Targets(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RagTimeout is Limits.RagTimeout parsed (Validate has checked it).
func (c Config) RagTimeout() time.Duration {
	d, _ := time.ParseDuration(c.Limits.RagTimeout)
	return d
}
