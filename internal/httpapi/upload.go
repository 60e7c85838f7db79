package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

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

// upload accepts multipart/form-data with one or more file parts (any field name) and an
// optional "tags" field (comma-separated, may repeat). The whole body is read to temporary
// files first, so tags may come before or after the files; only then is each file checked
// and stored. A file is acknowledged (202) only after its bytes are fsynced in place and its
// row committed; a rejected file leaves nothing behind.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be multipart/form-data")
		return
	}
	select {
	case s.uploads <- struct{}{}:
		defer func() { <-s.uploads }()
	default:
		s.busy(w, "too many uploads in progress; retry later")
		return
	}
	// Refuse early, before reading the body, when the queue is already full.
	if depth, err := s.d.Store.QueueDepth(r.Context()); err != nil {
		s.internal(w, err)
		return
	} else if depth >= s.cfg.MaxQueued {
		s.busy(w, "ingest queue is full (%d documents); retry later", s.cfg.MaxQueued)
		return
	}
	// Each file may reach the limit; multipart framing and form fields get some room on top.
	maxBody := int64(s.cfg.MaxFiles)*(s.cfg.MaxFileBytes+16<<10) + 64<<10
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid multipart body: %v", err)
		return
	}
	var files []*incoming
	defer func() {
		for _, f := range files {
			if f.up != nil {
				f.up.Abort() // no-op for stored files
			}
		}
	}()
	var tagValues []string
	tooBig := func(err error) bool {
		var mbe *http.MaxBytesError
		return errors.As(err, &mbe)
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			if tooBig(err) {
				writeError(w, http.StatusRequestEntityTooLarge, "request body larger than %d bytes", maxBody)
			} else {
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
		typ, err := parse.TypeOf(f.res.File)
		if err == nil && !s.allowed[typ] {
			err = fmt.Errorf("%w: .%s is not allowed here", parse.ErrUnsupported, typ)
		}
		if err != nil {
			f.fail(http.StatusUnsupportedMediaType, "%v (allowed: %v)", err, s.cfg.AllowedTypes)
			continue // NextPart skips the rest of this part
		}
		f.typ = typ
		if f.up, err = s.d.Store.NewUpload(s.cfg.MaxFileBytes); err != nil {
			s.internal(w, err)
			return
		}
		if _, err := io.Copy(f.up, part); err != nil {
			switch {
			case tooBig(err):
				writeError(w, http.StatusRequestEntityTooLarge, "request body larger than %d bytes", maxBody)
				return
			case errors.Is(err, store.ErrTooLarge):
				f.fail(http.StatusRequestEntityTooLarge, "file larger than %d bytes", s.cfg.MaxFileBytes)
			default:
				writeError(w, http.StatusBadRequest, "reading %q: %v", f.res.File, err)
				return
			}
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
	p := principal(r)
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
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", fmt.Sprint(int(s.cfg.RetryAfter.Seconds())))
	}
	writeJSON(w, code, resp)
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
