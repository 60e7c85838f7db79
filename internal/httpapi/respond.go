package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/ragstack/rag-operator/internal/store"
)

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, errorBody{Error: fmt.Sprintf(format, args...)})
}

func (s *Server) busy(w http.ResponseWriter, format string, args ...any) {
	w.Header().Set("Retry-After", fmt.Sprint(int(s.cfg.RetryAfter/time.Second)))
	writeError(w, http.StatusServiceUnavailable, format, args...)
}

// decodeJSON reads one JSON object strictly: application/json only (415), at most max bytes
// (413), no unknown fields and nothing after it (400).
func decodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "JSON body larger than %d bytes", max)
		} else {
			writeError(w, http.StatusBadRequest, "invalid JSON body: %v", err)
		}
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "invalid JSON body: more than one value")
		return false
	}
	return true
}

// Document is a document as the API shows it.
type Document struct {
	ID         string      `json:"id"`
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	SHA256     string      `json:"sha256"`
	Size       int64       `json:"size"`
	Tags       []string    `json:"tags"`
	Owner      string      `json:"owner"`
	Status     string      `json:"status"`
	Error      string      `json:"error,omitempty"`
	Chunks     int         `json:"chunks"`
	Pages      int         `json:"pages,omitempty"`
	Generation int64       `json:"generation"`
	TagsSynced bool        `json:"tagsSynced"`
	Enrichment *Enrichment `json:"enrichment,omitempty"`
	CreatedAt  time.Time   `json:"createdAt"`
	UpdatedAt  time.Time   `json:"updatedAt"`
}

// Enrichment is the background summary/auto-tag result.
type Enrichment struct {
	Status   string   `json:"status"`
	Error    string   `json:"error,omitempty"`
	Summary  string   `json:"summary,omitempty"`
	AutoTags []string `json:"autoTags,omitempty"`
}

func view(d store.Document) Document {
	v := Document{
		ID: d.ID, Name: d.Name, Type: d.Type, SHA256: d.SHA256, Size: d.Size, Tags: d.Tags, Owner: d.Owner,
		Status: string(d.Status), Error: d.Error, Chunks: d.Chunks, Pages: d.Pages, Generation: d.Generation,
		TagsSynced: d.TagsSynced, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
	}
	if d.Enrich != store.EnrichNone {
		v.Enrichment = &Enrichment{Status: string(d.Enrich), Error: d.EnrichErr, Summary: d.Summary, AutoTags: d.AutoTags}
	}
	return v
}

// sanitizeName keeps a display name safe to show and log: the last path element only,
// no control or shell/path-special characters, at most 200 bytes with the extension kept.
func sanitizeName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) || r == 0xFFFD:
			return -1
		case strings.ContainsRune(`<>:"|?*`, r):
			return '_'
		}
		return r
	}, name)
	name = strings.TrimLeft(strings.TrimSpace(name), ".")
	if len(name) > 200 {
		ext := ""
		if i := strings.LastIndexByte(name, '.'); i >= 0 && len(name)-i <= 10 {
			ext = name[i:]
		}
		cut := 200 - len(ext)
		for cut > 0 && (name[cut]&0xC0) == 0x80 {
			cut--
		}
		name = name[:cut] + ext
	}
	if name == "" {
		return "upload"
	}
	return name
}

// parseTags reads tags from form values (each comma-separated) or a JSON list: trimmed,
// deduplicated, 1-64 characters of letters, digits, space and . _ : / -, at most 32.
func parseTags(values []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" || seen[t] {
				continue
			}
			if err := validTag(t); err != nil {
				return nil, err
			}
			seen[t] = true
			out = append(out, t)
		}
	}
	if len(out) > 32 {
		return nil, fmt.Errorf("at most 32 tags, got %d", len(out))
	}
	return out, nil
}

func validTag(t string) error {
	if len(t) > 64 {
		return fmt.Errorf("tag %.20q… longer than 64 bytes", t)
	}
	for _, r := range t {
		ok := r == ' ' || r == '.' || r == '_' || r == ':' || r == '/' || r == '-' ||
			(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r > 0x7F && isLetterOrDigit(r))
		if !ok {
			return fmt.Errorf("tag %q: only letters, digits, space and . _ : / - are allowed", t)
		}
	}
	return nil
}
