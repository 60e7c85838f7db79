// Package ui tests the web UI in a real Chromium against the real rag-server binary and the
// real Ollama with the tiny generated models. Each step writes a screenshot (RAG_UI_SCREENSHOTS,
// default $TMPDIR/rag-ui-screenshots); a few are committed under docs/ui/.
package ui

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/chromium"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/testbed/ragproc"
)

// binary is the rag-server built once by TestMain, before any test's clock starts.
var binary string

func TestMain(m *testing.M) {
	flag.Parse() // testing.Short reads the flags
	_, errC := chromium.Binary()
	_, errO := ollamatest.Binary()
	if errC == nil && errO == nil && !testing.Short() {
		dir, err := os.MkdirTemp("", "rag-ui-test-")
		if err != nil {
			panic(err)
		}
		binary = filepath.Join(dir, "rag-server")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		if err := ragproc.Build(ctx, binary); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cancel()
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

const (
	adminKey = "ui-admin-key-0123456789"
	hrKey    = "ui-hr-key-0123456789abc"
)

// The documents: the question asked is a document's whole text, so its one chunk scores
// highest whatever the tiny embedding model's geometry.
const (
	hrText      = "Employees receive twenty five vacation days per year. Unused vacation days expire at the end of March."
	financeText = "# Budget\n\nThe research department has a budget of one million two hundred thousand euros for the year."
	xssText     = `Security test document. <script>window.__xss = 1</script> <img src="x" onerror="window.__xss = 2"> ` +
		`![tracker](http://evil.example/pixel.png) [click](javascript:window.__xss=3) and the end of the test text.`
)

func startStack(t *testing.T) *ragproc.Proc {
	t.Helper()
	ol := ollamatest.StartWithModels(t, ollamatest.Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_KEEP_ALIVE": "-1"}})
	dir := t.TempDir()
	cfg := serverconfig.Default()
	cfg.Ollama.URL, cfg.Ollama.KeepAlive = ol.URL, "-1"
	cfg.Listen = "" // a free port
	cfg.Uploads.MaxFileBytes = 1 << 20
	srv, err := ragproc.Start(ragproc.Options{Binary: binary, Dir: dir, Config: cfg, Args: []string{"--enrich=false", "--probe-interval=1s"},
		Keys: []ragproc.Key{{Name: "admin", Token: adminKey, Role: "admin"}, {Name: "hr-reader", Token: hrKey, Role: "user", Tags: []string{"hr"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rag-server log:\n%s", srv.LogTail())
		}
		srv.Stop()
	})
	return srv
}

func writeFiles(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func (p *page) signIn(key string) {
	p.t.Helper()
	p.waitJS("sign-in form", `!document.querySelector('#signin').hidden`, 20*time.Second)
	p.do("sign in", chromedp.SendKeys(chromedp.CSS("#key"), key), chromedp.Click(chromedp.CSS("#signin-form button")))
	p.waitJS("signed in", `!document.querySelector('#top').hidden && document.querySelector('#list-summary')`, 20*time.Second)
}

// rowStatus is the status badge text of the named document in the list ("" when absent).
func rowStatus(name string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('.docs .drows .drow')].filter(r => r.querySelector('.name')?.textContent === %s).map(r => r.querySelector('.badge').textContent)[0] || ''`, js(name))
}

func (p *page) ask(question string) {
	p.t.Helper()
	p.do("open chat", chromedp.Navigate(p.base+"/#/chat"))
	p.waitJS("chat view", `document.querySelector('#question')`, 20*time.Second)
	// Count the answer's renders while it is still streaming (aria-busy): more than one means
	// tokens arrived one by one, before the done event.
	eval[any](p, `window.__streamed = 0; new MutationObserver(() => { if (document.querySelector('.answer[aria-busy="true"]')?.textContent) window.__streamed++ })
		.observe(document.querySelector('#turns'), {subtree: true, childList: true, characterData: true}); true`)
	p.setValue("#question", question)
	p.do("ask", chromedp.Click(chromedp.CSS("#ask")))
	p.waitJS("answer done", `document.querySelector('.answer[aria-busy="false"]') && !document.querySelector('.answer[aria-busy="true"]')`, 2*time.Minute)
}

// TestUI walks the UI through what a user does, in Chromium, against the real server and
// Ollama: sign in; upload three documents of which the server refuses one; two become ready and
// the refusal is explained; ask, see the answer stream and a citation open the right chunk; a
// document holding <script> and a remote markdown image stays inert; delete a document; a key
// limited to one tag sees only its documents; stack health, dark theme, phone width.
func TestUI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium, Ollama and the server")
	}
	ctx := chromium.StartT(t, chromium.Options{})
	if binary == "" {
		if os.Getenv(ollamatest.RequireEnv) == "1" {
			t.Fatalf("ollama binary missing and %s=1: run `make ollama`", ollamatest.RequireEnv)
		}
		t.Skip("ollama binary missing: run `make ollama`")
	}
	srv := startStack(t)
	p := &page{t: t, ctx: ctx, base: srv.URL, dir: shotDir(t)}
	t.Logf("screenshots in %s", p.dir)
	p.do("viewport", chromedp.EmulateViewport(1280, 800))

	// Sign in.
	p.do("open", chromedp.Navigate(srv.URL+"/"))
	p.waitJS("sign-in form", `!document.querySelector('#signin').hidden`, 20*time.Second)
	p.do("type a wrong key", chromedp.SendKeys(chromedp.CSS("#key"), "not-a-valid-key-123"), chromedp.Click(chromedp.CSS("#signin-form button")))
	p.waitJS("wrong key refused", `document.querySelector('#signin-error').textContent.includes('not accepted')`, 10*time.Second)
	p.shot("sign-in-refused")
	if eval[string](p, `sessionStorage.getItem('rag.apiKey') || ''`) != "" {
		t.Fatal("a refused key was kept")
	}
	p.setValue("#key", "")
	p.signIn(adminKey)
	if got := eval[string](p, `location.href`); strings.Contains(got, adminKey) {
		t.Fatalf("the key is in the URL: %s", got)
	}
	if eval[string](p, `document.cookie`) != "" {
		t.Fatal("the UI set a cookie")
	}
	p.shot("documents-empty")

	// Upload three documents, one refused.
	dir := writeFiles(t, map[string]string{"hr-policy.txt": hrText, "tool.exe": "MZ\x90\x00 not a document", "finance-report.md": financeText, "xss-test.txt": xssText})
	p.setValue("#upload-tags", "hr")
	p.do("pick files", chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{filepath.Join(dir, "hr-policy.txt"), filepath.Join(dir, "tool.exe")}))
	p.waitJS("two outcomes", `document.querySelectorAll('.upload.ok, .upload.bad').length == 2`, 30*time.Second)
	p.setValue("#upload-tags", "finance")
	p.do("pick file", chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{filepath.Join(dir, "finance-report.md")}))
	p.waitJS("two ready", rowStatus("hr-policy.txt")+` === 'ready' && `+rowStatus("finance-report.md")+` === 'ready'`, 2*time.Minute)
	refusal := eval[string](p, `[...document.querySelectorAll('.upload.bad')].map(li => li.textContent).join('|')`)
	if !strings.Contains(refusal, "tool.exe") || !strings.Contains(refusal, "type of file is not accepted") {
		t.Fatalf("refusal not explained: %q", refusal)
	}
	// The list re-renders as statuses change: wait for it to settle on two rows, and fail if
	// a third (the refused file) ever shows.
	p.waitJS("two rows", `document.querySelectorAll('.docs .drows .drow').length == 2`, 15*time.Second)
	if n := eval[int](p, `document.querySelectorAll('.docs .drows .drow').length`); n != 2 {
		t.Fatalf("%d rows, want 2 (the refused file is not a document)", n)
	}
	p.shot("upload-two-ready-one-refused")

	// A duplicate (same content, same tags) is refused with a link to the existing document.
	p.setValue("#upload-tags", "hr")
	p.do("pick duplicate", chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{filepath.Join(dir, "hr-policy.txt")}))
	p.waitJS("duplicate explained", `document.querySelector('.upload.warn a[href^="#/documents/"]')`, 30*time.Second)
	p.do("open existing", chromedp.Click(chromedp.CSS(".upload.warn a")))
	p.waitJS("detail", `document.querySelector('#detail-title')?.textContent === 'hr-policy.txt'`, 10*time.Second)
	p.shot("duplicate-links-to-existing")

	// Ask: the answer streams; a source chip opens the right chunk beside it.
	// The test model's answer is three words, generated within a millisecond: on a loaded
	// machine they can reach the page in one network read and render once. A stream that works
	// renders in pieces in at least one of three answers; a buffered one never does.
	streamed := 0
	for range 3 {
		p.ask(hrText)
		if streamed = eval[int](p, `window.__streamed`); streamed >= 2 {
			break
		}
	}
	if streamed < 2 {
		t.Errorf("the answer rendered %d times while streaming, in each of three answers; want it token by token", streamed)
	}
	p.do("open source 1", chromedp.Click(chromedp.CSS(".sources button.cite")))
	p.waitJS("chunk shown", `document.querySelector('#chunk-text')?.textContent === `+js(hrText), 20*time.Second)
	if name := eval[string](p, `document.querySelector('#citation .docname').textContent`); name != "hr-policy.txt" {
		t.Fatalf("citation names %q", name)
	}
	p.shot("chat-answer-and-cited-chunk")

	// A document with <script>, an onerror image and a remote markdown image stays inert.
	eval[any](p, `window.__violations = []; document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.blockedURI)); true`)
	// A hash change fires no load event: wait for the view itself.
	p.do("documents", chromedp.Navigate(srv.URL+"/#/documents"), chromedp.WaitVisible(chromedp.CSS("#upload-tags")))
	p.setValue("#upload-tags", "finance")
	p.do("pick xss", chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{filepath.Join(dir, "xss-test.txt")}))
	p.waitJS("xss ready", rowStatus("xss-test.txt")+` === 'ready'`, 2*time.Minute)
	p.ask(xssText)
	p.do("open source", chromedp.Click(chromedp.CSS(".sources button.cite")))
	p.waitJS("xss chunk shown", `document.querySelector('#chunk-text')?.textContent.includes('<script>window.__xss = 1</script>')`, 20*time.Second)
	p.shot("xss-document-shown-as-text")
	checks := eval[map[string]any](p, `({
		xss: window.__xss === undefined ? 'none' : String(window.__xss),
		imgs: document.querySelectorAll('img').length,
		scripts: document.querySelectorAll('script').length,
		remote: performance.getEntriesByType('resource').filter(e => !e.name.startsWith(location.origin)).map(e => e.name),
		links: [...document.querySelectorAll('a')].filter(a => a.href.startsWith('javascript:')).length,
		violations: window.__violations,
	})`)
	if checks["xss"] != "none" || checks["imgs"].(float64) != 0 || checks["scripts"].(float64) != 1 || len(checks["remote"].([]any)) != 0 ||
		checks["links"].(float64) != 0 {
		t.Fatalf("the document was not inert: %v", checks)
	}

	// Delete a document and see it gone.
	p.do("documents", chromedp.Navigate(srv.URL+"/#/documents"))
	p.waitJS("list", rowStatus("finance-report.md")+` === 'ready'`, 20*time.Second)
	p.do("delete", chromedp.Click(chromedp.CSS(`button[aria-label="Delete finance-report.md"]`)))
	p.waitJS("confirm dialog", `document.querySelector('dialog[open]')`, 10*time.Second)
	p.shot("delete-confirmation")
	p.do("confirm", chromedp.Click(chromedp.CSS(`dialog[open] button.danger`)))
	p.waitJS("gone", rowStatus("finance-report.md")+` === '' && `+rowStatus("hr-policy.txt")+` === 'ready'`, 30*time.Second)
	p.shot("deleted")

	// Stack health.
	p.do("admin", chromedp.Navigate(srv.URL+"/#/admin"))
	p.waitJS("admin", `document.querySelector('.dep') && document.querySelectorAll('.badge.ready').length >= 3`, 20*time.Second)
	p.shot("stack-health")

	// Dark theme and a phone's width.
	p.do("dark", chromedp.Click(chromedp.CSS("#theme")), chromedp.Click(chromedp.CSS("#theme")))
	p.do("chat", chromedp.Navigate(srv.URL+"/#/chat"))
	p.waitJS("sessions", `document.querySelectorAll('.session-list a').length >= 2`, 20*time.Second)
	p.do("open session", chromedp.Click(chromedp.CSS(".session-list li:last-child a")))
	p.waitJS("turn", `document.querySelector('.turn .answer')`, 20*time.Second)
	p.shot("chat-dark")
	p.do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	p.do("documents", chromedp.Navigate(srv.URL+"/#/documents"))
	p.waitJS("list", rowStatus("hr-policy.txt")+` === 'ready'`, 20*time.Second)
	p.shot("documents-phone-dark")
	p.do("light desktop", chromedp.Click(chromedp.CSS("#theme")), chromedp.EmulateViewport(1280, 800))

	// A key limited to the tag hr sees only the hr document.
	p.do("sign out", chromedp.Click(chromedp.CSS("#signout")))
	if eval[string](p, `sessionStorage.getItem('rag.apiKey') || ''`) != "" {
		t.Fatal("sign-out kept the key")
	}
	p.signIn(hrKey)
	p.waitJS("hr list", `document.querySelectorAll('.docs .drows .drow').length === 1 && `+rowStatus("hr-policy.txt")+` === 'ready'`, 20*time.Second)
	if eval[bool](p, `!document.querySelector('#nav-admin').hidden`) {
		t.Error("a user key is offered the stack health view")
	}
	p.shot("user-key-sees-its-tag-only")
}
