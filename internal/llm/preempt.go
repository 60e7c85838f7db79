package llm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ollama/ollama/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Preemption: a question does not wait behind a summary or tag generation already running at
// Ollama. When an answer starts (HoldBackground), every background chat call in flight is
// cancelled and put back in its lane, where the hold keeps it until the answer's first token;
// then it goes on.
//
// Background generation runs in short resumable steps (stepTokens each): a step sends the
// prompt plus the answer so far as a trailing assistant message, which the chat template leaves
// open so the model continues it. A cut loses at most the step it interrupted: the prompt (a
// document excerpt) is the same, so Ollama's prompt cache finds it in the slot when no answer
// took that slot meanwhile, and the step's few tokens are generated again. A step is cut at most
// MaxPreemptions times, then runs to its end, so a steady stream of questions slows enrichment
// without starving it, and what a question may still wait behind is one step, not a whole
// summary. Steps are measured against one uncut call in docs/rag-server.md.
//
// Preemptible calls ask Ollama for a non-streamed answer (one JSON object at the end): Ollama
// 0.24's streaming handler can keep its slot forever when the client leaves mid-stream
// (ollama/ollama#17131: a blocked send on an unbuffered channel while holding the runner's
// semaphore), and a non-streamed handler drains its channel to the end, so the cancel frees
// the slot. The stall timeout (CallTimeout) then bounds the whole step, not the gap between
// lines.

// passEveryYields: with preemption on, holds must overlap this many MaxYields without a break
// before the yield pass lets a background chat call through (see SetPreemption).
const passEveryYields = 5

// stepTokens is the most a background step generates: about a sentence, well under a second of
// decode on the Spark's GPU and a few hundred milliseconds on a CPU.
const stepTokens = 32

// errPreempted is the cause of a background call's context when an answer preempted it.
var errPreempted = errors.New("llm: background call preempted by an answer")

// preemptor tracks the background chat calls running at Ollama.
type preemptor struct {
	mu      sync.Mutex
	max     int // cuts per call; 0: preemption off
	running map[*preemptible]struct{}
	count   prometheus.Counter
}

type preemptible struct {
	cancel context.CancelCauseFunc
	cuts   int // times this call was cut already
}

// SetPreemption makes background chat calls (summaries, tags) preemptible by answers, each step at
// most maxCuts times (0 turns preemption off). Calls that stream to an OnToken are never
// preempted (what they streamed cannot be taken back).
func (o *Ollama) SetPreemption(maxCuts int) {
	o.preempt.mu.Lock()
	defer o.preempt.mu.Unlock()
	o.preempt.max = max(0, maxCuts)
	// The yield pass is the guard against starving: under questions back to back it lets one
	// background call through a hold, which then runs beside that question's prefill, uncut.
	// With cuts keeping questions ahead otherwise, it is needed only when holds have overlapped
	// for a long while.
	o.chat.setPassEvery(0)
	if o.preempt.max > 0 {
		o.chat.setPassEvery(passEveryYields * o.opts.MaxYield)
	}
	if o.preempt.count == nil {
		o.preempt.count = register(o.opts.Metrics, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rag_llm_background_preempted_total",
			Help: "Background chat calls (summaries, tags) cut because an answer started, then run again.",
		}))
	}
}

func (p *preemptor) enabled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.max > 0
}

// cutAll cancels every running background call that may still be cut; it returns how many.
func (p *preemptor) cutAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.running {
		if c.cuts < p.max {
			c.cancel(errPreempted)
			delete(p.running, c) // cut once per answer, however many answers start meanwhile
			n++
		}
	}
	if n > 0 && p.count != nil {
		p.count.Add(float64(n))
	}
	return n
}

// mayCut reports whether c may still be cut (or sent back to wait).
func (p *preemptor) mayCut(c *preemptible) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return c.cuts < p.max
}

func (p *preemptor) add(c *preemptible) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running == nil {
		p.running = map[*preemptible]struct{}{}
	}
	p.running[c] = struct{}{}
}

func (p *preemptor) remove(c *preemptible) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.running, c)
}

// chatPreemptible is Chat for a background call that an answer may cut: the same lane, retries
// and errors, generated in steps (see the top of this file) with a cut re-queueing the step
// instead of failing the call. Calls that think are sent whole: a half-written reasoning cannot
// be handed back as the answer so far.
func (o *Ollama) chatPreemptible(ctx context.Context, req ChatRequest) (ChatResponse, error) {
	step := cmp.Or(o.opts.stepTokens, stepTokens)
	if req.Think == nil || *req.Think || req.MaxTokens <= step {
		return o.preemptibleStep(ctx, req, true)
	}
	var out ChatResponse
	for n := 0; ; n++ {
		r, err := o.preemptibleStep(ctx, continuation(req, out.Content, min(step, req.MaxTokens-out.GeneratedTokens)), n == 0)
		out.Content += r.Content
		out.GeneratedTokens += r.GeneratedTokens
		out.EvalDuration += r.EvalDuration
		out.LoadDuration += r.LoadDuration
		out.PromptEvalDuration += r.PromptEvalDuration
		if n == 0 {
			out.PromptTokens = r.PromptTokens
		}
		out.DoneReason = r.DoneReason
		if err != nil || r.DoneReason != "length" || r.GeneratedTokens == 0 || out.GeneratedTokens >= req.MaxTokens {
			return out, err
		}
	}
}

// continuation is the request for the next step: tokens more at most, and the answer so far as
// the last (open) assistant message.
func continuation(req ChatRequest, sofar string, tokens int) ChatRequest {
	req.MaxTokens = tokens
	if sofar == "" {
		return req
	}
	msgs := slices.Clone(req.Messages)
	if last := &msgs[len(msgs)-1]; last.Role == "assistant" {
		last.Content += sofar // the caller's own prefill, continued
	} else {
		msgs = append(msgs, Message{Role: "assistant", Content: sofar})
	}
	req.Messages = msgs
	return req
}

// preemptibleStep is one non-streamed call that an answer may cut, at most the configured
// number of times; mayReject: the lane's full queue may refuse it (only a call's first step).
func (o *Ollama) preemptibleStep(ctx context.Context, req ChatRequest, mayReject bool) (ChatResponse, error) {
	body, err := o.chatBody(req)
	if err != nil {
		return ChatResponse{}, err
	}
	var r api.ChatRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return ChatResponse{}, err
	}
	stream := false
	r.Stream = &stream
	if body, err = json.Marshal(r); err != nil {
		return ChatResponse{}, err
	}
	call := &preemptible{}
	for attempt := 1; ; {
		release, gr, err := o.chat.acquireSeq(ctx, Background, mayReject)
		mayReject = false // a call back in the lane is not refused
		if err != nil {
			return ChatResponse{}, fmt.Errorf("ollama chat: %w", err)
		}
		cctx, cancel := context.WithCancelCause(ctx)
		call.cancel = cancel
		if !gr.passed { // a call the yield pass let through runs to its end
			o.preempt.add(call)
		}
		if !gr.passed && o.chat.heldSince(gr.seq) && o.preempt.mayCut(call) {
			// Admitted just before a question's hold began, and not yet sent: that hold's cut
			// may have missed it, so it waits for the hold's end instead. This counts as a cut:
			// on a loaded machine the wake-up after the grant can outlast every gap between
			// questions, and uncounted it would wait forever. (A call let through a hold by the
			// yield pass, the lanes' guard against starving, is not cut at all.)
			o.preempt.remove(call)
			cancel(nil)
			release()
			call.cuts++
			continue
		}
		resp, _, err := o.chatOnce(cctx, body, nil)
		o.preempt.remove(call)
		// A call that ended just as it was cut keeps its answer.
		cut := err != nil && errors.Is(context.Cause(cctx), errPreempted) && ctx.Err() == nil
		cancel(nil)
		release()
		if cut {
			call.cuts++ // back in the lane: the answer's hold admits it after its first token
			continue
		}
		if err == nil {
			return resp, nil
		}
		if resp, err = o.afterFailedChat(ctx, resp, err, false, attempt); err != nil {
			return resp, err
		}
		attempt++
	}
}

// SetPreemption turns preemption on (maxCuts > 0) or off on every server of the pool; a hold
// (Pool.HoldBackground) cuts the background chat calls running on any of them.
func (p *Pool) SetPreemption(maxCuts int) {
	for _, m := range p.members {
		m.o.SetPreemption(maxCuts)
	}
}
