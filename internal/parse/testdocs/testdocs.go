// Package testdocs generates small valid and hostile documents of every supported type for
// tests (parsers, HTTP uploads, end-to-end ingest), so no binary fixtures are checked in.
package testdocs

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"fmt"
	"hash/crc32"
	"strings"
)

// PDF writes a minimal PDF 1.4 with one page per string, each drawn in Helvetica, with a
// correct cross-reference table (offsets computed as it is written). Text lines are split on
// "\n". Parentheses and backslashes are escaped.
func PDF(pages ...string) []byte {
	var b bytes.Buffer
	var offsets []int
	obj := func(body string) int {
		offsets = append(offsets, b.Len())
		n := len(offsets)
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", n, body)
		return n
	}
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	// Objects: 1 catalog, 2 pages, 3 font, then (page, content) pairs.
	kids := make([]string, len(pages))
	for i := range pages {
		kids[i] = fmt.Sprintf("%d 0 R", 4+2*i)
	}
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(pages)))
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	esc := strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`)
	for i, text := range pages {
		var cs strings.Builder
		cs.WriteString("BT /F1 11 Tf 14 TL 50 780 Td\n")
		for _, line := range strings.Split(text, "\n") {
			fmt.Fprintf(&cs, "(%s) Tj T*\n", esc.Replace(line))
		}
		cs.WriteString("ET")
		obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", 5+2*i))
		obj(fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", cs.Len()+0, cs.String()))
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, o := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	return b.Bytes()
}

// Paragraph is one docx paragraph; Style "Heading1", "Title" … or "" for body text.
type Paragraph struct {
	Style string
	Text  string
}

// DOCX writes a minimal Word document (a zip of XML parts) with the paragraphs.
func DOCX(paras ...Paragraph) []byte {
	var body strings.Builder
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	for _, p := range paras {
		body.WriteString("<w:p>")
		if p.Style != "" {
			fmt.Fprintf(&body, `<w:pPr><w:pStyle w:val="%s"/></w:pPr>`, p.Style)
		}
		// Split the text into two runs, as Word does, to exercise run joining.
		half := len(p.Text) / 2
		for half > 0 && half < len(p.Text) && p.Text[half] != ' ' {
			half++
		}
		fmt.Fprintf(&body, `<w:r><w:t xml:space="preserve">%s</w:t></w:r><w:r><w:t xml:space="preserve">%s</w:t></w:r>`,
			esc.Replace(p.Text[:half]), esc.Replace(p.Text[half:]))
		body.WriteString("</w:p>")
	}
	doc := `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` +
		`<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>` +
		body.String() + `<w:sectPr/></w:body></w:document>`
	return Zip(map[string]string{
		"[Content_Types].xml": `<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`,
		"_rels/.rels":         `<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>`,
		"word/document.xml":   doc,
	})
}

// Zip writes the entries (deflated) in name order.
func Zip(entries map[string]string) []byte {
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	for i := range names { // tiny insertion sort: deterministic output without importing sort
		for j := i; j > 0 && names[j] < names[j-1]; j-- {
			names[j], names[j-1] = names[j-1], names[j]
		}
	}
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			panic(err)
		}
		w.Write([]byte(entries[n]))
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// DOCXBomb is a docx whose document.xml inflates to inflated bytes. When lie is true the
// zip headers declare only 1 KiB, so only a limit on the inflated stream itself catches it.
func DOCXBomb(inflated int, lie bool) []byte {
	xml := `<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>` +
		strings.Repeat(" ", inflated) + `</w:t></w:r></w:p></w:body></w:document>`
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestCompression)
	fw.Write([]byte(xml))
	fw.Close()
	size := uint64(len(xml))
	if lie {
		size = 1024
	}
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name: "word/document.xml", Method: zip.Deflate,
		CRC32: crc32.ChecksumIEEE([]byte(xml)), CompressedSize64: uint64(comp.Len()), UncompressedSize64: size,
	})
	if err != nil {
		panic(err)
	}
	w.Write(comp.Bytes())
	zw.Close()
	return b.Bytes()
}

// HTML is a small page with a title, headings, and text that must be skipped.
func HTML(title, heading, body string) []byte {
	return []byte(fmt.Sprintf(`<!DOCTYPE html><html><head><title>%s</title><style>p{color:red}</style>
<script>var hidden = "script text";</script></head><body><h1>%s</h1><p>%s</p>
<table><tr><td>cell one</td><td>cell two</td></tr></table></body></html>`, title, heading, body))
}
