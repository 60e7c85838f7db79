package parse

import (
	"archive/zip"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// A docx is a zip of XML parts. The text a reader sees lives in several of them: the main
// document (body, tables, text boxes), footnotes, endnotes, comments, headers and footers.
// Parts are found through the package relationships (_rels/.rels names the main part, its own
// .rels the others), falling back to the usual names when a relationship file is missing.

// docxArchive is an opened docx: the main part and the parts that carry more text.
type docxArchive struct {
	main  *zip.File
	files map[string]*zip.File // by lower-cased name: OPC part names are case-insensitive
	l     Limits
	read  int64 // inflated bytes read so far, across parts
}

// openDocx opens the archive and finds the main document part, refusing archives whose entry
// count, declared sizes or compression ratios say "decompression bomb" before anything is
// inflated.
func openDocx(r io.ReaderAt, size int64, l Limits) (*docxArchive, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: docx is not a readable zip archive: %v", ErrMalformed, err)
	}
	if len(zr.File) > l.MaxZipEntries {
		return nil, fmt.Errorf("%w: docx has %d entries (limit %d)", ErrTooLarge, len(zr.File), l.MaxZipEntries)
	}
	a := &docxArchive{files: make(map[string]*zip.File, len(zr.File)), l: l}
	var total uint64
	for _, f := range zr.File {
		total += f.UncompressedSize64
		if f.UncompressedSize64 > uint64(l.MaxZipEntryBytes) {
			return nil, fmt.Errorf("%w: docx entry %q inflates to %d bytes (limit %d)", ErrTooLarge, f.Name, f.UncompressedSize64, l.MaxZipEntryBytes)
		}
		if f.UncompressedSize64 > 1<<20 && f.UncompressedSize64/max(f.CompressedSize64, 1) > uint64(l.MaxZipRatio) {
			return nil, fmt.Errorf("%w: docx entry %q has compression ratio above %d", ErrTooLarge, f.Name, l.MaxZipRatio)
		}
		a.files[strings.ToLower(strings.TrimPrefix(f.Name, "/"))] = f
	}
	if total > uint64(l.MaxZipTotalBytes) {
		return nil, fmt.Errorf("%w: docx inflates to %d bytes (limit %d)", ErrTooLarge, total, l.MaxZipTotalBytes)
	}
	main := "word/document.xml"
	if rels, err := a.rels(""); err != nil {
		return nil, err
	} else if t := rels.first("/officeDocument"); t != "" {
		main = t
	}
	if a.main = a.files[main]; a.main == nil {
		a.main = a.files["word/document.xml"] // a stale relationship: try the usual name
	}
	if a.main == nil {
		return nil, fmt.Errorf("%w: zip archive without word/document.xml is not a docx", ErrMismatch)
	}
	return a, nil
}

// open inflates one part through the per-entry limit and the archive's total budget: the
// declared sizes are not trusted.
func (a *docxArchive) open(f *zip.File) (io.ReadCloser, *limitedReader, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: docx %s: %v", ErrMalformed, f.Name, err)
	}
	return rc, &limitedReader{r: rc, n: min(a.l.MaxZipEntryBytes, max(a.l.MaxZipTotalBytes-a.read, 0))}, nil
}

func (a *docxArchive) limitErr(f *zip.File, err error) error {
	if errors.Is(err, errLimit) {
		return fmt.Errorf("%w: docx %s inflates beyond %d bytes (or the archive beyond %d)", ErrTooLarge, f.Name, a.l.MaxZipEntryBytes, a.l.MaxZipTotalBytes)
	}
	return fmt.Errorf("%w: docx %s: %v", ErrMalformed, f.Name, err)
}

type relationships struct {
	dir  string // directory of the source part, targets are relative to it
	List []struct {
		Type       string `xml:"Type,attr"`
		Target     string `xml:"Target,attr"`
		TargetMode string `xml:"TargetMode,attr"`
	} `xml:"Relationship"`
}

// targets returns the part names of internal relationships whose type ends with suffix
// (".../relationships/footnotes"; strict OOXML has another prefix), in name order.
func (r relationships) targets(suffix string) []string {
	var out []string
	for _, rel := range r.List {
		if !strings.HasSuffix(rel.Type, suffix) || strings.EqualFold(rel.TargetMode, "External") || rel.Target == "" {
			continue
		}
		var name string
		if strings.HasPrefix(rel.Target, "/") {
			name = path.Clean(rel.Target[1:])
		} else {
			name = path.Join(r.dir, rel.Target)
		}
		if name = strings.ToLower(name); !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func (r relationships) first(suffix string) string {
	if t := r.targets(suffix); len(t) > 0 {
		return t[0]
	}
	return ""
}

// rels reads the relationships of a part ("" for the package's own): none when the file is
// missing.
func (a *docxArchive) rels(part string) (relationships, error) {
	dir, base := path.Split(part)
	r := relationships{dir: strings.TrimSuffix(dir, "/")}
	f := a.files[strings.ToLower(dir+"_rels/"+base+".rels")]
	if f == nil {
		return r, nil
	}
	rc, lr, err := a.open(f)
	if err != nil {
		return r, err
	}
	defer rc.Close()
	budget := lr.n
	defer func() { a.read += budget - lr.n }()
	if err := xml.NewDecoder(lr).Decode(&r); err != nil {
		return r, a.limitErr(f, err)
	}
	return r, nil
}

// docxExtras are the parts besides the body that carry text, in the order their sections follow
// the body's.
var docxExtras = []struct {
	rel, heading, pattern string // relationship type suffix, section heading, fallback names
}{
	{"/footnotes", "Footnotes", "footnotes*.xml"},
	{"/endnotes", "Endnotes", "endnotes*.xml"},
	{"/comments", "Comments", "comments.xml"},
	{"/header", "Headers", "header*.xml"},
	{"/footer", "Footers", "footer*.xml"},
}

// parseDocx extracts the text of the body, with sections started by paragraphs styled as
// headings (Heading1…, Title, or with an outline level), then of footnotes, endnotes,
// comments, headers and footers, each kind a section under its own heading. Text boxes are
// read where they are anchored; of an mc:AlternateContent only the first choice is read (its
// Fallback repeats the same text for older readers). Identical headers or footers (one per
// section of the document, first page, even pages) are read once.
func parseDocx(r io.ReaderAt, size int64, l Limits) (Document, error) {
	a, err := openDocx(r, size, l)
	if err != nil {
		return Document{}, err
	}
	var d Document
	text := int64(0)
	secs, title, err := a.part(a.main, true, &text)
	if err != nil {
		return Document{}, err
	}
	d.Title, d.Sections = title, secs
	mainName := strings.ToLower(a.main.Name)
	rels, err := a.rels(mainName)
	if err != nil {
		return Document{}, err
	}
	for _, x := range docxExtras {
		names := rels.targets(x.rel)
		if len(rels.List) == 0 { // no relationships: look for the usual names beside the main part
			for name := range a.files {
				if ok, _ := path.Match(path.Join(rels.dir, x.pattern), name); ok {
					names = append(names, name)
				}
			}
			slices.Sort(names)
		}
		var body strings.Builder
		var seen []string
		for _, name := range names {
			f := a.files[name]
			if f == nil || f == a.main {
				continue
			}
			secs, _, err := a.part(f, false, &text)
			if err != nil {
				return Document{}, err
			}
			var t strings.Builder
			for _, s := range secs {
				t.WriteString(s.Text)
			}
			s := strings.TrimSpace(t.String())
			if s == "" || slices.Contains(seen, s) {
				continue
			}
			seen = append(seen, s)
			body.WriteString(s)
			body.WriteString("\n")
		}
		if body.Len() > 0 {
			d.Sections = append(d.Sections, Section{Heading: x.heading, Text: body.String()})
		}
	}
	return d, nil
}

// part reads the paragraphs of one XML part. With headings, paragraphs styled as headings start
// sections; without, the part is one section. text counts the bytes extracted from every part.
func (a *docxArchive) part(f *zip.File, headings bool, text *int64) ([]Section, string, error) {
	rc, lr, err := a.open(f)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	budget := lr.n
	defer func() { a.read += budget - lr.n }()
	dec := xml.NewDecoder(lr)
	dec.Strict = true

	var secs []Section
	var title string
	cur := Section{}
	var body strings.Builder
	// Paragraphs nest: a text box's paragraphs sit inside the paragraph that anchors it.
	// Their text follows the anchoring paragraph's, in its section.
	type para struct {
		b, boxes strings.Builder
		heading  bool
	}
	var paras []*para
	var alt []bool // per open mc:AlternateContent: a branch was read
	inT := false
	depth := 0
	write := func(s string) error {
		body.WriteString(s)
		if *text += int64(len(s)); *text > a.l.MaxTextBytes {
			return fmt.Errorf("%w: docx text exceeds %d bytes", ErrTooLarge, a.l.MaxTextBytes)
		}
		return nil
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, "", a.limitErr(f, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local == "Choice" || t.Name.Local == "Fallback" {
				if n := len(alt); n > 0 {
					if alt[n-1] {
						if err := dec.Skip(); err != nil {
							return nil, "", a.limitErr(f, err)
						}
						continue
					}
					alt[n-1] = true
				}
			}
			depth++
			if depth > 256 {
				return nil, "", fmt.Errorf("%w: docx XML nested deeper than 256", ErrMalformed)
			}
			var top *para
			if len(paras) > 0 {
				top = paras[len(paras)-1]
			}
			switch t.Name.Local {
			case "AlternateContent":
				alt = append(alt, false)
			case "t":
				inT = true
			case "p":
				paras = append(paras, &para{})
			case "pStyle":
				v := strings.ToLower(attr(t, "val"))
				if top != nil && (strings.HasPrefix(v, "heading") || v == "title" || strings.Contains(v, "berschrift") || strings.HasPrefix(v, "titre")) {
					top.heading = true
				}
			case "outlineLvl":
				if top != nil {
					top.heading = true
				}
			case "tab":
				if top != nil {
					top.b.WriteString("\t")
				}
			case "br", "cr":
				if top != nil {
					top.b.WriteString("\n")
				}
			case "noBreakHyphen":
				if top != nil {
					top.b.WriteString("-")
				}
			}
		case xml.EndElement:
			depth--
			switch t.Name.Local {
			case "AlternateContent":
				if len(alt) > 0 {
					alt = alt[:len(alt)-1]
				}
			case "t":
				inT = false
			case "p":
				if len(paras) == 0 {
					break
				}
				p := paras[len(paras)-1]
				paras = paras[:len(paras)-1]
				s := p.b.String()
				if len(paras) > 0 { // in a text box: kept for after the anchoring paragraph
					parent := &paras[len(paras)-1].boxes
					parent.WriteString(s + "\n")
					parent.WriteString(p.boxes.String())
					if int64(parent.Len()) > a.l.MaxTextBytes {
						return nil, "", fmt.Errorf("%w: docx text exceeds %d bytes", ErrTooLarge, a.l.MaxTextBytes)
					}
					break
				}
				if headings && p.heading && strings.TrimSpace(s) != "" {
					cur.Text = body.String()
					secs = append(secs, cur)
					body.Reset()
					cur = Section{Heading: s}
					if title == "" {
						title = s
					}
				}
				if err := write(s + "\n" + p.boxes.String()); err != nil {
					return nil, "", err
				}
			case "tc":
				if err := write("\t"); err != nil {
					return nil, "", err
				}
			}
		case xml.CharData:
			// Only w:t carries document text (deleted text and field codes have their own
			// elements); character data elsewhere is formatting white space.
			if !inT {
				break
			}
			if len(paras) > 0 {
				paras[len(paras)-1].b.Write(t)
			} else if err := write(string(t)); err != nil {
				return nil, "", err
			}
		}
	}
	cur.Text = body.String()
	secs = append(secs, cur)
	return secs, title, nil
}

func attr(e xml.StartElement, local string) string {
	for _, a := range e.Attr {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

var errLimit = errors.New("read limit reached")

// limitedReader fails (rather than ending quietly, as io.LimitReader does) past n bytes, so a
// truncated bomb is an error and not a silently shortened document.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errLimit
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
