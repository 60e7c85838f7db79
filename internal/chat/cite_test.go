package chat

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseCitations(t *testing.T) {
	for _, tc := range []struct {
		text string
		want string
	}{
		{"Twenty five days [hr1:0].", "[hr1:0]"},
		{"A [hr1:0][eng1:1] and again [hr1:0].", "[hr1:0 eng1:1]"},
		{"Lists: [hr1:0, eng1:1; all1:0]", "[hr1:0 eng1:1 all1:0]"},
		{"UUIDs [3f1c9a52-0d7e-4b8e-9f0a-1c2d3e4f5a6b:12]", "[3f1c9a52-0d7e-4b8e-9f0a-1c2d3e4f5a6b:12]"},
		{"Python app form [SourceId: hr1:2] and [source: eng1:0]", "[hr1:2 eng1:0]"},
		{"Not citations: [1] […] [see: below] [hr1:x] [hr1:] [:3] [a b:1]", "[]"},
		{"A list with junk is ignored whole: [hr1:0, see above]", "[]"},
		{"Nested [[hr1:3]] still reads the inner one", "[hr1:3]"},
		{"Across lines [hr1:\n0] is not one", "[]"},
	} {
		var got []string
		for _, r := range ParseCitations(tc.text) {
			got = append(got, r.ID())
		}
		if s := fmt.Sprint(got); s != tc.want && !(tc.want == "[]" && len(got) == 0) {
			t.Errorf("ParseCitations(%q) = %s, want %s", tc.text, s, tc.want)
		}
	}
}

func TestResolveCitationsOnlyRetrieved(t *testing.T) {
	used := []Source{
		{DocumentID: "hr1", Name: "Employee handbook.pdf", ChunkIndex: 0, Page: 1, Section: "Leave", Score: 0.8,
			Text: "Employees receive twenty five vacation days per year.\n  Unused  days expire."},
		{DocumentID: "hr1", Name: "Employee handbook.pdf", ChunkIndex: 2, Score: 0.5, Text: "Requests go through the portal."},
	}
	answer := "You get 25 days [hr1:2] [eng1:0] [hr1:7] [hr1:0] [hr1:2]."
	got := resolveCitations(ParseCitations(answer), used)
	if len(got) != 2 {
		t.Fatalf("got %+v, want hr1:2 then hr1:0 (eng1:0 was not retrieved, hr1:7 does not exist)", got)
	}
	if got[0].DocumentID != "hr1" || got[0].ChunkIndex != 2 || got[1].ChunkIndex != 0 {
		t.Fatalf("order: %+v", got)
	}
	c := got[1]
	if c.Name != "Employee handbook.pdf" || c.Page != 1 || c.Section != "Leave" || c.Score != 0.8 {
		t.Errorf("metadata not resolved: %+v", c)
	}
	if c.Snippet != "Employees receive twenty five vacation days per year. Unused days expire." {
		t.Errorf("snippet %q", c.Snippet)
	}
	if none := resolveCitations(ParseCitations("no citations"), used); none == nil || len(none) != 0 {
		t.Errorf("want an empty, non-nil list (JSON []), got %#v", none)
	}
}

func TestSnippet(t *testing.T) {
	long := strings.Repeat("wörd ", 100)
	s := snippet(long, 40)
	if !strings.HasSuffix(s, "…") || utf8.RuneCountInString(s) > 41 || strings.Contains(s, "wörd wö…") {
		t.Errorf("snippet %q: want whole words, at most 40 runes and an ellipsis", s)
	}
	if got := snippet("short  text\n", 40); got != "short text" {
		t.Errorf("snippet %q", got)
	}
	if got := snippet(strings.Repeat("x", 100), 10); got != strings.Repeat("x", 10)+"…" {
		t.Errorf("one long word: %q", got)
	}
}

// The model cites source numbers; every answer the API returns cites full ids, whether it
// streamed or not, and however the stream happened to split the text.
func TestNumberedCitationsExpand(t *testing.T) {
	used := []Source{{DocumentID: "3f1c9a52-hr", ChunkIndex: 4}, {DocumentID: "9b7e0d11-eng", ChunkIndex: 0}}
	for _, tc := range []struct{ in, want string }{
		{"Twenty five days [1].", "Twenty five days [3f1c9a52-hr:4]."},
		{"Both [1][2], listed [2, 1] and [1; 2].", "Both [3f1c9a52-hr:4][9b7e0d11-eng:0], listed [9b7e0d11-eng:0][3f1c9a52-hr:4] and [3f1c9a52-hr:4][9b7e0d11-eng:0]."},
		{"Out of range [3] [0] [-1], not numbers [1a] [1, x] [] […], nested [[2]]", "Out of range [3] [0] [-1], not numbers [1a] [1, x] [] […], nested [[9b7e0d11-eng:0]]"},
		{"A full id still works [9b7e0d11-eng:0]; across lines [1\n] is text; unclosed [2", "A full id still works [9b7e0d11-eng:0]; across lines [1\n] is text; unclosed [2"},
	} {
		if got := expandNumbered(tc.in, used); got != tc.want {
			t.Errorf("expandNumbered(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
		// Streamed in every two-piece split and rune by rune: the same text arrives.
		splits := [][]string{}
		for i := range len(tc.in) + 1 {
			splits = append(splits, []string{tc.in[:i], tc.in[i:]})
		}
		var runes []string
		for _, r := range tc.in {
			runes = append(runes, string(r))
		}
		splits = append(splits, runes)
		for _, pieces := range splits {
			var out strings.Builder
			s := &numberedStream{used: used, out: func(p string) error { out.WriteString(p); return nil }}
			for _, p := range pieces {
				if err := s.write(p); err != nil {
					t.Fatal(err)
				}
			}
			s.flush()
			if out.String() != tc.want {
				t.Errorf("streamed as %q:\n got %q\nwant %q", pieces, out.String(), tc.want)
			}
		}
	}
	if refs := ParseCitations(expandNumbered("Days [1][2].", used)); len(refs) != 2 || refs[0].ID() != "3f1c9a52-hr:4" {
		t.Errorf("expanded citations parse as %v", refs)
	}
}

// Text in brackets that cannot be a citation is not held back: the stream goes on at once.
func TestNumberedStreamHoldsOnlyCandidates(t *testing.T) {
	var out []string
	s := &numberedStream{used: []Source{{DocumentID: "d", ChunkIndex: 0}}, out: func(p string) error { out = append(out, p); return nil }}
	s.write("see [the")
	if strings.Join(out, "") != "see [the" {
		t.Errorf("streamed %q: a bracket holding a letter was held back", out)
	}
	s.write(" [1")
	if strings.Join(out, "") != "see [the " {
		t.Errorf("streamed %q: a possible citation must wait for its bracket to close", out)
	}
	s.write("].")
	if got := strings.Join(out, ""); got != "see [the [d:0]." {
		t.Errorf("streamed %q", got)
	}
	if got := expandNumbered("[+1] [1\u00a0] [ 1 ]", []Source{{DocumentID: "d"}}); got != "[+1] [1\u00a0] [d:0]" {
		t.Errorf("only digits and ASCII spaces make a number: %q", got)
	}
}
