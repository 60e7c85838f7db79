package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"
)

// PoolStatus is one pool of Ollama slots as the server sees it now (the admin view).
type PoolStatus struct {
	Pool string `json:"pool"` // "chat" or "embed"
	// Capacity is the pool's size; 0 when unbounded (NumParallel unknown).
	Capacity int `json:"capacity"`
	// BackgroundMax is the most slots background calls may hold.
	BackgroundMax int `json:"background_max"`
	// InFlight and Queued are per lane: calls at Ollama now, calls waiting for a slot.
	InFlight LaneCounts `json:"in_flight"`
	Queued   LaneCounts `json:"queued"`
	// Holds are questions waiting for their first token, during which background calls wait.
	Holds int `json:"holds"`
}

// LaneCounts is a number per lane.
type LaneCounts struct {
	Interactive int `json:"interactive"`
	Background  int `json:"background"`
}

// Pools is a consistent snapshot of each pool (chat, then embed).
func (o *Ollama) Pools() []PoolStatus {
	out := make([]PoolStatus, 0, 2)
	for _, g := range []*gate{o.chat, o.embed} {
		s, _ := g.state()
		capacity := g.capacity
		if capacity == math.MaxInt32 {
			capacity = 0
		}
		out = append(out, PoolStatus{
			Pool: g.pool, Capacity: capacity, BackgroundMax: min(g.laneMax[Background], g.capacity),
			InFlight: LaneCounts{Interactive: s.InFlight[Interactive], Background: s.InFlight[Background]},
			Queued:   LaneCounts{Interactive: s.Queued[Interactive], Background: s.Queued[Background]},
			Holds:    s.Holds,
		})
	}
	return out
}

// LoadedModel is a model Ollama holds in memory (GET /api/ps).
type LoadedModel struct {
	Name      string    `json:"name"`
	Size      int64     `json:"size"`      // bytes in memory
	SizeVRAM  int64     `json:"size_vram"` // of which on the GPU
	Context   int       `json:"context_length,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	// Server is the pool server holding it (its index in ollama.urls); empty with one server.
	Server string `json:"server,omitempty"`
}

// Loaded asks Ollama which models it holds in memory (GET /api/ps), outside the lanes and
// bounded by PingTimeout, like Ping.
func (o *Ollama) Loaded(ctx context.Context) ([]LoadedModel, error) {
	ctx, cancel := context.WithTimeout(ctx, o.opts.PingTimeout)
	defer cancel()
	u, err := o.endpoint("api/ps")
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	defer o.observe("ps", time.Now())
	resp, err := o.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ollama ps: %w", err)
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, readStatusError("ps", resp)
	}
	var ps struct {
		Models []LoadedModel `json:"models"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ps); err != nil {
		return nil, fmt.Errorf("ollama ps: %w", err)
	}
	if ps.Models == nil {
		ps.Models = []LoadedModel{}
	}
	return ps.Models, nil
}
