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
