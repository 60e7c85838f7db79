package ollamaexporter

import (
	"bytes"
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// families is one scrape, parsed from the text format Prometheus reads.
type families map[string]*dto.MetricFamily

func parse(t *testing.T, body []byte) families {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing scrape: %v\n%s", err, body)
	}
	return mf
}

// series returns the values of name by the given label's value ("" for an unlabelled metric).
func (f families) series(name, label string) map[string]float64 {
	out := map[string]float64{}
	mf, ok := f[name]
	if !ok {
		return out
	}
	for _, m := range mf.GetMetric() {
		key := ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				key = lp.GetValue()
			}
		}
		out[key] = m.GetGauge().GetValue()
	}
	return out
}

func (f families) one(t *testing.T, name string) float64 {
	t.Helper()
	s := f.series(name, "")
	v, ok := s[""]
	if !ok || len(s) != 1 {
		t.Fatalf("%s: want one unlabelled series, got %v", name, s)
	}
	return v
}

func scrape(t *testing.T, url string) families {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	return parse(t, body)
}

// startMain runs Main (the subcommand as rag-server runs it) on a free port until the test ends.
func startMain(t *testing.T, args ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- Main(ctx, append([]string{"--listen", addr}, args...), &stderr) }()
	t.Cleanup(func() {
		cancel()
		if rc := <-done; rc != 0 {
			t.Errorf("Main returned %d:\n%s", rc, stderr.String())
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter not serving: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRealOllama scrapes a real Ollama: its version and store, then two models loaded with
// different keep-alives and context lengths, then Ollama stopped.
func TestRealOllama(t *testing.T) {
	srv := ollamatest.Start(t, ollamatest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client := srv.Client()
	for _, m := range []string{ollamatest.ChatModel, ollamatest.EmbedModel} {
		if err := ollamatest.CreateBaseModel(ctx, client, m); err != nil {
			t.Fatal(err)
		}
	}
	// Declared names as the appliance writes them: the embed model without its tag, one twice,
	// one from the environment.
	t.Setenv("OLLAMA_EXPORTER_DECLARED_MODELS", "absent-model")
	url := startMain(t, "--ollama-url", srv.URL+"/", "--declared-model", ollamatest.ChatModel+", nomic-embed-text", "--declared-model", "qwen3:8b")

	f := scrape(t, url)
	if up := f.one(t, MetricUp); up != 1 {
		t.Fatalf("ollama_up = %v with Ollama running", up)
	}
	if v := f.series(MetricVersion, "version"); v[ollamatest.Version] != 1 || len(v) != 1 {
		t.Errorf("version series %v, want %s", v, ollamatest.Version)
	}
	if n := f.one(t, MetricModelsAvailable); n != 2 {
		t.Errorf("models available = %v, want 2", n)
	}
	avail := f.series(MetricAvailableSize, "model")
	for _, m := range []string{"qwen3:8b", "nomic-embed-text:latest"} {
		if avail[m] <= 0 {
			t.Errorf("available size of %s = %v (series %v)", m, avail[m], avail)
		}
	}
	if n := f.one(t, MetricModelsLoaded); n != 0 {
		t.Errorf("models loaded before any request = %v", n)
	}
	declared := f.series(MetricModelDeclared, "model")
	if len(declared) != 3 || declared["qwen3:8b"] != 1 || declared["nomic-embed-text:latest"] != 1 || declared["absent-model:latest"] != 1 {
		t.Errorf("declared = %v", declared)
	}

	// Load the chat model for 10 minutes with a chosen context, the embedding model forever.
	if err := client.Generate(ctx, &api.GenerateRequest{Model: ollamatest.ChatModel, KeepAlive: &api.Duration{Duration: 10 * time.Minute},
		Options: map[string]any{"num_ctx": 1536}}, func(api.GenerateResponse) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Embed(ctx, &api.EmbedRequest{Model: ollamatest.EmbedModel, Input: "hello", KeepAlive: &api.Duration{Duration: -1}}); err != nil {
		t.Fatal(err)
	}
	f = scrape(t, url)
	if n := f.one(t, MetricModelsLoaded); n != 2 {
		t.Fatalf("models loaded = %v, want 2", n)
	}
	ps, err := client.ListRunning(ctx)
	if err != nil {
		t.Fatal(err)
	}
	size, vram, ctxLen, expiry := f.series(MetricLoadedSize, "model"), f.series(MetricLoadedVRAM, "model"), f.series(MetricLoadedContext, "model"), f.series(MetricLoadedExpiry, "model")
	for _, m := range ps.Models {
		// The test server runs on the CPU: size_vram is 0, and must be exported as such, not left out.
		if size[m.Name] != float64(m.Size) || m.Size <= 0 {
			t.Errorf("%s: size %v, /api/ps says %d", m.Name, size[m.Name], m.Size)
		}
		if v, ok := vram[m.Name]; !ok || v != float64(m.SizeVRAM) {
			t.Errorf("%s: vram %v (present %v), /api/ps says %d", m.Name, v, ok, m.SizeVRAM)
		}
	}
	if c := ctxLen["qwen3:8b"]; c != 1536 {
		t.Errorf("context length of the chat model = %v, want the 1536 it was loaded with (all: %v)", c, ctxLen)
	}
	if c := ctxLen["nomic-embed-text:latest"]; c <= 0 {
		t.Errorf("context length of the embed model = %v", c)
	}
	if e := expiry["qwen3:8b"]; e <= 9*60 || e > 10*60 {
		t.Errorf("chat model expires in %vs, want just under 600", e)
	}
	if e := expiry["nomic-embed-text:latest"]; !math.IsInf(e, 1) {
		t.Errorf("embed model kept forever expires in %vs, want +Inf", e)
	}

	// Ollama gone: up 0 within the timeout, no model series left over, declared models still
	// there (the not-loaded alert is silenced by up==0, not by a vanished series).
	srv.Stop()
	start := time.Now()
	f = scrape(t, url)
	if up := f.one(t, MetricUp); up != 0 {
		t.Errorf("ollama_up = %v with Ollama stopped", up)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("scrape of a stopped Ollama took %s", took)
	}
	for _, n := range []string{MetricVersion, MetricModelsLoaded, MetricLoadedSize, MetricModelsAvailable} {
		if _, ok := f[n]; ok {
			t.Errorf("%s still exported with Ollama stopped", n)
		}
	}
	if d := f.series(MetricModelDeclared, "model"); len(d) != 3 {
		t.Errorf("declared with Ollama stopped = %v", d)
	}
}

// TestHungOllama: an Ollama that accepts connections and never answers reports up 0 within
// --timeout instead of hanging the scrape.
func TestHungOllama(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered, until the test ends
		}
	}()
	url := startMain(t, "--ollama-url", "http://"+ln.Addr().String(), "--timeout", "300ms")
	start := time.Now()
	f := scrape(t, url)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("scrape took %s with --timeout 300ms", took)
	}
	if up := f.one(t, MetricUp); up != 0 {
		t.Errorf("ollama_up = %v for an Ollama that never answers", up)
	}
}

func TestMainRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--ollama-url", "127.0.0.1:11434"}, // no scheme
		{"--timeout", "0s"},
		{"extra"},
		{"--no-such-flag"},
	} {
		var stderr bytes.Buffer
		if rc := Main(context.Background(), args, &stderr); rc != 2 {
			t.Errorf("Main(%q) = %d, want 2 (%s)", args, rc, stderr.String())
		}
	}
}

func TestNormalizeModel(t *testing.T) {
	for in, want := range map[string]string{
		"qwen3-rag":                      "qwen3-rag:latest",
		"qwen3:8b":                       "qwen3:8b",
		" nomic-embed-text ":             "nomic-embed-text:latest",
		"registry.local:5000/team/model": "registry.local:5000/team/model:latest",
		"registry.local:5000/team/m:v1":  "registry.local:5000/team/m:v1",
		"":                               "",
	} {
		if got := NormalizeModel(in); got != want {
			t.Errorf("NormalizeModel(%q) = %q, want %q", in, got, want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the exporter's logger and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
