package chat

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Ref is one citation as written in an answer: [document_id:chunk_index].
type Ref struct {
	DocumentID string
	ChunkIndex int
}

// ID is "document_id:chunk_index".
func (r Ref) ID() string { return r.DocumentID + ":" + strconv.Itoa(r.ChunkIndex) }

// Citation is a cited (or provided) source resolved to its stored chunk.
type Citation struct {
	DocumentID string  `json:"document_id"`
	Name       string  `json:"name"`
	ChunkIndex int     `json:"chunk_index"`
	Snippet    string  `json:"snippet"`
	Score      float32 `json:"score"`
	Page       int     `json:"page,omitempty"`
	Section    string  `json:"section,omitempty"`
}

var (
	// bracketRe finds bracketed runs without nested brackets; the id syntax is checked per item.
	bracketRe = regexp.MustCompile(`\[([^\[\]\n]{1,512})\]`)
	// refRe is one item inside brackets. The optional "Source:"/"SourceId:" prefix is the Python
	// app's citation form, which models trained on such prompts may still produce.
	refRe = regexp.MustCompile(`^(?i:source(?:\s*id)?\s*:\s*)?([^\s:\[\],;]+):(\d{1,9})$`)
)

// ParseCitations returns the citations in text, in order of first appearance, each once. It
// reads [doc:chunk], runs like [doc:1][doc:2], and lists inside one pair of brackets
// ([doc:1, other:2] or with ';'), which models write despite being told otherwise. Bracketed
// text that is not entirely citations ("[…]", "[1]", "[see: below]") yields nothing.
func ParseCitations(text string) []Ref {
	var refs []Ref
	seen := map[Ref]bool{}
	for _, m := range bracketRe.FindAllStringSubmatch(text, -1) {
		items := strings.FieldsFunc(m[1], func(r rune) bool { return r == ',' || r == ';' })
		var found []Ref
		for _, it := range items {
			sm := refRe.FindStringSubmatch(strings.TrimSpace(it))
			if sm == nil {
				found = nil
				break
			}
			n, _ := strconv.Atoi(sm[2])
			found = append(found, Ref{DocumentID: sm[1], ChunkIndex: n})
		}
		for _, r := range found {
			if !seen[r] {
				seen[r] = true
				refs = append(refs, r)
			}
		}
	}
	return refs
}

// resolveCitations maps refs onto the sources the prompt held, in citation order. A ref to
// anything else is dropped: a chunk the model was not shown (filtered by tags, dropped by the
// budget, or invented) cannot be evidence for the answer, and naming it could leak a document
// the caller may not see.
func resolveCitations(refs []Ref, used []Source) []Citation {
	byID := make(map[string]Source, len(used))
	for _, s := range used {
		byID[s.ID()] = s
	}
	out := []Citation{}
	for _, r := range refs {
		if s, ok := byID[r.ID()]; ok {
			out = append(out, toCitation(s))
		}
	}
	return out
}

func toCitations(used []Source) []Citation {
	out := make([]Citation, len(used))
	for i, s := range used {
		out[i] = toCitation(s)
	}
	return out
}

func toCitation(s Source) Citation {
	return Citation{
		DocumentID: s.DocumentID, Name: s.Name, ChunkIndex: s.ChunkIndex,
		Snippet: snippet(s.Text, snippetRunes), Score: s.Score, Page: s.Page, Section: s.Section,
	}
}

// snippetRunes is how much of a chunk a citation shows: enough to recognise the passage.
const snippetRunes = 240

// snippet is the start of text with white space collapsed, cut at a word boundary and ended
// with "…" when shortened.
func snippet(text string, n int) string {
	s := strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	cut, runes := 0, 0
	for i := range s {
		if runes == n {
			cut = i
			break
		}
		runes++
	}
	if sp := strings.LastIndexByte(s[:cut], ' '); sp > cut/2 {
		cut = sp
	}
	return strings.TrimRight(s[:cut], " ") + "…"
}
