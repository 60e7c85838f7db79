// Package llm is the RAG server's only way to Ollama. Every call goes through a lane:
// interactive work (chat, query embeddings) ahead of background work (ingest embeddings,
// summaries, tags), and background work never holds the chat model's last slot.
package llm

import (
	"context"
	"errors"
	"time"
)

// ErrBusy is wrapped by every error that means "too much work right now": a lane's wait queue
// is full, or Ollama kept answering 503/429 until the retries ran out. The HTTP layer maps it to
// 429/503 with Retry-After instead of letting the client time out later.
var ErrBusy = errors.New("llm: busy")

// ErrNoBackgroundSlot is returned for a background chat call when the configuration leaves no
// chat slot to background work (NumParallel 1, or BackgroundMax 0): the last slot belongs to
// interactive work, so summaries and auto-tags must be skipped rather than queued forever.
var ErrNoBackgroundSlot = errors.New("llm: no chat slot may be used by background work")

// Lane is the priority class of a call.
type Lane int

const (
	// Interactive: a user is waiting (chat answers, query embeddings).
	Interactive Lane = iota
	// Background: ingest embeddings, summaries, auto-tags, warming.
	Background
)

func (l Lane) String() string {
	if l == Interactive {
		return "interactive"
	}
	return "background"
}

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"` // system | user | assistant
	Content string `json:"content"`
}

// ChatRequest asks the chat model for an answer.
type ChatRequest struct {
	Model     string
	Messages  []Message
	MaxTokens int // num_predict
	// OnToken receives streamed content as it arrives; nil when the caller wants only the whole
	// answer (the call still streams, so cancellation and the stall timeout work the same). An
	// error from OnToken aborts the call and is returned.
	OnToken func(string) error
	// Think switches a thinking model's reasoning on or off; nil leaves the model's default
	// (Ollama turns thinking on for models that support it, which spends num_predict on
	// reasoning a RAG answer rarely needs). Thinking text is returned, never streamed.
	Think *bool
	// Options are extra model options (temperature, seed, top_k ...); num_predict comes from
	// MaxTokens and wins over Options.
	Options map[string]any
}

// ChatResponse is the whole answer and Ollama's counters.
type ChatResponse struct {
	Content         string
	Thinking        string // the model's reasoning when Think is on
	DoneReason      string
	PromptTokens    int
	GeneratedTokens int
	// EvalDuration is Ollama's time generating GeneratedTokens (eval_duration), for the decode
	// speed metric.
	EvalDuration time.Duration
	// LoadDuration and PromptEvalDuration are Ollama's own (load_duration,
	// prompt_eval_duration): of the wait for the first token, the model load and the prefill.
	LoadDuration       time.Duration
	PromptEvalDuration time.Duration
}

// Client is what the server's packages use; *Ollama implements it.
type Client interface {
	// Embed embeds texts in as few /api/embed calls as the batch size allows, bounded by the
	// embed concurrency, retrying failed items only. Results are in input order.
	Embed(ctx context.Context, lane Lane, model string, texts []string) ([][]float32, error)
	// Chat runs one chat completion on the lane.
	Chat(ctx context.Context, lane Lane, req ChatRequest) (ChatResponse, error)
	// Ping checks Ollama answers (for /readyz).
	Ping(ctx context.Context) error
}

// BackgroundHolder is implemented by clients that can pause background admissions while a user
// waits for an answer to start (*Ollama does). Callers check for it; fakes need not implement it.
type BackgroundHolder interface {
	HoldBackground() (release func())
}
