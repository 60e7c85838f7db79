package serverconfig

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestDocumentedExampleIsTheDefault keeps docs/rag-server-config.md's example in step with
// Default (apart from auth.keysFile, which the example sets) and parseable strictly.
func TestDocumentedExampleIsTheDefault(t *testing.T) {
	doc, err := os.ReadFile("../../docs/rag-server-config.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## A complete example.*?```json\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no example in docs/rag-server-config.md")
	}
	c, err := Parse(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.KeysFile == "" {
		t.Error("the example should show auth.keysFile")
	}
	c.Auth.KeysFile = ""
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("example differs from Default():\n%s\n%s", c.Marshal(), Default().Marshal())
	}
}

func TestDecodeOverDefaults(t *testing.T) {
	c, err := Decode(Default(), []byte(`{"listen": ":9090", "limits": {"ragTimeout": "2m"}, "uploads": {"allowedTypes": ["txt"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":9090" || c.Limits.RagTimeout != "2m" || c.Limits.EmbedBatchSize != 32 || c.Models.Chat != "qwen3:8b" ||
		strings.Join(c.Uploads.AllowedTypes, ",") != "txt" {
		t.Fatalf("%s", c.Marshal())
	}
	if d := Default(); len(d.Uploads.AllowedTypes) != 6 {
		t.Fatalf("Decode changed the defaults: %v", d.Uploads.AllowedTypes)
	}
	for _, bad := range []string{`{"listn": ":1"}`, `{} {}`, `[`} {
		if _, err := Decode(Default(), []byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	// Parse is still strict about missing fields: nothing defaulted.
	if _, err := Parse([]byte(`{"listen": ":1"}`)); err == nil || !strings.Contains(err.Error(), "dataDir") {
		t.Fatalf("Parse of a partial file: %v", err)
	}
}

func TestMetricsListen(t *testing.T) {
	c := Default()
	c.Listen, c.MetricsListen = ":8080", ":9090"
	if err := c.Validate(); err != nil {
		t.Fatalf("metricsListen :9090 refused: %v", err)
	}
	if !strings.Contains(string(c.Marshal()), `"metricsListen": ":9090"`) {
		t.Fatalf("the key the operator renders is not metricsListen: %s", c.Marshal())
	}
	for _, bad := range []string{":8080", "9090", "host"} {
		c.MetricsListen = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "metricsListen") {
			t.Errorf("metricsListen %q: %v", bad, err)
		}
	}
	if strings.Contains(string(Default().Marshal()), "metricsListen") {
		t.Error("the default (no metrics listener) should leave the key out")
	}
}

// ollama.urls, the pool the operator renders (one URL per Ollama pod), replaces ollama.url; each
// must be an absolute URL and none may repeat.
func TestOllamaURLs(t *testing.T) {
	pods := []string{"http://rag-ollama-0.rag-ollama-headless.ns.svc:11434", "http://rag-ollama-1.rag-ollama-headless.ns.svc:11434"}
	c, err := Decode(Default(), []byte(`{"ollama": {"url": "", "urls": ["`+pods[0]+`", "`+pods[1]+`"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("a pool without url: %v", err)
	}
	if got := c.Ollama.Endpoints(); !reflect.DeepEqual(got, pods) {
		t.Fatalf("endpoints %v", got)
	}
	if got := Default().Ollama.Endpoints(); !reflect.DeepEqual(got, []string{"http://127.0.0.1:11434"}) {
		t.Fatalf("endpoints without urls: %v", got)
	}
	// Rendered back under exactly this key, and left out when empty.
	if !strings.Contains(string(c.Marshal()), `"urls": [`) || strings.Contains(string(Default().Marshal()), `"urls"`) {
		t.Fatalf("marshal:\n%s", c.Marshal())
	}
	c.Ollama.URLs = []string{pods[0], "rag-ollama-1:11434", pods[0] + "/"}
	err = c.Validate()
	for _, want := range []string{`ollama.urls[1]: must be an absolute URL, got "rag-ollama-1:11434"`, "ollama.urls[2]: repeats ollama.urls[0]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "ollama.url:") {
		t.Errorf("ollama.url checked although urls replace it: %v", err)
	}
}

// TestDatabase: embedded is the default and what a file without "database" means (such a file
// renders without the key, as before it existed); postgres needs a URI file; anything else
// is refused with the field named.
func TestDatabase(t *testing.T) {
	base := Default()
	base.Database = Database{}
	if strings.Contains(string(base.Marshal()), `"database"`) {
		t.Fatalf("a zero database section is rendered:\n%s", base.Marshal())
	}
	for _, c := range []struct {
		db   string
		want string // "" valid, else a substring of the error
	}{
		{``, ""},
		{`{"driver": "embedded"}`, ""},
		{`{"driver": "postgres", "uriFile": "/etc/rag-server/database/uri"}`, ""},
		{`{"driver": "postgres"}`, "database.uriFile: must name the file"},
		{`{"driver": "postgres", "uriFile": "  "}`, "database.uriFile: must name the file"},
		{`{"driver": "embedded", "uriFile": "/x"}`, `database.uriFile: is only used with database.driver "postgres"`},
		{`{"driver": "Postgres", "uriFile": "/x"}`, `database.driver: must be "embedded" or "postgres", got "Postgres"`},
		{`{"driver": "postgres", "uri": "postgres://x"}`, `unknown field "uri"`},
	} {
		file := `{}`
		if c.db != "" {
			file = `{"database": ` + c.db + `}`
		}
		cfg, err := Decode(base, []byte(file))
		if err == nil {
			err = cfg.Validate()
		}
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", file, err, c.want)
		}
	}
}

// TestSLO: the objective the operator renders from spec.slo is read strictly, an absent one
// leaves the rendered file as it was, and a window defaults to ten minutes.
func TestSLO(t *testing.T) {
	c, err := Decode(Default(), []byte(`{"slo": {"chatTTFTP95": "2s", "healthzP99": "100ms", "window": "5m"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	got, err := c.SLO.Targets()
	if err != nil || got != (SLOTargets{ChatTTFTP95: 2 * time.Second, HealthzP99: 100 * time.Millisecond, Window: 5 * time.Minute}) {
		t.Fatalf("targets %+v, %v", got, err)
	}
	if got, _ := (SLO{HealthzP99: "50ms"}).Targets(); got.Window != DefaultSLOWindow || got.ChatTTFTP95 != 0 {
		t.Fatalf("defaults: %+v", got)
	}
	if strings.Contains(string(Default().Marshal()), "slo") {
		t.Errorf("a config without an objective renders one:\n%s", Default().Marshal())
	}
	for body, field := range map[string]string{
		`{"slo": {"chatTTFTP95": "2"}}`:    "slo.chatTTFTP95",
		`{"slo": {"healthzP99": "-1s"}}`:   "slo.healthzP99",
		`{"slo": {"window": "0s"}}`:        "slo.window",
		`{"slo": {"chatTTFTP95": "fast"}}`: "slo.chatTTFTP95",
	} {
		c, err := Decode(Default(), []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want an error naming %s", body, err, field)
		}
	}
	if _, err := Decode(Default(), []byte(`{"slo": {"chatTTFT": "2s"}}`)); err == nil {
		t.Error("an unknown slo field was accepted")
	}
}
