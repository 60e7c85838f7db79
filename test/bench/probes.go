package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ragstack/rag-operator/internal/chat"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sample is one probe: when it started (seconds since the phase began) and how long it took;
// Err is set when it failed (then Ms is the time until it failed).
type sample struct {
	T   float64 `json:"t"`
	Ms  float64 `json:"ms"`
	Err string  `json:"err,omitempty"`
	// Phase is "ingest" or "idle" for chat samples.
	Phase string `json:"phase,omitempty"`
	// NoContext marks a chat answer the server gave without asking the model (retrieval found
	// nothing above the score threshold).
	NoContext bool `json:"noContext,omitempty"`
	// Steps is where the answer's time went, as the answering side reported it in its done
	// event (ours and the baselines report the same steps).
	Steps *answerSteps `json:"steps,omitempty"`
}

// answerSteps is the done event's account of an answer: the step times (milliseconds) and the
// prompt's size as Ollama counted it.
type answerSteps struct {
	chat.Timings
	PromptTokens int `json:"promptTokens"`
}

// answerStart is how one answer began.
type answerStart struct {
	TTFT      time.Duration
	NoContext bool // answered without the model (retrieval found nothing)
	Steps     *answerSteps
}

// series collects samples from concurrent probes.
type series struct {
	mu      sync.Mutex
	samples []sample
	skipped atomic.Int64 // ticks with too many probes still outstanding
}

func (s *series) add(x sample) {
	s.mu.Lock()
	s.samples = append(s.samples, x)
	s.mu.Unlock()
}

func (s *series) snapshot() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.samples)
	slices.SortFunc(out, func(a, b sample) int {
		switch {
		case a.T < b.T:
			return -1
		case a.T > b.T:
			return 1
		}
		return 0
	})
	return out
}

// ticking starts probe every interval in its own goroutine (so a slow probe does not hide the
// probes that would have been sent meanwhile), at most maxOut at once, until ctx ends; the
// returned function waits for the probes in flight.
func ticking(ctx context.Context, interval time.Duration, maxOut int, s *series, probe func()) (wait func()) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxOut)
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case slots <- struct{}{}:
				wg.Go(func() {
					defer func() { <-slots }()
					probe()
				})
			default:
				s.skipped.Add(1)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return wg.Wait
}

// probeClient is a keep-alive client for probes: a probe measures the server, not dialing.
func probeClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
	}}
}

// healthProbe probes url (GET, expecting 200) every interval until ctx ends, each probe bounded
// by timeout.
func healthProbe(ctx context.Context, url string, t0 time.Time, interval, timeout time.Duration, s *series) (wait func()) {
	client := probeClient()
	maxOut := max(1, int(timeout/interval)+1)
	return ticking(ctx, interval, maxOut, s, func() {
		start := time.Now()
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		err := getOK(pctx, client, url)
		x := sample{T: start.Sub(t0).Seconds(), Ms: ms(time.Since(start))}
		if err != nil {
			x.Err = err.Error()
		}
		s.add(x)
	})
}

func getOK(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// chatter asks one question and returns the time to the first answer token.
type chatter interface {
	// ttft streams an answer to q and reports when its first content arrived.
	ttft(ctx context.Context, q string) (answerStart, error)
	// path says how the question travels, for the report.
	path() string
}

// chatLoop asks a question every interval until ctx ends (at most 4 outstanding).
func chatLoop(ctx context.Context, c chatter, questions *questionSource, t0 time.Time, interval, timeout time.Duration, s *series) (wait func()) {
	return ticking(ctx, interval, 4, s, func() {
		s.add(askOnce(ctx, c, questions.next(), t0, timeout, "ingest"))
	})
}

func askOnce(ctx context.Context, c chatter, q string, t0 time.Time, timeout time.Duration, phase string) sample {
	start := time.Now()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	a, err := c.ttft(cctx, q)
	x := sample{T: start.Sub(t0).Seconds(), Ms: ms(a.TTFT), Phase: phase, NoContext: a.NoContext, Steps: a.Steps}
	if err != nil {
		x.Ms = ms(time.Since(start))
		x.Err = err.Error()
	}
	return x
}

// idleChats asks n questions one after another with nothing else running.
func idleChats(ctx context.Context, c chatter, questions *questionSource, t0 time.Time, n int, timeout time.Duration, s *series) {
	for range n {
		if ctx.Err() != nil {
			return
		}
		s.add(askOnce(ctx, c, questions.next(), t0, timeout, "idle"))
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// questionSource makes distinct questions from the models' vocabulary (distinct, so an answer
// cache cannot serve them), the same sequence for every strategy.
type questionSource struct {
	mu sync.Mutex
	r  *rand.Rand
	n  int
}

func newQuestions(seed uint64) *questionSource {
	return &questionSource{r: rand.New(rand.NewPCG(seed, 0x9e37))}
}

func (q *questionSource) next() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.n++
	w := func() string { return vocabulary[q.r.IntN(len(vocabulary))] }
	return fmt.Sprintf("What does report %d say about the %s %s and the %s %s near the %s?", q.n, w(), w(), w(), w(), w())
}

// sseChat asks over an SSE endpoint that answers `event: token` / `data: {"content":"…"}` per
// piece and `event: done` at the end: the server's POST /api/chat, and the baseline app's /chat.
type sseChat struct {
	url    string
	body   func(q string) any // the request body for a question
	client *http.Client
	label  string
}

func (c *sseChat) path() string { return c.label }

func (c *sseChat) ttft(ctx context.Context, q string) (answerStart, error) {
	b, _ := json.Marshal(c.body(q))
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(b))
	if err != nil {
		return answerStart{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.client.Do(req)
	if err != nil {
		return answerStart{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return answerStart{}, fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	var first time.Duration
	event := ""
	rd := bufio.NewReader(resp.Body)
	for {
		line, err := rd.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data := strings.TrimSpace(strings.TrimPrefix(line, "data:"))
			switch event {
			case "token", "":
				var tok struct {
					Content string `json:"content"`
				}
				if json.Unmarshal([]byte(data), &tok) == nil && tok.Content != "" && first == 0 {
					first = time.Since(start)
				}
			case "error":
				return answerStart{}, fmt.Errorf("error event: %s", data)
			case "done":
				var done struct {
					NoContext bool          `json:"no_context"`
					Timings   *chat.Timings `json:"timings"`
					Usage     struct {
						PromptTokens int `json:"prompt_tokens"`
					} `json:"usage"`
				}
				_ = json.Unmarshal([]byte(data), &done)
				a := answerStart{TTFT: first, NoContext: done.NoContext}
				if done.Timings != nil && done.Timings.Total > 0 {
					a.Steps = &answerSteps{Timings: *done.Timings, PromptTokens: done.Usage.PromptTokens}
				}
				if first == 0 {
					return answerStart{NoContext: done.NoContext}, errors.New("done without a token")
				}
				return a, nil
			}
		case line == "":
			event = ""
		}
		if err != nil {
			if first > 0 && errors.Is(err, io.EOF) {
				return answerStart{TTFT: first}, nil
			}
			return answerStart{}, fmt.Errorf("reading stream: %w", err)
		}
	}
}

// detectServerChat finds the server's POST /api/chat and the request shape it takes. It returns
// nil when the route does not exist (404/405), so the bench falls back to the direct path.
func detectServerChat(ctx context.Context, base string) (*sseChat, string) {
	shapes := []func(q string) any{
		func(q string) any { return map[string]any{"question": q, "stream": true} },
		func(q string) any { return map[string]any{"message": q, "stream": true} },
		func(q string) any {
			return map[string]any{"messages": []map[string]string{{"role": "user", "content": q}}, "stream": true}
		},
	}
	client := probeClient()
	var reasons []string
	for _, body := range shapes {
		c := &sseChat{url: base + "/api/chat", body: body, client: client, label: "server POST /api/chat (SSE)"}
		cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		_, err := c.ttft(cctx, "What does the report say about the river?")
		cancel()
		if err == nil {
			return c, ""
		}
		if strings.HasPrefix(err.Error(), "status 404") || strings.HasPrefix(err.Error(), "status 405") {
			return nil, "the server has no POST /api/chat (" + err.Error() + ")"
		}
		reasons = append(reasons, err.Error())
	}
	return nil, "POST /api/chat refused every request shape tried: " + strings.Join(reasons, "; ")
}

// directChat is the server-independent path: a query embedding and a streamed /api/chat sent
// straight to Ollama, with a fixed context of three corpus chunks (what retrieval would add).
type directChat struct {
	ollama  string
	client  *http.Client
	context string
}

func (c *directChat) path() string {
	return "direct to Ollama: /api/embed of the question + streamed /api/chat (3 corpus chunks as context)"
}

func (c *directChat) ttft(ctx context.Context, q string) (answerStart, error) {
	start := time.Now()
	if _, err := postJSON(ctx, c.client, c.ollama+"/api/embed", map[string]any{"model": embedModel, "input": q}, nil); err != nil {
		return answerStart{}, fmt.Errorf("query embedding: %w", err)
	}
	body := ollamaChatBody(ragSystemPrompt, c.context, q)
	st, err := streamOllamaChat(ctx, c.client, c.ollama, body, nil, nil)
	if err != nil {
		return answerStart{}, err
	}
	return answerStart{TTFT: st.First.Sub(start)}, nil
}
