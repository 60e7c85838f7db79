// Package chunk splits extracted document text into overlapping chunks of about N tokens.
//
// Token counting is an approximation, not a tokenizer: the embedding model's own vocabulary
// (WordPiece for nomic-embed-text, BPE for chat models) is not available to the server, and a
// chunk only has to land near its budget, not on it. The rule, calibrated to the common figure
// of ~0.75 English words per token:
//
//   - text is cut into words at white space;
//   - a word counts as one unit, plus one more for every further 10 runes (a 40-character URL
//     or identifier is 4 units: long strings split into many tokens);
//   - every CJK ideograph, kana or hangul syllable is a word of its own (those scripts do not
//     separate words with spaces and tokenize at about one token per character);
//   - tokens = ceil(units / 0.75) = ceil(units × 4 / 3).
//
// So a 200-token chunk holds about 150 ordinary words and a 40-token overlap about 30.
package chunk

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// WordsPerToken is the calibration of the approximation (see the package comment).
const WordsPerToken = 0.75

// longWordRunes: each further this many runes in one word count as another unit.
const longWordRunes = 10

// DefaultMinWords: a piece with fewer words (a page holding only a number, a stray header, a
// three-word memo) carries too little context to stand alone, so it is joined to a neighbouring
// chunk when one has room. It is never dropped: every word of the text is in some chunk.
const DefaultMinWords = 5

// Section is a run of text with one location: a PDF page, a heading's scope, or the whole file.
type Section struct {
	Page    int    // 1-based, 0 when the format has no pages
	Heading string // nearest heading, "" when none
	Text    string
}

// Chunk is one piece to embed. Index counts the kept chunks from 0 without gaps, so a
// document's chunks are exactly 0..n-1 (the vector store trims the tail by index).
type Chunk struct {
	Index   int
	Text    string
	Page    int
	Section string
	Words   int
	Tokens  int // approximate, see CountTokens
}

// Options are the chunker's settings, in tokens.
type Options struct {
	Size     int // target tokens per chunk (≥ 1)
	Overlap  int // tokens repeated from the end of the previous chunk (0 ≤ Overlap < Size)
	MinWords int // pieces with fewer words are joined to a neighbour; 0 means DefaultMinWords
}

// CountTokens is the approximate token count of s (see the package comment).
func CountTokens(s string) int {
	units := 0
	for _, w := range scanWords(s) {
		units += w.units
	}
	return unitsToTokens(units)
}

func unitsToTokens(units int) int { return (units*4 + 2) / 3 }

// tokensToUnits is the largest unit count whose token count stays within tokens.
func tokensToUnits(tokens int) int {
	u := tokens * 3 / 4
	for u > 0 && unitsToTokens(u) > tokens {
		u--
	}
	for unitsToTokens(u+1) <= tokens {
		u++
	}
	return u
}

type word struct {
	start, end int // byte offsets in the scanned text
	units      int
	sentEnd    bool // ends with sentence punctuation
}

// isCJK reports runes of scripts written without spaces between words.
func isCJK(r rune) bool {
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) ||
		unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r)
}

func scanWords(s string) []word {
	var words []word
	start := -1 // start of the current non-CJK run
	runes := 0
	flush := func(end int) {
		if start >= 0 {
			u := 1 + (runes-1)/longWordRunes
			last, _ := utf8.DecodeLastRuneInString(s[start:end])
			words = append(words, word{start: start, end: end, units: u, sentEnd: strings.ContainsRune(".!?", last)})
			start, runes = -1, 0
		}
	}
	for i, r := range s {
		switch {
		case unicode.IsSpace(r):
			flush(i)
		case isCJK(r):
			flush(i)
			words = append(words, word{start: i, end: i + utf8.RuneLen(r), units: 1})
		case r == '。' || r == '！' || r == '？':
			flush(i)
			if n := len(words); n > 0 {
				words[n-1].end = i + utf8.RuneLen(r)
				words[n-1].sentEnd = true
			}
		default:
			if start < 0 {
				start = i
			}
			runes++
		}
	}
	flush(len(s))
	return words
}

// Split chunks the sections in order, each chunk at most opt.Size tokens, the next one
// repeating the last opt.Overlap tokens. A chunk ends at a page change, and at a heading
// change once it holds MinWords new words (a bare heading stays with the text under it);
// no overlap is carried across such a boundary. Otherwise a chunk prefers to end after a
// sentence or paragraph in its second half. Page and Section are those of the chunk's first
// new (non-overlap) word. A piece under MinWords words is joined to the chunk before it, or
// else to the one after it, when the two fit in Size; otherwise it stays a chunk of its own.
// No text is ever dropped, so a document with any word has at least one chunk.
func Split(sections []Section, opt Options) []Chunk {
	if opt.Size < 1 {
		opt.Size = 1
	}
	if opt.Overlap < 0 || opt.Overlap >= opt.Size {
		opt.Overlap = 0
	}
	minWords := opt.MinWords
	if minWords == 0 {
		minWords = DefaultMinWords
	}
	maxUnits := max(tokensToUnits(opt.Size), 1)
	overlapUnits := min(tokensToUnits(opt.Overlap), maxUnits-1)

	// One text with the sections joined; each word remembers its section.
	var b strings.Builder
	var words []word
	var wsec []int
	for si, sec := range sections {
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		base := b.Len()
		b.WriteString(sec.Text)
		for _, w := range scanWords(sec.Text) {
			w.start += base
			w.end += base
			words = append(words, w)
			wsec = append(wsec, si)
		}
	}
	text := b.String()
	boundary := func(k int) bool { // a page or heading change between words k-1 and k
		a, c := sections[wsec[k-1]], sections[wsec[k]]
		return a.Page != c.Page || a.Heading != c.Heading
	}

	// Pieces as word ranges [start, end); fresh is the first word not repeated from the previous
	// piece, cut whether a boundary (page, heading) or nothing ends it.
	type piece struct{ start, fresh, end int }
	var pieces []piece
	start, fresh := 0, 0 // fresh: first word not repeated from the previous chunk
	for start < len(words) {
		end, units := start, 0
		for end < len(words) && (end == start || units+words[end].units <= maxUnits) {
			units += words[end].units
			end++
		}
		for end <= fresh { // always take at least one new word
			units += words[end].units
			end++
		}
		// A page change always ends the chunk, so its page is where its new text is; a heading
		// change does too unless fewer than minWords new words precede it (a bare heading stays
		// with the text under it).
		cutAtBoundary := false
		for k := fresh + 1; k < end; k++ {
			if sections[wsec[k-1]].Page != sections[wsec[k]].Page || (k-fresh >= minWords && boundary(k)) {
				end, cutAtBoundary = k, true
				break
			}
		}
		if !cutAtBoundary && end < len(words) {
			// Prefer ending after a sentence or paragraph in the chunk's second half.
			half, u := end, 0
			for k := start; k < end; k++ {
				u += words[k].units
				if u >= maxUnits/2 {
					half = k + 1
					break
				}
			}
			for k := end; k >= half && k > fresh; k-- {
				if words[k-1].sentEnd || strings.Contains(text[words[k-1].end:words[k].start], "\n\n") {
					end = k
					break
				}
			}
		}
		pieces = append(pieces, piece{start, fresh, end})
		if end >= len(words) {
			break
		}
		next := end
		if !cutAtBoundary && !boundary(end) {
			ov := 0
			for next > start+1 && ov+words[next-1].units <= overlapUnits {
				next--
				ov += words[next].units
			}
		}
		start, fresh = next, end
	}

	// Join short pieces to a neighbour with room: the previous one when this piece repeats none
	// of it (it follows a boundary), else the next one when that repeats none of this piece.
	unitsOf := func(p piece) int {
		u := 0
		for k := p.start; k < p.end; k++ {
			u += words[k].units
		}
		return u
	}
	joined := pieces[:0]
	for i := 0; i < len(pieces); i++ {
		p := pieces[i]
		if p.end-p.start < minWords {
			if n := len(joined); n > 0 && joined[n-1].end == p.start && unitsOf(joined[n-1])+unitsOf(p) <= maxUnits {
				joined[n-1].end = p.end
				continue
			}
			if i+1 < len(pieces) && pieces[i+1].start == p.end && unitsOf(p)+unitsOf(pieces[i+1]) <= maxUnits {
				pieces[i+1].start, pieces[i+1].fresh = p.start, p.fresh
				continue
			}
		}
		joined = append(joined, p)
	}
	out := make([]Chunk, 0, len(joined))
	for _, p := range joined {
		sec := sections[wsec[min(p.fresh, p.end-1)]]
		out = append(out, Chunk{
			Index:   len(out),
			Text:    text[words[p.start].start:words[p.end-1].end],
			Page:    sec.Page,
			Section: sec.Heading,
			Words:   p.end - p.start,
			Tokens:  unitsToTokens(unitsOf(p)),
		})
	}
	return out
}
