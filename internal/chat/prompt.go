package chat

import (
	"path"
	"strconv"
	"strings"
	"unicode"

	"github.com/ragstack/rag-operator/internal/chunk"
	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/parse"
)

// CitationRules is appended to every system prompt: the model is told to cite the sources'
// numbers, which the server expands to the one citation form ParseCitations reads back (see
// numbered.go), so citations can be checked against what was retrieved. Every token here is
// prefilled for every question: it says what the model must do and no more (the bench's test
// model spells any word outside its small vocabulary byte by byte, so wordiness shows there
// first).
const CitationRules = `Use only the numbered sources and cite them by number after each statement, e.g. [1][3]. ` +
	`If they lack the answer, say so.`

// TruncationMark ends a source that was cut at a sentence boundary to fit the budget, so the
// model (and a reader of the prompt) sees that text is missing.
const TruncationMark = "[…]"

// systemMessage is the system prompt the model sees.
func systemMessage(system string) string {
	system = strings.TrimSpace(system)
	if system == "" {
		return CitationRules
	}
	return system + "\n\n" + CitationRules
}

// questionBlock is the question as it ends the user message.
func questionBlock(question string) string {
	return "Question: " + strings.TrimSpace(question)
}

// Layout is what a prompt holds besides the question, its sources and history.
type Layout struct {
	// System is the system prompt; CitationRules follow it.
	System string
	// DocumentTitles heads each document's sources with its name (docTitle). Off by default:
	// the model answers from the text, and every citation the API returns names the document
	// (with page and section) for the reader, so titles pay off only when questions name
	// documents ("what does the 2024 report say …"), and they cost prompt tokens on every
	// question (about 90 for eight sources from seven documents on the bench's test model,
	// which spells names byte by byte: BenchmarkPromptLayout).
	DocumentTitles bool
}

// BuildPrompt assembles the chat messages within the budget. It is pure and deterministic.
//
// Layout: one system message (l.System + CitationRules); the kept history turns; one user
// message holding the numbered sources and then the question. The sources go into the user
// message rather than the system message because small models follow material next to the
// question more reliably, and history turns then stay what the user typed.
//
// Sources are taken in the order given (rank order) while they fit the context allowance; the
// first one that does not fit is cut after its last whole sentence that fits and marked
// TruncationMark, or dropped when not even one sentence fits; every source after it is dropped
// (a lower-ranked source never displaces a better one). used lists the sources in the prompt,
// in order, with Truncated set on a cut one.
//
// History keeps the newest whole turns (a user message and the replies after it) that fit;
// the oldest go first, and a turn never loses only some of its messages. Messages with a role
// other than user or assistant are dropped: the server's system prompt is the only one.
//
// A question over b.MaxQuestionTokens(system) yields no messages and report.QuestionTooLong.
func BuildPrompt(l Layout, history []llm.Message, question string, sources []Source, b Budget) (msgs []llm.Message, used []Source, report BudgetReport) {
	report = BudgetReport{NumCtx: b.NumCtx, Response: b.Response, Overhead: fixedOverhead}
	system := l.System
	sys := systemMessage(system)
	report.System = chunk.CountTokens(sys)
	qb := questionBlock(question)
	report.Question = chunk.CountTokens(qb)
	if report.Question > b.MaxQuestionTokens(system) {
		report.QuestionTooLong = true
		report.Prompt = report.System + report.Question + report.Overhead
		return nil, nil, report
	}
	free := b.Prompt() - report.System - report.Question - report.Overhead

	ctxText, used := fitSources(sources, min(b.Context, free), l.DocumentTitles)
	if len(used) > 0 {
		report.Context = chunk.CountTokens(ctxText)
		report.Truncated = used[len(used)-1].Truncated
	}
	report.Sources, report.SourcesDropped = len(used), len(sources)-len(used)
	free -= report.Context

	kept, turns, dropped, histTokens := fitHistory(history, min(b.History, free))
	report.History, report.HistoryTurns, report.HistoryTurnsDropped = histTokens, turns, dropped
	report.Prompt = report.System + report.History + report.Context + report.Question + report.Overhead

	msgs = make([]llm.Message, 0, len(kept)+2)
	msgs = append(msgs, llm.Message{Role: "system", Content: sys})
	msgs = append(msgs, kept...)
	user := qb
	if ctxText != "" {
		user = ctxText + "\n\n" + qb
	}
	msgs = append(msgs, llm.Message{Role: "user", Content: user})
	return msgs, used, report
}

// sourceBlock renders one numbered source: the number the model cites (see numbered.go:
// expanded to the full id in the answer), the section heading when the chunk has one, then its
// text. The page is left out: it only says where the text is, which the model does not need to
// answer, and every citation the API returns carries it (with the section) for the reader. A
// "(page 12) " cost about 10 prompt tokens per source on the test model, 8 sources 63 tokens.
// The heading stays because it is content: a chunk from the middle of a section has lost it.
func sourceBlock(n int, s Source, text string) string {
	var b strings.Builder
	b.WriteString("[")
	b.WriteString(strconv.Itoa(n))
	b.WriteString("] ")
	if s.Section != "" {
		b.WriteString("(section " + strconv.Quote(oneLine(s.Section)) + ") ")
	}
	b.WriteString(strings.TrimSpace(text))
	return b.String()
}

// renderSources lays the sources out by document, documents in the order of their best source:
// with titles, the document's title (docTitle) once on its own line; then its sources one per
// line, each under its rank's number; documents are separated by a blank line, so the model
// sees which sources belong together even without titles. A title once per document rather
// than on every source saved ~15 prompt tokens per repeat on the test model's vocabulary.
func renderSources(used []Source, titles bool) string {
	type group struct {
		name   string
		blocks []string
	}
	var order []*group
	byDoc := map[string]*group{}
	for i, s := range used {
		g := byDoc[s.DocumentID]
		if g == nil {
			g = &group{name: docTitle(s.Name)}
			byDoc[s.DocumentID] = g
			order = append(order, g)
		}
		g.blocks = append(g.blocks, sourceBlock(i+1, s, s.Text))
	}
	parts := make([]string, len(order))
	for i, g := range order {
		parts[i] = strings.Join(g.blocks, "\n")
		if titles {
			parts[i] = g.name + "\n" + parts[i]
		}
	}
	return strings.Join(parts, "\n\n")
}

// docTitle is a document's name as the model sees it: on one line (oneLine), without the
// extension that named its type at upload (".pdf", ".md" …: parse.TypeOf), which tells the
// model nothing about the content and reads worse when it names the document in its answer.
// Another extension ("notes.v2"), or a name that is only an extension, is kept as written.
func docTitle(name string) string {
	name = oneLine(name)
	ext := path.Ext(name)
	if ext == "" {
		return name
	}
	if _, err := parse.TypeOf(name); err != nil {
		return name
	}
	t := strings.TrimSpace(strings.TrimSuffix(name, ext))
	if t == "" || strings.HasSuffix(t, "/") {
		return name
	}
	return t
}

// oneLine keeps document metadata on the heading's line and out of the citation syntax: a file
// named "x [other:1]" must not look like a second id.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '[':
			return '('
		case r == ']':
			return ')'
		case r < ' ' || r == 0x7f:
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// fitSources renders the sources block within limit tokens (see BuildPrompt for the rule). The
// whole block is recounted at each step, so the decision matches the count reported.
func fitSources(sources []Source, limit int, titles bool) (string, []Source) {
	var used []Source
	fits := func(c Source) bool {
		return chunk.CountTokens(renderSources(append(used[:len(used):len(used)], c), titles)) <= limit
	}
	for _, s := range sources {
		if fits(s) {
			used = append(used, s)
			continue
		}
		cut, ok := cutAtSentence(s.Text, func(prefix string) bool {
			c := s
			c.Text = prefix + " " + TruncationMark
			return fits(c)
		})
		if ok {
			s.Text = cut + " " + TruncationMark
			s.Truncated = true
			used = append(used, s)
		}
		break
	}
	if len(used) == 0 {
		return "", nil
	}
	return renderSources(used, titles), used
}

// cutAtSentence returns the longest prefix of text ending at a sentence boundary for which fits
// holds, and false when no whole sentence fits. fits is monotonic in the prefix length, so the
// boundaries are binary-searched.
func cutAtSentence(text string, fits func(string) bool) (string, bool) {
	ends := sentenceEnds(text)
	lo, hi, best := 0, len(ends)-1, -1
	for lo <= hi {
		mid := (lo + hi) / 2
		if fits(text[:ends[mid]]) {
			best, lo = mid, mid+1
		} else {
			hi = mid - 1
		}
	}
	if best < 0 {
		return "", false
	}
	return strings.TrimSpace(text[:ends[best]]), true
}

// sentenceEnds are the byte offsets just after each sentence end in text, excluding the end of
// the text itself: '.', '!' or '?' (with any closing quotes or brackets) followed by white
// space, and the CJK full stops anywhere. Abbreviations ("e.g. ") count as ends; the cost is a
// shorter cut, never a cut inside a word.
func sentenceEnds(text string) []int {
	type pos struct {
		off int // byte offset of r
		r   rune
	}
	var rs []pos
	for off, r := range text { // byte offsets stay right even on invalid UTF-8
		rs = append(rs, pos{off, r})
	}
	next := func(i int) int { // byte offset just after rs[i]
		if i+1 < len(rs) {
			return rs[i+1].off
		}
		return len(text)
	}
	var ends []int
	for i := range rs {
		switch rs[i].r {
		case '。', '！', '？':
			if i+1 < len(rs) {
				ends = append(ends, next(i))
			}
		case '.', '!', '?':
			j := i + 1
			for j < len(rs) && strings.ContainsRune(`"'”’)]»`, rs[j].r) {
				j++
			}
			if j < len(rs) && unicode.IsSpace(rs[j].r) {
				ends = append(ends, rs[j].off)
			}
		}
	}
	return ends
}

// fitHistory keeps the newest whole turns whose messages (content plus framing) fit limit.
func fitHistory(history []llm.Message, limit int) (kept []llm.Message, turns, dropped, tokens int) {
	all := splitTurns(history)
	i := len(all)
	for i > 0 {
		c := turnCost(all[i-1])
		if tokens+c > limit {
			break
		}
		tokens += c
		i--
	}
	for _, t := range all[i:] {
		kept = append(kept, t...)
	}
	return kept, len(all) - i, i, tokens
}

// splitTurns groups history into turns: each user message starts one, the assistant replies
// after it belong to it. Other roles are dropped (see BuildPrompt).
func splitTurns(history []llm.Message) [][]llm.Message {
	var turns [][]llm.Message
	for _, m := range history {
		switch m.Role {
		case "user":
			turns = append(turns, []llm.Message{m})
		case "assistant":
			if len(turns) == 0 {
				turns = append(turns, nil) // a reply with no question kept: a turn of its own
			}
			turns[len(turns)-1] = append(turns[len(turns)-1], m)
		}
	}
	return turns
}

func turnCost(t []llm.Message) int {
	n := 0
	for _, m := range t {
		n += chunk.CountTokens(m.Content) + messageOverhead
	}
	return n
}
