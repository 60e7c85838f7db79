// Package monitoring_test checks the chart's dashboard and alerts against the servers that feed
// them: every metric (and every label it filters, groups or joins on) that a PromQL expression
// of the Grafana dashboard or the PrometheusRule uses must be exported by a real rag-server
// (built from ./cmd/rag-server, driven through an upload and a streamed answer) or by its
// `rag-server ollama-exporter` subcommand, both talking to a real Ollama with tiny models.
package monitoring_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/ragstack/rag-operator/controllers"
	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/testbed/ragproc"
)

// targetLabels are added by Prometheus from the scrape target (prometheus-operator's monitors),
// not by the servers, so no scrape here can show them.
var targetLabels = map[string]bool{"namespace": true, "job": true, "instance": true, "pod": true,
	"service": true, "container": true, "endpoint": true}

var repoRoot = func() string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}()

// exported is what the real servers expose: sample name -> label names seen on it, and
// sample name -> label name -> values seen.
type exported struct {
	labels map[string]map[string]bool
	values map[string]map[string]map[string]bool
}

func (e *exported) add(name string, labels map[string]string) {
	if e.labels[name] == nil {
		e.labels[name] = map[string]bool{}
		e.values[name] = map[string]map[string]bool{}
	}
	for k, v := range labels {
		e.labels[name][k] = true
		if e.values[name][k] == nil {
			e.values[name][k] = map[string]bool{}
		}
		e.values[name][k][v] = true
	}
}

// addScrape parses one /metrics body; histograms and summaries are expanded into the sample
// names PromQL sees (_bucket with le, _sum, _count).
func (e *exported) addScrape(t *testing.T, body []byte) {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing scrape: %v", err)
	}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			switch {
			case m.Histogram != nil:
				e.add(name+"_sum", ls)
				e.add(name+"_count", ls)
				for _, b := range m.GetHistogram().GetBucket() {
					e.add(name+"_bucket", withLabel(ls, "le", fmt.Sprint(b.GetUpperBound())))
				}
			case m.Summary != nil:
				e.add(name+"_sum", ls)
				e.add(name+"_count", ls)
				e.add(name, withLabel(ls, "quantile", "0.5"))
			default:
				e.add(name, ls)
			}
		}
	}
}

func withLabel(ls map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range ls {
		out[a] = b
	}
	return out
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return b
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDashboardAndAlertMetricsAreExported is the cross-check described in the package comment.
func TestDashboardAndAlertMetricsAreExported(t *testing.T) {
	exprs := dashboardExprs(t)
	rules, recorded := ruleExprs(t)
	if len(exprs) < 20 || len(rules) < 6 {
		t.Fatalf("found %d dashboard and %d rule expressions; the extraction is broken", len(exprs), len(rules))
	}

	// Binaries before any deadline starts.
	bin := filepath.Join(t.TempDir(), "rag-server")
	bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer bcancel()
	if err := ragproc.Build(bctx, bin); err != nil {
		t.Fatal(err)
	}

	ol := ollamatest.StartWithModels(t, ollamatest.Options{Env: map[string]string{"OLLAMA_KEEP_ALIVE": "-1"}})
	cfg := serverconfig.Default()
	cfg.Ollama.URL, cfg.Ollama.KeepAlive = ol.URL, "-1"
	// As the operator renders spec.slo's defaults, so the objective's series exist.
	cfg.SLO = serverconfig.SLO{ChatTTFTP95: "2s", HealthzP99: "100ms", Window: "10m"}
	srv, err := ragproc.Start(ragproc.Options{Binary: bin, Dir: t.TempDir(), Config: cfg, Args: []string{"--insecure-no-auth", "--probe-interval=500ms"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rag-server log:\n%s", srv.LogTail())
		}
		srv.Stop()
	})

	// The exporter as the sidecar runs it: the same binary, its subcommand.
	exAddr := freeAddr(t)
	exporter := exec.Command(bin, "ollama-exporter", "--ollama-url", ol.URL, "--listen", exAddr,
		"--declared-model", ollamatest.ChatModel+","+ollamatest.EmbedModel)
	var exLog bytes.Buffer
	exporter.Stdout, exporter.Stderr = &exLog, &exLog
	if err := exporter.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exporter.Process.Kill()
		_ = exporter.Wait()
		if t.Failed() {
			t.Logf("exporter log:\n%s", exLog.String())
		}
	})

	// Traffic, so that series created on first use exist: a document ingested (embeddings,
	// enrichment on the background lane) and a streamed answer (the interactive lane).
	drive(t, srv.URL)

	var got exported
	got.labels, got.values = map[string]map[string]bool{}, map[string]map[string]map[string]bool{}
	// The metrics listener, as Prometheus scrapes it (no key).
	got.addScrape(t, get(t, srv.MetricsURL+"/metrics"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + exAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter not serving: %v\n%s", err, exLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	got.addScrape(t, get(t, "http://"+exAddr+"/metrics"))
	if v := got.values["ollama_up"]; v == nil {
		t.Fatal("the exporter exported no ollama_up")
	}

	// What the operator reads for status.slo, SLOMet, DependenciesReady and the bulk-ingest
	// window.
	for _, n := range controllers.RagServerMetricsRead {
		if got.values[n] == nil && got.labels[n] == nil {
			t.Errorf("the operator reads %s, which the rag-server does not export", n)
		}
	}
	used := map[string]bool{}
	for _, e := range append(exprs, rules...) {
		checkExpr(t, e, &got, recorded, used)
	}
	// The names both sides must cover, so a broken extraction cannot pass by finding nothing.
	for _, n := range []string{"rag_chat_time_to_first_token_seconds_bucket", "rag_llm_queue_wait_seconds_bucket",
		"rag_llm_chat_tokens_per_second_bucket", "ollama_up", "ollama_model_loaded_vram_bytes", "ollama_model_declared"} {
		if !used[n] {
			t.Errorf("no expression uses %s", n)
		}
	}
	if t.Failed() {
		return
	}
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("%d metric names used by %d dashboard and %d rule expressions, all exported: %v", len(names), len(exprs), len(rules), names)
}

// source is one PromQL expression and where it came from, for messages.
type source struct{ where, expr string }

// dashboardExprs collects every "expr" in the dashboard and the metrics its label_values()
// variables query. Grafana's own variables are replaced by what Grafana would put there.
func dashboardExprs(t *testing.T) []source {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "charts/rag-operator/files/dashboards/rag-appliance.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")
	var out []source
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				p := path + "." + k
				if s, ok := c.(string); ok {
					switch {
					case k == "expr":
						out = append(out, source{p, grafana.Replace(s)})
					case (k == "query" || k == "definition") && strings.HasPrefix(s, "label_values("):
						// label_values(selector, label): the selector is PromQL.
						inner := strings.TrimSuffix(strings.TrimPrefix(s, "label_values("), ")")
						sel := inner[:strings.LastIndexByte(inner, ',')]
						out = append(out, source{p, grafana.Replace(sel)})
					}
					continue
				}
				walk(c, p)
			}
		case []any:
			for i, c := range v {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(doc, "dashboard")
	return out
}

// ruleExprs renders the chart's PrometheusRule with helm and returns its expressions and the
// names its recording rules define.
func ruleExprs(t *testing.T) ([]source, map[string]bool) {
	t.Helper()
	out := helmTemplate(t, "--set", "monitoring.prometheusRule.enabled=true", "--show-only", "templates/monitoring.yaml")
	var rule struct {
		Kind string
		Spec struct {
			Groups []struct {
				Name  string
				Rules []struct{ Record, Alert, Expr string }
			}
		}
	}
	if err := yaml.Unmarshal([]byte(out), &rule); err != nil || rule.Kind != "PrometheusRule" {
		t.Fatalf("rendered rule (%v):\n%s", err, out)
	}
	var exprs []source
	recorded := map[string]bool{}
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, source{g.Name + "/" + r.Record + r.Alert, r.Expr})
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	return exprs, recorded
}

func helmTemplate(t *testing.T, args ...string) string {
	t.Helper()
	bin := os.Getenv("HELM")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache", "rag-operator", "bin", "helm-v4.3.1")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("RAG_REQUIRE_HELM") == "1" {
			t.Fatalf("helm not found at %s (RAG_REQUIRE_HELM=1): run `make helm`", bin)
		}
		t.Skipf("helm not found at %s: run `make helm` (or set HELM)", bin)
	}
	home := t.TempDir()
	cmd := exec.Command(bin, append([]string{"template", "rag-operator", "charts/rag-operator", "--namespace", "rag-operator-system"}, args...)...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, b)
	}
	return string(b)
}

// checkExpr parses e and checks every selector's metric is exported (or recorded by a rule),
// that every label it matches on equality exists with that value, and that every label an
// aggregation groups by or a binary operation joins on exists on the metrics beneath it.
func checkExpr(t *testing.T, s source, got *exported, recorded map[string]bool, used map[string]bool) {
	t.Helper()
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(s.expr)
	if err != nil {
		t.Errorf("%s: %v\n  %s", s.where, err, s.expr)
		return
	}
	// selectors returns the exported metric names under node.
	selectors := func(node parser.Node) []string {
		var names []string
		parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && got.labels[vs.Name] != nil {
				names = append(names, vs.Name)
			}
			return nil
		})
		return names
	}
	hasLabel := func(names []string, label string) bool {
		return slices.ContainsFunc(names, func(n string) bool { return got.labels[n][label] })
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			if n.Name == "" {
				t.Errorf("%s: selector %s has no metric name", s.where, n)
				return nil
			}
			used[n.Name] = true
			if recorded[n.Name] {
				return nil
			}
			if got.labels[n.Name] == nil {
				t.Errorf("%s: %s is not exported by the rag-server or the Ollama exporter\n  %s", s.where, n.Name, s.expr)
				return nil
			}
			for _, m := range n.LabelMatchers {
				if m.Name == model.MetricNameLabel || targetLabels[m.Name] {
					continue
				}
				if !got.labels[n.Name][m.Name] {
					t.Errorf("%s: %s has no label %q", s.where, n.Name, m.Name)
				} else if m.Type.String() == "=" && !got.values[n.Name][m.Name][m.Value] {
					t.Errorf("%s: %s{%s} never takes the value %q (seen %v)", s.where, n.Name, m.Name, m.Value, keys(got.values[n.Name][m.Name]))
				}
			}
		case *parser.AggregateExpr:
			if n.Without {
				return nil
			}
			names := selectors(n.Expr)
			for _, l := range n.Grouping {
				if len(names) > 0 && !targetLabels[l] && !hasLabel(names, l) {
					t.Errorf("%s: grouped by %q, which none of %v has", s.where, l, names)
				}
			}
		case *parser.BinaryExpr:
			if n.VectorMatching == nil || !n.VectorMatching.On {
				return nil
			}
			for _, side := range []parser.Node{n.LHS, n.RHS} {
				names := selectors(side)
				for _, l := range n.VectorMatching.MatchingLabels {
					if len(names) > 0 && !targetLabels[l] && !hasLabel(names, l) {
						t.Errorf("%s: joined on %q, which none of %v has", s.where, l, names)
					}
				}
			}
		}
		return nil
	})
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// drive uploads one document, waits until it is ready, and asks a streamed question.
func drive(t *testing.T, url string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	w, _ := mw.CreateFormFile("file", "notes.md")
	fmt.Fprint(w, "# Notes\nThe appliance answers questions about its documents. Ollama serves the models.\n")
	mw.Close()
	resp, err := http.Post(url+"/api/documents", mw.FormDataContentType(), &b)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload: %s %s", resp.Status, body)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var list struct {
			Documents []struct{ Status, Error string }
		}
		if err := json.Unmarshal(get(t, url+"/api/documents"), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Documents) == 1 && list.Documents[0].Status == "ready" {
			break
		}
		if len(list.Documents) == 1 && list.Documents[0].Status == "failed" {
			t.Fatalf("document failed: %s", list.Documents[0].Error)
		}
		if time.Now().After(deadline) {
			t.Fatalf("document not ready in 2 minutes: %+v", list)
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp, err = http.Post(url+"/api/chat", "application/json", strings.NewReader(`{"question":"What does the appliance answer?","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("data:")) {
		t.Fatalf("streamed chat: %s\n%s", resp.Status, body)
	}
}
