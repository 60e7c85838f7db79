// Package parse extracts text, with pages and headings, from the uploaded formats: txt, md,
// html, csv, pdf (text layer, through PDFium compiled to WebAssembly) and docx.
//
// Every input is hostile until parsed: sizes are bounded, archives are read through limits on
// entry count and inflated size, and a parser panic becomes an error (ErrMalformed), never a
// crash of the server.
package parse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode/utf8"
)

// Type is a supported file type, named by its usual extension.
type Type string

// The supported types.
const (
	TXT  Type = "txt"
	MD   Type = "md"
	HTML Type = "html"
	CSV  Type = "csv"
	PDF  Type = "pdf"
	DOCX Type = "docx"
)

// Supported lists every type the package parses.
var Supported = []Type{TXT, MD, HTML, CSV, PDF, DOCX}

// aliases maps other extensions to their type.
var aliases = map[string]Type{"text": TXT, "markdown": MD, "htm": HTML}

// Errors, wrapped with details. The HTTP layer maps them to status codes.
var (
	// ErrUnsupported: the file's type is not one the server accepts (415).
	ErrUnsupported = errors.New("unsupported file type")
	// ErrMismatch: the content is not what the name says (a .pdf that is not a PDF) (415).
	ErrMismatch = errors.New("content does not match the file type")
	// ErrMalformed: the type is right but the file cannot be read (422).
	ErrMalformed = errors.New("malformed file")
	// ErrTooLarge: the content would inflate beyond the limits (a decompression bomb) (413).
	ErrTooLarge = errors.New("content too large")
	// ErrNoText: the file parsed but holds no text (a scanned PDF without a text layer).
	ErrNoText = errors.New("no text found")
)

// Section is a run of text with one location.
type Section struct {
	Page    int    // 1-based; 0 when the format has no pages
	Heading string // nearest heading; "" when none
	Text    string
}

// Document is what a parser extracts.
type Document struct {
	Title    string
	Pages    int // pages for PDF, 0 otherwise
	Sections []Section
}

// Text is the whole text, sections separated by blank lines.
func (d Document) Text() string {
	var b strings.Builder
	for _, s := range d.Sections {
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(s.Text)
	}
	return b.String()
}

// Limits bound what a parser reads and produces.
type Limits struct {
	// MaxTextBytes caps the extracted text (the chunker and embedder hold it in memory).
	MaxTextBytes int64
	// MaxZipEntries caps the entries of a docx archive.
	MaxZipEntries int
	// MaxZipEntryBytes caps one inflated entry (word/document.xml).
	MaxZipEntryBytes int64
	// MaxZipTotalBytes caps the declared inflated size of all entries together.
	MaxZipTotalBytes int64
	// MaxZipRatio caps an entry's inflated:compressed ratio (XML compresses ~10-30×; bombs 1000×).
	MaxZipRatio int64
	// MaxPDFPages caps the pages read from a PDF.
	MaxPDFPages int
}

// DefaultLimits suit uploads of up to ~100 MB.
func DefaultLimits() Limits {
	return Limits{
		MaxTextBytes:     64 << 20,
		MaxZipEntries:    4096,
		MaxZipEntryBytes: 128 << 20,
		MaxZipTotalBytes: 512 << 20,
		MaxZipRatio:      200,
		MaxPDFPages:      5000,
	}
}

// TypeOf returns the type named by a file name's extension.
func TypeOf(name string) (Type, error) {
	ext := strings.ToLower(strings.TrimPrefix(path.Ext(name), "."))
	if t, ok := aliases[ext]; ok {
		return t, nil
	}
	for _, t := range Supported {
		if string(t) == ext {
			return t, nil
		}
	}
	if ext == "" {
		return "", fmt.Errorf("%w: %q has no extension", ErrUnsupported, name)
	}
	return "", fmt.Errorf("%w: .%s", ErrUnsupported, ext)
}

// Parser parses every supported type. It is safe for concurrent use; PDF work is bounded by
// the PDF engine's instance pool.
type Parser struct {
	limits Limits
	pdf    *pdfEngine
}

// Options configure a Parser.
type Options struct {
	Limits Limits
	// PDFInstances bounds concurrent PDF work (each PDFium instance has its own memory).
	PDFInstances int
	// PDFCacheDir keeps PDFium's compiled machine code between runs (start-up takes seconds
	// without it); "" compiles in memory each time.
	PDFCacheDir string
}

// New returns a Parser. The PDF engine starts on first use (or on WarmUp).
func New(opts Options) *Parser {
	if opts.Limits == (Limits{}) {
		opts.Limits = DefaultLimits()
	}
	if opts.PDFInstances < 1 {
		opts.PDFInstances = 1
	}
	return &Parser{limits: opts.Limits, pdf: newPDFEngine(opts.PDFInstances, opts.PDFCacheDir, opts.Limits.MaxPDFPages)}
}

// WarmUp starts the PDF engine now so the first PDF upload does not wait for it.
func (p *Parser) WarmUp(ctx context.Context) error { return p.pdf.start(ctx) }

// CompilePDFEngine compiles the PDF engine into cacheDir, where a Parser with the same
// PDFCacheDir then loads it in well under a second (about 40 MiB). `rag-server
// pdf-engine-compile` runs it before the server starts (the operator's init container): the
// compile holds about 300 MiB of heap for seconds, which a server compiling for itself keeps
// as resident memory long after.
func CompilePDFEngine(ctx context.Context, cacheDir string) error {
	if cacheDir == "" {
		return errors.New("pdf engine: a cache directory is required")
	}
	e := newPDFEngine(1, cacheDir, DefaultLimits().MaxPDFPages)
	if err := e.start(ctx); err != nil {
		return err
	}
	return e.close()
}

// PDFReady reports whether the PDF engine is compiled and ready (WarmUp or a first PDF done).
func (p *Parser) PDFReady() bool { return p.pdf.ready() }

// Close releases the PDF engine.
func (p *Parser) Close() error { return p.pdf.close() }

// Validate checks, cheaply, that the content is what its type says and within limits, so an
// upload can be refused with a clear error before it is stored. A PDF is opened by PDFium
// (which takes milliseconds); other types are checked by their structure only.
func (p *Parser) Validate(ctx context.Context, t Type, r io.ReaderAt, size int64) (err error) {
	defer recoverInto(&err)
	head := make([]byte, min(size, 8192))
	if _, err := r.ReadAt(head, 0); err != nil && err != io.EOF {
		return err
	}
	switch t {
	case TXT, MD, CSV, HTML:
		if size == 0 {
			return fmt.Errorf("%w: empty file", ErrNoText)
		}
		if bytes.IndexByte(head, 0) >= 0 && !utf16BOM(head) {
			return fmt.Errorf("%w: binary content in a .%s file", ErrMismatch, t)
		}
		return nil
	case PDF:
		if !bytes.Contains(head[:min(len(head), 1024)], []byte("%PDF-")) {
			return fmt.Errorf("%w: no %%PDF header", ErrMismatch)
		}
		return p.pdf.validate(ctx, r, size)
	case DOCX:
		if !bytes.HasPrefix(head, []byte("PK\x03\x04")) {
			return fmt.Errorf("%w: not a zip archive", ErrMismatch)
		}
		_, err := openDocx(r, size, p.limits)
		return err
	}
	return fmt.Errorf("%w: %s", ErrUnsupported, t)
}

// Parse extracts the document. The context bounds PDF work (a stuck PDFium instance is killed).
func (p *Parser) Parse(ctx context.Context, t Type, r io.ReaderAt, size int64) (doc Document, err error) {
	defer recoverInto(&err)
	switch t {
	case TXT, MD, CSV, HTML:
		data, err := readAllLimited(io.NewSectionReader(r, 0, size), p.limits.MaxTextBytes*4)
		if err != nil {
			return Document{}, err
		}
		text := toUTF8(data)
		switch t {
		case TXT:
			doc = parseText(text)
		case MD:
			doc = parseMarkdown(text)
		case CSV:
			doc, err = parseCSV(text, p.limits.MaxTextBytes)
		case HTML:
			doc, err = parseHTML(text, p.limits.MaxTextBytes)
		}
		if err != nil {
			return Document{}, err
		}
	case PDF:
		doc, err = p.pdf.extract(ctx, r, size, p.limits.MaxTextBytes)
		if err != nil {
			return Document{}, err
		}
	case DOCX:
		doc, err = parseDocx(r, size, p.limits)
		if err != nil {
			return Document{}, err
		}
	default:
		return Document{}, fmt.Errorf("%w: %s", ErrUnsupported, t)
	}
	doc = clean(doc)
	if len(doc.Sections) == 0 {
		if t == PDF {
			return doc, fmt.Errorf("%w: the PDF has no text layer (scanned pages need OCR, which is not supported)", ErrNoText)
		}
		return doc, ErrNoText
	}
	var total int64
	for _, s := range doc.Sections {
		total += int64(len(s.Text))
	}
	if total > p.limits.MaxTextBytes {
		return Document{}, fmt.Errorf("%w: %d bytes of text exceed %d", ErrTooLarge, total, p.limits.MaxTextBytes)
	}
	return doc, nil
}

// recoverInto turns a parser panic into ErrMalformed: a hostile file must not take the
// server down.
func recoverInto(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: parser failed: %v", ErrMalformed, r)
	}
}

func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return data, nil
}

func utf16BOM(b []byte) bool {
	return bytes.HasPrefix(b, []byte{0xFF, 0xFE}) || bytes.HasPrefix(b, []byte{0xFE, 0xFF})
}

// toUTF8 decodes UTF-16 (with a BOM) and drops a UTF-8 BOM; invalid UTF-8 bytes are read as
// Latin-1, the usual encoding of legacy text files.
func toUTF8(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		b = b[3:]
	case utf16BOM(b):
		be := b[0] == 0xFE
		b = b[2:]
		u := make([]rune, 0, len(b)/2)
		for i := 0; i+1 < len(b); i += 2 {
			if be {
				u = append(u, rune(b[i])<<8|rune(b[i+1]))
			} else {
				u = append(u, rune(b[i+1])<<8|rune(b[i]))
			}
		}
		return decodeUTF16(u)
	}
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			sb.WriteRune(rune(b[0]))
		} else {
			sb.WriteRune(r)
		}
		b = b[n:]
	}
	return sb.String()
}

func decodeUTF16(u []rune) string {
	var sb strings.Builder
	for i := 0; i < len(u); i++ {
		r := u[i]
		if r >= 0xD800 && r < 0xDC00 && i+1 < len(u) && u[i+1] >= 0xDC00 && u[i+1] < 0xE000 {
			r = (r-0xD800)<<10 + (u[i+1] - 0xDC00) + 0x10000
			i++
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// clean normalises line ends, drops control characters and empty sections.
func clean(d Document) Document {
	out := d.Sections[:0]
	for _, s := range d.Sections {
		s.Text = cleanText(s.Text)
		s.Heading = strings.Join(strings.Fields(cleanText(s.Heading)), " ")
		if len(s.Heading) > 200 {
			s.Heading = truncateUTF8(s.Heading, 200)
		}
		if strings.TrimSpace(s.Text) != "" {
			out = append(out, s)
		}
	}
	d.Sections = out
	d.Title = strings.Join(strings.Fields(d.Title), " ")
	return d
}

func cleanText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\r' || r == '\f' || r == '\v':
			return '\n'
		case r == '\n' || r == '\t':
			return r
		case r < 0x20 || r == 0x7F || r == utf8.RuneError || r == 0xFEFF:
			return -1
		}
		return r
	}, strings.TrimSpace(s))
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
