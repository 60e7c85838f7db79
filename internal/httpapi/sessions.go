package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ragstack/rag-operator/internal/store"
)

// Sessions belong to the API key that created them. Every other key — admins included — gets
// 404 for them, as for a session that does not exist: conversations are personal, and a 403
// would confirm that the id exists.

// Session is a session as the API shows it.
type Session struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	TurnCount int       `json:"turn_count"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SessionWithTurns is GET /api/sessions/{id}: the session and its kept turns, oldest first.
type SessionWithTurns struct {
	Session
	Turns []Turn `json:"turns"`
}

// Turn is one answered question of a session.
type Turn struct {
	Question  string          `json:"question"`
	Answer    string          `json:"answer"`
	Sources   json.RawMessage `json:"sources"` // []Source, as recorded with the answer
	NoContext bool            `json:"no_context"`
	CreatedAt time.Time       `json:"created_at"`
}

func sessionView(ss store.Session) Session {
	return Session{ID: ss.ID, Title: ss.Title, TurnCount: ss.Turns, CreatedAt: ss.CreatedAt.UTC(), UpdatedAt: ss.UpdatedAt.UTC()}
}

// createSession serves POST /api/sessions with an optional {"title"}; an empty body creates an
// untitled session, which takes its first question as title.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Title string `json:"title"`
	}
	if r.ContentLength != 0 && !decodeJSON(w, r, s.cfg.MaxJSONBytes, &body) {
		return
	}
	if utf8.RuneCountInString(body.Title) > store.MaxTitleRunes {
		writeError(w, http.StatusBadRequest, "title longer than %d characters", store.MaxTitleRunes)
		return
	}
	ss, err := s.d.Store.CreateSession(r.Context(), principal(r).Name, body.Title, s.cfg.MaxSessionsPerKey)
	if errors.Is(err, store.ErrTooManySessions) {
		w.Header().Set("Retry-After", "3600")
		writeError(w, http.StatusTooManyRequests, "this key has %d sessions, the most allowed; delete some first", s.cfg.MaxSessionsPerKey)
		return
	}
	if err != nil {
		s.internal(w, err)
		return
	}
	w.Header().Set("Location", "/api/sessions/"+ss.ID)
	writeJSON(w, http.StatusCreated, sessionView(ss))
}

// listSessions serves GET /api/sessions?limit=&offset=: the caller's sessions, most recently
// used first.
func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset := 100, 0
	for _, p := range []struct {
		name string
		dst  *int
		max  int
	}{{"limit", &limit, 1000}, {"offset", &offset, 1 << 30}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > p.max {
				writeError(w, http.StatusBadRequest, "%s must be an integer between 0 and %d", p.name, p.max)
				return
			}
			*p.dst = n
		}
	}
	list, total, err := s.d.Store.ListSessions(r.Context(), principal(r).Name, limit, offset)
	if err != nil {
		s.internal(w, err)
		return
	}
	out := make([]Session, len(list))
	for i, ss := range list {
		out[i] = sessionView(ss)
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out, "total": total})
}

// getSession serves GET /api/sessions/{id}: the session with its turns.
func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	owner, id := principal(r).Name, r.PathValue("id")
	ss, err := s.d.Store.GetSession(r.Context(), owner, id)
	var turns []store.Turn
	if err == nil {
		turns, err = s.d.Store.SessionTurns(r.Context(), owner, id, 0)
	}
	if errors.Is(err, store.ErrSessionNotFound) {
		writeError(w, http.StatusNotFound, "session not found")
		return
	}
	if err != nil {
		s.internal(w, err)
		return
	}
	v := SessionWithTurns{Session: sessionView(ss), Turns: make([]Turn, len(turns))}
	for i, t := range turns {
		v.Turns[i] = Turn{Question: t.Question, Answer: t.Answer, Sources: json.RawMessage(t.Sources), NoContext: t.NoContext,
			CreatedAt: t.CreatedAt.UTC()}
	}
	writeJSON(w, http.StatusOK, v)
}

// deleteSession serves DELETE /api/sessions/{id}.
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) {
	switch err := s.d.Store.DeleteSession(r.Context(), principal(r).Name, r.PathValue("id")); {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, store.ErrSessionNotFound):
		writeError(w, http.StatusNotFound, "session not found")
	default:
		s.internal(w, err)
	}
}
