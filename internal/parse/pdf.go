package parse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klippa-app/go-pdfium"
	pdferrors "github.com/klippa-app/go-pdfium/errors"
	"github.com/klippa-app/go-pdfium/references"
	"github.com/klippa-app/go-pdfium/requests"
	"github.com/klippa-app/go-pdfium/webassembly"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// pdfEngine is PDFium compiled to WebAssembly, run by wazero: the same engine as Chrome's PDF
// viewer, with no cgo (the binary stays static and cross-compiles to arm64). Light pure-Go
// parsers lost most of the text of real manuals (compressed object streams, Type 1 and
// CID fonts with ToUnicode maps); PDFium did not.
//
// Each instance is a separate WebAssembly module with its own memory, capped, and killed
// when its context ends, so a hostile PDF costs at most one instance's time and memory.
type pdfEngine struct {
	instances int
	cacheDir  string
	maxPages  int
	sem       chan struct{}

	mu   sync.Mutex
	pool pdfium.Pool
	err  error
	// up mirrors pool != nil without the lock, which start holds for the whole compile:
	// readiness (a metric, /metrics) must answer at once meanwhile.
	up atomic.Bool
}

// pdfMemoryPages caps one instance's linear memory (64 KiB pages): 1 GiB.
const pdfMemoryPages = 16384

func newPDFEngine(instances int, cacheDir string, maxPages int) *pdfEngine {
	return &pdfEngine{instances: instances, cacheDir: cacheDir, maxPages: maxPages, sem: make(chan struct{}, instances)}
}

// start compiles the module once (seconds on a small CPU; the compilation cache makes later
// starts fast). A failure is kept: it would fail the same way again.
func (e *pdfEngine) start(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pool != nil || e.err != nil {
		return e.err
	}
	rc := wazero.NewRuntimeConfig().
		WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesExceptionHandling).
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(pdfMemoryPages)
	if e.cacheDir != "" {
		if cache, err := wazero.NewCompilationCacheWithDir(e.cacheDir); err == nil {
			rc = rc.WithCompilationCache(cache)
		}
	}
	pool, err := webassembly.Init(webassembly.Config{
		MinIdle:       0,
		MaxIdle:       e.instances,
		MaxTotal:      e.instances,
		RuntimeConfig: rc,
		// No file system: documents are passed as bytes, and PDFium must not read the host's.
		FSConfig: wazero.NewFSConfig(),
		Stdout:   io.Discard,
		Stderr:   io.Discard,
	})
	if err != nil {
		e.err = fmt.Errorf("pdf engine: %w", err)
		return e.err
	}
	e.pool = pool
	e.up.Store(true)
	return nil
}

func (e *pdfEngine) ready() bool { return e.up.Load() }

func (e *pdfEngine) close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pool == nil {
		return nil
	}
	err := e.pool.Close()
	e.pool = nil
	e.up.Store(false)
	e.err = errors.New("pdf engine closed")
	return err
}

// with runs fn on an instance. When ctx ends first the instance is killed (its WebAssembly
// execution is interrupted) and ctx's error returned.
func (e *pdfEngine) with(ctx context.Context, fn func(pdfium.Pdfium) error) error {
	if err := e.start(ctx); err != nil {
		return err
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-e.sem }()
	e.mu.Lock()
	pool := e.pool
	e.mu.Unlock()
	if pool == nil {
		return errors.New("pdf engine closed")
	}
	inst, err := pool.GetInstanceWithContext(ctx)
	if err != nil {
		return fmt.Errorf("pdf engine: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		var err error
		defer func() { done <- err }()
		defer recoverInto(&err)
		err = fn(inst)
	}()
	select {
	case err := <-done:
		inst.Close()
		return err
	case <-ctx.Done():
		inst.Kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second): // interrupted calls return promptly; do not hang on one that does not
		}
		return fmt.Errorf("pdf: %w", ctx.Err())
	}
}

func readAt(r io.ReaderAt, size int64) ([]byte, error) {
	data := make([]byte, size)
	if _, err := r.ReadAt(data, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return data, nil
}

func pdfError(err error) error {
	switch {
	case errors.Is(err, pdferrors.ErrPassword), errors.Is(err, pdferrors.ErrSecurity):
		return fmt.Errorf("%w: the PDF is encrypted with a password", ErrMalformed)
	case errors.Is(err, pdferrors.ErrFormat), errors.Is(err, pdferrors.ErrFile), errors.Is(err, pdferrors.ErrUnknown):
		return fmt.Errorf("%w: PDFium cannot read it: %v", ErrMalformed, err)
	}
	return fmt.Errorf("%w: pdf: %v", ErrMalformed, err)
}

// validate opens the document and counts its pages.
// The file is read into memory only once an instance is free, so memory stays bounded by the
// instance count, not by the number of uploads waiting.
func (e *pdfEngine) validate(ctx context.Context, r io.ReaderAt, size int64) error {
	return e.with(ctx, func(inst pdfium.Pdfium) error {
		doc, pages, err := openPDF(inst, r, size)
		if err != nil {
			return err
		}
		defer inst.FPDF_CloseDocument(&requests.FPDF_CloseDocument{Document: doc})
		if pages < 1 {
			return fmt.Errorf("%w: the PDF has no pages", ErrMalformed)
		}
		return nil
	})
}

// openPDF reads the file into the instance and opens it; the caller closes the document.
func openPDF(inst pdfium.Pdfium, r io.ReaderAt, size int64) (references.FPDF_DOCUMENT, int, error) {
	data, err := readAt(r, size)
	if err != nil {
		return "", 0, err
	}
	doc, err := inst.OpenDocument(&requests.OpenDocument{File: &data})
	if err != nil {
		return "", 0, pdfError(err)
	}
	pc, err := inst.FPDF_GetPageCount(&requests.FPDF_GetPageCount{Document: doc.Document})
	if err != nil {
		inst.FPDF_CloseDocument(&requests.FPDF_CloseDocument{Document: doc.Document})
		return "", 0, pdfError(err)
	}
	return doc.Document, pc.PageCount, nil
}

// extract reads the text layer page by page; each page is a section.
func (e *pdfEngine) extract(ctx context.Context, r io.ReaderAt, size int64, maxText int64) (Document, error) {
	var d Document
	err := e.with(ctx, func(inst pdfium.Pdfium) error {
		doc, pages, err := openPDF(inst, r, size)
		if err != nil {
			return err
		}
		defer inst.FPDF_CloseDocument(&requests.FPDF_CloseDocument{Document: doc})
		if pages > e.maxPages {
			return fmt.Errorf("%w: %d pages (limit %d)", ErrTooLarge, pages, e.maxPages)
		}
		d.Pages = pages
		if t, err := inst.FPDF_GetMetaText(&requests.FPDF_GetMetaText{Document: doc, Tag: "Title"}); err == nil {
			d.Title = t.Value
		}
		var total int64
		for i := 0; i < pages; i++ {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			pt, err := inst.GetPageText(&requests.GetPageText{Page: requests.Page{ByIndex: &requests.PageByIndex{Document: doc, Index: i}}})
			if err != nil {
				return fmt.Errorf("%w: page %d: %v", ErrMalformed, i+1, err)
			}
			total += int64(len(pt.Text))
			if total > maxText {
				return fmt.Errorf("%w: PDF text exceeds %d bytes", ErrTooLarge, maxText)
			}
			d.Sections = append(d.Sections, Section{Page: i + 1, Text: strings.ReplaceAll(pt.Text, "\r\n", "\n")})
		}
		return nil
	})
	if err != nil {
		return Document{}, err
	}
	return d, nil
}
