// Package webui is the RAG server's browser UI: plain ES modules and CSS embedded in the
// binary, no build step and no third-party code. Handler serves it at / (index.html) and /ui/
// (assets); everything it shows comes from the server's JSON API, called with the API key
// the user typed, kept in the tab's sessionStorage and sent in the Authorization header only.
package webui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
)

//go:embed static
var static embed.FS

// CSP is the UI's Content-Security-Policy: scripts, styles and every fetch from this origin
// only, no inline script or style, no plugin, no frame may embed it, no form posts anywhere,
// and images only from this origin (so a document's markdown image pointing at another host
// cannot load even if it were ever rendered).
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type asset struct {
	body, gz []byte
	ctype    string
	etag     string
}

var assets = sync.OnceValue(func() map[string]*asset {
	out := map[string]*asset{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		a := &asset{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: mime.TypeByExtension(path.Ext(p))}
		switch path.Ext(p) {
		case ".js":
			a.ctype = "text/javascript; charset=utf-8"
		case ".svg":
			a.ctype = "image/svg+xml"
		}
		if a.ctype == "" {
			a.ctype = "application/octet-stream"
		}
		if strings.HasPrefix(a.ctype, "text/") || a.ctype == "image/svg+xml" {
			var z bytes.Buffer
			w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
			w.Write(b)
			w.Close()
			if z.Len() < len(b) {
				a.gz = z.Bytes()
			}
		}
		out[strings.TrimPrefix(p, "static/")] = a
		return nil
	})
	if err != nil {
		panic(err) // embedded files: cannot fail
	}
	return out
})

// Handler serves GET / (index.html) and GET /ui/<file>. Responses carry CSP and revalidate
// with their ETag (no-cache), so a new server version is picked up at once; text is sent
// gzip-compressed when the browser accepts it.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "index.html"
		if r.URL.Path != "/" {
			name = strings.TrimPrefix(r.URL.Path, "/ui/")
		}
		a, ok := assets()[name]
		if !ok || name == "index.html" && r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		h.Set("Vary", "Accept-Encoding")
		if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", a.ctype)
		body := a.body
		if a.gz != nil && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			h.Set("Content-Encoding", "gzip")
			body = a.gz
		}
		w.Write(body)
	})
}

// Files lists the embedded file names (for tests and the benchmark).
func Files() []string {
	var out []string
	for name := range assets() {
		out = append(out, name)
	}
	return out
}
