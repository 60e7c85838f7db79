package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragstack/rag-operator/internal/auth"
	"github.com/ragstack/rag-operator/internal/store"
)

// DepStorage is the data volume (originals, the database, the spool): writable and above
// the free-space threshold. It is reported like a dependency (/api/health/dependencies,
// rag_dependency_up) and refuses only uploads (507) while down; everything that reads keeps
// working.
const DepStorage = "storage"

// space is the data volume's state (Deps.Space, else the store's).
func (s *Server) space() (store.Space, error) {
	if s.d.Space != nil {
		return s.d.Space()
	}
	return s.d.Store.Space()
}

// StorageProbe is the storage check for Readiness: an error while the data volume is
// read-only or has less than the threshold free. The error names no path.
func (s *Server) StorageProbe(context.Context) error {
	sp, err := s.space()
	switch {
	case err != nil:
		s.log.Warn("Failed to read the data volume's free space", "error", err)
		return errors.New("the data volume's free space cannot be read")
	case sp.ReadOnly:
		return errors.New("the data volume is read-only")
	case sp.Free == 0:
		return errors.New("the data volume is full")
	case sp.Free < uint64(s.cfg.MinFreeBytes):
		return fmt.Errorf("the data volume has %d bytes free, below the threshold of %d (uploads.minFreeBytes)", sp.Free, s.cfg.MinFreeBytes)
	}
	return nil
}

// storageWritable refuses an upload with 507 when the data volume is read-only or below the
// free-space threshold, before any byte of the body is read.
func (s *Server) storageWritable(w http.ResponseWriter) bool {
	sp, err := s.space()
	if err != nil {
		s.log.Warn("Failed to read the data volume's free space", "error", err)
		return true // write errors still refuse the upload cleanly
	}
	if sp.ReadOnly || sp.Free < uint64(s.cfg.MinFreeBytes) {
		s.insufficientStorage(w, sp.ReadOnly)
		return false
	}
	return true
}

func (s *Server) insufficientStorage(w http.ResponseWriter, readOnly bool) {
	w.Header().Set("Retry-After", fmt.Sprint(int(s.cfg.RetryAfter/time.Second)))
	w.Header().Set("Connection", "close")
	if readOnly {
		writeError(w, http.StatusInsufficientStorage, "%s", storageSentence(store.ErrReadOnlyVolume))
		return
	}
	writeError(w, http.StatusInsufficientStorage, "%s", storageSentence(errLowSpace))
}

// storageSentence says why storing failed, without a path.
func storageSentence(err error) string {
	if store.IsReadOnly(err) || errors.Is(err, store.ErrReadOnlyVolume) {
		return "the server's data volume is read-only, so nothing can be stored; documents can still be read and searched. Retry when it is writable"
	}
	if store.IsIOError(err) {
		return "the server's data volume cannot be written (an I/O error), so nothing can be stored; documents can still be read and searched. Retry later"
	}
	return "the server's data volume is (nearly) full, so uploads are refused until space is freed; documents can still be read and searched. Retry later"
}

// storeFailed answers a store error: 507 for a full or read-only volume, else 500 (logged;
// the message names no path).
func (s *Server) storeFailed(w http.ResponseWriter, err error) {
	switch {
	case store.IsReadOnly(err):
		s.log.Error("Data volume is read-only", "error", err)
		s.insufficientStorage(w, true)
	case store.IsNoSpace(err), errors.Is(err, errLowSpace):
		s.log.Error("Data volume is full", "error", err)
		s.insufficientStorage(w, false)
	case store.IsIOError(err):
		s.log.Error("Data volume cannot be written", "error", err)
		w.Header().Set("Retry-After", fmt.Sprint(int(s.cfg.RetryAfter/time.Second)))
		writeError(w, http.StatusInsufficientStorage, "%s", storageSentence(err))
	case store.IsUnavailable(err):
		s.log.Error("Document store unreachable", "error", err)
		w.Header().Set("Retry-After", fmt.Sprint(int(s.cfg.RetryAfter/time.Second)))
		writeError(w, http.StatusServiceUnavailable, "%s", storeUnavailableSentence)
	default:
		s.log.Error("Request failed", "error", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// storeUnavailableSentence answers a request the document store could not take because its
// database did not answer (no address: that is the operator's to see in the logs).
const storeUnavailableSentence = "the document store is unavailable right now; retry later"

// deleteSentence says why a delete is still in progress, without addresses or paths.
func deleteSentence(err error) string {
	switch {
	case store.IsReadOnly(err):
		return "the document is being deleted: the server's data volume is read-only, and the delete finishes by itself once it is writable again"
	case store.IsNoSpace(err):
		return "the document is being deleted: the server's data volume is full, and the delete finishes by itself once space is freed"
	case store.IsIOError(err):
		return "the document is being deleted: the server's data volume cannot be written, and the delete finishes by itself once it can"
	}
	return "the document is being deleted: the vector store did not answer, and the delete finishes by itself once it is back"
}

// uploadSlot takes one of the global upload slots and one of the caller's (per API key; per
// client address without auth), or answers 503 + Retry-After. release gives them back.
func (s *Server) uploadSlot(w http.ResponseWriter, r *http.Request, p auth.Principal) (release func(), ok bool) {
	who := "key:" + p.Name
	if _, anon := s.d.Auth.(auth.Anonymous); anon || p.Name == "" {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		who = "addr:" + host
	}
	s.slotsMu.Lock()
	if s.perKey[who] >= s.cfg.MaxUploadsPerKey {
		s.slotsMu.Unlock()
		s.busy(w, "this key already has %d uploads in progress (uploads.maxConcurrentPerKey); retry when one finishes", s.cfg.MaxUploadsPerKey)
		return nil, false
	}
	select {
	case s.uploads <- struct{}{}:
	default:
		s.slotsMu.Unlock()
		s.busy(w, "too many uploads in progress; retry later")
		return nil, false
	}
	s.perKey[who]++
	s.slotsMu.Unlock()
	return func() {
		s.slotsMu.Lock()
		if s.perKey[who]--; s.perKey[who] == 0 {
			delete(s.perKey, who)
		}
		s.slotsMu.Unlock()
		<-s.uploads
	}, true
}

// rateGuard cuts off a body that arrives slower than minRate bytes per second on average
// after a grace period, and one that stalls longer than maxStall, through the connection's
// read deadline: a slow client cannot hold an upload slot for the server's whole read
// timeout.
type rateGuard struct {
	r        io.ReadCloser
	rc       *http.ResponseController
	start    time.Time
	n        int64
	minRate  int64
	grace    time.Duration
	disabled bool
	tooSlow  bool
}

// maxStall is the longest pause between bytes, whatever was sent before.
const maxStall = 60 * time.Second

func newRateGuard(w http.ResponseWriter, r io.ReadCloser, minRate int64, grace time.Duration) *rateGuard {
	return &rateGuard{r: r, rc: http.NewResponseController(w), start: time.Now(), minRate: minRate, grace: grace, disabled: minRate <= 0}
}

func (g *rateGuard) Close() error { return g.r.Close() }

func (g *rateGuard) Read(p []byte) (int, error) {
	if !g.disabled {
		deadline := g.start.Add(g.grace + time.Duration(float64(g.n)/float64(g.minRate)*float64(time.Second)))
		if lim := time.Now().Add(maxStall); deadline.After(lim) {
			deadline = lim
		}
		if err := g.rc.SetReadDeadline(deadline); err != nil {
			g.disabled = true // not a real connection (tests with a recorder)
		}
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	if err != nil && !g.disabled && isTimeout(err) {
		g.tooSlow = true
		return n, errTooSlow
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// storageMetrics reports the data volume's state at each scrape.
func (s *Server) storageMetrics() []prometheus.Collector {
	free := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rag_storage_free_bytes",
		Help: "Bytes free on the data volume (statfs); uploads are refused (507) below uploads.minFreeBytes.",
	}, func() float64 {
		sp, err := s.space()
		if err != nil {
			return -1
		}
		return float64(sp.Free)
	})
	writable := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rag_storage_writable",
		Help: "1 while the data volume accepts uploads (writable, free space above uploads.minFreeBytes), else 0.",
	}, func() float64 { return b2f(s.StorageProbe(context.Background()) == nil) })
	spool := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rag_upload_spool_bytes",
		Help: "Bytes of uploads in progress spooled to the data volume (bounded by uploads.spoolBytes).",
	}, func() float64 { return float64(s.spooled.Load()) })
	return []prometheus.Collector{free, writable, spool}
}
