package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/ragstack/rag-operator/internal/auth"
	"github.com/ragstack/rag-operator/internal/parse"
	"github.com/ragstack/rag-operator/internal/store"
)

// FileResult is the outcome for one uploaded file.
type FileResult struct {
	File       string    `json:"file"`
	Status     int       `json:"status"` // HTTP status for this file
	ID         string    `json:"id,omitempty"`
	ExistingID string    `json:"existingId,omitempty"` // 409: the document with the same content
	Error      string    `json:"error,omitempty"`
	Document   *Document `json:"document,omitempty"`
}

// UploadResponse is the body of POST /api/documents.
type UploadResponse struct {
	IDs   []string     `json:"ids"` // accepted documents
	Files []FileResult `json:"files"`
}

type incoming struct {
	res  FileResult
	typ  parse.Type
	up   *store.Upload
	done bool
}

const maxFieldBytes = 4 << 10

// headBytes is how much of a file part is read before anything is spooled: enough for the
// type's magic bytes (a PDF's header may follow up to 1 KiB of junk) and a text file's first
// page, where a NUL shows binary content.
const headBytes = 8 << 10

var (
	errTooSlow   = errors.New("upload too slow")
	errSpoolFull = errors.New("upload spool budget exhausted")
	errLowSpace  = errors.New("free space below the threshold")
)

// upload accepts multipart/form-data with one or more file parts (any field name) and an
// optional "tags" field (comma-separated, may repeat). Limits hold before bytes reach the
// disk: the declared Content-Length against the request cap, the data volume's free space
// and writability, a global and a per-key upload slot, then per part its declared size, its
// extension and the magic bytes of its first bytes (a part refused by type is skipped, never
// spooled); a file part is spooled only up to maxFileBytes+1 and within the spool budget,
// and a client slower than the minimum rate is cut off. Tags may come before or after the
// files, so files are checked and stored once the body is read. A file is acknowledged (202)
// only after its bytes are fsynced in place and its row committed; a refused file leaves
// nothing behind.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be multipart/form-data")
		return
	}
	if r.ContentLength > s.cfg.MaxRequestBytes {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, "request body of %d bytes is larger than the limit of %d bytes (uploads.maxRequestBytes)", r.ContentLength, s.cfg.MaxRequestBytes)
		return
	}
	p := principal(r)
	release, ok := s.uploadSlot(w, r, p)
	if !ok {
		return
	}
	defer release()
	if !s.storageWritable(w) {
		return
	}
	// Refuse early, before reading the body, when the queue is already full.
	if depth, err := s.d.Store.QueueDepth(r.Context()); err != nil {
		s.storeFailed(w, err)
		return
	} else if depth >= s.cfg.MaxQueued {
		s.busy(w, "ingest queue is full (%d documents); retry later", s.cfg.MaxQueued)
		return
	}
	guard := newRateGuard(w, r.Body, s.cfg.MinBytesPerSecond, s.cfg.RateGrace)
	r.Body = http.MaxBytesReader(w, guard, s.cfg.MaxRequestBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid multipart body: %v", err)
		return
	}
	var files []*incoming
	var spooled atomic.Int64 // this request's share of the spool budget
	defer func() {
		for _, f := range files {
			if f.up != nil {
				f.up.Abort() // no-op for stored files
			}
		}
		s.spooled.Add(-spooled.Load())
	}()
	var tagValues []string
	// readFailed answers a body that could not be read; it reports false for other errors.
	readFailed := func(err error) bool {
		var mbe *http.MaxBytesError
		switch {
		case guard.tooSlow || errors.Is(err, errTooSlow):
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestTimeout, "upload too slow: the body must arrive at %d bytes per second or more (uploads.minBytesPerSecond)", s.cfg.MinBytesPerSecond)
		case errors.As(err, &mbe):
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestEntityTooLarge, "request body larger than %d bytes (uploads.maxRequestBytes)", s.cfg.MaxRequestBytes)
		default:
			return false
		}
		return true
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			if !readFailed(err) {
				writeError(w, http.StatusBadRequest, "invalid multipart body: %v", err)
			}
			return
		}
		if part.FileName() == "" {
			if part.FormName() != "tags" {
				writeError(w, http.StatusBadRequest, "unknown form field %q (expected files and tags)", part.FormName())
				return
			}
			v, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
			if err != nil && readFailed(err) {
				return
			}
			if err != nil || len(v) > maxFieldBytes {
				writeError(w, http.StatusBadRequest, "tags field missing or longer than %d bytes", maxFieldBytes)
				return
			}
			tagValues = append(tagValues, string(v))
			continue
		}
		if len(files) == s.cfg.MaxFiles {
			writeError(w, http.StatusBadRequest, "more than %d files in one request", s.cfg.MaxFiles)
			return
		}
		f := &incoming{res: FileResult{File: sanitizeName(part.FileName())}}
		files = append(files, f)
		if n, err := strconv.ParseInt(part.Header.Get("Content-Length"), 10, 64); err == nil && n > s.cfg.MaxFileBytes {
			s.tooLarge(w, files, f)
			return
		}
		typ, err := parse.TypeOf(f.res.File)
		if err == nil && !s.allowed[typ] {
			err = fmt.Errorf("%w: .%s is not allowed here", parse.ErrUnsupported, typ)
		}
		if err != nil {
			f.fail(http.StatusUnsupportedMediaType, "%v (allowed: %v)", err, s.cfg.AllowedTypes)
			continue // NextPart skips the rest of this part without storing it
		}
		f.typ = typ
		head := make([]byte, headBytes)
		n, err := io.ReadFull(part, head)
		head = head[:n]
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			if !readFailed(err) {
				writeError(w, http.StatusBadRequest, "reading %q: the body ended or broke off", f.res.File)
			}
			return
		}
		if err := sniff(typ, head); err != nil {
			f.fail(http.StatusUnsupportedMediaType, "%v", err)
			continue // the rest of the part is skipped, never spooled
		}
		if f.up, err = s.d.Store.NewUpload(s.cfg.MaxFileBytes); err != nil {
			s.storeFailed(w, err)
			return
		}
		sw := &spoolWriter{s: s, up: f.up, reserved: &spooled}
		_, err = io.Copy(sw, io.MultiReader(bytes.NewReader(head), part))
		switch {
		case err == nil:
		case errors.Is(err, store.ErrTooLarge):
			s.tooLarge(w, files, f)
			return
		case readFailed(err):
			return
		case errors.Is(err, errSpoolFull):
			s.busy(w, "uploads in progress hold the whole spool budget (%d bytes, uploads.spoolBytes); retry later", s.cfg.SpoolBytes)
			return
		case errors.Is(err, errLowSpace), store.IsNoSpace(err), store.IsReadOnly(err):
			s.storeFailed(w, err)
			return
		default:
			s.log.Warn("Upload body failed", "file", f.res.File, "error", err)
			writeError(w, http.StatusBadRequest, "reading %q: the body ended or broke off", f.res.File)
			return
		}
	}
	if len(files) == 0 {
		writeError(w, http.StatusBadRequest, "no file in the request")
		return
	}
	tags, err := parseTags(tagValues)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if tags, err = p.AllowedTags(tags); err != nil {
		writeError(w, http.StatusForbidden, "%v", err)
		return
	}

	resp := UploadResponse{IDs: []string{}}
	accepted := false
	for _, f := range files {
		if !f.done {
			s.store(r.Context(), f, tags, p)
		}
		if f.res.Status == http.StatusAccepted {
			accepted = true
			resp.IDs = append(resp.IDs, f.res.ID)
		}
		resp.Files = append(resp.Files, f.res)
	}
	if accepted {
		s.d.Pipeline.Notify()
	}
	code := overall(resp.Files)
	if code == http.StatusServiceUnavailable || code == http.StatusInsufficientStorage {
		w.Header().Set("Retry-After", fmt.Sprint(int(s.cfg.RetryAfter.Seconds())))
	}
	writeJSON(w, code, resp)
}

// tooLarge ends a request at a file part over maxFileBytes: reading stops there (at most
// maxFileBytes+1 of it was read), so nothing in the request is stored; files before it are
// reported as not stored.
func (s *Server) tooLarge(w http.ResponseWriter, files []*incoming, big *incoming) {
	resp := UploadResponse{IDs: []string{}}
	for _, f := range files {
		if f == big {
			f.fail(http.StatusRequestEntityTooLarge, "file larger than %d bytes (uploads.maxFileBytes)", s.cfg.MaxFileBytes)
		} else if !f.done {
			f.fail(http.StatusRequestEntityTooLarge, "not stored: the request was refused at %q, which is larger than %d bytes; send this file again without it", big.res.File, s.cfg.MaxFileBytes)
		}
		resp.Files = append(resp.Files, f.res)
	}
	w.Header().Set("Connection", "close")
	writeJSON(w, http.StatusRequestEntityTooLarge, resp)
}

// sniff checks a file part's first bytes against its type before anything is spooled, as
// parse.Validate does on the whole file afterwards: a PDF has its header in the first KiB, a
// docx is a zip, and a text type holds no NUL (UTF-16 with a BOM excepted).
func sniff(t parse.Type, head []byte) error {
	switch t {
	case parse.PDF:
		if !bytes.Contains(head[:min(len(head), 1024)], []byte("%PDF-")) {
			return fmt.Errorf("%w: no %%PDF header", parse.ErrMismatch)
		}
	case parse.DOCX:
		if !bytes.HasPrefix(head, []byte("PK\x03\x04")) {
			return fmt.Errorf("%w: not a zip archive", parse.ErrMismatch)
		}
	default:
		bom := len(head) >= 2 && ((head[0] == 0xFF && head[1] == 0xFE) || (head[0] == 0xFE && head[1] == 0xFF))
		if bytes.IndexByte(head, 0) >= 0 && !bom {
			return fmt.Errorf("%w: binary content in a .%s file", parse.ErrMismatch, t)
		}
	}
	return nil
}

// spoolWriter writes a part to its Upload within the server's spool budget, and checks the
// volume's free space every spaceCheckBytes.
type spoolWriter struct {
	s          *Server
	up         *store.Upload
	reserved   *atomic.Int64
	sinceCheck int64
}

const spaceCheckBytes = 4 << 20

func (w *spoolWriter) Write(p []byte) (int, error) {
	n := int64(len(p))
	if w.s.spooled.Add(n) > w.s.cfg.SpoolBytes {
		w.s.spooled.Add(-n)
		return 0, errSpoolFull
	}
	w.reserved.Add(n)
	if w.sinceCheck += n; w.sinceCheck >= spaceCheckBytes {
		w.sinceCheck = 0
		if sp, err := w.s.space(); err == nil && (sp.ReadOnly || sp.Free < uint64(w.s.cfg.MinFreeBytes)) {
			return 0, errLowSpace
		}
	}
	return w.up.Write(p)
}

func (f *incoming) fail(code int, format string, args ...any) {
	f.res.Status, f.res.Error, f.done = code, fmt.Sprintf(format, args...), true
	if f.up != nil {
		f.up.Abort()
	}
}

// store validates the content and creates the document.
// A duplicate is only a document with the same content and tags that the caller can see, so
// nobody learns from an upload that a document they cannot see exists.
func (s *Server) store(ctx context.Context, f *incoming, tags []string, p auth.Principal) {
	vctx, cancel := context.WithTimeout(ctx, s.cfg.ValidateTimeout)
	err := s.d.Validator.Validate(vctx, f.typ, f.up, f.up.Size())
	cancel()
	if err != nil {
		f.fail(parseErrorCode(err), "%v", err)
		return
	}
	d, err := s.d.Store.Create(ctx, f.up, store.NewDocument{Name: f.res.File, Type: string(f.typ), Tags: tags, Owner: p.Name,
		MaxQueued: s.cfg.MaxQueued, CanSee: p.CanSee})
	f.done = true
	var dup *store.DuplicateError
	switch {
	case err == nil:
		v := view(d)
		f.res.Status, f.res.ID, f.res.Document = http.StatusAccepted, d.ID, &v
	case errors.As(err, &dup):
		f.res.Status, f.res.ExistingID, f.res.Error = http.StatusConflict, dup.ID, "same content as document "+dup.ID
	case errors.Is(err, store.ErrQueueFull):
		f.res.Status, f.res.Error = http.StatusServiceUnavailable, fmt.Sprintf("ingest queue is full (%d documents); retry later", s.cfg.MaxQueued)
	case store.IsNoSpace(err), store.IsReadOnly(err), store.IsIOError(err):
		s.log.Error("Failed to store an upload", "file", f.res.File, "error", err)
		f.res.Status, f.res.Error = http.StatusInsufficientStorage, storageSentence(err)
	case store.IsUnavailable(err):
		s.log.Error("Document store unreachable", "file", f.res.File, "error", err)
		f.res.Status, f.res.Error = http.StatusServiceUnavailable, storeUnavailableSentence
	default:
		s.log.Error("Failed to store an upload", "file", f.res.File, "error", err)
		f.res.Status, f.res.Error = http.StatusInternalServerError, "internal error"
	}
}

func parseErrorCode(err error) int {
	switch {
	case errors.Is(err, parse.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, parse.ErrUnsupported), errors.Is(err, parse.ErrMismatch):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, parse.ErrMalformed), errors.Is(err, parse.ErrNoText):
		return http.StatusUnprocessableEntity
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusUnprocessableEntity
}

// overall is the response status: 202 when any file was accepted (each file has its own
// status), else the files' common status, else 400.
func overall(files []FileResult) int {
	code := 0
	for _, f := range files {
		switch {
		case f.Status == http.StatusAccepted:
			return http.StatusAccepted
		case code == 0:
			code = f.Status
		case code != f.Status:
			code = http.StatusBadRequest
		}
	}
	return code
}
