// Package fakes has in-memory stand-ins for llm.Client and vector.Store, for tests of the
// pipeline and the HTTP API: deterministic, observable, and able to fail or block on demand.
package fakes

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"sort"
	"sync"

	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/vector"
)

// LLM embeds each text as a deterministic vector of Dim floats and answers chats with Answer.
type LLM struct {
	Dim    int
	Answer string // chat content; default a fixed summary

	mu          sync.Mutex
	EmbedErr    error         // returned by Embed when set
	ChatErr     error         // returned by Chat when set
	Gate        chan struct{} // when set, each Embed waits for a receive (or ctx)
	embedCalls  int
	inFlight    int
	MaxInFlight int
	Lanes       []llm.Lane
	Chats       []llm.ChatRequest // every Chat request, in order
	Texts       int
}

// ChatRequests returns a copy of the Chat requests so far.
func (f *LLM) ChatRequests() []llm.ChatRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]llm.ChatRequest(nil), f.Chats...)
}

var _ llm.Client = (*LLM)(nil)

// Embed implements llm.Client.
func (f *LLM) Embed(ctx context.Context, lane llm.Lane, model string, texts []string) ([][]float32, error) {
	f.mu.Lock()
	f.embedCalls++
	f.inFlight++
	f.MaxInFlight = max(f.MaxInFlight, f.inFlight)
	f.Lanes = append(f.Lanes, lane)
	gate, err := f.Gate, f.EmbedErr
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	dim := max(f.Dim, 4)
	out := make([][]float32, len(texts))
	for i, t := range texts {
		h := fnv.New64a()
		h.Write([]byte(t))
		seed := h.Sum64()
		v := make([]float32, dim)
		for k := range v {
			seed = seed*6364136223846793005 + 1442695040888963407
			v[k] = float32(seed>>40)/float32(1<<24) - 0.5
		}
		out[i] = v
	}
	f.mu.Lock()
	f.Texts += len(texts)
	f.mu.Unlock()
	return out, nil
}

// SetEmbedErr sets the error Embed returns.
func (f *LLM) SetEmbedErr(err error) { f.mu.Lock(); f.EmbedErr = err; f.mu.Unlock() }

// SetChatErr sets the error Chat returns.
func (f *LLM) SetChatErr(err error) { f.mu.Lock(); f.ChatErr = err; f.mu.Unlock() }

// SetGate makes Embed wait on g (nil: no wait).
func (f *LLM) SetGate(g chan struct{}) { f.mu.Lock(); f.Gate = g; f.mu.Unlock() }

// Stats returns the calls, the most concurrent calls, and the texts embedded.
func (f *LLM) Stats() (calls, maxInFlight, texts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.embedCalls, f.MaxInFlight, f.Texts
}

// Chat implements llm.Client.
func (f *LLM) Chat(ctx context.Context, lane llm.Lane, req llm.ChatRequest) (llm.ChatResponse, error) {
	f.mu.Lock()
	err, ans := f.ChatErr, f.Answer
	f.Lanes = append(f.Lanes, lane)
	f.Chats = append(f.Chats, req)
	f.mu.Unlock()
	if err != nil {
		return llm.ChatResponse{}, err
	}
	if ans == "" {
		ans = `A short summary. ["alpha","beta"]`
	}
	return llm.ChatResponse{Content: ans, DoneReason: "stop"}, nil
}

// Ping implements llm.Client.
func (f *LLM) Ping(context.Context) error { return nil }

// Vector is an in-memory vector.Store keyed by document and chunk index.
type Vector struct {
	mu   sync.Mutex
	docs map[string]map[int]vector.Chunk
	// EmptyWindows counts moments a document that had points had none, other than through
	// DeleteDocument(doc, -1): reprocess must never open such a window.
	EmptyWindows int
	UpsertErr    error
	SetTagsErr   error
	upserts      int
}

var _ vector.Store = (*Vector)(nil)

// NewVector returns an empty store.
func NewVector() *Vector { return &Vector{docs: map[string]map[int]vector.Chunk{}} }

// EnsureCollection implements vector.Store.
func (v *Vector) EnsureCollection(context.Context) error { return nil }

// Upsert implements vector.Store.
func (v *Vector) Upsert(ctx context.Context, chunks []vector.Chunk) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.UpsertErr != nil {
		return v.UpsertErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	v.upserts++
	for _, c := range chunks {
		m := v.docs[c.DocumentID]
		if m == nil {
			m = map[int]vector.Chunk{}
			v.docs[c.DocumentID] = m
		}
		c.Tags = slices.Clone(c.Tags)
		m[c.ChunkIndex] = c
	}
	return nil
}

// Upserts counts successful Upsert calls.
func (v *Vector) Upserts() int { v.mu.Lock(); defer v.mu.Unlock(); return v.upserts }

// DeleteDocument implements vector.Store.
func (v *Vector) DeleteDocument(ctx context.Context, id string, keep int) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := v.docs[id]
	if keep < 0 {
		delete(v.docs, id)
		return nil
	}
	had := len(m) > 0
	for i := range m {
		if i >= keep {
			delete(m, i)
		}
	}
	if had && len(m) == 0 {
		v.EmptyWindows++
	}
	return nil
}

// SetTags implements vector.Store.
func (v *Vector) SetTags(ctx context.Context, id string, tags []string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.SetTagsErr != nil {
		return v.SetTagsErr
	}
	for i, c := range v.docs[id] {
		c.Tags = slices.Clone(tags)
		v.docs[id][i] = c
	}
	return nil
}

// SetErrors sets the errors Upsert and SetTags return.
func (v *Vector) SetErrors(upsert, setTags error) {
	v.mu.Lock()
	v.UpsertErr, v.SetTagsErr = upsert, setTags
	v.mu.Unlock()
}

// Search implements vector.Store (not ranked: tests of ingest do not search).
func (v *Vector) Search(ctx context.Context, vec []float32, opts vector.SearchOptions) ([]vector.Hit, error) {
	return nil, errors.New("fakes.Vector: search not implemented")
}

// Count implements vector.Store.
func (v *Vector) Count(ctx context.Context, f vector.Filter) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for id, m := range v.docs {
		if len(f.DocumentIDs) > 0 && !slices.Contains(f.DocumentIDs, id) {
			continue
		}
		for _, c := range m {
			if len(f.AnyTags) == 0 || slices.ContainsFunc(c.Tags, func(t string) bool { return slices.Contains(f.AnyTags, t) }) {
				n++
			}
		}
	}
	return n, nil
}

// Chunks returns a document's chunks by index.
func (v *Vector) Chunks(id string) []vector.Chunk {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []vector.Chunk
	for _, c := range v.docs[id] {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ChunkIndex < out[j].ChunkIndex })
	return out
}

// Documents returns the ids of documents with points.
func (v *Vector) Documents() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for id, m := range v.docs {
		if len(m) > 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// Ping implements vector.Store.
func (v *Vector) Ping(context.Context) error { return nil }

// Close implements vector.Store.
func (v *Vector) Close() error { return nil }
