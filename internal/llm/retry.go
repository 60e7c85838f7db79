package llm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// RetryPolicy says how failed Ollama calls are retried: exponential backoff with jitter.
type RetryPolicy struct {
	// MaxAttempts counts the first try; 1 disables retries. Default 4.
	MaxAttempts int
	// InitialBackoff is the wait before the second attempt. Default 200ms.
	InitialBackoff time.Duration
	// MaxBackoff caps any single wait, Retry-After included. Default 5s.
	MaxBackoff time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts < 1 {
		p.MaxAttempts = 4
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 200 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 5 * time.Second
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	return p
}

// backoff is the wait after the given failed attempt (1-based): Initial·2^(attempt-1) capped at
// Max, then "equal jitter" (half fixed, half random) so that callers failing together do not
// retry together, yet every wait is at least half the nominal one. A Retry-After from the server
// raises the wait (still capped).
func (p RetryPolicy) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	d = d/2 + rand.N(d/2+1)
	return max(d, min(retryAfter, p.MaxBackoff))
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StatusError is a non-2xx answer from Ollama.
type StatusError struct {
	Op         string // "embed", "chat", "version"
	StatusCode int
	Message    string        // Ollama's {"error": ...} text, or the body's start
	RetryAfter time.Duration // from the Retry-After header, 0 when absent
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("ollama %s: HTTP %d: %s", e.Op, e.StatusCode, e.Message)
}

// failure says what to do with an error from one attempt.
type failure int

const (
	fatal failure = iota // not retryable: give up (4xx, malformed answers, caller's ctx)
	// retryWhole: the server could not take the request at all (503 "server busy", 429,
	// connection refused): nothing about the content is suspect, so the same request is retried.
	retryWhole
	// retrySplit: the request was taken but failed or ran too long (5xx other than 503, timeout,
	// connection reset, cut-off body): a batch is split so a poison or oversized input is isolated
	// and the other items still get through.
	retrySplit
)

// classify decides how an attempt's error is retried. parent is the caller's context: when it
// has ended the error is the caller's doing and never retried; a deadline that fired on the
// per-call context alone is an Ollama timeout and is.
func classify(parent context.Context, err error) (failure, time.Duration) {
	if parent.Err() != nil {
		return fatal, 0
	}
	var se *StatusError
	if errors.As(err, &se) {
		switch se.StatusCode {
		case http.StatusServiceUnavailable, http.StatusTooManyRequests:
			return retryWhole, se.RetryAfter
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
			return retrySplit, se.RetryAfter
		}
		return fatal, 0
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return retryWhole, 0
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errStalled) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return retrySplit, 0
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return retrySplit, 0
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		// Other transport failures (DNS while Ollama's Service endpoints change, unreachable
		// network during a pod restart) are transient from our side.
		return retryWhole, 0
	}
	return fatal, 0
}

// busyIfOverloaded wraps ErrBusy around a final error that says Ollama was overloaded, so the
// HTTP layer answers 503 + Retry-After for it as for a full local queue.
func busyIfOverloaded(err error) error {
	var se *StatusError
	if errors.As(err, &se) && (se.StatusCode == http.StatusServiceUnavailable || se.StatusCode == http.StatusTooManyRequests) {
		return fmt.Errorf("%w: %w", ErrBusy, err)
	}
	return err
}

func parseRetryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
