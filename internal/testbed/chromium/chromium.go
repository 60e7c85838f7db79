// Package chromium starts a real headless Chromium (Debian's chromium package) for the UI
// tests and the UI benchmark, driven through github.com/chromedp/chromedp.
//
// The flags keep it off the network (no component updates, sync, background fetches or QUIC)
// and in a fresh profile each time; --no-sandbox because CI runs as root.
package chromium

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// RequireEnv names the variable that turns a missing Chromium from a skip into a failure (CI
// sets it).
const RequireEnv = "RAG_REQUIRE_CHROMIUM"

// Binary is $CHROMIUM_BIN, else the first of chromium, chromium-browser, google-chrome on PATH.
func Binary() (string, error) {
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on PATH: apt-get install -y --no-install-recommends chromium")
}

// Options size the window.
type Options struct {
	Width, Height int // default 1280×800
	// Scale is the device scale factor (default 1).
	Scale float64
}

// Start launches Chromium with a fresh profile under dir and returns a browser context (its
// first tab) and the function that closes the browser.
func Start(ctx context.Context, dir string, o Options) (context.Context, context.CancelFunc, error) {
	bin, err := Binary()
	if err != nil {
		return nil, nil, err
	}
	if o.Width == 0 {
		o.Width, o.Height = 1280, 800
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(dir),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(o.Width, o.Height),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		cancelBrowser()
		cancelAlloc()
		return nil, nil, fmt.Errorf("start %s: %w", bin, err)
	}
	return bctx, func() { cancelBrowser(); cancelAlloc() }, nil
}

// StartT is Start for a test: it skips when Chromium is missing (fails with RAG_REQUIRE_CHROMIUM=1)
// and closes the browser when the test ends.
func StartT(t testing.TB, o Options) context.Context {
	t.Helper()
	if _, err := Binary(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%v and %s=1", err, RequireEnv)
		}
		t.Skip(err)
	}
	ctx, cancel, err := Start(context.Background(), t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return ctx
}
