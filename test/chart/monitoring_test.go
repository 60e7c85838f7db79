package chart_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// monitoringValueCases are the TestValues rows of monitoring.* (the dashboard and the alerts;
// test/monitoring checks the metric names they use against the real servers).
func monitoringValueCases() []valueCase {
	return []valueCase{
		{
			name: "monitoring.dashboards renders the Grafana dashboard ConfigMap",
			covers: []string{"monitoring.dashboards.enabled", "monitoring.dashboards.labels",
				"monitoring.dashboards.annotations"},
			values: "monitoring: {dashboards: {enabled: true, labels: {team: ml}, annotations: {grafana_folder: RAG}}}\n",
			check: func(t *testing.T, m *manifest) {
				cm := &corev1.ConfigMap{}
				m.typed(t, "ConfigMap", fullname+"-dashboards", cm)
				if cm.Namespace != namespace || cm.Labels["grafana_dashboard"] != "1" || cm.Labels["team"] != "ml" ||
					cm.Labels["app.kubernetes.io/managed-by"] != "Helm" || cm.Annotations["grafana_folder"] != "RAG" {
					t.Errorf("ConfigMap metadata: %s %v %v", cm.Namespace, cm.Labels, cm.Annotations)
				}
				file, err := os.ReadFile(filepath.Join(chartDir, "files/dashboards/rag-appliance.json"))
				if err != nil {
					t.Fatal(err)
				}
				got := cm.Data["rag-appliance.json"]
				if got != strings.TrimRight(string(file), "\n") {
					t.Errorf("the ConfigMap does not carry files/dashboards/rag-appliance.json verbatim (%d bytes vs %d)", len(got), len(file))
				}
				var d struct {
					UID    string
					Panels []json.RawMessage
				}
				if err := json.Unmarshal([]byte(got), &d); err != nil || d.UID != "rag-appliance" || len(d.Panels) < 10 {
					t.Errorf("dashboard: uid %q, %d panels, %v", d.UID, len(d.Panels), err)
				}
				if len(m.ofKind("PrometheusRule")) != 0 {
					t.Error("a PrometheusRule rendered with only the dashboards on")
				}
			},
		},
		{
			name:   "monitoring.prometheusRule renders the appliance alerts with the TTFT objective",
			covers: []string{"monitoring.prometheusRule.enabled", "monitoring.prometheusRule.labels", "monitoring.prometheusRule.chatTTFTSeconds"},
			values: "monitoring: {prometheusRule: {enabled: true, labels: {release: prometheus}, chatTTFTSeconds: 1.5}}\n",
			check: func(t *testing.T, m *manifest) {
				rules := m.ofKind("PrometheusRule")
				if len(rules) != 1 {
					t.Fatalf("%d PrometheusRules: %v", len(rules), m.keys())
				}
				r := rules[0].u
				if r.GetAPIVersion() != "monitoring.coreos.com/v1" || r.GetNamespace() != namespace || r.GetLabels()["release"] != "prometheus" {
					t.Errorf("PrometheusRule metadata: %s %s %v", r.GetAPIVersion(), r.GetNamespace(), r.GetLabels())
				}
				groups, _, _ := unstructured.NestedSlice(r.Object, "spec", "groups")
				alerts := map[string]map[string]any{}
				for _, g := range groups {
					rs, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
					for _, x := range rs {
						x := x.(map[string]any)
						if a, ok := x["alert"].(string); ok {
							alerts[a] = x
						}
					}
				}
				var names []string
				for a := range alerts {
					names = append(names, a)
				}
				slices.Sort(names)
				want := []string{"OllamaDeclaredModelNotResident", "OllamaDown", "RagChatLatencyObjectiveBurning",
					"RagIngestQueueNotDraining", "RagLLMQueueNotDraining", "RagServerOllamaUnreachable"}
				if !slices.Equal(names, want) {
					t.Errorf("alerts %v, want %v", names, want)
				}
				burn := alerts["RagChatLatencyObjectiveBurning"]
				if e, _ := burn["expr"].(string); strings.Count(e, "> 1.5") != 2 {
					t.Errorf("the objective (1.5 s) is not in both windows of the TTFT alert: %q", e)
				}
				for a, x := range alerts {
					// Prometheus's template syntax must reach Prometheus, not be eaten by helm.
					ann, _, _ := unstructured.NestedStringMap(x, "annotations")
					if ann["summary"] == "" || ann["description"] == "" || strings.Contains(ann["description"], "{{ \"") {
						t.Errorf("%s annotations: %v", a, ann)
					}
					if sev, _, _ := unstructured.NestedString(x, "labels", "severity"); sev != "warning" && sev != "critical" {
						t.Errorf("%s severity %q", a, sev)
					}
				}
				if d, _ := alerts["OllamaDown"]["annotations"].(map[string]any)["description"].(string); !strings.Contains(d, "{{ $labels.pod }}") {
					t.Errorf("OllamaDown description does not keep Prometheus's {{ $labels.pod }}: %q", d)
				}
				if len(m.ofKind("ConfigMap")) != 0 {
					t.Error("a dashboard ConfigMap rendered with only the rule on")
				}
			},
		},
	}
}

func TestMonitoringSchemaRejects(t *testing.T) {
	t.Parallel()
	helmBinary(t)
	for name, values := range map[string]string{
		"typo under monitoring":        "monitoring: {dashboard: {enabled: true}}\n",
		"typo under prometheusRule":    "monitoring: {prometheusRule: {enable: true}}\n",
		"zero TTFT objective":          "monitoring: {prometheusRule: {chatTTFTSeconds: 0}}\n",
		"TTFT objective as a duration": "monitoring: {prometheusRule: {chatTTFTSeconds: 2s}}\n",
		"dashboard labels not strings": "monitoring: {dashboards: {labels: {a: {b: c}}}}\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := renderChart(t, values)
			if err == nil {
				t.Fatalf("values %q rendered; the schema should reject them", values)
			}
			if !strings.Contains(err.Error(), "schema") {
				t.Errorf("rejected, but not by the schema: %v", err)
			}
		})
	}
}

// TestDashboardShape: what Grafana needs to load the dashboard as the sidecar hands it over:
// unique panel ids, panels that do not overlap on the grid, every query on the datasource
// variable (a fixed datasource uid would not exist in the user's Grafana) with its own refId.
func TestDashboardShape(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(chartDir, "files/dashboards/rag-appliance.json"))
	if err != nil {
		t.Fatal(err)
	}
	type ds struct{ Type, UID string }
	var d struct {
		UID        string
		Templating struct{ List []struct{ Name, Type string } }
		Panels     []struct {
			ID         int
			Type       string
			Title      string
			Datasource *ds
			GridPos    struct{ H, W, X, Y int }
			Targets    []struct {
				Datasource *ds
				Expr       string
				RefID      string
			}
		}
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["namespace"] != "query" {
		t.Errorf("template variables %v, want datasource and namespace", vars)
	}
	ids := map[int]string{}
	cells := map[[2]int]string{}
	for _, p := range d.Panels {
		if other, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("%q: grid position %+v", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := cells[[2]int{x, y}]; ok {
					t.Fatalf("%q overlaps %q at %d,%d", p.Title, other, x, y)
				}
				cells[[2]int{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("%q: datasource %+v, %d queries", p.Title, p.Datasource, len(p.Targets))
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if q.Datasource == nil || q.Datasource.UID != "${datasource}" || q.Expr == "" || q.RefID == "" || refs[q.RefID] {
				t.Errorf("%q: query %+v", p.Title, q)
			}
			refs[q.RefID] = true
		}
	}
}
