package parse

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// parseText: plain text is one section; a form feed starts a new page, as printers and
// pdftotext write them.
func parseText(text string) Document {
	pages := strings.Split(text, "\f")
	if len(pages) == 1 {
		return Document{Sections: []Section{{Text: text}}}
	}
	d := Document{Pages: len(pages)}
	for i, p := range pages {
		d.Sections = append(d.Sections, Section{Page: i + 1, Text: p})
	}
	return d
}

// parseMarkdown splits at ATX (#) and setext (===, ---) headings outside fenced code. The text
// keeps its markdown: embedding models read it well and citations show it as written.
func parseMarkdown(text string) Document {
	var d Document
	cur := Section{}
	var body []string
	flush := func() {
		cur.Text = strings.Join(body, "\n")
		d.Sections = append(d.Sections, cur)
		body = nil
	}
	lines := strings.Split(text, "\n")
	fence := ""
	for i := 0; i < len(lines); i++ {
		line := strings.TrimRight(lines[i], "\r")
		trim := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trim, fence) {
				fence = ""
			}
			body = append(body, line)
			continue
		}
		if strings.HasPrefix(trim, "```") || strings.HasPrefix(trim, "~~~") {
			fence = trim[:3]
			body = append(body, line)
			continue
		}
		if h, ok := atxHeading(trim); ok {
			flush()
			cur = Section{Heading: h}
			if d.Title == "" && strings.HasPrefix(trim, "# ") {
				d.Title = h
			}
			body = append(body, line)
			continue
		}
		if i+1 < len(lines) && trim != "" && !strings.HasPrefix(trim, "-") {
			next := strings.TrimSpace(lines[i+1])
			if len(next) >= 2 && (strings.Trim(next, "=") == "" || strings.Trim(next, "-") == "") {
				flush()
				cur = Section{Heading: trim}
				body = append(body, line, lines[i+1])
				i++
				continue
			}
		}
		body = append(body, line)
	}
	flush()
	return d
}

func atxHeading(line string) (string, bool) {
	n := 0
	for n < len(line) && line[n] == '#' {
		n++
	}
	if n == 0 || n > 6 || (n < len(line) && line[n] != ' ' && line[n] != '\t') {
		return "", false
	}
	h := strings.TrimSpace(strings.TrimRight(strings.TrimSpace(line[n:]), "#"))
	return h, h != ""
}

// parseCSV turns each row into "header: value; header: value" so a chunk of rows still says
// what each value is. The delimiter is guessed from the first line (comma, semicolon, tab, |).
func parseCSV(text string, maxBytes int64) (Document, error) {
	first, _, _ := strings.Cut(text, "\n")
	r := csv.NewReader(strings.NewReader(text))
	r.Comma = ','
	best := strings.Count(first, ",")
	for _, c := range []rune{';', '\t', '|'} {
		if n := strings.Count(first, string(c)); n > best {
			best, r.Comma = n, c
		}
	}
	r.FieldsPerRecord = -1 // ragged rows are common and harmless
	// Quotes are strict: a stray quote usually means the file is not the CSV it claims to be,
	// and lazy quoting would silently fold the rest of the file into one field.
	var header []string
	var b strings.Builder
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return Document{}, fmt.Errorf("%w: csv line %d: %v", ErrMalformed, pe.Line, pe.Err)
			}
			return Document{}, err
		}
		if header == nil {
			header = rec
			continue
		}
		parts := make([]string, 0, len(rec))
		for i, v := range rec {
			v = strings.TrimSpace(v)
			if v == "" {
				continue
			}
			if i < len(header) && strings.TrimSpace(header[i]) != "" {
				parts = append(parts, strings.TrimSpace(header[i])+": "+v)
			} else {
				parts = append(parts, v)
			}
		}
		if len(parts) > 0 {
			b.WriteString(strings.Join(parts, "; "))
			b.WriteString("\n")
		}
		if int64(b.Len()) > maxBytes {
			return Document{}, fmt.Errorf("%w: csv text exceeds %d bytes", ErrTooLarge, maxBytes)
		}
	}
	if header != nil && b.Len() == 0 { // a single line: keep it as text
		b.WriteString(strings.Join(header, "; "))
	}
	return Document{Sections: []Section{{Text: b.String()}}}, nil
}

// parseHTML keeps visible text: script, style and similar are skipped, block elements end
// lines, h1-h6 start sections, <title> is the title.
func parseHTML(text string, maxBytes int64) (Document, error) {
	z := html.NewTokenizer(strings.NewReader(text))
	z.SetMaxBuf(4 << 20) // one token (a huge attribute or text node) may not hold more
	var d Document
	cur := Section{}
	var body, heading strings.Builder
	inHeading, inTitle, pre := 0, false, 0
	skip := 0
	flush := func() {
		cur.Text = body.String()
		d.Sections = append(d.Sections, cur)
		body.Reset()
	}
	newline := func() {
		if body.Len() > 0 && !strings.HasSuffix(body.String(), "\n") {
			body.WriteString("\n")
		}
	}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if z.Err() == io.EOF {
				flush()
				return d, nil
			}
			return Document{}, fmt.Errorf("%w: html: %v", ErrMalformed, z.Err())
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			end := tt == html.EndTagToken
			switch a {
			case atom.Script, atom.Style, atom.Noscript, atom.Template, atom.Svg, atom.Iframe, atom.Object, atom.Head:
				if tt == html.SelfClosingTagToken {
					continue
				}
				if a == atom.Head {
					continue // <head> itself is not skipped: its <title> is read
				}
				if end {
					skip = max(skip-1, 0)
				} else {
					skip++
				}
				continue
			case atom.Title:
				inTitle = !end
				continue
			case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
				if !end {
					flush()
					cur = Section{}
					heading.Reset()
					inHeading++
				} else if inHeading > 0 {
					inHeading--
					cur.Heading = heading.String()
				}
				newline()
				continue
			case atom.Pre:
				if end {
					pre = max(pre-1, 0)
				} else {
					pre++
				}
			case atom.Td, atom.Th:
				if end {
					body.WriteString("\t")
				}
				continue
			}
			if blockAtoms[a] {
				newline()
			}
		case html.TextToken:
			if skip > 0 {
				continue
			}
			t := string(z.Text())
			if inTitle {
				d.Title += t
				continue
			}
			if pre == 0 {
				t = collapseSpace(t)
				if t == " " && (body.Len() == 0 || strings.HasSuffix(body.String(), "\n")) {
					continue
				}
			}
			body.WriteString(t)
			if inHeading > 0 {
				heading.WriteString(t)
			}
			if int64(body.Len()) > maxBytes {
				return Document{}, fmt.Errorf("%w: html text exceeds %d bytes", ErrTooLarge, maxBytes)
			}
		}
	}
}

var blockAtoms = map[atom.Atom]bool{
	atom.P: true, atom.Div: true, atom.Br: true, atom.Li: true, atom.Tr: true, atom.Table: true,
	atom.Ul: true, atom.Ol: true, atom.Section: true, atom.Article: true, atom.Header: true,
	atom.Footer: true, atom.Blockquote: true, atom.Pre: true, atom.Hr: true, atom.Dt: true,
	atom.Dd: true, atom.Main: true, atom.Nav: true, atom.Aside: true, atom.Figcaption: true,
}

func collapseSpace(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		if s == "" {
			return ""
		}
		return " "
	}
	out := strings.Join(f, " ")
	if strings.TrimLeft(s, " \t\n\r\f") != s {
		out = " " + out
	}
	if strings.TrimRight(s, " \t\n\r\f") != s {
		out += " "
	}
	return out
}
