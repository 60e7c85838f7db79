package parse

import (
	"archive/zip"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// openDocx opens the archive and finds word/document.xml, refusing archives whose entry count,
// declared sizes or compression ratios say "decompression bomb" before anything is inflated.
func openDocx(r io.ReaderAt, size int64, l Limits) (*zip.File, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: docx is not a readable zip archive: %v", ErrMalformed, err)
	}
	if len(zr.File) > l.MaxZipEntries {
		return nil, fmt.Errorf("%w: docx has %d entries (limit %d)", ErrTooLarge, len(zr.File), l.MaxZipEntries)
	}
	var total uint64
	var doc *zip.File
	for _, f := range zr.File {
		total += f.UncompressedSize64
		if f.UncompressedSize64 > uint64(l.MaxZipEntryBytes) {
			return nil, fmt.Errorf("%w: docx entry %q inflates to %d bytes (limit %d)", ErrTooLarge, f.Name, f.UncompressedSize64, l.MaxZipEntryBytes)
		}
		if f.UncompressedSize64 > 1<<20 && f.UncompressedSize64/max(f.CompressedSize64, 1) > uint64(l.MaxZipRatio) {
			return nil, fmt.Errorf("%w: docx entry %q has compression ratio above %d", ErrTooLarge, f.Name, l.MaxZipRatio)
		}
		if f.Name == "word/document.xml" {
			doc = f
		}
	}
	if total > uint64(l.MaxZipTotalBytes) {
		return nil, fmt.Errorf("%w: docx inflates to %d bytes (limit %d)", ErrTooLarge, total, l.MaxZipTotalBytes)
	}
	if doc == nil {
		return nil, fmt.Errorf("%w: zip archive without word/document.xml is not a docx", ErrMismatch)
	}
	return doc, nil
}

// parseDocx reads the body paragraphs of word/document.xml. Paragraphs styled as headings
// (Heading1…, Title, or with an outline level) start sections. The declared sizes are not
// trusted: the inflated stream is read through a limit too.
func parseDocx(r io.ReaderAt, size int64, l Limits) (Document, error) {
	f, err := openDocx(r, size, l)
	if err != nil {
		return Document{}, err
	}
	rc, err := f.Open()
	if err != nil {
		return Document{}, fmt.Errorf("%w: docx: %v", ErrMalformed, err)
	}
	defer rc.Close()
	lr := &limitedReader{r: rc, n: l.MaxZipEntryBytes}
	dec := xml.NewDecoder(lr)
	dec.Strict = true

	var d Document
	cur := Section{}
	var body, para strings.Builder
	isHeading, inT := false, false
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, errLimit) {
				return Document{}, fmt.Errorf("%w: docx document.xml inflates beyond %d bytes", ErrTooLarge, l.MaxZipEntryBytes)
			}
			return Document{}, fmt.Errorf("%w: docx document.xml: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > 256 {
				return Document{}, fmt.Errorf("%w: docx XML nested deeper than 256", ErrMalformed)
			}
			switch t.Name.Local {
			case "t":
				inT = true
			case "p":
				para.Reset()
				isHeading = false
			case "pStyle":
				v := strings.ToLower(attr(t, "val"))
				if strings.HasPrefix(v, "heading") || v == "title" || strings.Contains(v, "berschrift") || strings.HasPrefix(v, "titre") {
					isHeading = true
				}
			case "outlineLvl":
				isHeading = true
			case "tab":
				para.WriteString("\t")
			case "br", "cr":
				para.WriteString("\n")
			}
		case xml.EndElement:
			depth--
			switch t.Name.Local {
			case "t":
				inT = false
			case "p":
				text := para.String()
				if isHeading && strings.TrimSpace(text) != "" {
					cur.Text = body.String()
					d.Sections = append(d.Sections, cur)
					body.Reset()
					cur = Section{Heading: text}
					if d.Title == "" {
						d.Title = text
					}
				}
				body.WriteString(text)
				body.WriteString("\n")
				if int64(body.Len()) > l.MaxTextBytes {
					return Document{}, fmt.Errorf("%w: docx text exceeds %d bytes", ErrTooLarge, l.MaxTextBytes)
				}
			case "tc":
				body.WriteString("\t")
			}
		case xml.CharData:
			// Only w:t carries document text (deleted text and field codes have their own
			// elements); character data elsewhere is formatting white space.
			if inT {
				para.Write(t)
			}
		}
	}
	cur.Text = body.String()
	d.Sections = append(d.Sections, cur)
	return d, nil
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
