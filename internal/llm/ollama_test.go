package llm

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragstack/rag-operator/internal/serverconfig"
)

// fastRetry keeps backoffs tiny so retry tests run in milliseconds.
var fastRetry = RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}

// The scenario of the brief, end to end over HTTP: background saturates its share, more
// background and then an interactive call queue, one slot frees, and the interactive call is
// the one Ollama sees next.
func TestChatLanesOrderingOverHTTP(t *testing.T) {
	f := newFakeOllama(t)
	c := New(Options{BaseURL: f.URL(), NumParallel: 3, BackgroundMax: 2, Retry: fastRetry})
	ctx := context.Background()

	bg1, bg2 := goChat(ctx, c, Background, "bg1"), goChat(ctx, c, Background, "bg2")
	held := map[string]*held{}
	for range 2 {
		h := next(t, f.chats)
		held[h.Model] = h
	}
	int1 := goChat(ctx, c, Interactive, "int1")
	held["int1"] = next(t, f.chats) // the third slot, free for interactive work
	if held["int1"].Model != "int1" {
		t.Fatalf("third request %q, want int1", held["int1"].Model)
	}

	bg3 := goChat(ctx, c, Background, "bg3")
	waitGate(t, c.chat, func(s gateState) bool { return s.Queued[Background] == 1 })
	int2 := goChat(ctx, c, Interactive, "int2")
	waitGate(t, c.chat, func(s gateState) bool { return s.Queued[Interactive] == 1 })

	held["bg1"].Release()
	if r := result(t, bg1); r.err != nil || r.resp.Content != "Hello, world" {
		t.Fatalf("bg1: %+v", r)
	}
	if h := next(t, f.chats); h.Model != "int2" {
		t.Fatalf("after a slot freed Ollama got %q, want int2 (queued after bg3)", h.Model)
	} else {
		held["int2"] = h
	}
	// All three slots are busy again and bg3 is still waiting.
	waitGate(t, c.chat, func(s gateState) bool {
		return s.InFlight == [2]int{2, 1} && s.Queued == [2]int{0, 1}
	})
	none(t, f.chats)

	held["int1"].Release()
	if h := next(t, f.chats); h.Model != "bg3" {
		t.Fatalf("got %q, want bg3", h.Model)
	} else {
		held["bg3"] = h
	}
	for _, m := range []string{"bg2", "int2", "bg3"} {
		held[m].Release()
	}
	for _, ch := range []<-chan chatResult{bg2, int1, int2, bg3} {
		if r := result(t, ch); r.err != nil {
			t.Fatal(r.err)
		}
	}
	waitGate(t, c.chat, func(s gateState) bool { return s == gateState{} })
}

func TestChatStreamsTokens(t *testing.T) {
	f := newFakeOllama(t)
	c := New(Options{BaseURL: f.URL(), NumParallel: 2, KeepAlive: 30 * time.Minute})
	var toks []string
	think := false
	done := make(chan chatResult, 1)
	go func() {
		resp, err := c.Chat(context.Background(), Interactive, ChatRequest{
			Model: "qwen3:8b", Messages: []Message{{Role: "user", Content: "hi"}}, MaxTokens: 64, Think: &think,
			Options: map[string]any{"temperature": 0, "num_predict": 9999},
			OnToken: func(s string) error { toks = append(toks, s); return nil },
		})
		done <- chatResult{resp, err}
	}()
	next(t, f.chats).Release()
	r := result(t, done)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !slices.Equal(toks, []string{"Hello", ", ", "world"}) {
		t.Errorf("tokens %q", toks)
	}
	want := ChatResponse{Content: "Hello, world", DoneReason: "stop", PromptTokens: 7, GeneratedTokens: 3}
	if r.resp != want {
		t.Errorf("response %+v, want %+v", r.resp, want)
	}
	body := f.bodies()[0]
	opts := body["options"].(map[string]any)
	if opts["num_predict"] != float64(64) || opts["temperature"] != float64(0) {
		t.Errorf("options %v: want num_predict 64 (MaxTokens wins) and temperature 0", opts)
	}
	if body["keep_alive"] != "30m0s" || body["stream"] != true || body["think"] != false {
		t.Errorf("keep_alive %v stream %v think %v", body["keep_alive"], body["stream"], body["think"])
	}
}

func TestChatCancelAbortsRequestAndFreesSlot(t *testing.T) {
	f := newFakeOllama(t)
	c := New(Options{BaseURL: f.URL(), NumParallel: 1})
	ctx, cancel := context.WithCancel(context.Background())
	res := goChat(ctx, c, Interactive, "m")
	h := next(t, f.chats)
	waitGate(t, c.chat, func(s gateState) bool { return s.InFlight[Interactive] == 1 })

	// A second call queues behind it and is cancelled while waiting.
	ctx2, cancel2 := context.WithCancel(context.Background())
	res2 := goChat(ctx2, c, Interactive, "m2")
	waitGate(t, c.chat, func(s gateState) bool { return s.Queued[Interactive] == 1 })
	cancel2()
	if r := result(t, res2); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("queued call: %v, want context.Canceled", r.err)
	}

	cancel()
	select {
	case <-h.gone: // Ollama saw the connection go: it stops generating and frees its slot
	case <-time.After(10 * time.Second):
		t.Fatal("Ollama never saw the cancellation")
	}
	if r := result(t, res); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("in-flight call: %v, want context.Canceled", r.err)
	}
	waitGate(t, c.chat, func(s gateState) bool { return s == gateState{} })
}

func TestChatOnTokenErrorAborts(t *testing.T) {
	f := newFakeOllama(t)
	c := New(Options{BaseURL: f.URL(), Retry: fastRetry})
	stop := errors.New("client went away")
	done := make(chan error, 1)
	go func() {
		_, err := c.Chat(context.Background(), Interactive, ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: "x"}},
			OnToken: func(string) error { return stop }})
		done <- err
	}()
	next(t, f.chats).Release()
	if err := result(t, done); !errors.Is(err, stop) {
		t.Fatalf("got %v, want the OnToken error", err)
	}
	if n := len(f.bodies()); n != 1 {
		t.Fatalf("%d chat calls, want 1 (no retry after tokens reached the caller)", n)
	}
}

func TestChatRetries503BeforeStreaming(t *testing.T) {
	f := newFakeOllama(t)
	f.chatFault = func(call int) (int, string) {
		if call == 0 {
			return http.StatusServiceUnavailable, ""
		}
		return 0, ""
	}
	reg := prometheus.NewRegistry()
	c := New(Options{BaseURL: f.URL(), Retry: fastRetry, Metrics: reg})
	res := goChat(context.Background(), c, Interactive, "m")
	next(t, f.chats).Release()
	if r := result(t, res); r.err != nil || r.resp.Content != "Hello, world" {
		t.Fatalf("%+v", r)
	}
	if got := value(t, c.metrics.retries.WithLabelValues("chat")); got != 1 {
		t.Errorf("chat retries %v, want 1", got)
	}
}

func TestChatErrorAfterTokensNotRetried(t *testing.T) {
	f := newFakeOllama(t)
	f.chatFault = func(int) (int, string) { return 0, "runner died" }
	c := New(Options{BaseURL: f.URL(), Retry: fastRetry})
	done := make(chan error, 1)
	go func() {
		_, err := c.Chat(context.Background(), Interactive, ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: "x"}},
			OnToken: func(string) error { return nil }})
		done <- err
	}()
	next(t, f.chats).Release()
	if err := result(t, done); err == nil || !strings.Contains(err.Error(), "runner died") {
		t.Fatalf("got %v", err)
	}
	if n := len(f.bodies()); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}

func TestEmbedBatchesInOrder(t *testing.T) {
	f := newFakeOllama(t)
	reg := prometheus.NewRegistry()
	c := New(Options{BaseURL: f.URL(), EmbedBatchSize: 10, EmbedConcurrency: 2, EmbedBackgroundMax: 2, BackgroundCallTarget: -1, Metrics: reg})
	vecs, err := c.Embed(context.Background(), Background, "nomic-embed-text", texts(95))
	if err != nil {
		t.Fatal(err)
	}
	if len(vecs) != 95 {
		t.Fatalf("%d vectors", len(vecs))
	}
	for i, v := range vecs {
		if int(v[0]) != i {
			t.Fatalf("vector %d belongs to text %d: results out of order", i, int(v[0]))
		}
	}
	if n := len(f.calls()); n != 10 {
		t.Errorf("%d /api/embed calls, want ceil(95/10) = 10", n)
	}
	for _, in := range f.calls() {
		if len(in) > 10 {
			t.Errorf("batch of %d > 10", len(in))
		}
	}
	if got := value(t, c.metrics.embedItems.WithLabelValues("background")); got != 95 {
		t.Errorf("embed items metric %v", got)
	}
	if n, err := seriesCount(reg, "rag_llm_ollama_request_duration_seconds"); err != nil || n != 1 {
		t.Errorf("latency series %d, %v", n, err)
	}
}

// A batch that fails with a 500 is split and only its items are sent again; items of other
// batches are embedded exactly once.
func TestEmbedRetriesOnlyFailedItems(t *testing.T) {
	f := newFakeOllama(t)
	f.embedFault = func(call int, _ []string) (int, string) {
		if call == 1 {
			return http.StatusInternalServerError, ""
		}
		return 0, ""
	}
	reg := prometheus.NewRegistry()
	// One call in flight: the call sequence is deterministic.
	c := New(Options{BaseURL: f.URL(), EmbedBatchSize: 10, EmbedConcurrency: 1, BackgroundCallTarget: -1, Retry: fastRetry, Metrics: reg})
	vecs, err := c.Embed(context.Background(), Background, "e", texts(100))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vecs {
		if int(v[0]) != i {
			t.Fatalf("out of order at %d", i)
		}
	}
	sent := 0
	for _, in := range f.calls() {
		sent += len(in)
	}
	if sent != 110 || len(f.calls()) != 12 {
		t.Errorf("%d items in %d calls, want 110 in 12 (the failed batch of 10 re-sent as two halves)", sent, len(f.calls()))
	}
	if !slices.Equal(f.calls()[2], texts(15)[10:]) || !slices.Equal(f.calls()[3], []string{"t15", "t16", "t17", "t18", "t19"}) {
		t.Errorf("retry calls %v %v", f.calls()[2], f.calls()[3])
	}
	for _, in := range texts(100) {
		if f.embedded(in) != 1 {
			t.Errorf("%s embedded %d times", in, f.embedded(in))
		}
	}
	if got := value(t, c.metrics.retries.WithLabelValues("embed")); got != 1 {
		t.Errorf("retries metric %v", got)
	}
}

// A poison input that always fails is isolated by splitting; the error names it.
func TestEmbedIsolatesPoisonInput(t *testing.T) {
	f := newFakeOllama(t)
	f.embedFault = func(_ int, in []string) (int, string) {
		if slices.Contains(in, "t5") {
			return http.StatusInternalServerError, ""
		}
		return 0, ""
	}
	c := New(Options{BaseURL: f.URL(), EmbedBatchSize: 8, EmbedConcurrency: 1, Retry: RetryPolicy{MaxAttempts: 5, InitialBackoff: time.Millisecond}})
	_, err := c.Embed(context.Background(), Background, "e", texts(8))
	if err == nil || !strings.Contains(err.Error(), "texts 5..5") {
		t.Fatalf("got %v, want the error to name text 5", err)
	}
	// 8 -> 4+4 -> (2+2) -> (1+1): t0..t3 and t6,t7 never go out twice after succeeding.
	for _, in := range []string{"t0", "t1", "t2", "t3", "t4", "t6", "t7"} {
		if f.embedded(in) > 1 {
			t.Errorf("%s embedded %d times", in, f.embedded(in))
		}
	}
}

// 503 (Ollama's "server busy") is retried as a whole, honouring Retry-After; a 503 that does
// not end becomes ErrBusy.
func TestEmbed503(t *testing.T) {
	f := newFakeOllama(t)
	f.embedFault = func(call int, _ []string) (int, string) {
		if call == 0 {
			return http.StatusServiceUnavailable, "0"
		}
		return 0, ""
	}
	c := New(Options{BaseURL: f.URL(), EmbedBatchSize: 10, EmbedConcurrency: 1, Retry: fastRetry})
	if _, err := c.Embed(context.Background(), Interactive, "e", texts(20)); err != nil {
		t.Fatal(err)
	}
	if len(f.calls()) != 3 || len(f.calls()[1]) != 10 {
		t.Errorf("calls %v: want the busy batch re-sent whole", f.calls())
	}

	f2 := newFakeOllama(t)
	f2.embedFault = func(int, []string) (int, string) { return http.StatusServiceUnavailable, "" }
	c2 := New(Options{BaseURL: f2.URL(), Retry: fastRetry})
	_, err := c2.Embed(context.Background(), Interactive, "e", texts(3))
	var se *StatusError
	if !errors.Is(err, ErrBusy) || !errors.As(err, &se) || se.StatusCode != 503 {
		t.Fatalf("got %v, want ErrBusy wrapping the 503", err)
	}
	if len(f2.calls()) != fastRetry.MaxAttempts {
		t.Errorf("%d calls, want %d", len(f2.calls()), fastRetry.MaxAttempts)
	}
}

func TestEmbed4xxNotRetried(t *testing.T) {
	f := newFakeOllama(t)
	f.embedFault = func(int, []string) (int, string) { return http.StatusNotFound, "" }
	c := New(Options{BaseURL: f.URL(), Retry: fastRetry})
	_, err := c.Embed(context.Background(), Interactive, "missing", texts(3))
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 404 || errors.Is(err, ErrBusy) {
		t.Fatalf("got %v", err)
	}
	if len(f.calls()) != 1 {
		t.Errorf("%d calls, want 1", len(f.calls()))
	}
}

func TestEmbedConnectionRefusedRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	reg := prometheus.NewRegistry()
	c := New(Options{BaseURL: "http://" + addr, Retry: fastRetry, Metrics: reg})
	_, err = c.Embed(context.Background(), Interactive, "e", texts(2))
	if err == nil || !strings.Contains(err.Error(), "giving up after 4 attempts") {
		t.Fatalf("got %v", err)
	}
	if got := value(t, c.metrics.retries.WithLabelValues("embed")); got != 3 {
		t.Errorf("retries %v, want 3", got)
	}
	if err := c.Ping(context.Background()); err == nil {
		t.Error("Ping succeeded against nothing")
	}
}

// A call that exceeds CallTimeout is abandoned and retried (split), while the caller's ctx is
// still alive.
func TestEmbedPerCallTimeout(t *testing.T) {
	f := newFakeOllama(t)
	f.embedFault = func(call int, _ []string) (int, string) {
		if call == 0 {
			return -1, "" // hang until the client's deadline
		}
		return 0, ""
	}
	c := New(Options{BaseURL: f.URL(), CallTimeout: 20 * time.Millisecond, Retry: fastRetry})
	vecs, err := c.Embed(context.Background(), Interactive, "e", texts(4))
	if err != nil || len(vecs) != 4 {
		t.Fatalf("%v %d", err, len(vecs))
	}
	if len(f.calls()) != 3 {
		t.Errorf("calls %v, want the timed-out batch split in two", f.calls())
	}
}

func TestEmbedDimensionChecks(t *testing.T) {
	f := newFakeOllama(t)
	f.embedDim = func(in string) int {
		if in == "t3" {
			return 5
		}
		return 4
	}
	c := New(Options{BaseURL: f.URL(), EmbedBatchSize: 2, EmbedConcurrency: 1})
	if _, err := c.Embed(context.Background(), Interactive, "e", texts(4)); err == nil || !strings.Contains(err.Error(), "text 3 has 5 dimensions, want 4") {
		t.Fatalf("got %v", err)
	}
	c2 := New(Options{BaseURL: f.URL(), EmbedDimension: 768})
	if _, err := c2.Embed(context.Background(), Interactive, "e", texts(1)); err == nil || !strings.Contains(err.Error(), "want 768") {
		t.Fatalf("got %v", err)
	}
	if v, err := c.Embed(context.Background(), Interactive, "e", nil); err != nil || len(v) != 0 {
		t.Fatalf("empty input: %v %v", v, err)
	}
}

// A query embedding goes out at once while ingest batches hold Ollama's embedding slot.
func TestEmbedInteractiveNotBehindIngest(t *testing.T) {
	f := newFakeOllama(t)
	f.holdEmbeds = true
	c := New(Options{BaseURL: f.URL(), EmbedBatchSize: 4, EmbedConcurrency: 2})
	ingest := make(chan error, 1)
	go func() {
		_, err := c.Embed(context.Background(), Background, "e", texts(40))
		ingest <- err
	}()
	first := next(t, f.embeds)
	waitGate(t, c.embed, func(s gateState) bool { return s.InFlight[Background] == 1 })
	query := make(chan error, 1)
	go func() {
		_, err := c.Embed(context.Background(), Interactive, "e", []string{"t999"})
		query <- err
	}()
	q := next(t, f.embeds)
	if len(q.Inputs) != 1 || q.Inputs[0] != "t999" {
		t.Fatalf("second call %v, want the query", q.Inputs)
	}
	q.Release()
	if err := result(t, query); err != nil {
		t.Fatal(err)
	}
	first.Release()
	for range 9 {
		next(t, f.embeds).Release()
	}
	if err := result(t, ingest); err != nil {
		t.Fatal(err)
	}
}

func TestEmbedCancelWhileQueued(t *testing.T) {
	f := newFakeOllama(t)
	f.holdEmbeds = true
	c := New(Options{BaseURL: f.URL(), EmbedConcurrency: 1})
	go func() { _, _ = c.Embed(context.Background(), Background, "e", texts(1)) }()
	h := next(t, f.embeds)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Embed(ctx, Interactive, "e", texts(1)); done <- err }()
	waitGate(t, c.embed, func(s gateState) bool { return s.Queued[Interactive] == 1 })
	cancel()
	if err := result(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	h.Release()
	waitGate(t, c.embed, func(s gateState) bool { return s == gateState{} })
}

// One shared client, keep-alive pooled: sequential calls reuse one connection (bodies are
// drained so net/http can pool them).
func TestConnectionsReused(t *testing.T) {
	f := newFakeOllama(t)
	c := New(Options{BaseURL: f.URL(), EmbedBatchSize: 2, EmbedConcurrency: 1})
	for range 5 {
		if _, err := c.Embed(context.Background(), Interactive, "e", texts(6)); err != nil {
			t.Fatal(err)
		}
		if err := c.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	res := goChat(context.Background(), c, Interactive, "m")
	next(t, f.chats).Release()
	result(t, res)
	if _, err := c.Embed(context.Background(), Interactive, "e", texts(1)); err != nil {
		t.Fatal(err)
	}
	if n := f.conns.Load(); n != 1 {
		t.Errorf("%d connections for 22 sequential calls, want 1", n)
	}
}

func TestPing(t *testing.T) {
	f := newFakeOllama(t)
	c := New(Options{BaseURL: f.URL(), NumParallel: 1})
	// Ping does not queue behind a full chat pool.
	res := goChat(context.Background(), c, Interactive, "m")
	h := next(t, f.chats)
	if v, err := c.Version(context.Background()); err != nil || v != "0.24.0" {
		t.Fatalf("version %q, %v", v, err)
	}
	h.Release()
	result(t, res)
	if err := New(Options{BaseURL: "not a url"}).Ping(context.Background()); err == nil {
		t.Error("Ping with a bad base URL succeeded")
	}
}

func TestMetricsOnSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(Options{BaseURL: "http://x", Metrics: reg})
	New(Options{BaseURL: "http://x", Metrics: reg}) // second client reuses the series
	if n, err := seriesCount(reg, "rag_llm_queue_depth", "rag_llm_in_flight"); err != nil || n != 8 {
		t.Fatalf("%d series, %v; want 2 pools x 2 lanes x 2 metrics", n, err)
	}
}

func TestFromConfigAndKeepAlive(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "30m": 30 * time.Minute, "-1": -1, "-1m": -1, "300": 300 * time.Second} {
		if got, err := ParseKeepAlive(in); err != nil || got != want {
			t.Errorf("ParseKeepAlive(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseKeepAlive("soon"); err == nil {
		t.Error("ParseKeepAlive(soon) succeeded")
	}
	var cfg serverconfig.Config
	cfg.Ollama = serverconfig.Ollama{URL: "http://ollama:11434", KeepAlive: "-1"}
	cfg.Limits.WarmingMaxConcurrentQueries = 3
	cfg.Limits.EmbedConcurrency = 2
	cfg.Limits.EmbedBatchSize = 64
	cfg.Qdrant.Collection.VectorSize = 768
	o, err := FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := Options{BaseURL: "http://ollama:11434", BackgroundMax: 3, EmbedConcurrency: 2, EmbedBatchSize: 64, EmbedDimension: 768, KeepAlive: -1}
	if o.BaseURL != want.BaseURL || o.NumParallel != 0 || o.BackgroundMax != 3 || o.EmbedConcurrency != 2 || o.EmbedBatchSize != 64 || o.EmbedDimension != 768 || o.KeepAlive != -1 {
		t.Errorf("FromConfig = %+v, want %+v", o, want)
	}
}
