package chat

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/vector"
)

// Source is a retrieved chunk as the prompt uses it.
type Source struct {
	DocumentID string
	Name       string
	ChunkIndex int
	Text       string
	Page       int
	Section    string
	Score      float32
	// Truncated is set by BuildPrompt on a source cut at a sentence boundary (Text then ends in
	// TruncationMark).
	Truncated bool
}

// ID is the source's citation id, "document_id:chunk_index", as the model is told to cite it.
func (s Source) ID() string { return s.DocumentID + ":" + strconv.Itoa(s.ChunkIndex) }

// overFetch: the search asks for this many times TopK hits, so that when one document holds
// most of the best hits, the per-document cap leaves room for the next documents' chunks
// instead of returning fewer than TopK sources. The vector.Store interface has no group-by
// search (Qdrant's would do this server-side); three times TopK (24 for the guide's 8) is a
// cheap search either way.
const overFetch = 3

// Retrieve embeds the question on the interactive lane and returns the best chunks, best first:
// at most TopK, none scoring under ScoreThreshold, at most MaxChunksPerDocument per document
// (the best of each), restricted to chunks carrying one of tags.
//
// tags nil means unrestricted (an admin key). A non-nil empty tags is a caller restricted to no
// tag at all and gets nothing: the store reads an empty filter as "no restriction", and access
// control must fail closed.
func (a *Answerer) Retrieve(ctx context.Context, question string, tags []string) ([]Source, error) {
	return a.retrieve(ctx, question, tags, &Timings{})
}

// retrieve is Retrieve, recording its steps' times in tm.
func (a *Answerer) retrieve(ctx context.Context, question string, tags []string, tm *Timings) ([]Source, error) {
	if tags != nil && len(tags) == 0 {
		return nil, nil
	}
	step := time.Now()
	vecs, err := a.llm.Embed(ctx, llm.Interactive, a.cfg.EmbeddingModel, []string{question})
	tm.Embed = ms(time.Since(step))
	if err != nil {
		return nil, fmt.Errorf("chat: embedding the question: %w", err)
	}
	if len(vecs) != 1 {
		return nil, fmt.Errorf("chat: embedding the question: %d vectors for 1 text", len(vecs))
	}
	s := a.cfg.Search
	step = time.Now()
	hits, err := a.store.Search(ctx, vecs[0], vector.SearchOptions{
		Limit:          s.TopK * overFetch,
		ScoreThreshold: float32(s.ScoreThreshold),
		HNSWEf:         s.HNSWEf,
		Filter:         vector.Filter{AnyTags: tags},
	})
	tm.Search = ms(time.Since(step))
	if err != nil {
		return nil, fmt.Errorf("chat: searching: %w", err)
	}
	return capSources(hits, s.TopK, s.MaxChunksPerDocument, float32(s.ScoreThreshold)), nil
}

// capSources applies the per-document cap and TopK to hits in rank order. The threshold is
// checked again because a store treats 0 as "none" and a negative threshold is legitimate for
// distance metrics; re-checking keeps the rule here whatever the store did.
func capSources(hits []vector.Hit, topK, perDoc int, threshold float32) []Source {
	perDocument := map[string]int{}
	var out []Source
	for _, h := range hits {
		if len(out) == topK {
			break
		}
		if threshold != 0 && h.Score < threshold {
			continue
		}
		if perDocument[h.DocumentID] >= perDoc {
			continue
		}
		perDocument[h.DocumentID]++
		out = append(out, Source{
			DocumentID: h.DocumentID, Name: h.Name, ChunkIndex: h.ChunkIndex, Text: h.Text,
			Page: h.Page, Section: h.Section, Score: h.Score,
		})
	}
	return out
}
