package controllers

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/qdrant/go-client/qdrant"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// OllamaAPI is the part of Ollama's API the operator uses; *api.Client implements it.
type OllamaAPI interface {
	Version(ctx context.Context) (string, error)
	List(ctx context.Context) (*api.ListResponse, error)
	ListRunning(ctx context.Context) (*api.ProcessResponse, error)
	Show(ctx context.Context, req *api.ShowRequest) (*api.ShowResponse, error)
	Generate(ctx context.Context, req *api.GenerateRequest, fn api.GenerateResponseFunc) error
	Embed(ctx context.Context, req *api.EmbedRequest) (*api.EmbedResponse, error)
}

// QdrantAPI is the part of Qdrant's gRPC API the operator uses; *qdrant.Client implements it.
type QdrantAPI interface {
	GetCollectionInfo(ctx context.Context, name string) (*qdrant.CollectionInfo, error)
	CreateCollection(ctx context.Context, req *qdrant.CreateCollection) error
	UpdateCollection(ctx context.Context, req *qdrant.UpdateCollection) error
}

// ExternalClients reaches the APIs of the components an appliance runs. By default it uses the
// in-cluster Services; overrides point every appliance at fixed addresses (the demo and tests
// use a local Ollama and the Qdrant double).
type ExternalClients struct {
	// OllamaURL overrides the Ollama endpoint ("http://127.0.0.1:11434").
	OllamaURL string
	// QdrantAddress overrides the Qdrant gRPC endpoint ("127.0.0.1:6334").
	QdrantAddress string
	// SkipQdrantVersionCheck turns off the go-client's server version check (for the double).
	SkipQdrantVersionCheck bool
	// RagServerMetricsURL overrides the RAG server pods' metrics pages with one URL (a local
	// rag-server process in the demo and tests).
	RagServerMetricsURL string
	// Metrics reads metrics pages; nil uses plain HTTP.
	Metrics MetricsReader

	httpClient *http.Client
	mu         sync.Mutex
	qdrant     map[string]qdrantConn
}

// NewExternalClients builds the default factory, with optional overrides.
func NewExternalClients(ollamaURL, qdrantAddress string) *ExternalClients {
	return &ExternalClients{OllamaURL: ollamaURL, QdrantAddress: qdrantAddress}
}

// SetEndpoints changes the overrides at run time (tests point a running manager at new servers).
func (e *ExternalClients) SetEndpoints(ollamaURL, qdrantAddress string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.OllamaURL, e.QdrantAddress = ollamaURL, qdrantAddress
}

// ollamaURLs are the addresses the operator uses for the appliance's Ollama servers: the
// in-cluster ones (ollamaServerURLs), or the override, a comma-separated list whose entries
// stand for the servers in order (one entry stands for all).
func (e *ExternalClients) ollamaURLs(ra *ragv1.RagAppliance) []string {
	e.mu.Lock()
	override := e.OllamaURL
	e.mu.Unlock()
	inCluster := ollamaServerURLs(ra)
	if override == "" {
		return inCluster
	}
	var list []string
	for _, u := range strings.Split(override, ",") {
		if u = strings.TrimSpace(u); u != "" {
			list = append(list, u)
		}
	}
	if len(list) == 0 {
		return inCluster
	}
	out := make([]string, len(inCluster))
	for i := range out {
		out[i] = list[i%len(list)]
	}
	return compactStrings(out)
}

// compactStrings drops repeated entries, keeping the first.
func compactStrings(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Ollama returns a client for the appliance's Ollama: for a pool, one that asks every server
// (ollamaPool). Calls are short: the operator never waits on a model load inside a reconcile.
func (e *ExternalClients) Ollama(ra *ragv1.RagAppliance) (OllamaAPI, error) {
	e.mu.Lock()
	if e.httpClient == nil {
		e.httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	hc := e.httpClient
	e.mu.Unlock()
	return ollamaClients(e.ollamaURLs(ra), hc)
}

// OllamaLoader returns a client without a request timeout, for model loads bounded by the
// caller's context (OLLAMA_LOAD_TIMEOUT can be minutes).
func (e *ExternalClients) OllamaLoader(ra *ragv1.RagAppliance) (OllamaAPI, error) {
	return ollamaClients(e.ollamaURLs(ra), &http.Client{})
}

func ollamaClients(urls []string, hc *http.Client) (OllamaAPI, error) {
	pool := make(ollamaPool, 0, len(urls))
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("ollama url %q: %w", raw, err)
		}
		pool = append(pool, poolServer{url: raw, api: api.NewClient(u, hc)})
	}
	if len(pool) == 1 {
		return pool[0].api, nil
	}
	return pool, nil
}

// Qdrant returns a cached gRPC client for the appliance's Qdrant.
func (e *ExternalClients) Qdrant(ra *ragv1.RagAppliance, apiKey string) (QdrantAPI, error) {
	e.mu.Lock()
	addr := e.QdrantAddress
	e.mu.Unlock()
	if addr == "" {
		addr = qdrantName(ra) + "." + ra.Namespace + ".svc:" + itoa(qdrantGRPCPort)
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("qdrant address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("qdrant address %q: %w", addr, err)
	}
	// One client per appliance: a rotated key or a moved address replaces (and closes) the old
	// connection instead of leaving it open for the manager's lifetime.
	id := ra.Namespace + "/" + ra.Name
	fingerprint := addr + "\x00" + hashOf([]byte(apiKey))
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.qdrant[id]; ok {
		if c.fingerprint == fingerprint {
			return c.client, nil
		}
		c.client.Close()
		delete(e.qdrant, id)
	}
	c, err := qdrant.NewClient(&qdrant.Config{Host: host, Port: port, APIKey: apiKey, SkipCompatibilityCheck: e.SkipQdrantVersionCheck})
	if err != nil {
		return nil, fmt.Errorf("qdrant client for %s: %w", addr, err)
	}
	if e.qdrant == nil {
		e.qdrant = map[string]qdrantConn{}
	}
	e.qdrant[id] = qdrantConn{client: c, fingerprint: fingerprint}
	return c, nil
}

// QdrantClients is the number of open Qdrant clients (one per appliance at most).
func (e *ExternalClients) QdrantClients() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.qdrant)
}

type qdrantConn struct {
	client      *qdrant.Client
	fingerprint string
}
