package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/store"
	"github.com/ragstack/rag-operator/internal/vector"
	"github.com/ragstack/rag-operator/internal/webui"
)

// The routes the web UI needs beyond the document, chat and session APIs, each the smallest
// that serves one view: who the key is (GET /api/me), a cited chunk's text (GET
// /api/documents/{id}/chunks/{index}), renaming a session (PATCH /api/sessions/{id}) and the
// stack as the server sees it, for admins (GET /api/admin/status). The UI itself is served at
// / and /ui/ (internal/webui) without a key: it holds no data, and asks for one.

// Console is what those routes read; any nil part is reported as unavailable.
type Console struct {
	// Chunks reads a stored chunk back (the vector store).
	Chunks vector.ChunkGetter
	// LLM is the server's Ollama client: its lanes and the models Ollama holds.
	LLM LLMStatus
	// Models are the configured model names per task (chat, embedding, summary, tagging).
	Models map[string]string
	// VectorStore names the vector store: "qdrant" or "embedded".
	VectorStore string
}

// LLMStatus is what the admin view reads from the Ollama client (*llm.Ollama).
type LLMStatus interface {
	Pools() []llm.PoolStatus
	Loaded(ctx context.Context) ([]llm.LoadedModel, error)
}

// securityHeaders are sent with every response. The API's JSON needs no resource at all, so its
// policy is default-src 'none'; the UI's pages override it with their own (webui.CSP). The key
// travels in the Authorization header and never in a cookie, so a cross-site request carries no
// credential: there is nothing for a CSRF token to protect.
func securityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
}

func (s *Server) consoleRoutes(m *http.ServeMux, api func(string, http.HandlerFunc)) {
	ui := webui.Handler()
	m.Handle("GET /{$}", ui)
	m.Handle("GET /ui/", ui)
	api("GET /api/me", s.me)
	api("GET /api/documents/{id}/chunks/{index}", s.getChunk)
	api("PATCH /api/sessions/{id}", s.renameSession)
	api("GET /api/admin/status", s.adminStatus)
}

// Me is GET /api/me: the key's name, role and (for a user) the tags it is limited to.
type Me struct {
	Name string   `json:"name"`
	Role string   `json:"role"`
	Tags []string `json:"tags"`
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	tags := p.Tags
	if tags == nil {
		tags = []string{}
	}
	writeJSON(w, http.StatusOK, Me{Name: p.Name, Role: string(p.Role), Tags: tags})
}

// Chunk is GET /api/documents/{id}/chunks/{index}: one stored chunk of a document the key may see.
type Chunk struct {
	DocumentID string `json:"document_id"`
	Name       string `json:"name"`
	ChunkIndex int    `json:"chunk_index"`
	Text       string `json:"text"`
	Page       int    `json:"page"`
	Section    string `json:"section"`
}

func (s *Server) getChunk(w http.ResponseWriter, r *http.Request) {
	idx, err := strconv.Atoi(r.PathValue("index"))
	if err != nil || idx < 0 || idx > 1<<24 {
		writeError(w, http.StatusBadRequest, "chunk index must be an integer between 0 and %d", 1<<24)
		return
	}
	d, ok := s.visible(w, r)
	if !ok {
		return
	}
	if s.d.Console == nil || s.d.Console.Chunks == nil {
		writeError(w, http.StatusNotFound, "chunk not found")
		return
	}
	c, err := s.d.Console.Chunks.GetChunk(r.Context(), d.ID, idx)
	switch {
	case errors.Is(err, vector.ErrChunkNotFound):
		writeError(w, http.StatusNotFound, "chunk %d of this document not found (it may have been reprocessed or deleted)", idx)
	case err != nil:
		s.log.Warn("Reading a chunk failed", "document", d.ID, "chunk", idx, "error", err)
		writeError(w, http.StatusBadGateway, "the vector store did not answer; retry later")
	default:
		writeJSON(w, http.StatusOK, Chunk{DocumentID: d.ID, Name: d.Name, ChunkIndex: c.ChunkIndex, Text: c.Text, Page: c.Page, Section: c.Section})
	}
}

// renameSession serves PATCH /api/sessions/{id} with {"title"}.
func (s *Server) renameSession(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Title *string `json:"title"`
	}
	if !decodeJSON(w, r, s.cfg.MaxJSONBytes, &body) {
		return
	}
	if body.Title == nil {
		writeError(w, http.StatusBadRequest, `body must be {"title": "..."}`)
		return
	}
	if utf8.RuneCountInString(*body.Title) > store.MaxTitleRunes {
		writeError(w, http.StatusBadRequest, "title longer than %d characters", store.MaxTitleRunes)
		return
	}
	ss, err := s.d.Store.RenameSession(r.Context(), principal(r).Name, r.PathValue("id"), *body.Title)
	switch {
	case errors.Is(err, store.ErrSessionNotFound):
		writeError(w, http.StatusNotFound, "session not found")
	case err != nil:
		s.internal(w, err)
	default:
		writeJSON(w, http.StatusOK, sessionView(ss))
	}
}

// AdminStatus is GET /api/admin/status: the stack as this server sees it.
type AdminStatus struct {
	// Ready and Dependencies are the cached background probes (as /readyz and
	// /api/health/dependencies), errors in full.
	Ready        bool                   `json:"ready"`
	Dependencies map[string]CheckResult `json:"dependencies"`
	VectorStore  string                 `json:"vector_store"`
	// QueueDepth is documents waiting or being processed; MaxQueued the bound (503 beyond).
	QueueDepth int            `json:"queue_depth"`
	MaxQueued  int            `json:"max_queued"`
	Documents  map[string]int `json:"documents"` // by status
	// Pools are Ollama's slots as the server's lanes hold them.
	Pools  []llm.PoolStatus `json:"pools"`
	Models AdminModels      `json:"models"`
}

// AdminModels are the configured models and those Ollama holds in memory now (GET /api/ps,
// asked at request time); LoadedError says why Loaded is missing.
type AdminModels struct {
	Configured  map[string]string `json:"configured"`
	Loaded      []llm.LoadedModel `json:"loaded"`
	LoadedError string            `json:"loaded_error,omitempty"`
}

func (s *Server) adminStatus(w http.ResponseWriter, r *http.Request) {
	if !principal(r).IsAdmin() {
		writeError(w, http.StatusForbidden, "only an admin key may see the status of the stack")
		return
	}
	out := AdminStatus{Ready: true, Dependencies: map[string]CheckResult{}, MaxQueued: s.cfg.MaxQueued,
		Documents: map[string]int{}, Pools: []llm.PoolStatus{}, Models: AdminModels{Configured: map[string]string{}, Loaded: []llm.LoadedModel{}}}
	if s.d.Ready != nil {
		out.Ready, out.Dependencies = s.d.Ready.Snapshot()
	}
	var err error
	if out.QueueDepth, err = s.d.Store.QueueDepth(r.Context()); err != nil {
		s.internal(w, err)
		return
	}
	counts, err := s.d.Store.Counts(r.Context())
	if err != nil {
		s.internal(w, err)
		return
	}
	for _, st := range store.Statuses {
		out.Documents[string(st)] = counts[st]
	}
	if c := s.d.Console; c != nil {
		out.VectorStore = c.VectorStore
		for k, v := range c.Models {
			out.Models.Configured[k] = v
		}
		if c.LLM != nil {
			out.Pools = c.LLM.Pools()
			if loaded, err := c.LLM.Loaded(r.Context()); err != nil {
				out.Models.LoadedError = err.Error()
			} else {
				out.Models.Loaded = loaded
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}
