package parse

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ragstack/rag-operator/internal/parse/testdocs"
)

// Every part a reader sees text in is extracted, once: the body, a text box (not again from its
// VML fallback), footnotes, endnotes, comments, headers and footers.
func TestDOCXParts(t *testing.T) {
	opts := testdocs.DOCXOptions{
		Body: []testdocs.Paragraph{
			{Style: "Title", Text: "Field notes"},
			{Text: "The body mentions aardvark."},
		},
		TextBox:   "Boxed text about quokka.",
		Footnotes: []string{"A footnote about narwhal.", "Second footnote about okapi."},
		Endnotes:  []string{"An endnote about pangolin."},
		Comments:  []string{"A comment about axolotl."},
		Headers:   []string{"Header about wombat.", "Header about wombat."}, // identical: read once
		Footers:   []string{"Footer about capybara."},
	}
	for _, noRels := range []bool{false, true} {
		opts.NoPartRels = noRels
		d, err := parseBytes(t, parser(t), DOCX, testdocs.DOCXWith(opts))
		if err != nil {
			t.Fatalf("noRels=%v: %v", noRels, err)
		}
		text := d.Text()
		for _, w := range []string{"aardvark", "quokka", "narwhal", "okapi", "pangolin", "axolotl", "wombat", "capybara"} {
			if n := strings.Count(text, w); n != 1 {
				t.Errorf("noRels=%v: %q appears %d times in %q", noRels, w, n, text)
			}
		}
		if d.Title != "Field notes" {
			t.Errorf("title %q", d.Title)
		}
		headings := map[string]string{}
		for _, s := range d.Sections {
			headings[s.Heading] = s.Text
		}
		for h, w := range map[string]string{"Footnotes": "narwhal", "Endnotes": "pangolin", "Comments": "axolotl", "Headers": "wombat", "Footers": "capybara", "Field notes": "quokka"} {
			if !strings.Contains(headings[h], w) {
				t.Errorf("noRels=%v: section %q = %q, want %q in it (sections %+v)", noRels, h, headings[h], w, d.Sections)
			}
		}
	}
}

// A text box anchored inside a paragraph does not cut that paragraph's own text, and an
// AlternateContent with only a Fallback (no Choice) is read from the Fallback.
func TestDOCXNestedParagraphsAndFallbackOnly(t *testing.T) {
	doc := `<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"><w:body>` +
		`<w:p><w:r><w:t>before anchor </w:t></w:r><w:r><w:pict><w:txbxContent><w:p><w:r><w:t>inside box</w:t></w:r></w:p></w:txbxContent></w:pict></w:r><w:r><w:t>after anchor</w:t></w:r></w:p>` +
		`<w:p><w:r><mc:AlternateContent><mc:Fallback><w:t>only fallback</w:t></mc:Fallback></mc:AlternateContent></w:r></w:p>` +
		`</w:body></w:document>`
	d, err := parseBytes(t, parser(t), DOCX, testdocs.Zip(map[string]string{"word/document.xml": doc}))
	if err != nil {
		t.Fatal(err)
	}
	text := d.Text()
	if !strings.Contains(text, "before anchor after anchor") || !strings.Contains(text, "inside box") || !strings.Contains(text, "only fallback") {
		t.Fatalf("text %q", text)
	}
}

// The main part is the one _rels/.rels names (some generators write word/document2.xml), and
// its parts are resolved relative to it.
func TestDOCXMainPartFromRelationships(t *testing.T) {
	w := `xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"`
	z := testdocs.Zip(map[string]string{
		"_rels/.rels":                   `<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="/word/document2.xml"/></Relationships>`,
		"word/document2.xml":            `<w:document ` + w + `><w:body><w:p><w:r><w:t>main body gecko</w:t></w:r></w:p></w:body></w:document>`,
		"word/_rels/document2.xml.rels": `<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/footnotes" Target="footnotes2.xml"/><Relationship Id="rId4" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink" Target="https://example.com/" TargetMode="External"/></Relationships>`,
		"word/footnotes2.xml":           `<w:footnotes ` + w + `><w:footnote w:id="1"><w:p><w:r><w:t>note tapir</w:t></w:r></w:p></w:footnote></w:footnotes>`,
		"word/footnotes.xml":            `<w:footnotes ` + w + `><w:footnote w:id="1"><w:p><w:r><w:t>unreferenced part</w:t></w:r></w:p></w:footnote></w:footnotes>`,
	})
	d, err := parseBytes(t, parser(t), DOCX, z)
	if err != nil {
		t.Fatal(err)
	}
	if text := d.Text(); !strings.Contains(text, "gecko") || !strings.Contains(text, "tapir") || strings.Contains(text, "unreferenced") {
		t.Fatalf("text %q", text)
	}
}

// The limits hold for every part read, not only the main one.
func TestDOCXLimitsCoverEveryPart(t *testing.T) {
	l := DefaultLimits()
	l.MaxTextBytes = 1000
	p := New(Options{Limits: l})
	data := testdocs.DOCXWith(testdocs.DOCXOptions{
		Body:      []testdocs.Paragraph{{Text: "short body"}},
		Footnotes: []string{strings.Repeat("long footnote ", 100)},
	})
	if _, err := p.Parse(context.Background(), DOCX, bytes.NewReader(data), int64(len(data))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("text over the limit in a footnote: %v", err)
	}
	l = DefaultLimits()
	l.MaxZipTotalBytes = 3000 // the archive's parts declare about 2.5 KB: reading them all goes past
	p = New(Options{Limits: l})
	data = testdocs.DOCXWith(testdocs.DOCXOptions{
		Body:    []testdocs.Paragraph{{Text: "body"}},
		Headers: []string{strings.Repeat("h", 1500)},
		Footers: []string{strings.Repeat("f", 1500)},
	})
	if err := p.Validate(context.Background(), DOCX, bytes.NewReader(data), int64(len(data))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("declared total over the limit: %v", err)
	}
}
