package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/store"
)

// An outage is not the document's fault. An error from Ollama or the vector store that means
// "down, busy or not set up yet" is a *DependencyError: the job (a document, or its summary and
// tags) goes back to the durable queue, the workers of its kind wait with a backoff, and
// nothing about the document is marked failed; no attempt is counted against it. Only what the
// document itself causes fails it: a file that does not parse, no text, an input the
// embedding model or the vector store rejects as invalid (4xx, InvalidArgument), or a document
// that takes longer than its own deadline.

// Dependencies a job can wait for.
const (
	DepOllama = "ollama"
	DepVector = "vector"
	// DepStorage is the data volume: the database, originals, the embedded vector store.
	DepStorage = "storage"
)

// Why a dependency could not do its part.
const (
	ReasonUnreachable       = "unreachable"        // connection refused or reset, DNS, gRPC Unavailable
	ReasonBusy              = "busy"               // 503, 429, a full lane queue, gRPC ResourceExhausted
	ReasonTimeout           = "timeout"            // a call's own deadline, gRPC DeadlineExceeded
	ReasonServerError       = "server_error"       // another 5xx
	ReasonModelMissing      = "model_missing"      // Ollama lacks a configured model (404)
	ReasonCollectionMissing = "collection_missing" // the vector store lacks the collection (NotFound)
	ReasonFull              = "full"               // the data volume (or database) is full: ENOSPC, EDQUOT, SQLITE_FULL
	ReasonReadOnly          = "read_only"          // the data volume cannot be written: EROFS, EACCES, SQLITE_READONLY
	ReasonIOError           = "io_error"           // EIO, SQLITE_IOERR (a write to a volume remounted read-only)
	ReasonStoreError        = "store_error"        // another error of the database (a claim that failed)
)

// DependencyError says a job could not finish because a dependency is unavailable.
type DependencyError struct {
	Dependency string // DepOllama, DepVector or DepStorage
	Reason     string // one of the Reason constants
	Err        error
}

func (e *DependencyError) Error() string {
	return fmt.Sprintf("%s unavailable (%s): %v", e.Dependency, e.Reason, e.Err)
}

func (e *DependencyError) Unwrap() error { return e.Err }

// dependencyErr wraps err in a *DependencyError when it means dep is unavailable, and returns
// it unchanged otherwise (nil stays nil).
func dependencyErr(dep string, err error) error {
	if err == nil {
		return nil
	}
	var de *DependencyError
	if errors.As(err, &de) {
		return err
	}
	// A full or read-only data volume, wherever it surfaced (the embedded vector store writes
	// its log there, the originals are read from it), is the volume's outage.
	if reason := storageReason(err); reason != "" {
		return &DependencyError{Dependency: DepStorage, Reason: reason, Err: err}
	}
	if reason := unavailable(dep, err); reason != "" {
		return &DependencyError{Dependency: dep, Reason: reason, Err: err}
	}
	return err
}

// Transient says an error means a dependency is down, busy or lacks a configured model, rather
// than that the document is at fault.
func Transient(err error) bool {
	var de *DependencyError
	return errors.As(err, &de) || storageReason(err) != "" || unavailable(DepOllama, err) != "" || unavailable(DepVector, err) != ""
}

// storageReason classifies an error from the data volume: ReasonFull, ReasonReadOnly, or ""
// when it is neither.
func storageReason(err error) string {
	switch {
	case err == nil:
		return ""
	case store.IsNoSpace(err):
		return ReasonFull
	case store.IsReadOnly(err):
		return ReasonReadOnly
	case store.IsIOError(err):
		return ReasonIOError
	}
	return ""
}

// unavailable classifies an error from dep: "" when it is not an outage.
func unavailable(dep string, err error) string {
	if err == nil || errors.Is(err, context.Canceled) {
		return ""
	}
	if errors.Is(err, llm.ErrBusy) {
		return ReasonBusy
	}
	var se *llm.StatusError
	if errors.As(err, &se) {
		switch {
		case se.StatusCode == http.StatusServiceUnavailable || se.StatusCode == http.StatusTooManyRequests:
			return ReasonBusy
		case se.StatusCode == http.StatusNotFound && strings.Contains(strings.ToLower(se.Message), "not found"):
			// Ollama answers 404 "model 'x' not found" only for the model named in the call, which
			// is always a configured one here: it is not pulled or created yet.
			return ReasonModelMissing
		case se.StatusCode >= 500 && se.StatusCode != http.StatusNotImplemented:
			return ReasonServerError
		}
		return ""
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if st, ok := status.FromError(e); ok && st.Code() != codes.Unknown {
			switch st.Code() {
			case codes.Unavailable, codes.Aborted:
				return ReasonUnreachable
			case codes.ResourceExhausted:
				return ReasonBusy
			case codes.DeadlineExceeded:
				return ReasonTimeout
			case codes.NotFound:
				if dep == DepVector {
					return ReasonCollectionMissing
				}
			}
			return ""
		}
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) {
		return ReasonUnreachable
	}
	// A network error (context.DeadlineExceeded is one too: a call's own timeout). A bare
	// syscall.Errno also has the methods of net.Error, but one from a file (ENOENT opening an
	// original) says nothing about a network: only errors of the net package count.
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, errno := e.(syscall.Errno); errno {
			break
		}
		if ne, ok := e.(net.Error); ok {
			if ne.Timeout() {
				return ReasonTimeout
			}
			return ReasonUnreachable
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ReasonTimeout
	}
	msg := err.Error()
	if strings.Contains(msg, "connection refused") || strings.Contains(msg, "connection reset") {
		return ReasonUnreachable
	}
	return ""
}

// backoff pauses the workers of one kind while a dependency is unavailable: the wait doubles
// per failure (min … max) and resets on the next success. Failures of jobs that were already
// running when the pause began do not double it again, so a few workers failing together cost
// one step, not one each.
type backoff struct {
	min, max time.Duration

	mu      sync.Mutex
	until   time.Time
	wait    time.Duration
	blocked map[string]bool // dependency → waiting for it
	cut     chan struct{}   // closed (and replaced) when the wait is cut short
}

// back ends the wait at once when it is for dep (its probe passes again), so the workers try
// now instead of up to the longest backoff later; it reports whether it did.
func (b *backoff) back(dep string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.blocked[dep] || !time.Now().Before(b.until) {
		return false
	}
	b.until = time.Now()
	if b.cut != nil {
		close(b.cut)
		b.cut = nil
	}
	return true
}

func (b *backoff) fail(dep string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if !now.Before(b.until) || b.wait == 0 {
		b.wait = min(max(2*b.wait, b.min), b.max)
		b.until = now.Add(b.wait)
	}
	if b.blocked == nil {
		b.blocked = map[string]bool{}
	}
	b.blocked[dep] = true
	return time.Until(b.until)
}

// ok records a success and returns the dependencies that were blocked until now.
func (b *backoff) ok() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wait = 0
	var was []string
	for d, on := range b.blocked {
		if on {
			was = append(was, d)
		}
		b.blocked[d] = false
	}
	return was
}

// clear records that dep works again (a write to the store succeeded) without resetting the
// wait, which other dependencies may still need; it reports whether dep was blocked.
func (b *backoff) clear(dep string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := b.blocked[dep]
	if was {
		b.blocked[dep] = false
	}
	return was
}

func (b *backoff) left() (time.Duration, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut == nil {
		b.cut = make(chan struct{})
	}
	return time.Until(b.until), b.cut
}

// waitOut sleeps while the backoff lasts (or until back cuts it short); false when ctx ended.
func (b *backoff) waitOut(ctx context.Context) bool {
	for {
		d, cut := b.left()
		if d <= 0 {
			return ctx.Err() == nil
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-cut:
			t.Stop()
		case <-t.C:
		}
	}
}
