package chat

import (
	"strconv"
	"strings"
)

// The model sees its sources numbered ([1], [2] …) and cites those numbers: a document id is a
// 36-character UUID, 20–40 tokens in a chat model's vocabulary, and eight of them in the
// prompt made its prefill the largest part of the time to first token (docs/benchmarks). Every
// answer the API returns still cites [document_id:chunk_index]: the numbers are expanded as the
// answer streams, so clients, the UI and stored sessions are unchanged.

// maxBracket bounds how long a bracketed run is held back while streaming, as bracketRe does.
const maxBracket = 512

// asciiSpace may surround a number in a citation ("[1, 3]").
const asciiSpace = " \t\r\v\f"

// inNumbered reports whether c can be inside a run of source numbers: anything else means the
// bracket is text, and the stream need not hold it back.
func inNumbered(c byte) bool {
	return c >= '0' && c <= '9' || c == ',' || c == ';' || strings.IndexByte(asciiSpace, c) >= 0
}

// expandNumbered rewrites each bracketed run whose items are all source numbers in range
// ([2], [1, 3], [1; 2]) into full citations ([id][id]); anything else is left as written.
func expandNumbered(text string, used []Source) string {
	if len(used) == 0 || !strings.Contains(text, "[") {
		return text
	}
	return bracketRe.ReplaceAllStringFunc(text, func(m string) string {
		if full, ok := expandBracket(m[1:len(m)-1], used); ok {
			return full
		}
		return m
	})
}

// expandBracket is one bracket's content as full citations, when it holds only source numbers.
func expandBracket(inner string, used []Source) (string, bool) {
	items := strings.FieldsFunc(inner, func(r rune) bool { return r == ',' || r == ';' })
	if len(items) == 0 {
		return "", false
	}
	var b strings.Builder
	for _, it := range items {
		it = strings.Trim(it, asciiSpace)
		if it == "" || strings.Trim(it, "0123456789") != "" {
			return "", false
		}
		n, err := strconv.Atoi(it)
		if err != nil || n < 1 || n > len(used) {
			return "", false
		}
		b.WriteString("[" + used[n-1].ID() + "]")
	}
	return b.String(), true
}

// numberedStream expands source numbers in a streamed answer: text outside brackets passes at
// once; a bracketed run is held until it closes, or until a byte shows it cannot be a run of
// numbers (a letter, a new line, a second '['), then passed expanded or as written. The concatenated output equals
// expandNumbered of the concatenated input.
type numberedStream struct {
	used []Source
	out  func(string) error
	held strings.Builder // from an unclosed '['
}

func (s *numberedStream) write(tok string) error {
	// Byte by byte: the markers are ASCII, and a piece may end inside a multi-byte character.
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case s.held.Len() == 0 && c != '[':
			b.WriteByte(c)
		case c == '[':
			b.WriteString(s.held.String()) // an unclosed run before a new '[' is text
			s.held.Reset()
			s.held.WriteByte(c)
		case c == ']':
			s.held.WriteByte(c)
			b.WriteString(expandNumbered(s.held.String(), s.used))
			s.held.Reset()
		case !inNumbered(c) || s.held.Len() >= maxBracket+1:
			b.WriteString(s.held.String())
			s.held.Reset()
			b.WriteByte(c)
		default:
			s.held.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return s.out(b.String())
}

// flush passes what is still held (an unclosed bracket at the answer's end).
func (s *numberedStream) flush() error {
	if s.held.Len() == 0 {
		return nil
	}
	rest := s.held.String()
	s.held.Reset()
	return s.out(rest)
}
