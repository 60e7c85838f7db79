package httpapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// An Ollama pool reports each server beside the whole: "ollama/<index>" in the dependencies
// and in rag_dependency_up. The address is for admins; one server out of rotation does not
// make "ollama" down, so questions are still answered by the others.
func TestDependencyPartsOfAPool(t *testing.T) {
	h := newHarness(t)
	at := time.Now().UTC()
	h.ready.AddCheck(Check{Name: DepOllama, Probe: func(context.Context) error { return nil }, Parts: func() map[string]CheckResult {
		return map[string]CheckResult{
			"0": {OK: false, Error: "dial tcp 10.0.0.7:11434: connect: connection refused", CheckedAt: at, Address: "http://rag-ollama-0.rag-ollama-headless.ns.svc:11434"},
			"1": {OK: true, CheckedAt: at, LatencyMS: 3, Address: "http://rag-ollama-1.rag-ollama-headless.ns.svc:11434"},
		}
	}})
	h.ready.ProbeOnce(context.Background())

	deps := func(tok string) (DependenciesResponse, string) {
		t.Helper()
		resp, b := h.do("GET", "/api/health/dependencies", tok, "", nil)
		var d DependenciesResponse
		if resp.StatusCode != 200 || json.Unmarshal(b, &d) != nil {
			t.Fatalf("dependencies %d %s", resp.StatusCode, b)
		}
		return d, string(b)
	}
	d, _ := deps(adminTok)
	whole, s0, s1 := d.Dependencies[DepOllama], d.Dependencies["ollama/0"], d.Dependencies["ollama/1"]
	if !whole.OK || s0.OK || !strings.Contains(s0.Error, "connection refused") || !strings.HasPrefix(s0.Address, "http://rag-ollama-0.") ||
		!s1.OK || s1.Address == "" || s1.LatencyMS != 3 {
		t.Fatalf("admin view: %+v", d.Dependencies)
	}
	if _, down := h.ready.Down(answerDeps...); down {
		t.Fatal("one server out of rotation refuses questions")
	}
	d, raw := deps(aliceTok)
	if s0 := d.Dependencies["ollama/0"]; s0.OK || s0.Error != "unavailable" || strings.Contains(raw, "rag-ollama") || strings.Contains(raw, "10.0.0.7") {
		t.Fatalf("user view names internal addresses: %s", raw)
	}
	_, b := h.do("GET", "/metrics", adminTok, "", nil)
	for _, want := range []string{`rag_dependency_up{dependency="ollama"} 1`, `rag_dependency_up{dependency="ollama/0"} 0`, `rag_dependency_up{dependency="ollama/1"} 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(string(b), "rag-ollama") {
		t.Error("metrics name internal addresses")
	}
}
