package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/store"
)

// countingReader counts what the client handed to the connection.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// checkRefusal asserts a refusal is a sentence in JSON naming no path.
func (h *harness) checkRefusal(what string, resp *http.Response, b []byte, want int) {
	h.t.Helper()
	if resp.StatusCode != want {
		h.t.Fatalf("%s: %d %s, want %d", what, resp.StatusCode, b, want)
	}
	var e map[string]any
	if json.Unmarshal(b, &e) != nil || (e["error"] == nil && e["files"] == nil) {
		h.t.Fatalf("%s: not a JSON refusal: %s", what, b)
	}
	if strings.Contains(string(b), h.dir) || strings.Contains(string(b), "/tmp") || strings.Contains(string(b), "goroutine") {
		h.t.Fatalf("%s: internal detail in %s", what, b)
	}
}

func TestUploadSizeLimitsHoldBeforeReading(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxRequestBytes = 2 << 20 })
	// A declared Content-Length over the request cap: refused before the body is read.
	big := &countingReader{r: io.LimitReader(zeroes{}, 64<<20)}
	req, _ := http.NewRequest("POST", h.srv.URL+"/api/documents", big)
	req.ContentLength = 64 << 20
	req.Header.Set("Authorization", "Bearer "+adminTok)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h.checkRefusal("content-length", resp, b, 413)
		if !strings.Contains(string(b), "request body of 67108864 bytes") {
			t.Fatalf("not refused from the declared length: %s", b)
		}
	}
	if n := big.n.Load(); n > 16<<20 {
		t.Fatalf("the server read %d bytes of a body declared too large", n)
	}
	h.assertNoState(0)

	// A file part over maxFileBytes (64 KiB) in a body within the cap: reading stops there.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	cr := &countingReader{r: pr}
	go func() {
		w, _ := mw.CreateFormFile("file", "big.txt")
		for i := 0; i < 32; i++ { // 32 × 64 KiB = 2 MiB, streamed
			if _, err := w.Write(bytes.Repeat([]byte("a "), 32<<10)); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		mw.Close()
		pw.Close()
	}()
	resp, b := h.do("POST", "/api/documents", adminTok, mw.FormDataContentType(), cr)
	h.checkRefusal("oversize part", resp, b, 413)
	h.assertNoState(0)
}

type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestWrongTypeIsNeverSpooled: parts whose first bytes do not match their extension are
// refused from those bytes; with a spool budget smaller than one of them, spooling any would
// have answered 503 instead.
func TestWrongTypeIsNeverSpooled(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxFileBytes = 4 << 20; c.SpoolBytes = 1 << 20; c.MaxFiles = 10 })
	var fs []file
	for i := 0; i < 5; i++ {
		fs = append(fs, file{fmt.Sprintf("f%d.pdf", i), bytes.Repeat([]byte("not a pdf "), 300<<10)})
	}
	fs = append(fs, file{"bin.txt", append([]byte("\x00\x01ELF"), make([]byte, 3<<20)...)})
	code, ur := h.upload(adminTok, fs)
	if code != 415 || len(ur.Files) != 6 {
		t.Fatalf("%d %+v", code, ur)
	}
	h.assertNoState(0)
	// A matching file of the same size is spooled and meets the budget: 503, nothing left.
	body, ct := multipartBody([]file{{"ok.txt", bytes.Repeat([]byte("word "), 600<<10)}})
	resp, b := h.do("POST", "/api/documents", adminTok, ct, body)
	h.checkRefusal("spool budget", resp, b, 503)
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	h.assertNoState(0)
}

func TestStorageFullOrReadOnly(t *testing.T) {
	var mu sync.Mutex
	space := store.Space{Free: 100 << 30, Total: 200 << 30}
	calls := 0
	failAfter := -1 // the space call after which the volume is full
	set := func(sp store.Space, after int) { mu.Lock(); space, failAfter, calls = sp, after, 0; mu.Unlock() }
	var h *harness
	h = newHarness(t, func(c *Config) { c.MinFreeBytes = 1 << 30; c.MaxFileBytes = 16 << 20 })
	// newHarness built the server already: swap its space source through the registry-free hook.
	srv := h.server()
	srv.d.Space = func() (store.Space, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if failAfter >= 0 && calls > failAfter {
			return store.Space{Free: 10 << 20, Total: 200 << 30}, nil
		}
		return space, nil
	}
	ok := []file{{"a.txt", []byte(words(20, "a"))}}

	set(store.Space{Free: 10 << 20, Total: 200 << 30}, -1)
	body, ct := multipartBody(ok)
	resp, b := h.do("POST", "/api/documents", adminTok, ct, body)
	h.checkRefusal("below threshold", resp, b, 507)
	if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "full") {
		t.Fatalf("507 without Retry-After or reason: %s", b)
	}
	h.assertNoState(0)

	set(store.Space{Free: 100 << 30, ReadOnly: true}, -1)
	body, ct = multipartBody(ok)
	resp, b = h.do("POST", "/api/documents", adminTok, ct, body)
	h.checkRefusal("read-only", resp, b, 507)
	if !strings.Contains(string(b), "read-only") {
		t.Fatalf("read-only: %s", b)
	}
	// Reported: the dependency endpoint and the metrics say so; reading still works.
	h.ready.ProbeOnce(context.Background())
	resp, b = h.do("GET", "/api/health/dependencies", adminTok, "", nil)
	var deps DependenciesResponse
	json.Unmarshal(b, &deps)
	if st, ok := deps.Dependencies[DepStorage]; resp.StatusCode != 200 || !ok || st.OK || !strings.Contains(st.Error, "read-only") {
		t.Fatalf("dependencies: %s", b)
	}
	if v := gaugeValue(t, h.reg, "rag_dependency_up", map[string]string{"dependency": "storage"}); v != 0 {
		t.Fatalf("rag_dependency_up{storage} = %v", v)
	}
	if v := gaugeValue(t, h.reg, "rag_storage_writable", nil); v != 0 {
		t.Fatalf("rag_storage_writable = %v", v)
	}
	if resp, _ := h.do("GET", "/api/documents", adminTok, "", nil); resp.StatusCode != 200 {
		t.Fatalf("list while read-only: %d", resp.StatusCode)
	}
	if resp, _ := h.do("GET", "/readyz", "", "", nil); resp.StatusCode != 200 {
		t.Fatalf("readyz while read-only: %d", resp.StatusCode)
	}

	// The volume fills while a file is being spooled: 507, nothing half-written left.
	set(store.Space{Free: 100 << 30, Total: 200 << 30}, 1)
	body, ct = multipartBody([]file{{"big.txt", bytes.Repeat([]byte("word "), 2<<20)}})
	resp, b = h.do("POST", "/api/documents", adminTok, ct, body)
	h.checkRefusal("filled while spooling", resp, b, 507)
	h.assertNoState(0)

	// Space is back: the upload goes through, and the state is reported up again.
	set(store.Space{Free: 100 << 30, Total: 200 << 30}, -1)
	if code, ur := h.upload(adminTok, ok); code != 202 {
		t.Fatalf("after space returned: %d %+v", code, ur)
	}
	h.ready.ProbeOnce(context.Background())
	if v := gaugeValue(t, h.reg, "rag_dependency_up", map[string]string{"dependency": "storage"}); v != 1 {
		t.Fatalf("rag_dependency_up{storage} = %v after space returned", v)
	}
}

// slowUpload starts an upload whose body trickles one byte every interval; it returns when
// the server answered.
func (h *harness) slowUpload(token string, interval time.Duration, stop <-chan struct{}) <-chan int {
	out := make(chan int, 1)
	pr, pw := io.Pipe()
	go func() {
		head := "--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.txt\"\r\nContent-Type: text/plain\r\n\r\n"
		pw.Write([]byte(head))
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				pw.CloseWithError(io.ErrClosedPipe)
				return
			case <-t.C:
				if _, err := pw.Write([]byte("a")); err != nil {
					return
				}
			}
		}
	}()
	go func() {
		req, _ := http.NewRequest("POST", h.srv.URL+"/api/documents", pr)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- 0
			return
		}
		resp.Body.Close()
		out <- resp.StatusCode
	}()
	return out
}

func TestSlowClientsCannotStarveUploads(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.MaxConcurrentUploads, c.MaxUploadsPerKey = 4, 2
		c.MinBytesPerSecond, c.RateGrace = 1<<10, 300*time.Millisecond
	})
	stop := make(chan struct{})
	defer close(stop)
	// bob's two slow uploads hold his slots, not everybody's.
	slow := []<-chan int{h.slowUpload(bobTok, 50*time.Millisecond, stop), h.slowUpload(bobTok, 50*time.Millisecond, stop)}
	// Both hold their slots before the third is sent (a fixed sleep was too short on a loaded
	// machine).
	srv := h.server()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		srv.slotsMu.Lock()
		held := srv.perKey["key:bob"]
		srv.slotsMu.Unlock()
		if held == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's slow uploads hold %d slots after 10 s", held)
		}
	}
	body, ct := multipartBody([]file{{"third.txt", []byte(words(10, "b"))}})
	resp, b := h.do("POST", "/api/documents", bobTok, ct, body)
	h.checkRefusal("bob's third", resp, b, 503)
	if code, ur := h.upload(aliceTok, []file{{"alice.txt", []byte(words(10, "a"))}}); code != 202 {
		t.Fatalf("another key while bob's slow uploads run: %d %+v", code, ur)
	}
	// Below the minimum rate after the grace, the slow uploads are cut off (408), fast.
	for i, ch := range slow {
		select {
		case code := <-ch:
			if code != http.StatusRequestTimeout && code != 0 {
				t.Fatalf("slow upload %d: %d, want 408", i, code)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("slow upload %d still held its slot after 10 s", i)
		}
	}
	if code, _ := h.upload(bobTok, []file{{"after.txt", []byte(words(10, "c"))}}); code != 202 {
		t.Fatalf("bob after his slow uploads were cut off: %d", code)
	}
	h.assertNoState(2)
}

// A write refused by a full or read-only data volume, on any route (tags, reprocess, sessions,
// deletes), is 507 with a sentence and Retry-After, never "500 internal error" and never a path.
func TestStorageErrorsAre507(t *testing.T) {
	h := newHarness(t)
	srv := h.server()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("store: %w", &os.PathError{Op: "open", Path: "/var/lib/rag/rag.db-journal", Err: syscall.EROFS}), "read-only"},
		{fmt.Errorf("store: %w", &os.PathError{Op: "write", Path: "/var/lib/rag/rag.db-wal", Err: syscall.ENOSPC}), "full"},
		{fmt.Errorf("store: %w", &os.PathError{Op: "open", Path: "/var/lib/rag/tmp/x", Err: syscall.EACCES}), "read-only"},
		{fmt.Errorf("store: %w", ioErr{}), "cannot be written"},
	} {
		rec := httptest.NewRecorder()
		srv.internal(rec, tc.err)
		if rec.Code != http.StatusInsufficientStorage || rec.Header().Get("Retry-After") == "" ||
			!strings.Contains(rec.Body.String(), tc.want) || strings.Contains(rec.Body.String(), "/var/lib") {
			t.Errorf("%v: %d %q", tc.err, rec.Code, rec.Body.String())
		}
	}
	for _, err := range []error{fmt.Errorf("delete points: %w", &os.PathError{Op: "write", Path: "/var/lib/rag/vectors/d.wal", Err: syscall.ENOSPC}),
		fmt.Errorf("delete points: rpc error: code = Unavailable desc = dial tcp 10.0.0.9:6334: connection refused")} {
		if s := deleteSentence(err); strings.Contains(s, "/var/lib") || strings.Contains(s, "10.0.0.9") {
			t.Errorf("delete in progress says %q", s)
		}
	}
}

// ioErr is SQLite's SQLITE_IOERR_WRITE as modernc.org/sqlite reports it (a Code method): what a
// write to a volume remounted read-only gives.
type ioErr struct{}

func (ioErr) Error() string { return "disk I/O error (778) at /var/lib/rag/rag.db-wal" }
func (ioErr) Code() int     { return 778 }
