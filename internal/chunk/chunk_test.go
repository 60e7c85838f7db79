package chunk

import (
	"fmt"
	"strings"
	"testing"
)

func TestCountTokens(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"one", 2},                      // 1 unit → ceil(4/3)
		{"one two three", 4},            // 3 units → 4
		{"a b c d e f g h i j k l", 16}, // 12 units → 16
		{"  spaced\n\tout  ", 3},        // 2 units
		{"supercalifragilistic", 3},     // 20 runes → 2 units → 3
		{"https://example.com/a/very/long/path/to/file.html", 7}, // 49 runes → 5 units
		{"日本語", 4},           // 3 ideographs = 3 units
		{"Hello, world.", 3}, // punctuation stays with its word
	}
	for _, c := range cases {
		if got := CountTokens(c.in); got != c.want {
			t.Errorf("CountTokens(%q) = %d, want %d", c.in, got, c.want)
		}
	}
	// Calibration: 150 ordinary words are 200 tokens.
	if got := CountTokens(strings.Repeat("word ", 150)); got != 200 {
		t.Errorf("150 words = %d tokens, want 200", got)
	}
}

func TestTokensToUnits(t *testing.T) {
	for tok := 0; tok < 500; tok++ {
		u := tokensToUnits(tok)
		if unitsToTokens(u) > tok || unitsToTokens(u+1) <= tok {
			t.Fatalf("tokensToUnits(%d) = %d not maximal", tok, u)
		}
	}
	if tokensToUnits(200) != 150 || tokensToUnits(40) != 30 {
		t.Fatalf("200→%d 40→%d", tokensToUnits(200), tokensToUnits(40))
	}
}

func numbered(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("w%d", i)
	}
	return strings.Join(w, " ")
}

func TestSplitSizeAndOverlap(t *testing.T) {
	chunks := Split([]Section{{Text: numbered(1000)}}, Options{Size: 200, Overlap: 40})
	if len(chunks) < 7 {
		t.Fatalf("got %d chunks", len(chunks))
	}
	for i, c := range chunks {
		if c.Index != i {
			t.Errorf("chunk %d has index %d", i, c.Index)
		}
		if c.Tokens > 200 || CountTokens(c.Text) != c.Tokens {
			t.Errorf("chunk %d: %d tokens (counted %d)", i, c.Tokens, CountTokens(c.Text))
		}
		if i < len(chunks)-1 && c.Words != 150 {
			t.Errorf("chunk %d: %d words, want 150", i, c.Words)
		}
		if i > 0 {
			prev := strings.Fields(chunks[i-1].Text)
			cur := strings.Fields(c.Text)
			// The last 30 words (40 tokens) of the previous chunk open this one.
			if strings.Join(prev[len(prev)-30:], " ") != strings.Join(cur[:30], " ") {
				t.Errorf("chunk %d does not overlap the previous by 30 words", i)
			}
		}
	}
	// Every word is in some chunk, in order.
	last := strings.Fields(chunks[len(chunks)-1].Text)
	if last[len(last)-1] != "w999" {
		t.Errorf("last word %q", last[len(last)-1])
	}
}

// Short pieces are never dropped: a page holding four words joins the chunk before it, a
// tiny first page the one after it, and a three-word memo is a chunk of its own.
func TestSplitKeepsShortText(t *testing.T) {
	chunks := Split([]Section{
		{Page: 1, Text: "Page 1"},               // 2 words: joins page 2's chunk
		{Page: 2, Text: numbered(20)},           // kept
		{Page: 3, Text: "just four words here"}, // joins page 2's chunk
	}, Options{Size: 200, Overlap: 40})
	if len(chunks) != 1 || chunks[0].Index != 0 || chunks[0].Page != 1 || chunks[0].Words != 26 {
		t.Fatalf("chunks = %+v", chunks)
	}
	if !strings.HasPrefix(chunks[0].Text, "Page 1\n\nw0 ") || !strings.HasSuffix(chunks[0].Text, "w19\n\njust four words here") {
		t.Fatalf("text %q", chunks[0].Text)
	}
	for _, text := range []string{"too short", "Lunch moved Thursday.", "x"} {
		got := Split([]Section{{Text: text}}, Options{Size: 200})
		if len(got) != 1 || got[0].Text != text || got[0].Words != len(strings.Fields(text)) {
			t.Fatalf("%q gave %+v", text, got)
		}
	}
	if got := Split([]Section{{Text: " \n\t "}}, Options{Size: 200}); len(got) != 0 {
		t.Fatalf("white space gave %+v", got)
	}
	// A short piece with no neighbour that has room stays alone: every word is in a chunk.
	chunks = Split([]Section{
		{Page: 1, Text: numbered(150)},
		{Page: 2, Text: "lonely zebra"},
		{Page: 3, Text: numbered(150)},
	}, Options{Size: 200, Overlap: 40})
	var found bool
	for i, c := range chunks {
		if c.Index != i {
			t.Fatalf("chunk %d has index %d", i, c.Index)
		}
		if c.Tokens > 200 {
			t.Fatalf("chunk %d has %d tokens", i, c.Tokens)
		}
		if strings.Contains(c.Text, "lonely zebra") {
			found = c.Text == "lonely zebra" && c.Page == 2
		}
	}
	if !found {
		t.Fatalf("the short page is not a chunk of its own: %+v", chunks)
	}
}

func TestSplitKeepsPageAndSection(t *testing.T) {
	secs := []Section{
		{Page: 1, Heading: "Intro", Text: numbered(40)},
		{Page: 1, Heading: "Method", Text: numbered(40)},
		{Page: 2, Heading: "Method", Text: numbered(300)},
	}
	chunks := Split(secs, Options{Size: 200, Overlap: 40})
	if chunks[0].Section != "Intro" || chunks[0].Page != 1 || chunks[0].Words != 40 {
		t.Fatalf("chunk 0 = %+v", chunks[0])
	}
	if chunks[1].Section != "Method" || chunks[1].Page != 1 || chunks[1].Words != 40 {
		t.Fatalf("chunk 1 = %+v", chunks[1])
	}
	for _, c := range chunks[2:] {
		if c.Page != 2 || c.Section != "Method" {
			t.Fatalf("chunk %d = page %d section %q", c.Index, c.Page, c.Section)
		}
	}
	// No chunk mixes text of page 1 and page 2 (no overlap across a boundary).
	if strings.HasPrefix(chunks[2].Text, "w0 ") == false {
		t.Fatalf("chunk 2 starts %q", chunks[2].Text[:20])
	}
}

func TestSplitPrefersSentenceEnds(t *testing.T) {
	var sb strings.Builder
	for i := 0; i < 40; i++ {
		sb.WriteString("This sentence has exactly seven words. ")
	}
	chunks := Split([]Section{{Text: sb.String()}}, Options{Size: 200, Overlap: 40})
	for _, c := range chunks[:len(chunks)-1] {
		if !strings.HasSuffix(c.Text, ".") {
			t.Errorf("chunk %d ends %q", c.Index, c.Text[len(c.Text)-10:])
		}
	}
}

func TestSplitCJKAndProgress(t *testing.T) {
	chunks := Split([]Section{{Text: strings.Repeat("日本語の文章です。", 100)}}, Options{Size: 50, Overlap: 10})
	if len(chunks) < 10 {
		t.Fatalf("got %d chunks", len(chunks))
	}
	for _, c := range chunks {
		if c.Tokens > 50 {
			t.Fatalf("chunk %d has %d tokens", c.Index, c.Tokens)
		}
	}
	// Degenerate settings still terminate.
	if got := Split([]Section{{Text: numbered(50)}}, Options{Size: 1, Overlap: 0, MinWords: 1}); len(got) != 50 {
		t.Fatalf("size 1: %d chunks", len(got))
	}
	if got := Split([]Section{{Text: numbered(50)}}, Options{Size: 2, Overlap: 1, MinWords: 1}); len(got) == 0 {
		t.Fatal("size 2 overlap 1: no chunks")
	}
}
