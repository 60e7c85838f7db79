package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/ragstack/rag-operator/internal/chunk"
	"github.com/ragstack/rag-operator/internal/parse"
	"github.com/ragstack/rag-operator/internal/testbed/gguf"
)

// vocabulary is the generated models' whole words (internal/testbed/gguf): each word is one
// token of the tiny bert, so a generated word costs the embedding model one token, as an
// ordinary English word costs nomic-embed-text about one. Sentence punctuation is one more
// token.
var vocabulary = gguf.Words()

// RealWordsPerPage is a printed page of running text; -scale multiplies it.
const RealWordsPerPage = 500

// corpusOptions describe the generated documents.
type corpusOptions struct {
	Docs         int
	Scale        float64 // multiplies every document's page count (at least one page stays)
	WordsPerPage int
	Seed         uint64
}

// document is one generated upload: plain text whose pages are separated by form feeds (the
// server's text parser makes each a page, as pdftotext output).
type document struct {
	Name   string
	Data   []byte
	Pages  int
	Words  int
	Chunks []chunk.Chunk // what the server's parser and chunker make of it (200/40)
}

// corpus is the whole upload set, identical for every strategy.
type corpus struct {
	Docs   []document
	Chunks int
	Words  int
	Pages  int
	Bytes  int64
}

// pageCount draws a document length: mostly 5–50 pages (log-uniform, as real collections have
// many short and fewer long documents), one in ten a 1–4 page note, one in twenty 51–120 pages.
func pageCount(r *rand.Rand) int {
	switch p := r.Float64(); {
	case p < 0.10:
		return 1 + r.IntN(4)
	case p < 0.15:
		return 51 + r.IntN(70)
	default:
		return int(math.Round(math.Exp(math.Log(5) + r.Float64()*(math.Log(50)-math.Log(5)))))
	}
}

// newCorpus generates the documents (deterministic for a seed) and chunks each exactly as the
// server does: internal/parse's text parser, then internal/chunk with 200/40.
func newCorpus(o corpusOptions) (*corpus, error) {
	r := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	// A Zipf-like word choice, so texts share common words and differ in rare ones.
	zipf := rand.NewZipf(r, 1.1, 4, uint64(len(vocabulary)-1))
	c := &corpus{}
	for i := range o.Docs {
		pages := max(1, int(math.Round(float64(pageCount(r))*o.Scale)))
		var b bytes.Buffer
		fmt.Fprintf(&b, "Report %d. ", i+1) // distinct content: the server de-duplicates by SHA-256
		words := 2
		for p := range pages {
			if p > 0 {
				b.WriteByte('\f')
			}
			for n := 0; n < o.WordsPerPage; {
				sl := 8 + r.IntN(13)
				for k := range sl {
					w := vocabulary[zipf.Uint64()]
					if k == 0 {
						w = strings.ToUpper(w[:1]) + w[1:]
					}
					b.WriteString(w)
					if k < sl-1 {
						b.WriteByte(' ')
					}
				}
				n += sl
				words += sl
				if r.IntN(6) == 0 {
					b.WriteString(".\n\n")
				} else {
					b.WriteString(". ")
				}
			}
		}
		d := document{Name: fmt.Sprintf("report-%04d.txt", i+1), Data: b.Bytes(), Pages: pages, Words: words}
		var err error
		if d.Chunks, err = chunkDocument(d.Data); err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
		c.Docs = append(c.Docs, d)
		c.Chunks += len(d.Chunks)
		c.Words += d.Words
		c.Pages += d.Pages
		c.Bytes += int64(len(d.Data))
	}
	return c, nil
}

// chunkOptions is the server's chunking config (the Python app's 200 tokens / 40 overlap).
var chunkOptions = chunk.Options{Size: 200, Overlap: 40}

// textParser is the server's parser; only its text path is used, so the PDF engine never starts.
var textParser = parse.New(parse.Options{})

// chunkDocument is what the server does to an uploaded .txt: internal/parse, then
// internal/chunk with 200/40.
func chunkDocument(data []byte) ([]chunk.Chunk, error) {
	pd, err := textParser.Parse(context.Background(), parse.TXT, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	secs := make([]chunk.Section, len(pd.Sections))
	for k, s := range pd.Sections {
		secs[k] = chunk.Section(s)
	}
	return chunk.Split(secs, chunkOptions), nil
}
