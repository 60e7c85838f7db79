package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ragstack/rag-operator/internal/auth"
	"github.com/ragstack/rag-operator/internal/chat"
	"github.com/ragstack/rag-operator/internal/chunk"
	"github.com/ragstack/rag-operator/internal/ingest"
	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/llm/llmtest"
	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/store"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/vector"
)

// ---- a spec-following SSE client ----

// sseMsg is one dispatched Server-Sent Event.
type sseMsg struct {
	Event string // "message" when the event had no event: field
	Data  string
	ID    string
}

// readSSE parses an event stream as the HTML Standard's "event stream interpretation" does:
// lines end in LF, CRLF or CR; a line starting with ':' is a comment; "field: value" (one
// optional space after the colon is dropped; a line without a colon is a field with an empty
// value); data lines accumulate, joined by LF; a blank line dispatches the event, unless no
// data line was seen; an unnamed event is "message". each returns false to stop reading.
// comments counts the comment lines seen.
func readSSE(r io.Reader, each func(sseMsg) bool) (comments int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		for i, b := range data {
			switch b {
			case '\n':
				return i + 1, data[:i], nil
			case '\r':
				if i+1 < len(data) {
					if data[i+1] == '\n' {
						return i + 2, data[:i], nil
					}
					return i + 1, data[:i], nil
				}
				if atEOF {
					return i + 1, data[:i], nil
				}
				return 0, nil, nil // need the next byte to tell CR from CRLF
			}
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil // an unterminated last line; never dispatched
		}
		return 0, nil, nil
	})
	var event, id string
	var data strings.Builder
	hasData := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if hasData {
				name := event
				if name == "" {
					name = "message"
				}
				if !each(sseMsg{Event: name, Data: strings.TrimSuffix(data.String(), "\n"), ID: id}) {
					return comments, nil
				}
			}
			event, hasData = "", false
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			comments++
			continue
		}
		field, value, ok := strings.Cut(line, ":")
		if ok {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			event = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				id = value
			}
		}
	}
	return comments, sc.Err()
}

func TestSSEParserFollowsTheSpec(t *testing.T) {
	stream := ": a comment\n" +
		"event: token\ndata: {\"content\":\"a\"}\n\n" +
		"data: first line\r\ndata:second line\r\ndata\r\n\r\n" + // multi-line data, CRLF, no space, empty value
		"event: ignored\n\n" + // no data: not dispatched
		"id: 7\rdata:  two spaces\r\r" + // CR line ends; only one space is dropped
		"event: done\ndata: {}\n" // unterminated: never dispatched
	var got []sseMsg
	comments, err := readSSE(strings.NewReader(stream), func(m sseMsg) bool { got = append(got, m); return true })
	if err != nil {
		t.Fatal(err)
	}
	want := []sseMsg{
		{Event: "token", Data: `{"content":"a"}`},
		{Event: "message", Data: "first line\nsecond line\n"},
		{Event: "message", Data: " two spaces", ID: "7"},
	}
	if comments != 1 || !slices.Equal(got, want) {
		t.Fatalf("comments %d, events %q", comments, got)
	}
}

// ---- fakes ----

const fakeDim = 64

// chatLLM is an llm.Client for the chat routes: bag-of-words embeddings (cosine similarity is
// word overlap, so tests control what retrieval finds), and a chat reply streamed word by word
// that honours cancellation like the real client and records it.
type chatLLM struct {
	reply      func(llm.ChatRequest) string
	firstDelay time.Duration // before the first token
	tokenDelay time.Duration // between tokens

	mu        sync.Mutex
	chatErr   error // returned by Chat before streaming
	failAfter error // returned by Chat after the first token
	chats     []llm.ChatRequest
	inFlight  int
	canceled  int
	changed   chan struct{} // closed and replaced when inFlight or canceled change
}

var _ llm.Client = (*chatLLM)(nil)

func (f *chatLLM) Embed(ctx context.Context, _ llm.Lane, _ string, texts []string) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = bagOfWords(t)
	}
	return out, nil
}

func bagOfWords(s string) []float32 { return llmtest.BagOfWords(s, fakeDim) }

func (f *chatLLM) signalLocked() {
	if f.changed != nil {
		close(f.changed)
	}
	f.changed = make(chan struct{})
}

// waitFor blocks until cond holds (checked under the lock) or the timeout passes.
func (f *chatLLM) waitFor(t *testing.T, d time.Duration, what string, cond func(*chatLLM) bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		f.mu.Lock()
		if f.changed == nil {
			f.signalLocked()
		}
		ok, ch := cond(f), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: not within %s", what, d)
		}
	}
}

func (f *chatLLM) Chat(ctx context.Context, _ llm.Lane, req llm.ChatRequest) (llm.ChatResponse, error) {
	f.mu.Lock()
	f.chats = append(f.chats, req)
	err, failAfter, firstDelay, tokenDelay := f.chatErr, f.failAfter, f.firstDelay, f.tokenDelay
	if err == nil {
		f.inFlight++
		f.signalLocked()
	}
	f.mu.Unlock()
	if err != nil {
		return llm.ChatResponse{}, err
	}
	var sb strings.Builder
	end := func(err error) (llm.ChatResponse, error) {
		f.mu.Lock()
		f.inFlight--
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			f.canceled++
		}
		f.signalLocked()
		f.mu.Unlock()
		if err != nil {
			return llm.ChatResponse{Content: sb.String()}, err
		}
		return llm.ChatResponse{Content: sb.String(), DoneReason: "stop", PromptTokens: 120, GeneratedTokens: len(strings.Fields(sb.String()))}, nil
	}
	text := "An answer."
	if f.reply != nil {
		text = f.reply(req)
	}
	for i, w := range strings.SplitAfter(text, " ") {
		delay := tokenDelay
		if i == 0 {
			delay = firstDelay
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return end(ctx.Err())
			}
		}
		if err := ctx.Err(); err != nil {
			return end(err)
		}
		if i == 1 && failAfter != nil {
			return end(failAfter)
		}
		sb.WriteString(w)
		if req.OnToken != nil {
			if err := req.OnToken(w); err != nil {
				return end(err)
			}
		}
	}
	return end(nil)
}

func (f *chatLLM) Ping(context.Context) error { return nil }

// set changes the fake's behaviour between requests.
func (f *chatLLM) set(change func(*chatLLM)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func (f *chatLLM) stats() (calls, inFlight, canceled int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.chats), f.inFlight, f.canceled
}

func (f *chatLLM) lastChat() llm.ChatRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.chats[len(f.chats)-1]
}

// citeAll answers by citing every source the prompt shows plus one it does not (which must be
// dropped from the sources).
func citeAll(req llm.ChatRequest) string {
	// The model sees its sources numbered and cites the numbers, which the server expands.
	var ids []string
	for _, line := range strings.Split(req.Messages[len(req.Messages)-1].Content, "\n") {
		if n, _, ok := strings.Cut(line, "] "); ok && strings.HasPrefix(n, "[") {
			ids = append(ids, n+"]")
		}
	}
	return "Here is what the documents say " + strings.Join(ids, " ") + " and more [not-shown:3]."
}

// ---- the harness: the real handler stack, ingest and answering over an embedded vector store ----

const (
	hrTok  = "hr-user-token-0123456789"
	engTok = "eng-user-token-0123456789"
)

var chatKeys = fmt.Sprintf(`[{"name":"admin","token":%q,"role":"admin"},
 {"name":"hr-user","token":%q,"role":"user","tags":["hr"]},
 {"name":"eng-user","token":%q,"role":"user","tags":["eng"]}]`, adminTok, hrTok, engTok)

type chatHarness struct {
	*harness
	server *Server
	llm    *chatLLM
	vec    vector.Store
	cache  *chat.Cache
}

type chatOptions struct {
	cache      bool
	ragTimeout time.Duration
	cfg        func(*Config)
	// client replaces the fake for ingest and answering (the real Ollama), with its embedding
	// model and dimension; chatCfg adjusts the answering config.
	client     llm.Client
	embedModel string
	dim        int
	chatCfg    func(*chat.Config)
	reg        *prometheus.Registry
	// ready, when set, is the server's Readiness (dependency probes).
	ready *Readiness
}

func newChatHarness(t *testing.T, f *chatLLM, o chatOptions) *chatHarness {
	t.Helper()
	var client llm.Client = f
	if o.client != nil {
		client = o.client
	} else if f.reply == nil {
		f.reply = citeAll
	}
	if o.embedModel == "" {
		o.embedModel = "e"
	}
	if o.dim == 0 {
		o.dim = fakeDim
	}
	dir := t.TempDir()
	st, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := vector.NewMemory(t.TempDir(), serverconfig.Collection{Name: "test", VectorSize: o.dim, Distance: "Cosine"})
	if err != nil {
		t.Fatal(err)
	}
	h := &chatHarness{llm: f, vec: mem}
	if o.cache {
		h.cache = chat.NewCache(100)
	}
	if o.ragTimeout == 0 {
		o.ragTimeout = 10 * time.Second
	}
	reg := o.reg
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	pipe := ingest.New(ingest.Config{Workers: 2, Chunk: chunk.Options{Size: 200, Overlap: 40}, EmbedModel: o.embedModel,
		PollInterval: 20 * time.Millisecond, MaxQueued: 100, Logger: quiet}, st, sharedParser(), client,
		chat.InvalidateOnWrite(mem, h.cache), ingest.NewMetrics(reg))
	ccfg := chat.Config{ChatModel: "qwen3-rag", EmbeddingModel: o.embedModel,
		Tokens:     serverconfig.Tokens{Context: 6000, History: 1500, System: 500, Response: 192, NumCtx: 8192},
		Search:     serverconfig.Search{TopK: 8, ScoreThreshold: 0.3, MaxChunksPerDocument: 3, HNSWEf: 64},
		RagTimeout: o.ragTimeout, Cache: h.cache}
	if o.chatCfg != nil {
		o.chatCfg(&ccfg)
	}
	answerer, err := chat.New(client, mem, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	k, err := auth.NewStatic([]byte(chatKeys))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{MaxFileBytes: 64 << 10, MaxFiles: 5, AllowedTypes: []string{"txt", "md"}, MaxQueued: 100,
		ChatModel: "qwen3-rag", RagTimeout: o.ragTimeout, RetryAfter: 3 * time.Second}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	s, err := New(cfg, Deps{Store: st, Pipeline: pipe, Validator: sharedParser(), Auth: k, Registry: reg, Logger: quiet, Chat: answerer,
		Ready: o.ready})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { pipe.Run(ctx); close(done) }()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		mem.Close()
		st.Close()
	})
	h.harness = &harness{t: t, dir: dir, st: st, pipe: pipe, srv: srv, reg: reg, cancel: cancel}
	h.server = s
	return h
}

// The knowledge base of the chat tests: one small document per tag, each a single chunk.
var (
	hrText  = "Employees receive twenty five vacation days per year. Unused vacation days expire in March."
	engText = "Vacation days for on-call engineers are planned with the rota owner each year."
)

const vacationQ = "How many vacation days per year do employees receive?"

// seed uploads the hr and eng documents (as admin) and waits until both are searchable.
func (h *chatHarness) seed() (hrID, engID string) {
	h.t.Helper()
	ids := map[string]string{}
	for name, d := range map[string]struct{ text, tag string }{"handbook.txt": {hrText, "hr"}, "oncall.md": {engText, "eng"}} {
		code, ur := h.upload(adminTok, []file{{name, []byte(d.text)}}, d.tag)
		if code != http.StatusAccepted {
			h.t.Fatalf("upload %s: %d %+v", name, code, ur)
		}
		h.waitReady(adminTok, ur.IDs[0])
		ids[d.tag] = ur.IDs[0]
	}
	return ids["hr"], ids["eng"]
}

func (h *chatHarness) post(path, token string, body any) (*http.Response, []byte) {
	h.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.do("POST", path, token, "application/json", bytes.NewReader(b))
}

// stream posts body and reads the response as an event stream.
func (h *chatHarness) stream(path, token string, body any) (*http.Response, []sseMsg, int) {
	h.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", h.srv.URL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var msgs []sseMsg
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, nil, 0
	}
	comments, err := readSSE(resp.Body, func(m sseMsg) bool { msgs = append(msgs, m); return true })
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, msgs, comments
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
	return v
}

// checkSources asserts every source maps to a stored chunk of a document the caller may see:
// the uploaded document's id and name, a chunk index the store counted, the chunk's text.
func (h *chatHarness) checkSources(srcs []Source, visible ...string) {
	h.t.Helper()
	texts := map[string]string{"handbook.txt": hrText, "oncall.md": engText}
	for _, s := range srcs {
		d, err := h.st.Get(context.Background(), s.DocumentID)
		if err != nil {
			h.t.Fatalf("source %+v: %v", s, err)
		}
		if !slices.Contains(visible, s.DocumentID) {
			h.t.Errorf("source %s (%s) is not visible to the caller", s.DocumentID, s.Name)
		}
		n, _ := h.vec.Count(context.Background(), vector.Filter{DocumentIDs: []string{s.DocumentID}})
		if s.Name != d.Name || s.ChunkIndex < 0 || s.ChunkIndex >= d.Chunks || n != d.Chunks || s.Snippet != texts[d.Name] || s.Score < 0.3 {
			h.t.Errorf("source %+v does not match stored document %s (%d chunks, %d points)", s, d.Name, d.Chunks, n)
		}
	}
}

func ids(srcs []Source) []string {
	var out []string
	for _, s := range srcs {
		out = append(out, fmt.Sprintf("%s:%d", s.DocumentID, s.ChunkIndex))
	}
	return out
}

// ---- /api/chat ----

func TestChatJSONAndStream(t *testing.T) {
	h := newChatHarness(t, &chatLLM{tokenDelay: time.Millisecond}, chatOptions{})
	hrID, engID := h.seed()

	// Non-streamed: JSON with the answer, its cited sources, the context and usage.
	resp, b := h.post("/api/chat", adminTok, ChatRequest{Question: vacationQ})
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	r := decode[ChatResponse](t, b)
	if len(r.Context) != 2 || len(r.Sources) != 2 || r.NoContext || r.Cached || r.Usage.CompletionTokens == 0 || r.Usage.Budget.Sources != 2 {
		t.Fatalf("response %s", b)
	}
	if strings.Contains(strings.Join(ids(r.Sources), " "), "not-shown") {
		t.Errorf("a citation of a chunk the model was not shown survived: %v", ids(r.Sources))
	}
	h.checkSources(r.Sources, hrID, engID)
	h.checkSources(r.Context, hrID, engID)
	if r.Context[0].DocumentID != hrID {
		t.Errorf("best source %s, want the handbook", r.Context[0].Name)
	}
	// The shape clients read, keys included even when empty.
	var raw map[string]any
	json.Unmarshal(b, &raw)
	src := raw["sources"].([]any)[0].(map[string]any)
	for _, k := range []string{"document_id", "name", "chunk_index", "snippet", "score", "page", "section"} {
		if _, ok := src[k]; !ok {
			t.Errorf("source lacks %q: %v", k, src)
		}
	}
	for _, k := range []string{"answer", "sources", "context", "usage", "no_context", "cached"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("response lacks %q", k)
		}
	}

	// Streamed: token events that add up to the answer, then one done event.
	resp, msgs, _ := h.stream("/api/chat", adminTok, ChatRequest{Question: vacationQ, Stream: true})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	if len(msgs) < 3 {
		t.Fatalf("events %+v", msgs)
	}
	var streamed strings.Builder
	for _, m := range msgs[:len(msgs)-1] {
		if m.Event != "token" {
			t.Fatalf("event %q before done", m.Event)
		}
		streamed.WriteString(decode[map[string]string](t, []byte(m.Data))["content"])
	}
	last := msgs[len(msgs)-1]
	if last.Event != "done" {
		t.Fatalf("last event %+v", last)
	}
	done := decode[ChatResponse](t, []byte(last.Data))
	if done.Answer != streamed.String() || done.Answer != r.Answer || !slices.Equal(ids(done.Sources), ids(r.Sources)) {
		t.Fatalf("streamed %q, done %+v", streamed.String(), done)
	}

	// Nothing relevant: answered as such, without asking the model.
	calls, _, _ := h.llm.stats()
	_, msgs, _ = h.stream("/api/chat", adminTok, ChatRequest{Question: "Which planets orbit Jupiter quickly?", Stream: true})
	if len(msgs) != 2 || msgs[0].Event != "token" || msgs[1].Event != "done" {
		t.Fatalf("events %+v", msgs)
	}
	if done := decode[ChatResponse](t, []byte(msgs[1].Data)); !done.NoContext || done.Answer != chat.NoContextAnswer || len(done.Sources) != 0 || done.Sources == nil {
		t.Fatalf("no-context answer %s", msgs[1].Data)
	}
	if n, _, _ := h.llm.stats(); n != calls {
		t.Error("the model was asked without context")
	}
	if got := testutil.ToFloat64(h.server.chatM.answers.WithLabelValues("chat", "no_context")); got != 1 {
		t.Errorf("no_context answers %v", got)
	}
	if n := testutil.CollectAndCount(h.server.chatM.ttft); n != 1 {
		t.Errorf("ttft series %d", n)
	}
}

func TestChatTagFiltersAndCache(t *testing.T) {
	h := newChatHarness(t, &chatLLM{}, chatOptions{cache: true})
	hrID, engID := h.seed()
	ask := func(token string, tags ...string) ChatResponse {
		t.Helper()
		resp, b := h.post("/api/chat", token, ChatRequest{Question: vacationQ, Tags: tags})
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		return decode[ChatResponse](t, b)
	}

	// Each key sees only its documents: in the search results (context), the citations, and
	// the answer it is given from the cache.
	hr := ask(hrTok)
	h.checkSources(hr.Context, hrID)
	h.checkSources(hr.Sources, hrID)
	if len(hr.Sources) != 1 || hr.Cached {
		t.Fatalf("hr %+v", hr)
	}
	eng := ask(engTok)
	if eng.Cached {
		t.Fatal("the eng key was served the hr key's cached answer")
	}
	h.checkSources(eng.Context, engID)
	h.checkSources(eng.Sources, engID)
	if len(eng.Sources) != 1 {
		t.Fatalf("eng %+v", eng)
	}
	if again := ask(hrTok); !again.Cached || !slices.Equal(ids(again.Sources), ids(hr.Sources)) {
		t.Fatalf("hr again: cached %v %v", again.Cached, ids(again.Sources))
	}
	if again := ask(engTok); !again.Cached {
		t.Fatal("eng again: not cached")
	} else {
		h.checkSources(again.Sources, engID)
	}
	// An admin sees both; narrowing to a tag shows only that tag's documents.
	if all := ask(adminTok); len(all.Context) != 2 {
		t.Fatalf("admin context %v", ids(all.Context))
	}
	narrowed := ask(adminTok, "eng")
	h.checkSources(narrowed.Context, engID)
	// A user key cannot widen its tags through the request.
	resp, b := h.post("/api/chat", hrTok, ChatRequest{Question: vacationQ, Tags: []string{"eng"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("hr key asking with the eng tag: %d %s", resp.StatusCode, b)
	}
	if resp, _ := h.post("/api/chat", hrTok, ChatRequest{Question: vacationQ, Tags: []string{"bad<tag>"}}); resp.StatusCode != 400 {
		t.Fatalf("bad tag: %d", resp.StatusCode)
	}

	// Knowledge-base changes empty the cache: a re-tag (the eng document becomes visible to the
	// hr key, which must not keep its old answer), then a delete.
	if h.cache.Len() == 0 {
		t.Fatal("nothing cached")
	}
	resp, b = h.do("PATCH", "/api/documents/"+engID+"/tags", adminTok, "application/json", strings.NewReader(`{"tags":["eng","hr"]}`))
	if resp.StatusCode != 200 {
		t.Fatalf("retag %d %s", resp.StatusCode, b)
	}
	if h.cache.Len() != 0 {
		t.Fatal("the re-tag did not empty the cache")
	}
	hr = ask(hrTok)
	if hr.Cached || len(hr.Context) != 2 {
		t.Fatalf("after the re-tag: cached %v, context %v", hr.Cached, ids(hr.Context))
	}
	if resp, _ := h.do("DELETE", "/api/documents/"+hrID, adminTok, "", nil); resp.StatusCode != 204 {
		t.Fatalf("delete %d", resp.StatusCode)
	}
	hr = ask(hrTok)
	if hr.Cached || len(hr.Context) != 1 || hr.Context[0].DocumentID != engID {
		t.Fatalf("after the delete: cached %v, context %v", hr.Cached, ids(hr.Context))
	}
	// A new document finishing ingest empties it too.
	ask(hrTok)
	if h.cache.Len() == 0 {
		t.Fatal("nothing cached")
	}
	code, ur := h.upload(adminTok, []file{{"more.txt", []byte("Vacation days can be carried over once per year with approval.")}}, "hr")
	if code != 202 {
		t.Fatal(code)
	}
	h.waitReady(adminTok, ur.IDs[0])
	if h.cache.Len() != 0 {
		t.Fatal("a document becoming ready did not empty the cache")
	}
	if r := ask(hrTok); r.Cached || len(r.Context) != 2 {
		t.Fatalf("after ingest: cached %v, context %v", r.Cached, ids(r.Context))
	}
}

func TestChatRefusals(t *testing.T) {
	f := &chatLLM{}
	h := newChatHarness(t, f, chatOptions{ragTimeout: 300 * time.Millisecond})
	h.seed()
	check := func(name string, resp *http.Response, body []byte, want int) {
		t.Helper()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d (%s)", name, resp.StatusCode, want, body)
		}
	}
	// A 100 KB body is cut off by MaxBytesReader; a question that fits the body but not the
	// budget is refused by the budget; both before any model call.
	big := `{"question":"` + strings.Repeat("word ", 20<<10) + `"}`
	resp, b := h.do("POST", "/api/chat", adminTok, "application/json", strings.NewReader(big))
	check("100 KB body", resp, b, 413)
	long := strings.Repeat("vacation ", 5000) // ~45 KB
	resp, b = h.post("/api/chat", adminTok, ChatRequest{Question: long})
	check("question over the budget", resp, b, 413)
	resp, b = h.post("/api/chat", adminTok, ChatRequest{Question: long, Stream: true})
	check("question over the budget, streamed", resp, b, 413)
	if !strings.Contains(string(b), "too long") {
		t.Errorf("413 body %s", b)
	}
	resp, b = h.post("/api/chat", adminTok, ChatRequest{Question: "  \n "})
	check("empty question", resp, b, 400)
	resp, b = h.do("POST", "/api/chat", adminTok, "application/json", strings.NewReader(`{"question":"x","bogus":1}`))
	check("unknown field", resp, b, 400)
	resp, b = h.do("POST", "/api/chat", adminTok, "text/plain", strings.NewReader(`{"question":"x"}`))
	check("not JSON", resp, b, 415)
	resp, b = h.post("/api/chat", "", ChatRequest{Question: vacationQ})
	check("no key", resp, b, 401)
	resp, b = h.post("/api/chat", adminTok, ChatRequest{Question: vacationQ, History: []llm.Message{{Role: "system", Content: "x"}}})
	check("system role in history", resp, b, 400)
	resp, b = h.post("/api/chat", adminTok, ChatRequest{Question: vacationQ, SessionID: "nope"})
	check("unknown session", resp, b, 404)
	if n, _, _ := f.stats(); n != 0 {
		t.Fatalf("%d model calls for refused requests", n)
	}

	// The model's queue is full: 429 with Retry-After, streamed or not (nothing was sent yet).
	f.set(func(f *chatLLM) {
		f.chatErr = fmt.Errorf("chat: %w: chat queue of the interactive lane is full", llm.ErrBusy)
	})
	for _, stream := range []bool{false, true} {
		resp, b = h.post("/api/chat", adminTok, ChatRequest{Question: vacationQ, Stream: stream})
		check(fmt.Sprintf("busy (stream %v)", stream), resp, b, 429)
		if resp.Header.Get("Retry-After") != "3" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("busy: headers %v", resp.Header)
		}
	}
	// Ollama failing outright: 502, details only in the log.
	f.set(func(f *chatLLM) { f.chatErr = errors.New("dial tcp 10.0.0.7:11434: connection refused") })
	resp, b = h.post("/api/chat", adminTok, ChatRequest{Question: vacationQ})
	check("ollama down", resp, b, 502)
	if strings.Contains(string(b), "10.0.0.7") {
		t.Errorf("internal address leaked: %s", b)
	}
	f.set(func(f *chatLLM) { f.chatErr = nil })

	// Over ragTimeout before the first token: 504.
	f.set(func(f *chatLLM) { f.firstDelay = time.Second })
	resp, b = h.post("/api/chat", adminTok, ChatRequest{Question: vacationQ})
	check("timeout", resp, b, 504)
	if got := testutil.ToFloat64(h.server.chatM.answers.WithLabelValues("chat", "timeout")); got != 1 {
		t.Errorf("timeout answers %v", got)
	}
	// A failure after the stream opened is an error event.
	f.set(func(f *chatLLM) { f.firstDelay, f.failAfter = 0, errors.New("stream cut") })
	resp, msgs, _ := h.stream("/api/chat", adminTok, ChatRequest{Question: vacationQ, Stream: true})
	if resp.StatusCode != 200 || len(msgs) != 2 || msgs[0].Event != "token" || msgs[1].Event != "error" {
		t.Fatalf("mid-stream failure: %d %+v", resp.StatusCode, msgs)
	}
	if e := decode[map[string]any](t, []byte(msgs[1].Data)); e["status"] != float64(502) || e["error"] == "" {
		t.Fatalf("error event %s", msgs[1].Data)
	}
}

func TestChatHeartbeatOpensTheStreamAndTimeoutBecomesAnErrorEvent(t *testing.T) {
	f := &chatLLM{firstDelay: 2 * time.Second}
	h := newChatHarness(t, f, chatOptions{ragTimeout: 600 * time.Millisecond, cfg: func(c *Config) { c.Heartbeat = 100 * time.Millisecond }})
	h.seed()
	resp, msgs, comments := h.stream("/api/chat", adminTok, ChatRequest{Question: vacationQ, Stream: true})
	if resp.StatusCode != 200 || comments < 2 {
		t.Fatalf("%d, %d heartbeats", resp.StatusCode, comments)
	}
	if len(msgs) != 1 || msgs[0].Event != "error" || !strings.Contains(msgs[0].Data, `"status":504`) {
		t.Fatalf("events %+v", msgs)
	}
}

// A client that goes away mid-stream cancels the model call: its slot is free at once.
func TestChatClientDisconnectFreesTheSlot(t *testing.T) {
	f := &chatLLM{tokenDelay: 20 * time.Millisecond, reply: func(llm.ChatRequest) string {
		return strings.Repeat("word ", 500) + "[x:0]" // 10 s if not cancelled
	}}
	h := newChatHarness(t, f, chatOptions{})
	h.seed()
	for _, path := range []string{"/api/chat", "/v1/chat/completions"} {
		t.Run(path, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var body any = ChatRequest{Question: vacationQ, Stream: true}
			if path != "/api/chat" {
				body = map[string]any{"model": "qwen3-rag", "stream": true, "messages": []map[string]string{{"role": "user", "content": vacationQ}}}
			}
			b, _ := json.Marshal(body)
			req, _ := http.NewRequestWithContext(ctx, "POST", h.srv.URL+path, bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+adminTok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _, canceledBefore := f.stats()
			tokens := 0
			readSSE(resp.Body, func(m sseMsg) bool {
				if m.Event == "token" || strings.Contains(m.Data, `"content":"word`) {
					tokens++
				}
				return tokens < 3
			})
			if tokens < 3 {
				t.Fatalf("%d tokens before the stream ended", tokens)
			}
			gone := time.Now()
			cancel()
			resp.Body.Close()
			f.waitFor(t, 2*time.Second, "the model call was not cancelled", func(f *chatLLM) bool {
				return f.inFlight == 0 && f.canceled == canceledBefore+1
			})
			t.Logf("model call cancelled %v after the client left", time.Since(gone))
			api := map[string]string{"/api/chat": "chat", "/v1/chat/completions": "openai"}[path]
			deadline := time.Now().Add(2 * time.Second)
			for testutil.ToFloat64(h.server.chatM.answers.WithLabelValues(api, "canceled")) != 1 {
				if time.Now().After(deadline) {
					t.Fatal("the cancelled answer was not counted")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// ---- sessions ----

func TestSessionsCRUDAndHistory(t *testing.T) {
	f := &chatLLM{}
	h := newChatHarness(t, f, chatOptions{cache: true})
	h.seed()

	resp, b := h.post("/api/sessions", hrTok, map[string]string{"title": "Vacation"})
	if resp.StatusCode != 201 {
		t.Fatalf("create %d %s", resp.StatusCode, b)
	}
	ss := decode[Session](t, b)
	if ss.ID == "" || ss.Title != "Vacation" || ss.TurnCount != 0 || resp.Header.Get("Location") != "/api/sessions/"+ss.ID {
		t.Fatalf("session %s", b)
	}
	resp, b = h.do("POST", "/api/sessions", hrTok, "", nil) // no body: untitled
	if resp.StatusCode != 201 {
		t.Fatalf("create untitled %d %s", resp.StatusCode, b)
	}
	untitled := decode[Session](t, b)
	if resp, _ := h.post("/api/sessions", hrTok, map[string]string{"title": strings.Repeat("t", 201)}); resp.StatusCode != 400 {
		t.Fatalf("long title %d", resp.StatusCode)
	}
	if resp, _ := h.post("/api/sessions", engTok, map[string]string{}); resp.StatusCode != 201 {
		t.Fatal("eng session")
	}

	// First turn: no history; it is recorded after the answer.
	resp, b = h.post("/api/chat", hrTok, ChatRequest{Question: vacationQ, SessionID: ss.ID})
	if resp.StatusCode != 200 {
		t.Fatalf("chat %d %s", resp.StatusCode, b)
	}
	first := decode[ChatResponse](t, b)
	if first.SessionID != ss.ID || len(f.lastChat().Messages) != 2 { // system + question
		t.Fatalf("first turn: %s, %d messages", b, len(f.lastChat().Messages))
	}
	// Second turn, streamed: the first turn is the prompt's history.
	_, msgs, _ := h.stream("/api/chat", hrTok, ChatRequest{Question: "Do unused vacation days expire in March?", SessionID: ss.ID, Stream: true})
	if len(msgs) == 0 || msgs[len(msgs)-1].Event != "done" {
		t.Fatalf("events %+v", msgs)
	}
	m := f.lastChat().Messages
	if len(m) != 4 || m[1].Role != "user" || m[1].Content != vacationQ || m[2].Role != "assistant" || m[2].Content != first.Answer {
		t.Fatalf("prompt of the second turn: %+v", m)
	}
	second := decode[ChatResponse](t, []byte(msgs[len(msgs)-1].Data))
	if second.Usage.Budget.HistoryTurns != 1 || second.Cached {
		t.Fatalf("second turn usage %+v cached %v", second.Usage.Budget, second.Cached)
	}

	resp, b = h.do("GET", "/api/sessions/"+ss.ID, hrTok, "", nil)
	got := decode[SessionWithTurns](t, b)
	if resp.StatusCode != 200 || got.TurnCount != 2 || len(got.Turns) != 2 || got.Turns[0].Question != vacationQ ||
		got.Turns[0].Answer != first.Answer || got.Turns[1].Answer != second.Answer {
		t.Fatalf("get %d %s", resp.StatusCode, b)
	}
	if recorded := decode[[]Source](t, got.Turns[0].Sources); !slices.Equal(ids(recorded), ids(first.Sources)) {
		t.Fatalf("recorded sources %v, answered %v", ids(recorded), ids(first.Sources))
	}
	if !got.UpdatedAt.After(got.CreatedAt) && !got.UpdatedAt.Equal(got.CreatedAt) {
		t.Errorf("times %v %v", got.CreatedAt, got.UpdatedAt)
	}
	// The untitled session gets its first question as title.
	h.post("/api/chat", hrTok, ChatRequest{Question: "Parental leave?", SessionID: untitled.ID})
	resp, b = h.do("GET", "/api/sessions", hrTok, "", nil)
	list := decode[struct {
		Sessions []Session `json:"sessions"`
		Total    int       `json:"total"`
	}](t, b)
	if resp.StatusCode != 200 || list.Total != 2 || len(list.Sessions) != 2 || list.Sessions[0].ID != untitled.ID || list.Sessions[0].Title != "Parental leave?" {
		t.Fatalf("list %d %s", resp.StatusCode, b)
	}
	if resp, _ := h.do("GET", "/api/sessions?limit=x", hrTok, "", nil); resp.StatusCode != 400 {
		t.Fatalf("bad limit %d", resp.StatusCode)
	}

	// Other keys, admins included, do not find it.
	for _, tok := range []string{engTok, adminTok} {
		if resp, _ := h.do("GET", "/api/sessions/"+ss.ID, tok, "", nil); resp.StatusCode != 404 {
			t.Errorf("another key reads the session: %d", resp.StatusCode)
		}
		if resp, _ := h.post("/api/chat", tok, ChatRequest{Question: vacationQ, SessionID: ss.ID}); resp.StatusCode != 404 {
			t.Errorf("another key chats in the session: %d", resp.StatusCode)
		}
		if resp, _ := h.do("DELETE", "/api/sessions/"+ss.ID, tok, "", nil); resp.StatusCode != 404 {
			t.Errorf("another key deletes the session: %d", resp.StatusCode)
		}
	}
	resp, b = h.do("GET", "/api/sessions", engTok, "", nil)
	if l := decode[struct{ Total int }](t, b); resp.StatusCode != 200 || l.Total != 1 {
		t.Fatalf("eng list %s", b)
	}
	if resp, _ := h.post("/api/chat", hrTok, ChatRequest{Question: vacationQ, SessionID: ss.ID,
		History: []llm.Message{{Role: "user", Content: "x"}}}); resp.StatusCode != 400 {
		t.Fatalf("history and session: %d", resp.StatusCode)
	}

	if resp, _ := h.do("DELETE", "/api/sessions/"+ss.ID, hrTok, "", nil); resp.StatusCode != 204 {
		t.Fatalf("delete %d", resp.StatusCode)
	}
	if resp, _ := h.do("GET", "/api/sessions/"+ss.ID, hrTok, "", nil); resp.StatusCode != 404 {
		t.Fatalf("deleted session %d", resp.StatusCode)
	}
	if resp, _ := h.post("/api/chat", hrTok, ChatRequest{Question: vacationQ, SessionID: ss.ID}); resp.StatusCode != 404 {
		t.Fatalf("chat in a deleted session %d", resp.StatusCode)
	}
}

func TestSessionsPerKeyLimit(t *testing.T) {
	h := newChatHarness(t, &chatLLM{}, chatOptions{cfg: func(c *Config) { c.MaxSessionsPerKey = 1 }})
	if resp, _ := h.post("/api/sessions", hrTok, map[string]string{}); resp.StatusCode != 201 {
		t.Fatal(resp.StatusCode)
	}
	if resp, b := h.post("/api/sessions", hrTok, map[string]string{}); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

// ---- against a real Ollama ----

// gaugeValue reads one gauge series from reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// With Ollama running one chat at a time (OLLAMA_NUM_PARALLEL=1) and the client's chat pool
// sized to match, a client that leaves mid-stream must free that one slot at once: the
// server's slot is released, Ollama ends the request (its access log says so), and the next
// question is answered promptly instead of waiting for an answer nobody reads. Skipped without the
// ollama binary and under -short.
//
// The tiny test model normally stops after three words; sampling uniformly among its 40 likeliest
// tokens (a huge temperature after a top-k cut) makes it ramble, about a hundred words on
// average. (Not over the whole vocabulary: random byte tokens can form text Ollama holds back as
// incomplete UTF-8, and nothing streams.) The length is random, so an answer that happens to end
// before the client leaves is retried with another question; a broken cancellation fails every
// attempt.
func TestRealOllamaDisconnectFreesTheOnlySlot(t *testing.T) {
	if testing.Short() {
		t.Skip("real Ollama: skipped with -short")
	}
	srv := ollamatest.Start(t, ollamatest.Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": "1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	oc := srv.Client()
	for _, m := range []string{ollamatest.ChatModel, ollamatest.EmbedModel} {
		if err := ollamatest.CreateBaseModel(ctx, oc, m); err != nil {
			t.Fatal(err)
		}
	}
	// The variants production creates: the chat model with an explicit window, the embedding
	// model under the RAG name.
	noStream := false
	for _, v := range []*api.CreateRequest{
		{Model: "qwen3-rag", From: ollamatest.ChatModel, Parameters: map[string]any{"num_ctx": 8192}},
		{Model: "nomic-embed-rag", From: ollamatest.EmbedModel},
	} {
		v.Stream = &noStream
		if err := oc.Create(ctx, v, func(api.ProgressResponse) error { return nil }); err != nil {
			t.Fatalf("create %s: %v", v.Model, err)
		}
	}
	reg := prometheus.NewRegistry()
	client := llm.New(llm.Options{BaseURL: srv.URL, NumParallel: 1, EmbedDimension: ollamatest.EmbedDim, KeepAlive: -1, Metrics: reg})
	h := newChatHarness(t, nil, chatOptions{client: client, embedModel: "nomic-embed-rag", dim: ollamatest.EmbedDim, reg: reg,
		ragTimeout: 20 * time.Second, chatCfg: func(c *chat.Config) {
			c.Tokens = serverconfig.Tokens{Context: 2000, History: 500, System: 500, Response: 256, NumCtx: 8192}
			c.Search.ScoreThreshold = 0 // the tiny embedding model's geometry is arbitrary
			// One thread: ggml's threads spin while they wait for each other, which collapses
			// when other tests' Ollama servers share the CPUs.
			c.ChatOptions = map[string]any{"temperature": 1e6, "top_k": 40, "top_p": 1, "num_thread": 1}
		}})
	code, ur := h.upload(adminTok, []file{{"handbook.txt", []byte(hrText)}}, "hr")
	if code != http.StatusAccepted {
		t.Fatalf("upload %d %+v", code, ur)
	}
	h.waitReady(adminTok, ur.IDs[0])
	inFlight := func() float64 {
		return gaugeValue(t, reg, "rag_llm_in_flight", map[string]string{"pool": "chat", "lane": "interactive"})
	}
	// Ollama's access log has a line per finished request; a chat request's line appears when
	// Ollama stopped working on it (its handler returned).
	chatLines := func() int {
		b, _ := os.ReadFile(srv.LogPath)
		return strings.Count(string(b), `POST     "/api/chat"`)
	}
	canceled := func() float64 { return testutil.ToFloat64(h.server.chatM.answers.WithLabelValues("chat", "canceled")) }
	waitUntil := func(from time.Time, cond func() bool) bool {
		for !cond() {
			if time.Since(from) > 2*time.Second {
				return false
			}
			time.Sleep(2 * time.Millisecond)
		}
		return true
	}

	var freed, stopped time.Duration
	for attempt := 1; ; attempt++ {
		if attempt > 6 {
			t.Fatal("no attempt was cut mid-generation (see above)")
		}
		canceledBefore, linesBefore := canceled(), chatLines()
		cctx, ccancel := context.WithCancel(ctx)
		b, _ := json.Marshal(ChatRequest{Question: fmt.Sprintf("%s (%d)", hrText, attempt), Stream: true})
		req, _ := http.NewRequestWithContext(cctx, "POST", h.srv.URL+"/api/chat", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+adminTok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		// Read three tokens, then leave.
		tokens, ended := 0, ""
		readSSE(resp.Body, func(m sseMsg) bool {
			if m.Event != "token" {
				ended = m.Event
				return false
			}
			tokens++
			return tokens < 3
		})
		left := time.Now()
		ccancel()
		resp.Body.Close()
		if ended != "" {
			t.Logf("attempt %d: the answer ended (%s) after %d tokens, before the client left", attempt, ended, tokens)
			continue
		}
		// The server's slot is free at once.
		if !waitUntil(left, func() bool { return inFlight() == 0 }) {
			t.Fatal("the chat slot was not freed within 2 s of the client leaving")
		}
		freed = time.Since(left)
		// The answer was abandoned mid-stream (not finished just as the client left)...
		if !waitUntil(left, func() bool { return canceled() > canceledBefore }) {
			t.Logf("attempt %d: the answer finished as the client left", attempt)
			continue
		}
		// ...and Ollama stopped generating it.
		if !waitUntil(left, func() bool { return chatLines() > linesBefore }) {
			t.Fatal("Ollama was still working on the abandoned answer 2 s after the client left")
		}
		stopped = time.Since(left)
		break
	}

	// Next question: Ollama's only slot is free, so it is answered at once. (The bounds are loose
	// for CPUs shared with other tests; unloaded, the first token takes tens of milliseconds.)
	ollamaWaits := func() int {
		b, _ := os.ReadFile(srv.LogPath)
		return strings.Count(string(b), "aborting completion request due to client closing the connection")
	}
	waitsBefore := ollamaWaits()
	nctx, ncancel := context.WithTimeout(ctx, 10*time.Second)
	defer ncancel()
	first, took, done, err := h.timedStream(nctx, ChatRequest{Question: hrText + " Again?", Stream: true})
	if err != nil && first == 0 {
		// Ollama logs that line when a request it made wait for a slot is given up (here: our
		// client's timeout). Then the slot was still held by the request we abandoned, although
		// Ollama had ended that request: the known bug ollama/ollama#17131 (fixed by #17881, open
		// for 0.24.0), where a streaming handler whose client left blocks forever on an unbuffered
		// channel send while holding the runner's semaphore. It hits a few percent of mid-stream
		// disconnects here; the server's side is proven above, so it is reported, not failed.
		if waitUntil(time.Now(), func() bool { return ollamaWaits() > waitsBefore }) {
			t.Skipf("Ollama %s leaked its only chat slot on the disconnect (upstream bug ollama/ollama#17131); "+
				"the server freed its own slot after %v and its request to Ollama ended after %v", ollamatest.Version, freed, stopped)
		}
	}
	if err != nil || first > 5*time.Second || took > 10*time.Second {
		t.Fatalf("next answer: first token after %v, ended after %v: %v", first, took, err)
	}
	t.Logf("client left: server slot free after %v, Ollama's request ended after %v; the next answer's first token after %v, %d tokens (%s) in %v",
		freed, stopped, first, done.Usage.CompletionTokens, done.Usage.DoneReason, took)
}

// timedStream asks for a streamed answer and returns when its first token and its end arrived;
// err says why it did not end with a done event.
func (h *chatHarness) timedStream(ctx context.Context, body ChatRequest) (first, took time.Duration, done ChatResponse, err error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, "POST", h.srv.URL+"/api/chat", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+adminTok)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, time.Since(start), done, err
	}
	defer resp.Body.Close()
	var last sseMsg
	_, err = readSSE(resp.Body, func(m sseMsg) bool {
		if m.Event == "token" && first == 0 {
			first = time.Since(start)
		}
		last = m
		return true
	})
	took = time.Since(start)
	if err == nil && last.Event != "done" {
		err = fmt.Errorf("status %d, last event %+v", resp.StatusCode, last)
	}
	if err != nil {
		return first, took, done, err
	}
	err = json.Unmarshal([]byte(last.Data), &done)
	return first, took, done, err
}
