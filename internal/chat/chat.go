// Package chat answers questions from the knowledge base: retrieve (embed the question, search,
// cap per document), fit the prompt into the token budget before anything else, ask the chat
// model on the interactive lane, and map the answer's [doc:chunk] citations back to the chunks
// it was shown.
package chat

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/ragstack/rag-operator/internal/chunk"
	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/vector"
)

// ErrQuestionTooLong is wrapped when a question does not fit the budget (HTTP 413).
var ErrQuestionTooLong = errors.New("chat: question too long")

// ErrEmptyQuestion is returned for a question with no text (HTTP 400).
var ErrEmptyQuestion = errors.New("chat: empty question")

// ErrTimeout is wrapped (with context.DeadlineExceeded) when an answer took longer than
// ragTimeout (HTTP 504). A cancelled caller gets context.Canceled instead.
var ErrTimeout = errors.New("chat: answer timed out")

// NoContextAnswer is the answer when no stored chunk passes the score threshold (or the
// caller's tags allow none): the model is not asked, because without sources it can only
// invent.
const NoContextAnswer = "I could not find anything in the knowledge base that answers this question."

// DefaultSystemPrompt is used when Config.SystemPrompt is empty; CitationRules follow it.
const DefaultSystemPrompt = "Answer concisely in the language of the question."

// Config is what the Answerer needs from the server config (see FromServerConfig).
type Config struct {
	ChatModel      string
	EmbeddingModel string
	Tokens         serverconfig.Tokens
	Search         serverconfig.Search
	RagTimeout     time.Duration // deadline of one whole answer, retrieval included
	// SystemPrompt replaces DefaultSystemPrompt; with CitationRules it must fit tokens.system.
	SystemPrompt string
	// ChatOptions are extra model options (temperature, seed …); nil keeps the variant's own.
	ChatOptions map[string]any
	// Cache, when set, serves repeated questions (see Cache for why it is off by default).
	Cache *Cache
}

// FromServerConfig takes the answering settings from the server's config file.
func FromServerConfig(c serverconfig.Config) Config {
	return Config{
		ChatModel: c.Models.Chat, EmbeddingModel: c.Models.Embedding,
		Tokens: c.Tokens, Search: c.Search, RagTimeout: c.RagTimeout(),
	}
}

// Answerer answers questions. It is safe for concurrent use.
type Answerer struct {
	llm         llm.Client
	store       vector.Store
	cfg         Config
	budget      Budget
	system      string
	maxQuestion int
}

// New checks the configuration and returns an Answerer. It refuses a budget that does not fit
// the chat model's window and a system prompt over its allowance, at start rather than on the
// first question.
func New(client llm.Client, store vector.Store, cfg Config) (*Answerer, error) {
	var errs []error
	b, err := NewBudget(cfg.Tokens)
	if err != nil {
		errs = append(errs, err)
	}
	system := cfg.SystemPrompt
	if strings.TrimSpace(system) == "" {
		system = DefaultSystemPrompt
	}
	if err == nil {
		if err := b.CheckSystem(system); err != nil {
			errs = append(errs, err)
		} else if b.MaxQuestionTokens(system) < 1 {
			errs = append(errs, fmt.Errorf("chat budget: no room left for a question (numCtx %d)", b.NumCtx))
		}
	}
	if client == nil || store == nil {
		errs = append(errs, errors.New("chat: an llm client and a vector store are required"))
	}
	if strings.TrimSpace(cfg.ChatModel) == "" || strings.TrimSpace(cfg.EmbeddingModel) == "" {
		errs = append(errs, errors.New("chat: the chat and embedding models must be named"))
	}
	if cfg.Search.TopK < 1 || cfg.Search.MaxChunksPerDocument < 1 {
		errs = append(errs, fmt.Errorf("chat: search.topK (%d) and search.maxChunksPerDocument (%d) must be at least 1",
			cfg.Search.TopK, cfg.Search.MaxChunksPerDocument))
	}
	if cfg.RagTimeout <= 0 {
		errs = append(errs, fmt.Errorf("chat: ragTimeout must be positive, got %s", cfg.RagTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.ChatOptions = maps.Clone(cfg.ChatOptions)
	return &Answerer{llm: client, store: store, cfg: cfg, budget: b, system: system, maxQuestion: b.MaxQuestionTokens(system)}, nil
}

// Budget is the budget in force.
func (a *Answerer) Budget() Budget { return a.budget }

// MaxQuestionTokens is the longest question accepted, in CountTokens tokens with its label.
func (a *Answerer) MaxQuestionTokens() int { return a.maxQuestion }

// Request is one question.
type Request struct {
	Question string
	// History is the conversation so far, oldest first (user and assistant turns); the budget
	// keeps the newest whole turns that fit.
	History []llm.Message
	// Tags restricts retrieval to chunks carrying one of them: the caller's key's tags; nil for
	// an unrestricted caller, non-nil and empty for a caller who may see nothing.
	Tags []string
	// Stream, when set, receives the answer as it is generated (a cached or no-context answer
	// arrives as one piece). An error from it aborts the answer and is returned.
	Stream func(token string) error
}

// Response is an answer.
type Response struct {
	Answer string `json:"answer"`
	// Sources are the sources the answer cites, in order of first citation; citations of
	// anything the model was not shown are dropped (the answer text is left as generated).
	Sources []Citation `json:"sources"`
	// Context are all sources the model was given, best first, so a UI can show what the
	// answer was drawn from even when the model cites nothing.
	Context   []Citation `json:"context"`
	Usage     Usage      `json:"usage"`
	NoContext bool       `json:"no_context"` // NoContextAnswer, the model was not asked
	Cached    bool       `json:"cached"`
	// Timings is where the answer's time went, step by step.
	Timings Timings `json:"timings"`
}

// Timings is where an answer's time went, in milliseconds: the steps before the first token,
// in order, so a slow first token can be attributed (a question embedding waiting behind
// ingest, a long prompt's prefill, a model load). Steps not reached are 0.
type Timings struct {
	Embed  float64 `json:"embed_ms"`  // embedding the question (the wait for the embedding model included)
	Search float64 `json:"search_ms"` // the vector search
	Prompt float64 `json:"prompt_ms"` // fitting history and sources into the budget
	// FirstToken is from sending the chat request to its first token: the wait for a slot,
	// the model load and the prefill.
	FirstToken float64 `json:"first_token_ms"`
	// Load and PromptEval are Ollama's own figures for the load and the prefill (known at the
	// answer's end).
	Load       float64 `json:"load_ms"`
	PromptEval float64 `json:"prompt_eval_ms"`
	Total      float64 `json:"total_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Usage is what the answer cost.
type Usage struct {
	PromptTokens     int          `json:"prompt_tokens"` // as Ollama counted them
	CompletionTokens int          `json:"completion_tokens"`
	DoneReason       string       `json:"done_reason,omitempty"` // "stop", or "length" when the response budget ran out
	Budget           BudgetReport `json:"budget"`
}

// Answer answers one question within ragTimeout. Order: validate the question against the
// budget (before any I/O, so an oversized question costs nothing), the cache, retrieval, the
// prompt, the model. Cancelling ctx (the client went away) cancels the Ollama request; the
// partial answer is returned with the error.
func (a *Answerer) Answer(ctx context.Context, req Request) (Response, error) {
	q := strings.TrimSpace(req.Question)
	if q == "" {
		return Response{}, ErrEmptyQuestion
	}
	if n := chunk.CountTokens(questionBlock(q)); n > a.maxQuestion {
		return Response{}, fmt.Errorf("%w: %d tokens, at most %d", ErrQuestionTooLong, n, a.maxQuestion)
	}
	actx, cancel := context.WithTimeout(ctx, a.cfg.RagTimeout)
	defer cancel()
	resp, err := a.answer(actx, q, req)
	// Only our own deadline is ErrTimeout; a caller's cancellation or deadline stays theirs.
	if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%w after %s: %w", ErrTimeout, a.cfg.RagTimeout, err)
	}
	return resp, err
}

func (a *Answerer) answer(ctx context.Context, q string, req Request) (Response, error) {
	cache := a.cfg.Cache
	useCache := cache != nil && len(req.History) == 0
	var gen uint64
	var key string
	if useCache {
		gen = cache.Generation()
		key = cacheKey(q, req.Tags, gen)
		if r, ok := cache.get(key); ok {
			r.Cached = true
			return r, emit(req.Stream, r.Answer)
		}
	}

	// From the question's embedding to the first answer token no new background call (ingest
	// batch, summary) starts: they share Ollama's compute with this prefill.
	release := func() {}
	if h, ok := a.llm.(llm.BackgroundHolder); ok {
		release = h.HoldBackground()
	}
	defer release()

	start := time.Now()
	var tm Timings
	sources, err := a.retrieve(ctx, q, req.Tags, &tm)
	if err != nil {
		return Response{}, err
	}
	step := time.Now()
	msgs, used, report := BuildPrompt(Layout{System: a.system, DocumentTitles: a.cfg.Search.DocumentTitles}, req.History, q, sources, a.budget)
	tm.Prompt = ms(time.Since(step))
	if report.QuestionTooLong { // Answer checked already; kept so the two cannot drift apart
		return Response{}, fmt.Errorf("%w: %d tokens, at most %d", ErrQuestionTooLong, report.Question, a.maxQuestion)
	}
	if len(used) == 0 {
		release()
		tm.Total = ms(time.Since(start))
		r := Response{Answer: NoContextAnswer, Sources: []Citation{}, Context: []Citation{}, NoContext: true,
			Usage: Usage{Budget: report}, Timings: tm}
		return r, emit(req.Stream, r.Answer)
	}

	think := false // a thinking model would spend the response budget on reasoning
	// The first streamed token ends the prefill and the hold. Without a stream the hold lasts
	// the whole call: a callback would mark the call streamed and stop its retries.
	sent := time.Now()
	var first time.Time
	var onToken func(string) error
	var numbered *numberedStream
	if req.Stream != nil {
		numbered = &numberedStream{used: used, out: req.Stream}
		onToken = func(tok string) error {
			if first.IsZero() {
				first = time.Now()
			}
			release()
			return numbered.write(tok)
		}
	}
	res, err := a.llm.Chat(ctx, llm.Interactive, llm.ChatRequest{
		Model:     a.cfg.ChatModel,
		Messages:  msgs,
		MaxTokens: a.budget.Response,
		OnToken:   onToken,
		Think:     &think,
		Options:   a.cfg.ChatOptions,
	})
	if numbered != nil && err == nil {
		err = numbered.flush()
	}
	answer := expandNumbered(res.Content, used)
	r := Response{
		Answer:  answer,
		Sources: resolveCitations(ParseCitations(answer), used),
		Context: toCitations(used),
		Usage: Usage{PromptTokens: res.PromptTokens, CompletionTokens: res.GeneratedTokens,
			DoneReason: res.DoneReason, Budget: report},
	}
	if !first.IsZero() {
		tm.FirstToken = ms(first.Sub(sent))
	}
	tm.Load, tm.PromptEval, tm.Total = ms(res.LoadDuration), ms(res.PromptEvalDuration), ms(time.Since(start))
	r.Timings = tm
	if err != nil {
		return r, fmt.Errorf("chat: %w", err)
	}
	if useCache {
		cache.put(gen, key, r)
	}
	return r, nil
}

func emit(stream func(string) error, s string) error {
	if stream == nil {
		return nil
	}
	return stream(s)
}
