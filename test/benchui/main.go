// Command benchui measures the web UI in a real Chromium against the real rag-server binary:
// first paint and time to interactive of / (Performance API, cache disabled, median of -runs
// loads), the bytes it transfers, and the document list with -docs documents — the longest
// main-thread task while it renders each page size and pages through them all (a page that
// freezes shows long tasks). It writes ui.json and ui.md under -out. Nothing is asserted: the
// figures are read, not gated.
//
//	make bench-ui
//	go run ./test/benchui -out docs/benchmarks -docs 5000
//
// The server runs with an Ollama URL nobody answers: the UI is what is measured, and documents
// then stay queued (pending), which keeps the list's live refresh running, as during an ingest.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/chromium"
	"github.com/ragstack/rag-operator/internal/testbed/ragproc"
)

const adminKey = "bench-admin-key-0123456789"

// Result is ui.json.
type Result struct {
	Date     string `json:"date"`
	Machine  string `json:"machine"`
	Chromium string `json:"chromium"`
	// Load is the machine's load average while measuring (other work on it skews the figures).
	Load string `json:"load_average"`
	Runs int    `json:"runs"`
	// Load of / with a key in the tab (documents view), cache disabled; medians and worst.
	FirstPaintMS           float64 `json:"first_paint_ms"`
	FirstContentfulPaintMS float64 `json:"first_contentful_paint_ms"`
	InteractiveMS          float64 `json:"interactive_ms"` // the document list rendered, main thread free
	InteractiveWorstMS     float64 `json:"interactive_worst_ms"`
	LoadLongestTaskMS      float64 `json:"load_longest_task_ms"`
	// Bytes of the UI itself (HTML, CSS, JS, icon), on the wire and uncompressed.
	UITransferBytes int            `json:"ui_transfer_bytes"`
	UIDecodedBytes  int            `json:"ui_decoded_bytes"`
	UIFiles         map[string]int `json:"ui_files_transfer_bytes"`
	// The list with Docs documents.
	Docs  int         `json:"docs"`
	Pages []PageTimes `json:"pages"`
}

// PageTimes is the list at one page size, paged through every document.
type PageTimes struct {
	PageSize      int     `json:"page_size"`
	Pages         int     `json:"pages"`
	RenderMSMax   float64 `json:"render_ms_max"`   // a page's request to rows on screen
	LongestTaskMS float64 `json:"longest_task_ms"` // the longest main-thread task meanwhile
	LongTasks     int     `json:"long_tasks"`      // tasks over 50 ms
}

func main() {
	out := flag.String("out", "docs/benchmarks", "where ui.json and ui.md go")
	docs := flag.Int("docs", 5000, "documents in the list")
	runs := flag.Int("runs", 7, "cold loads of / measured")
	server := flag.String("server", "", "rag-server binary (default: built from ./cmd/rag-server)")
	flag.Parse()
	if err := run(*out, *docs, *runs, *server); err != nil {
		fmt.Fprintln(os.Stderr, "benchui:", err)
		os.Exit(1)
	}
}

func run(out string, nDocs, runs int, bin string) error {
	tmp, err := os.MkdirTemp("", "benchui-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if bin == "" {
		bin = filepath.Join(tmp, "rag-server")
		if err := ragproc.Build(context.Background(), bin); err != nil {
			return err
		}
	}
	cfg := serverconfig.Default()
	cfg.Listen = ""                       // a free port
	cfg.Ollama.URL = "http://127.0.0.1:9" // discard: nothing answers
	cfg.Limits.MaxConcurrentProcessing = 1
	srv, err := ragproc.Start(ragproc.Options{Binary: bin, Dir: tmp, Config: cfg, Args: []string{"--enrich=false"},
		Keys: []ragproc.Key{{Name: "admin", Token: adminKey, Role: "admin"}}})
	if err != nil {
		return err
	}
	defer srv.Stop()
	fmt.Printf("uploading %d documents…\n", nDocs)
	start := time.Now()
	if err := seed(srv.URL, nDocs); err != nil {
		return err
	}
	fmt.Printf("uploaded in %s\n", time.Since(start).Round(time.Millisecond))

	ctx, stop, err := chromium.Start(context.Background(), filepath.Join(tmp, "chromium"), chromium.Options{})
	if err != nil {
		return err
	}
	defer stop()
	res := Result{Date: time.Now().UTC().Format("2006-01-02"), Machine: fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()),
		Runs: runs, Docs: nDocs, UIFiles: map[string]int{}}
	do := func(steps ...chromedp.Action[chromedp.Void]) error {
		c, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		return chromedp.Do(c, steps...)
	}
	cdpDo := func(f func(ctx context.Context, t *chromedp.Target) error) chromedp.Action[chromedp.Void] {
		return chromedp.Func(f)
	}
	// A long-task observer in every document, before any script of the page runs.
	observer := `window.__long = []; new PerformanceObserver(l => { for (const e of l.getEntries()) window.__long.push(e.duration) }).observe({type: 'longtask', buffered: true});`
	if err := do(
		chromedp.EmulateViewport(1280, 800),
		cdpDo(func(ctx context.Context, t *chromedp.Target) error {
			if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			if _, err := cdp.Call(ctx, t, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: observer})
			return err
		}),
		chromedp.Navigate(srv.URL+"/"),
	); err != nil {
		return err
	}
	if res.Chromium, err = evalT[string](ctx, `navigator.userAgent.match(/Chrome\/[\d.]+/)?.[0] || navigator.userAgent`); err != nil {
		return err
	}
	if _, err := evalT[bool](ctx, `sessionStorage.setItem('rag.apiKey', `+jsString(adminKey)+`), true`); err != nil {
		return err
	}

	// Cold loads.
	var fp, fcp, tti, longest []float64
	for i := range runs {
		// A new URL each time: a change of the fragment alone would not load the page again.
		if err := do(chromedp.Navigate(fmt.Sprintf("%s/?load=%d#/documents", srv.URL, i))); err != nil {
			return err
		}
		m, err := pollT[map[string]any](ctx, `(() => {
			const r = performance.getEntriesByName('rag:documents-rendered')[0];
			if (!r) return null;
			const paint = Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]));
			const res = performance.getEntriesByType('resource').filter(e => e.name.includes('/ui/'));
			const nav = performance.getEntriesByType('navigation')[0];
			return {fp: paint['first-paint'] || 0, fcp: paint['first-contentful-paint'] || 0, tti: r.startTime,
				long: Math.max(0, ...window.__long),
				files: [{name: '/', t: nav.transferSize, d: nav.decodedBodySize}].concat(res.map(e => ({name: new URL(e.name).pathname, t: e.transferSize, d: e.decodedBodySize})))};
		})()`)
		if err != nil {
			return fmt.Errorf("load %d: %w", i, err)
		}
		fp, fcp, tti, longest = append(fp, m["fp"].(float64)), append(fcp, m["fcp"].(float64)), append(tti, m["tti"].(float64)), append(longest, m["long"].(float64))
		if i == 0 {
			for _, f := range m["files"].([]any) {
				f := f.(map[string]any)
				name := f["name"].(string)
				res.UIFiles[name] = int(f["t"].(float64))
				res.UITransferBytes += int(f["t"].(float64))
				res.UIDecodedBytes += int(f["d"].(float64))
			}
		}
	}
	res.FirstPaintMS, res.FirstContentfulPaintMS, res.InteractiveMS = median(fp), median(fcp), median(tti)
	res.InteractiveWorstMS, res.LoadLongestTaskMS = slices.Max(tti), slices.Max(longest)
	res.Load = uptime()

	// The list at each page size, paged through every document.
	for _, size := range []int{50, 1000} {
		if err := do(chromedp.Navigate(fmt.Sprintf("%s/?size=%d#/documents", srv.URL, size))); err != nil {
			return err
		}
		if _, err := pollT[bool](ctx, `!!performance.getEntriesByName('rag:documents-rendered')[0]`); err != nil {
			return err
		}
		pt := PageTimes{PageSize: size}
		if _, err := evalT[bool](ctx, fmt.Sprintf(`(() => { window.__long = []; const s = document.querySelector('#f-size'); s.value = '%d'; s.dispatchEvent(new Event('change')); return true })()`, size)); err != nil {
			return err
		}
		pages := (nDocs + size - 1) / size
		if size == 50 {
			pages = min(pages, 20) // paging 100 times at 50 tells nothing more
		}
		for p := 0; p < pages; p++ {
			want := fmt.Sprintf("Showing %s–", comma(p*size+1))
			ms, err := pollT[float64](ctx, fmt.Sprintf(`(() => {
				const rows = document.querySelectorAll('.docs .drows .drow').length;
				const ok = document.querySelector('#list-summary').textContent.startsWith(%s) && rows === %d;
				if (!ok) return 0;
				return Math.max(1, performance.now() - (window.__clicked || performance.now()));
			})()`, jsString(want), min(size, nDocs-p*size)))
			if err != nil {
				return fmt.Errorf("page size %d, page %d: %w", size, p+1, err)
			}
			if p > 0 {
				pt.RenderMSMax = max(pt.RenderMSMax, ms)
			}
			pt.Pages++
			if p+1 < pages {
				if _, err := evalT[bool](ctx, `(() => { window.__clicked = performance.now(); [...document.querySelectorAll('.pager button')].find(b => b.textContent.startsWith('Next')).click(); return true })()`); err != nil {
					return err
				}
			}
		}
		time.Sleep(500 * time.Millisecond) // let a last task land in the observer
		long, err := evalT[[]float64](ctx, `window.__long`)
		if err != nil {
			return err
		}
		for _, d := range long {
			pt.LongestTaskMS = max(pt.LongestTaskMS, d)
			if d > 50 {
				pt.LongTasks++
			}
		}
		res.Pages = append(res.Pages, pt)
	}

	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "ui.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	md := report(res)
	fmt.Print(md)
	return os.WriteFile(filepath.Join(out, "ui.md"), []byte(md), 0o644)
}

func report(r Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Web UI benchmark\n\n`make bench-ui` (`go run ./test/benchui -out docs/benchmarks`), %s, %s, %s, headless, 1280×800,\n", r.Date, r.Machine, r.Chromium)
	fmt.Fprintf(&b, "against the real rag-server binary on loopback; load average %s while measuring. Raw figures: [ui.json](ui.json).\n\n", r.Load)
	fmt.Fprintf(&b, "## Loading `/` (documents view, key in the tab, cache disabled, median of %d loads)\n\n", r.Runs)
	fmt.Fprintf(&b, "| first paint | first contentful paint | interactive (list rendered) | worst interactive | longest task while loading |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f ms |\n\n", r.FirstPaintMS, r.FirstContentfulPaintMS, r.InteractiveMS, r.InteractiveWorstMS, r.LoadLongestTaskMS)
	fmt.Fprintf(&b, "\"Interactive\" is the `rag:documents-rendered` mark: the first page of the list is on screen and the\nmain thread is free (no long task follows it).\n\n")
	fmt.Fprintf(&b, "## Bytes\n\nThe UI (HTML, CSS, JavaScript, icon): **%s transferred** (gzip), %s uncompressed; no third-party code.\n\n| file | transferred |\n|---|---|\n", kib(r.UITransferBytes), kib(r.UIDecodedBytes))
	names := make([]string, 0, len(r.UIFiles))
	for n := range r.UIFiles {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "| `%s` | %s |\n", n, kib(r.UIFiles[n]))
	}
	fmt.Fprintf(&b, "\n## The document list with %s documents\n\nPaged through with Next; the list also refreshes itself every 1.5 s meanwhile (the documents are queued).\n\n", comma(r.Docs))
	fmt.Fprintf(&b, "| page size | pages shown | slowest page (Next → all rows in the DOM) | longest main-thread task | tasks over 50 ms |\n|---|---|---|---|---|\n")
	for _, p := range r.Pages {
		fmt.Fprintf(&b, "| %d | %d | %.0f ms | %.0f ms | %d |\n", p.PageSize, p.Pages, p.RenderMSMax, p.LongestTaskMS, p.LongTasks)
	}
	fmt.Fprintf(&b, "\nGoal: no task over 200 ms (the page never freezes). The API returns at most 1,000 documents per request, so\nthe list never holds more rows than that.\n")
	return b.String()
}

func kib(n int) string { return fmt.Sprintf("%.1f KiB", float64(n)/1024) }

func comma(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func evalT[T any](ctx context.Context, expr string) (T, error) {
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return chromedp.Run(c, chromedp.Evaluate[T](expr))
}

// pollT waits until expr is truthy and returns its value.
func pollT[T any](ctx context.Context, expr string) (T, error) {
	c, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return chromedp.Run(c, chromedp.Poll[T](expr, chromedp.WithPollingTimeout(110*time.Second), chromedp.WithPollingInterval(20*time.Millisecond)))
}

// seed uploads n distinct small text files, 100 per request, 4 requests at a time.
func seed(base string, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for first := range next {
				var b bytes.Buffer
				mw := multipart.NewWriter(&b)
				mw.WriteField("tags", fmt.Sprintf("batch-%d, bench", first/1000))
				for i := first; i < min(first+100, n); i++ {
					w, _ := mw.CreateFormFile("file", fmt.Sprintf("report-%05d.txt", i))
					fmt.Fprintf(w, "Report number %d about topic %d. It has enough words to be a chunk of its own.", i, i%37)
				}
				mw.Close()
				req, _ := http.NewRequest("POST", base+"/api/documents", &b)
				req.Header.Set("Authorization", "Bearer "+adminKey)
				req.Header.Set("Content-Type", mw.FormDataContentType())
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						err = fmt.Errorf("upload: HTTP %d", resp.StatusCode)
					}
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for first := 0; first < n; first += 100 {
		next <- first
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// uptime is /proc/loadavg's first three fields ("" where there is none).
func uptime() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
