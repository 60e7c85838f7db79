package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// page drives one browser tab through the UI and writes a screenshot per step.
type page struct {
	t    *testing.T
	ctx  context.Context
	base string // the server's URL
	dir  string // screenshots
	n    int
}

// shotDir is where screenshots go: $RAG_UI_SCREENSHOTS, else a fixed directory under the
// system temp dir (printed), so they outlive the test for a look.
func shotDir(t *testing.T) string {
	dir := os.Getenv("RAG_UI_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "rag-ui-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// do runs steps with a deadline; a failure takes a screenshot first.
func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.shot("FAILED-" + what)
		p.t.Fatalf("%s: %v", what, err)
	}
}

// eval runs a JavaScript expression and returns its value.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is truthy.
func (p *page) waitJS(what, expr string, timeout time.Duration) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		p.shot("FAILED-" + what)
		body, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		p.t.Fatalf("%s: %v\npage text:\n%s", what, err, body)
	}
}

var unsafeName = regexp.MustCompile(`[^a-z0-9-]+`)

// shot writes NN-name.png of the viewport.
func (p *page) shot(name string) string {
	p.t.Helper()
	p.n++
	file := filepath.Join(p.dir, fmt.Sprintf("%02d-%s.png", p.n, unsafeName.ReplaceAllString(strings.ToLower(name), "-")))
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	return file
}

// js quotes a Go string as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// setValue sets a form field's value as typing would leave it (and fires input).
func (p *page) setValue(sel, v string) {
	p.t.Helper()
	eval[bool](p, fmt.Sprintf(`(() => { const e = document.querySelector(%s); e.value = %s; e.dispatchEvent(new Event('input', {bubbles: true})); return true })()`, js(sel), js(v)))
}
