package parse

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/parse/testdocs"
)

var (
	sharedOnce   sync.Once
	sharedParser *Parser
)

// parser is shared so the PDF engine compiles once per test binary.
func parser(t *testing.T) *Parser {
	t.Helper()
	sharedOnce.Do(func() {
		sharedParser = New(Options{PDFInstances: 2, PDFCacheDir: cacheDir()})
	})
	return sharedParser
}

func cacheDir() string {
	// A stable directory keeps PDFium's compiled code between test runs on the same machine.
	return "/tmp/rag-operator-test-wazero-cache"
}

func parseBytes(t *testing.T, p *Parser, typ Type, data []byte) (Document, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Validate(ctx, typ, bytes.NewReader(data), int64(len(data))); err != nil {
		return Document{}, err
	}
	return p.Parse(ctx, typ, bytes.NewReader(data), int64(len(data)))
}

func TestTypeOf(t *testing.T) {
	for name, want := range map[string]Type{"a.TXT": TXT, "b.markdown": MD, "c.htm": HTML, "d.csv": CSV, "e.pdf": PDF, "f.Docx": DOCX} {
		if got, err := TypeOf(name); err != nil || got != want {
			t.Errorf("TypeOf(%q) = %q, %v", name, got, err)
		}
	}
	for _, name := range []string{"x.exe", "noext", "a.pdf.zip", "b.xlsx"} {
		if _, err := TypeOf(name); !errors.Is(err, ErrUnsupported) {
			t.Errorf("TypeOf(%q) err = %v", name, err)
		}
	}
}

func TestText(t *testing.T) {
	p := parser(t)
	d, err := parseBytes(t, p, TXT, []byte("\xef\xbb\xbfHello plain world.\r\nSecond line caf\xe9."))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Text(); got != "Hello plain world.\nSecond line café." {
		t.Fatalf("text = %q", got)
	}
	d, err = parseBytes(t, p, TXT, []byte("page one text\fpage two text"))
	if err != nil || len(d.Sections) != 2 || d.Sections[1].Page != 2 {
		t.Fatalf("form feed pages: %+v %v", d, err)
	}
	// UTF-16 with a BOM.
	d, err = parseBytes(t, p, TXT, []byte{0xFF, 0xFE, 'h', 0, 'i', 0})
	if err != nil || d.Text() != "hi" {
		t.Fatalf("utf16: %q %v", d.Text(), err)
	}
	// Malformed: binary content named .txt; empty file.
	if _, err := parseBytes(t, p, TXT, []byte("ELF\x00\x01\x02binary")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("binary txt: %v", err)
	}
	if _, err := parseBytes(t, p, TXT, nil); !errors.Is(err, ErrNoText) {
		t.Fatalf("empty txt: %v", err)
	}
	if _, err := parseBytes(t, p, TXT, []byte(" \n\t ")); !errors.Is(err, ErrNoText) {
		t.Fatalf("blank txt: %v", err)
	}
}

func TestMarkdown(t *testing.T) {
	md := "# Guide\nintro text\n\n## Install\nrun it\n```\n# not a heading\n```\nSetup\n-----\nsetext body\n"
	d, err := parseBytes(t, parser(t), MD, []byte(md))
	if err != nil {
		t.Fatal(err)
	}
	var heads []string
	for _, s := range d.Sections {
		heads = append(heads, s.Heading)
	}
	if strings.Join(heads, "|") != "Guide|Install|Setup" || d.Title != "Guide" {
		t.Fatalf("headings %q title %q", heads, d.Title)
	}
	if !strings.Contains(d.Sections[1].Text, "# not a heading") {
		t.Fatalf("fenced code lost: %q", d.Sections[1].Text)
	}
	if _, err := parseBytes(t, parser(t), MD, []byte("# x\x00\x00")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("binary md: %v", err)
	}
}

func TestHTML(t *testing.T) {
	d, err := parseBytes(t, parser(t), HTML, testdocs.HTML("The Title", "Big Heading", "Body &amp; more text"))
	if err != nil {
		t.Fatal(err)
	}
	text := d.Text()
	if d.Title != "The Title" || strings.Contains(text, "script text") || strings.Contains(text, "color:red") {
		t.Fatalf("title %q text %q", d.Title, text)
	}
	if !strings.Contains(text, "Body & more text") || !strings.Contains(text, "cell one\tcell two") {
		t.Fatalf("text %q", text)
	}
	last := d.Sections[len(d.Sections)-1]
	if last.Heading != "Big Heading" {
		t.Fatalf("heading %q", last.Heading)
	}
	// Malformed: binary; one text token larger than the tokenizer's buffer.
	if _, err := parseBytes(t, parser(t), HTML, []byte("<html>\x00\x00")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("binary html: %v", err)
	}
	huge := "<html><body><p " + strings.Repeat("a", 5<<20) + "></body></html>"
	if _, err := parseBytes(t, parser(t), HTML, []byte(huge)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("huge token: %v", err)
	}
}

func TestCSV(t *testing.T) {
	d, err := parseBytes(t, parser(t), CSV, []byte("name;city\nAda;London\nAlan;\"Wilmslow, UK\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Text(); got != "name: Ada; city: London\nname: Alan; city: Wilmslow, UK" {
		t.Fatalf("text %q", got)
	}
	if _, err := parseBytes(t, parser(t), CSV, []byte("a,b\n1,\"unterminated\n")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad csv: %v", err)
	}
}

func TestDOCX(t *testing.T) {
	data := testdocs.DOCX(
		testdocs.Paragraph{Style: "Title", Text: "Quarterly Report"},
		testdocs.Paragraph{Text: "Intro paragraph with <angle> & ampersand."},
		testdocs.Paragraph{Style: "Heading1", Text: "Results"},
		testdocs.Paragraph{Text: "Revenue grew by ten percent."},
	)
	d, err := parseBytes(t, parser(t), DOCX, data)
	if err != nil {
		t.Fatal(err)
	}
	if d.Title != "Quarterly Report" || len(d.Sections) != 2 || d.Sections[1].Heading != "Results" {
		t.Fatalf("doc %+v", d)
	}
	if !strings.Contains(d.Text(), "Intro paragraph with <angle> & ampersand.") || !strings.Contains(d.Text(), "Revenue grew by ten percent.") {
		t.Fatalf("text %q", d.Text())
	}
	// Malformed: not a zip; a zip that is not a docx; broken XML.
	if _, err := parseBytes(t, parser(t), DOCX, []byte("PK\x03\x04garbage")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad zip: %v", err)
	}
	if _, err := parseBytes(t, parser(t), DOCX, []byte("plain text")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("not zip: %v", err)
	}
	if _, err := parseBytes(t, parser(t), DOCX, testdocs.Zip(map[string]string{"a.txt": "x"})); !errors.Is(err, ErrMismatch) {
		t.Fatalf("zip without document.xml: %v", err)
	}
	if _, err := parseBytes(t, parser(t), DOCX, testdocs.Zip(map[string]string{"word/document.xml": "<w:document><w:body><w:p>"})); !errors.Is(err, ErrMalformed) {
		t.Fatalf("broken xml: %v", err)
	}
}

func TestDOCXBombs(t *testing.T) {
	l := DefaultLimits()
	l.MaxZipEntryBytes = 1 << 20
	p := New(Options{Limits: l})
	// Declared size over the limit: refused from the directory, nothing inflated.
	bomb := testdocs.DOCXBomb(8<<20, false)
	if len(bomb) > 64<<10 {
		t.Fatalf("bomb is %d bytes compressed", len(bomb))
	}
	if err := p.Validate(context.Background(), DOCX, bytes.NewReader(bomb), int64(len(bomb))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("declared bomb: %v", err)
	}
	// Headers that lie (1 KiB declared): the inflated stream is cut at the limit.
	liar := testdocs.DOCXBomb(8<<20, true)
	_, err := p.Parse(context.Background(), DOCX, bytes.NewReader(liar), int64(len(liar)))
	if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed) {
		t.Fatalf("lying bomb: %v", err)
	}
	// Ratio: a 2 MiB entry that compresses 1000× is refused even under the size limit.
	l = DefaultLimits()
	p = New(Options{Limits: l})
	ratio := testdocs.DOCXBomb(2<<20, false)
	if err := p.Validate(context.Background(), DOCX, bytes.NewReader(ratio), int64(len(ratio))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ratio bomb: %v", err)
	}
	// Too many entries.
	many := map[string]string{}
	for i := 0; i < 50; i++ {
		many[strings.Repeat("x", i+1)] = "y"
	}
	l.MaxZipEntries = 10
	p = New(Options{Limits: l})
	z := testdocs.Zip(many)
	if err := p.Validate(context.Background(), DOCX, bytes.NewReader(z), int64(len(z))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("entry count: %v", err)
	}
}

func TestPDF(t *testing.T) {
	if testing.Short() {
		t.Skip("PDF engine compiles for seconds")
	}
	p := parser(t)
	data := testdocs.PDF("Annual report (2025)\nThe first page talks about revenue.", "Second page: costs and outlook.")
	d, err := parseBytes(t, p, PDF, data)
	if err != nil {
		t.Fatal(err)
	}
	if d.Pages != 2 || len(d.Sections) != 2 || d.Sections[1].Page != 2 {
		t.Fatalf("doc %+v", d)
	}
	if !strings.Contains(d.Sections[0].Text, "Annual report (2025)") || !strings.Contains(d.Sections[1].Text, "costs and outlook") {
		t.Fatalf("text %q", d.Text())
	}
	// Malformed: header only; garbage after a header; not a PDF at all; truncated.
	for name, bad := range map[string][]byte{
		"header only": []byte("%PDF-1.7\n"),
		"garbage":     append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1000)...),
		"truncated":   data[:40],
	} {
		if _, err := parseBytes(t, p, PDF, bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := parseBytes(t, p, PDF, []byte("just text")); !errors.Is(err, ErrMismatch) {
		t.Errorf("not a pdf: %v", err)
	}
	// A page without text: no text layer.
	if _, err := parseBytes(t, p, PDF, testdocs.PDF("")); !errors.Is(err, ErrNoText) {
		t.Errorf("empty page: %v", err)
	}
	// Concurrent use is bounded, not broken.
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := parseBytes(t, p, PDF, data)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A cancelled context stops the work.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Parse(ctx, PDF, bytes.NewReader(data), int64(len(data))); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestRecoverTurnsPanicIntoError(t *testing.T) {
	err := func() (err error) {
		defer recoverInto(&err)
		var m map[string]int
		m["x"] = 1 // panics
		return nil
	}()
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
}
