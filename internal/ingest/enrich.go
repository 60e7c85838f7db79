package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/store"
)

// The enrichment step: a short summary and a few topic tags per ready document, on the
// background lane so it never delays a chat. While Ollama is unavailable (down, busy, the
// summary or tagging model missing) the job goes back to its queue and the enrichment workers
// wait, as document workers do. Other failures are recorded on the document (enrich_status
// failed, enrich_error) and never change the document's own status. Auto-tags are kept apart
// from the document's tags: tags grant access, and a model must not grant it.

const (
	// summaryTokens caps a summary: three sentences are 60–100 tokens; a model that rambles
	// past that holds the chat model's slot (and a question behind it) for nothing.
	summaryTokens = 160
	tagTokens     = 64
	maxAutoTags   = 8
)

func (p *Pipeline) enrichWorker(ctx context.Context) {
	for p.enrichWait.waitOut(ctx) {
		d, ok, err := p.st.ClaimEnrich(ctx)
		if err != nil {
			if ctx.Err() == nil {
				p.storageFailed(jobEnrich, p.enrichWait, "claim an enrichment job", "", err)
			}
			continue
		}
		p.storageWorks(jobEnrich, p.enrichWait)
		if !ok {
			p.sleep(ctx, p.enrichWake)
			continue
		}
		ectx, cancel := context.WithTimeout(ctx, p.cfg.EnrichTimeout)
		summary, tags, err := p.enrich(ectx, d)
		ownDeadline := ectx.Err() != nil && ctx.Err() == nil
		cancel()
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupAfter)
		switch {
		case ctx.Err() != nil:
			p.st.ReleaseEnrich(cctx, d.ID, d.Generation)
		case err != nil && !ownDeadline && errors.As(err, new(*DependencyError)):
			if rerr := p.retryStore(cctx, ctx, jobEnrich, p.enrichWait, "put an enrichment back in the queue", d.ID, func(ctx context.Context) error {
				return p.st.ReleaseEnrich(ctx, d.ID, d.Generation)
			}); rerr != nil {
				p.log.Error("Failed to put an enrichment back in the queue", "document", d.ID, "error", rerr)
			}
			p.m.enrich.WithLabelValues("deferred").Inc()
			p.deferred(jobEnrich, p.enrichWait, d, err)
		default:
			if ownDeadline {
				err = fmt.Errorf("summary and tags took longer than %s: %w", p.cfg.EnrichTimeout, err)
			}
			// Retried while the volume cannot be written: an enrichment left "running" would
			// wait for the next restart.
			if ferr := p.retryStore(cctx, ctx, jobEnrich, p.enrichWait, "record enrichment", d.ID, func(ctx context.Context) error {
				return p.st.FinishEnrich(ctx, d.ID, d.Generation, summary, tags, err)
			}); ferr != nil {
				p.log.Error("Failed to record enrichment", "document", d.ID, "error", ferr)
			}
			if err != nil {
				p.m.enrich.WithLabelValues("failed").Inc()
				p.log.Warn("Document enrichment failed", "document", d.ID, "error", err)
			} else {
				p.recovered(jobEnrich, p.enrichWait)
				p.m.enrich.WithLabelValues("done").Inc()
			}
		}
		ccancel()
	}
}

func (p *Pipeline) enrich(ctx context.Context, d store.Document) (string, []string, error) {
	var errs []error
	// Thinking off: Ollama turns it on for models that can think (qwen3, deepseek-r1), and the
	// reasoning would spend the token budget (and minutes of GPU) before a summary or a tag list
	// is written; neither needs it. Models that cannot think accept false.
	think := false
	summary, err := p.llm.Chat(ctx, llm.Background, llm.ChatRequest{
		Model:     p.cfg.SummaryModel,
		MaxTokens: summaryTokens,
		Think:     &think,
		Messages: []llm.Message{
			{Role: "system", Content: "You summarise documents. Answer with at most three plain sentences, no preamble."},
			{Role: "user", Content: "Document: " + d.Name + "\n\n" + truncate(d.Excerpt, excerptBytes)},
		},
	})
	if err != nil {
		err = dependencyErr(DepOllama, fmt.Errorf("summary: %w", err))
		if errors.As(err, new(*DependencyError)) {
			return "", nil, err // the tags would wait for the same Ollama
		}
		errs = append(errs, err)
	}
	var tags []string
	resp, err := p.llm.Chat(ctx, llm.Background, llm.ChatRequest{
		Model:     p.cfg.TaggingModel,
		MaxTokens: tagTokens,
		Think:     &think,
		Messages: []llm.Message{
			{Role: "system", Content: `You label documents. Answer only with a JSON array of 3 to 6 short lowercase topic tags, e.g. ["finance","quarterly report"].`},
			{Role: "user", Content: "Document: " + d.Name + "\n\n" + truncate(d.Excerpt, excerptBytes)},
		},
	})
	if err != nil {
		errs = append(errs, dependencyErr(DepOllama, fmt.Errorf("tags: %w", err)))
	} else if tags = ParseTags(resp.Content); len(tags) == 0 {
		errs = append(errs, errors.New("tags: the model's answer held no usable tag"))
	}
	return strings.TrimSpace(stripThinking(summary.Content)), tags, errors.Join(errs...)
}

// stripThinking drops a <think>…</think> block reasoning models put before the answer.
func stripThinking(s string) string {
	if i := strings.Index(s, "</think>"); i >= 0 && strings.Contains(s[:i], "<think>") {
		return s[i+len("</think>"):]
	}
	return s
}

// ParseTags reads a model's tag answer: a JSON array if there is one, else a comma or
// newline separated list. Tags are lowercased, limited to letters, digits, space, - and _,
// at most 32 runes, at most 8, without duplicates.
func ParseTags(answer string) []string {
	answer = stripThinking(answer)
	var raw []string
	if i, j := strings.Index(answer, "["), strings.LastIndex(answer, "]"); i >= 0 && j > i {
		if json.Unmarshal([]byte(answer[i:j+1]), &raw) != nil {
			raw = nil
		}
	}
	if raw == nil {
		raw = strings.FieldsFunc(answer, func(r rune) bool { return r == ',' || r == '\n' || r == ';' })
	}
	seen := map[string]bool{}
	var out []string
	for _, t := range raw {
		t = strings.Map(func(r rune) rune {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r):
				return unicode.ToLower(r)
			case r == ' ' || r == '-' || r == '_':
				return r
			}
			return -1
		}, t)
		t = strings.Join(strings.Fields(t), " ")
		if r := []rune(t); len(r) > 32 {
			t = strings.TrimSpace(string(r[:32]))
		}
		if t == "" || seen[t] {
			continue
		}
		seen[t] = true
		out = append(out, t)
		if len(out) == maxAutoTags {
			break
		}
	}
	return out
}
