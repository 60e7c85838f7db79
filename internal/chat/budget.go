package chat

import (
	"errors"
	"fmt"

	"github.com/ragstack/rag-operator/internal/chunk"
	"github.com/ragstack/rag-operator/internal/serverconfig"
)

// Framing the chat template adds around what we count. Ollama renders each message as ChatML
// (`<|im_start|>role\n … <|im_end|>\n`, about 5 tokens) and primes the reply with
// `<|im_start|>assistant\n<think>\n\n</think>\n\n` when thinking is off (about 8). We reserve
// a little more than that, plus one token for the rounding of CountTokens when the sources and
// the question, counted apart, are joined into one message.
const (
	messageOverhead = 6
	replyOverhead   = 8
	joinSlack       = 1
	// fixedOverhead: the system message, the final user message and the reply primer.
	fixedOverhead = 2*messageOverhead + replyOverhead + joinSlack
)

// Budget is the prompt's token budget inside the chat model's context window. Every number is
// counted with chunk.CountTokens, the same approximation the chunker uses: the server has no
// access to the chat model's tokenizer, and the reservations below are generous enough that an
// error of a few percent lands in unused space rather than in Ollama's own truncation (which
// would silently drop the oldest messages).
//
// The rule, in order of what an answer cannot do without:
//   - the system message may use at most System (checked once, at construction);
//   - Response tokens are reserved for the answer (sent as num_predict);
//   - the question may use what is left after the system message, the framing, the response and
//     the whole Context allowance (so a long question eats history, never retrieved context);
//     beyond that it is refused (ErrQuestionTooLong);
//   - retrieved sources get up to Context, best ranked first;
//   - history gets up to History from what is still free, newest whole turns first.
//
// The invariant, asserted by the tests: system + history + context + question + framing ≤
// NumCtx − Response.
type Budget struct {
	System   int
	History  int
	Context  int
	Response int
	NumCtx   int
}

// NewBudget takes the budget from the server config and refuses one that cannot fit: the
// Python app this replaces reserved 6000 + 1500 + 500 + 2048 in an 8192 window and trimmed only
// its citation list, so Ollama silently cut the prompt's head.
func NewBudget(t serverconfig.Tokens) (Budget, error) {
	b := Budget{System: t.System, History: t.History, Context: t.Context, Response: t.Response, NumCtx: t.NumCtx}
	var errs []error
	if b.NumCtx < 1 {
		errs = append(errs, fmt.Errorf("tokens.numCtx must be the chat model's context window, got %d", b.NumCtx))
	}
	if b.System < 1 {
		errs = append(errs, fmt.Errorf("tokens.system must be at least 1, got %d", b.System))
	}
	if b.Context < 1 {
		errs = append(errs, fmt.Errorf("tokens.context must be at least 1 (no room for sources), got %d", b.Context))
	}
	if b.History < 0 {
		errs = append(errs, fmt.Errorf("tokens.history must be 0 or more, got %d", b.History))
	}
	if b.Response < 1 {
		errs = append(errs, fmt.Errorf("tokens.response must be at least 1, got %d", b.Response))
	}
	if sum := b.System + b.History + b.Context + b.Response; b.NumCtx >= 1 && sum > b.NumCtx {
		errs = append(errs, fmt.Errorf("tokens: system %d + history %d + context %d + response %d = %d exceeds numCtx %d",
			b.System, b.History, b.Context, b.Response, sum, b.NumCtx))
	}
	if err := errors.Join(errs...); err != nil {
		return Budget{}, fmt.Errorf("chat budget: %w", err)
	}
	return b, nil
}

// Prompt is the most tokens the prompt may take: the window less the answer's reservation.
func (b Budget) Prompt() int { return b.NumCtx - b.Response }

// CheckSystem reports whether the system message built from system fits the System allowance.
func (b Budget) CheckSystem(system string) error {
	if n := chunk.CountTokens(systemMessage(system)); n > b.System {
		return fmt.Errorf("chat budget: the system prompt with its citation rules is %d tokens, tokens.system allows %d", n, b.System)
	}
	return nil
}

// MaxQuestionTokens is the longest question (as counted with its "Question:" label) that the
// budget takes with this system prompt, keeping the whole Context allowance for sources.
func (b Budget) MaxQuestionTokens(system string) int {
	return b.Prompt() - fixedOverhead - chunk.CountTokens(systemMessage(system)) - b.Context
}

// BudgetReport says how the prompt used the budget, in tokens (CountTokens), for logs, metrics
// and the API's usage block.
type BudgetReport struct {
	NumCtx   int `json:"num_ctx"`
	Response int `json:"response"` // reserved for the answer (num_predict)
	Prompt   int `json:"prompt"`   // System + History + Context + Question + Overhead

	System   int `json:"system"`
	History  int `json:"history"` // kept turns, with their message framing
	Context  int `json:"context"` // the sources block
	Question int `json:"question"`
	Overhead int `json:"overhead"` // framing of the system and user messages and the reply

	HistoryTurns        int  `json:"history_turns"`
	HistoryTurnsDropped int  `json:"history_turns_dropped"`
	Sources             int  `json:"sources"`
	SourcesDropped      int  `json:"sources_dropped"`
	Truncated           bool `json:"truncated"` // the last source was cut at a sentence and marked […]
	QuestionTooLong     bool `json:"question_too_long,omitempty"`
}
