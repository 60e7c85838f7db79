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

// DOCXOptions describe a Word document with the parts real documents carry text in.
type DOCXOptions struct {
	Body []Paragraph
	// TextBox is the text of a text box anchored in the first body paragraph, written as Word
	// writes it: an mc:AlternateContent whose wps Choice and VML Fallback both hold the text.
	TextBox string
	// Footnotes, Endnotes and Comments each become one note or comment in their part
	// (word/footnotes.xml, endnotes.xml, comments.xml), referenced from the last body paragraph.
	Footnotes, Endnotes, Comments []string
	// Headers and Footers each become one part (word/header1.xml, footer1.xml …).
	Headers, Footers []string
	// NoPartRels leaves out word/_rels/document.xml.rels, as some generators do.
	NoPartRels bool
}

const wNS = `xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"`

var xmlEsc = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

func runXML(text string) string {
	return `<w:r><w:t xml:space="preserve">` + xmlEsc.Replace(text) + `</w:t></w:r>`
}

func parasXML(texts ...string) string {
	var b strings.Builder
	for _, t := range texts {
		b.WriteString("<w:p>" + runXML(t) + "</w:p>")
	}
	return b.String()
}

// DOCXWith writes a Word document with the features in o (see DOCXOptions).
func DOCXWith(o DOCXOptions) []byte {
	const ns = wNS + ` xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"` +
		` xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"` +
		` xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"` +
		` xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"` +
		` xmlns:v="urn:schemas-microsoft-com:vml" mc:Ignorable="w14"`
	var body strings.Builder
	paras := o.Body
	if len(paras) == 0 {
		paras = []Paragraph{{}}
	}
	for i, p := range paras {
		body.WriteString("<w:p>")
		if p.Style != "" {
			fmt.Fprintf(&body, `<w:pPr><w:pStyle w:val="%s"/></w:pPr>`, p.Style)
		}
		if i == 0 && o.TextBox != "" {
			box := `<w:txbxContent>` + parasXML(o.TextBox) + `</w:txbxContent>`
			body.WriteString(`<w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wp:anchor><a:graphic><a:graphicData>` +
				`<wps:wsp><wps:txbx>` + box + `</wps:txbx></wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing></mc:Choice>` +
				`<mc:Fallback><w:pict><v:shape><v:textbox>` + box + `</v:textbox></v:shape></w:pict></mc:Fallback></mc:AlternateContent></w:r>`)
		}
		if i == len(paras)-1 {
			for k := range o.Comments {
				fmt.Fprintf(&body, `<w:commentRangeStart w:id="%d"/>`, k)
			}
		}
		if p.Text != "" {
			body.WriteString(runXML(p.Text))
		}
		if i == len(paras)-1 {
			for k := range o.Footnotes {
				fmt.Fprintf(&body, `<w:r><w:footnoteReference w:id="%d"/></w:r>`, k+1)
			}
			for k := range o.Endnotes {
				fmt.Fprintf(&body, `<w:r><w:endnoteReference w:id="%d"/></w:r>`, k+1)
			}
			for k := range o.Comments {
				fmt.Fprintf(&body, `<w:commentRangeEnd w:id="%d"/><w:r><w:commentReference w:id="%d"/></w:r>`, k, k)
			}
		}
		body.WriteString("</w:p>")
	}
	var sect strings.Builder
	sect.WriteString("<w:sectPr>")
	parts := map[string]string{}
	var rels strings.Builder
	rel := func(id int, typ, target string) {
		fmt.Fprintf(&rels, `<Relationship Id="rId%d" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/%s" Target="%s"/>`, id, typ, target)
	}
	rel(1, "styles", "styles.xml")
	parts["word/styles.xml"] = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:styles ` + wNS + `/>`
	id := 2
	for i, h := range o.Headers {
		name := fmt.Sprintf("header%d.xml", i+1)
		parts["word/"+name] = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:hdr ` + wNS + `>` + parasXML(h) + `</w:hdr>`
		rel(id, "header", name)
		fmt.Fprintf(&sect, `<w:headerReference w:type="default" r:id="rId%d"/>`, id)
		id++
	}
	for i, f := range o.Footers {
		name := fmt.Sprintf("footer%d.xml", i+1)
		parts["word/"+name] = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:ftr ` + wNS + `>` + parasXML(f) + `</w:ftr>`
		rel(id, "footer", name)
		fmt.Fprintf(&sect, `<w:footerReference w:type="default" r:id="rId%d"/>`, id)
		id++
	}
	sect.WriteString("</w:sectPr>")
	notes := func(kind, part string, texts []string) {
		if len(texts) == 0 {
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:%ss %s>`, kind, wNS)
		// Word's separators come first: notes without text.
		fmt.Fprintf(&b, `<w:%s w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:%s>`, kind, kind)
		fmt.Fprintf(&b, `<w:%s w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/></w:r></w:p></w:%s>`, kind, kind)
		for i, t := range texts {
			fmt.Fprintf(&b, `<w:%s w:id="%d"><w:p><w:r><w:%sRef/></w:r>%s</w:p></w:%s>`, kind, i+1, kind, runXML(" "+t), kind)
		}
		fmt.Fprintf(&b, `</w:%ss>`, kind)
		parts["word/"+part] = b.String()
		rel(id, kind+"s", part)
		id++
	}
	notes("footnote", "footnotes.xml", o.Footnotes)
	notes("endnote", "endnotes.xml", o.Endnotes)
	if len(o.Comments) > 0 {
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:comments ` + wNS + `>`)
		for i, c := range o.Comments {
			fmt.Fprintf(&b, `<w:comment w:id="%d" w:author="Reviewer" w:initials="R"><w:p><w:r><w:annotationRef/></w:r>%s</w:p></w:comment>`, i, runXML(c))
		}
		b.WriteString(`</w:comments>`)
		parts["word/comments.xml"] = b.String()
		rel(id, "comments", "comments.xml")
	}
	parts["word/document.xml"] = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ` + ns +
		` xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><w:body>` + body.String() + sect.String() + `</w:body></w:document>`
	if !o.NoPartRels {
		parts["word/_rels/document.xml.rels"] = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
			rels.String() + `</Relationships>`
	}
	parts["[Content_Types].xml"] = `<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`
	parts["_rels/.rels"] = `<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>`
	return Zip(parts)
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
