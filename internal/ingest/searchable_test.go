package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/chunk"
	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/llm/llmtest"
	"github.com/ragstack/rag-operator/internal/parse"
	"github.com/ragstack/rag-operator/internal/parse/testdocs"
	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/store"
	"github.com/ragstack/rag-operator/internal/vector"
)

// bagDim is not a power of two: BagOfWords buckets by hash modulo dim, and the test words would
// collide with others on their low bits.
const bagDim = 1000

// bagLLM embeds with llmtest.BagOfWords, so a search for a word finds the chunks holding it.
type bagLLM struct{}

func (bagLLM) Embed(_ context.Context, _ llm.Lane, _ string, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = llmtest.BagOfWords(t, bagDim)
	}
	return out, nil
}

func (bagLLM) Chat(context.Context, llm.Lane, llm.ChatRequest) (llm.ChatResponse, error) {
	return llm.ChatResponse{Content: "unused"}, nil
}

func (bagLLM) Ping(context.Context) error { return nil }

// Every document with text is searchable: a three-word memo, a docx of four words, and docx
// files whose only distinctive word is in a footnote, an endnote, a comment, a text box, a
// header or a footer. Each is ingested with the production chunk settings into the embedded
// vector store and found, first, by a word only it contains.
func TestEveryDocumentWithTextIsFindable(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vs, err := vector.NewMemory(t.TempDir(), serverconfig.Collection{Name: "documents", VectorSize: bagDim, Distance: "Cosine"})
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	p := New(Config{Workers: 2, EmbedModel: "bag", Chunk: chunk.Options{Size: 200, Overlap: 40}, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, st, parse.New(parse.Options{}), bagLLM{}, vs, nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	body := []testdocs.Paragraph{{Style: "Heading1", Text: "Status report"}, {Text: "The team met and reviewed the plan for the next release."}}
	docs := []struct {
		name, word string
		data       []byte
	}{
		{"memo.txt", "zanzibar", []byte("Meet Zanzibar tomorrow")},
		{"memo.md", "xylophone", []byte("Bring the xylophone\n")},
		{"short.docx", "kumquat", testdocs.DOCX(testdocs.Paragraph{Text: "Quarterly kumquat budget approved"})},
		{"footnote.docx", "narwhal", testdocs.DOCXWith(testdocs.DOCXOptions{Body: body, Footnotes: []string{"Source: the narwhal survey."}})},
		{"endnote.docx", "pangolin", testdocs.DOCXWith(testdocs.DOCXOptions{Body: body, Endnotes: []string{"See the pangolin appendix."}})},
		{"comment.docx", "axolotl", testdocs.DOCXWith(testdocs.DOCXOptions{Body: body, Comments: []string{"Ask axolotl team"}})},
		{"textbox.docx", "quokka", testdocs.DOCXWith(testdocs.DOCXOptions{Body: body, TextBox: "Call quokka desk"})},
		{"header.docx", "wombat", testdocs.DOCXWith(testdocs.DOCXOptions{Body: body, Headers: []string{"Wombat Ltd"}})},
		{"footer.docx", "capybara", testdocs.DOCXWith(testdocs.DOCXOptions{Body: body, Footers: []string{"Capybara confidential"}})},
	}
	ids := map[string]string{} // word → document id
	for _, d := range docs {
		u, err := st.NewUpload(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		u.Write(d.data)
		typ, _ := parse.TypeOf(d.name)
		doc, err := st.Create(ctx, u, store.NewDocument{Name: d.name, Type: string(typ), Owner: "t"})
		if err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		ids[d.word] = doc.ID
	}
	p.Notify()
	deadline := time.Now().Add(30 * time.Second)
	for _, d := range docs {
		for {
			got, err := st.Get(ctx, ids[d.word])
			if err != nil {
				t.Fatal(err)
			}
			if got.Status == store.Failed {
				t.Fatalf("%s failed: %s", d.name, got.Error)
			}
			if got.Status == store.Ready {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is %s after 30s", d.name, got.Status)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, d := range docs {
		hits, err := vs.Search(ctx, llmtest.BagOfWords(d.word, bagDim), vector.SearchOptions{Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) == 0 || hits[0].DocumentID != ids[d.word] || hits[0].Score <= 0 || !strings.Contains(strings.ToLower(hits[0].Text), d.word) {
			var got []string
			for _, h := range hits {
				got = append(got, fmt.Sprintf("%s %.2f %q", h.Name, h.Score, h.Text))
			}
			t.Errorf("search %q: want %s first, got %v", d.word, d.name, got)
		}
	}
}
