package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/ollama/ollama/fs/ggml"
)

type writerFunc func(io.Writer) error

var models = []struct {
	name  string
	write writerFunc
	arch  string
	keys  map[string]any
	max   int // bytes
}{
	{"qwen3", WriteQwen3, "qwen3", map[string]any{
		"qwen3.embedding_length":        uint32(ChatHidden),
		"qwen3.block_count":             uint32(ChatLayers),
		"qwen3.attention.head_count":    uint32(ChatHeads),
		"qwen3.attention.head_count_kv": uint32(ChatKVHeads),
		"qwen3.attention.key_length":    uint32(ChatHeadDim),
		"qwen3.context_length":          uint32(Qwen3ContextLen),
		"tokenizer.ggml.model":          "gpt2",
		"tokenizer.ggml.pre":            "qwen2",
		"tokenizer.ggml.add_bos_token":  false,
	}, 1 << 20},
	{"bert", func(w io.Writer) error { return WriteBert(w, EmbeddingDim) }, "bert", map[string]any{
		"bert.embedding_length":             uint32(EmbeddingDim),
		"bert.context_length":               uint32(BertContextLen),
		"bert.pooling_type":                 uint32(1),
		"bert.attention.causal":             false,
		"tokenizer.ggml.model":              "bert",
		"tokenizer.ggml.seperator_token_id": uint32(3), //nolint:misspell // GGUF spelling
		"tokenizer.ggml.cls_token_id":       uint32(2),
	}, 6 << 20},
	{"llama", WriteLlama, "llama", map[string]any{
		"llama.embedding_length":       uint32(ChatHidden),
		"llama.rope.dimension_count":   uint32(ChatHeadDim),
		"llama.context_length":         uint32(LlamaContextLen),
		"tokenizer.ggml.model":         "llama",
		"tokenizer.ggml.bos_token_id":  uint32(1),
		"tokenizer.ggml.eos_token_id":  uint32(2),
		"tokenizer.ggml.add_bos_token": true,
	}, 1 << 20},
}

func write(t *testing.T, fn writerFunc) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := fn(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestParsesWithOllamaDecoder reads every model back with Ollama's own GGUF decoder.
func TestParsesWithOllamaDecoder(t *testing.T) {
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			b := write(t, m.write)
			if len(b) > m.max {
				t.Errorf("file is %d bytes, want at most %d", len(b), m.max)
			}
			if string(b[:4]) != "GGUF" || binary.LittleEndian.Uint32(b[4:]) != 3 {
				t.Fatalf("header %q version %d, want GGUF v3", b[:4], binary.LittleEndian.Uint32(b[4:]))
			}
			f, err := ggml.Decode(bytes.NewReader(b), -1)
			if err != nil {
				t.Fatal(err)
			}
			if f.Length != int64(len(b)) {
				t.Errorf("decoder ends at %d, file has %d bytes", f.Length, len(b))
			}
			kv := f.KV()
			if got := kv.Architecture(); got != m.arch {
				t.Errorf("architecture %q, want %q", got, m.arch)
			}
			for k, want := range m.keys {
				if got := kv[k]; got != want {
					t.Errorf("%s = %v (%T), want %v (%T)", k, got, got, want, want)
				}
			}
			tokens := kv.Strings("tokenizer.ggml.tokens")
			if types := kv.Ints("tokenizer.ggml.token_type"); len(types) != len(tokens) || len(tokens) == 0 {
				t.Errorf("%d tokens, %d token types", len(tokens), len(types))
			}
			if dup := firstDuplicate(tokens); dup != "" {
				t.Errorf("token %q appears twice", dup)
			}
			if f.Tensors().Offset%Alignment != 0 {
				t.Errorf("tensor data starts at %d, not %d-aligned", f.Tensors().Offset, Alignment)
			}
			for _, ts := range f.Tensors().Items() {
				if ts.Offset%Alignment != 0 {
					t.Errorf("tensor %s at offset %d, not aligned", ts.Name, ts.Offset)
				}
				if len(ts.Shape) == 1 && ts.Kind != uint32(F32) {
					t.Errorf("1-D tensor %s has type %d, want F32", ts.Name, ts.Kind)
				}
			}
			if vocab := f.Tensors().Items("token_embd.weight"); len(vocab) != 1 || vocab[0].Shape[1] != uint64(len(tokens)) {
				t.Errorf("token_embd does not have one row per token")
			}
		})
	}
}

// TestTensorNames checks the names the loaders look up (Ollama's gguf struct tags for qwen3 and
// bert, llama.cpp's for llama); a missing one only shows when a server loads the model.
func TestTensorNames(t *testing.T) {
	chat := []string{"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight",
		"attn_output.weight", "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"}
	want := map[string][]string{
		"qwen3": perLayer([]string{"token_embd.weight", "output_norm.weight", "output.weight"}, ChatLayers,
			append(slices.Clone(chat), "attn_q_norm.weight", "attn_k_norm.weight")),
		"llama": perLayer([]string{"token_embd.weight", "output_norm.weight", "output.weight"}, ChatLayers, chat),
		"bert": perLayer([]string{"token_embd.weight", "token_types.weight", "position_embd.weight",
			"token_embd_norm.weight", "token_embd_norm.bias"}, bertLayers, []string{
			"attn_q.weight", "attn_q.bias", "attn_k.weight", "attn_k.bias", "attn_v.weight", "attn_v.bias",
			"attn_output.weight", "attn_output.bias", "attn_output_norm.weight", "attn_output_norm.bias",
			"ffn_up.weight", "ffn_up.bias", "ffn_down.weight", "ffn_down.bias",
			"layer_output_norm.weight", "layer_output_norm.bias"}),
	}
	for _, m := range models {
		f, err := ggml.Decode(bytes.NewReader(write(t, m.write)), -1)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ts := range f.Tensors().Items() {
			got = append(got, ts.Name)
		}
		slices.Sort(got)
		w := slices.Sorted(slices.Values(want[m.name]))
		if !slices.Equal(got, w) {
			t.Errorf("%s tensors:\n got %v\nwant %v", m.name, got, w)
		}
	}
}

func perLayer(global []string, layers int, each []string) []string {
	out := slices.Clone(global)
	for i := range layers {
		for _, n := range each {
			out = append(out, fmt.Sprintf("blk.%d.%s", i, n))
		}
	}
	return out
}

func TestDeterministic(t *testing.T) {
	for _, m := range models {
		if !bytes.Equal(write(t, m.write), write(t, m.write)) {
			t.Errorf("%s: two writes differ", m.name)
		}
	}
}

func TestBertDimension(t *testing.T) {
	b := write(t, func(w io.Writer) error { return WriteBert(w, 128) })
	f, err := ggml.Decode(bytes.NewReader(b), -1)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.KV().EmbeddingLength(); got != 128 {
		t.Errorf("embedding_length %d, want 128", got)
	}
	if err := WriteBert(io.Discard, 100); err == nil {
		t.Error("dimension 100 accepted")
	}
}

func TestBPEMergesProduceVocabularyTokens(t *testing.T) {
	v := qwen3Vocab()
	for _, mg := range v.merges {
		left, right, ok := strings.Cut(mg, " ")
		if !ok {
			t.Fatalf("merge %q has no space", mg)
		}
		if _, ok := v.ids[left+right]; !ok {
			t.Errorf("merge %q yields %q, not a token", mg, left+right)
		}
	}
	if _, ok := v.ids["Ġthe"]; !ok {
		t.Error(`" the" is not a token`)
	}
}

// TestGenerationChain runs greedy decoding on the output layer alone (the layers only add a
// little), checking the wiring the package comment promises: from a prompt's last token the
// model thinks two words, closes the thought, answers three words and stops.
func TestGenerationChain(t *testing.T) {
	q := qwen3Vocab()
	l := llamaVocab()
	for _, tc := range []struct {
		name       string
		v          *vocab
		start, eos string
		wantThink  bool
	}{
		{"qwen3 think", q.vocab, "Ċ", "<|im_end|>", true},
		{"qwen3 no think", q.vocab, "ĊĊ", "<|im_end|>", false},
		{"llama think", l, "<｜Assistant｜>", "</s>", true},
		{"llama no think", l, "<0x0A>", "</s>", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			embd, out := chatEmbeddings(newRand(tc.name), tc.v)
			tok := int(tc.v.id(tc.start))
			var got []string
			for range 12 {
				tok = greedyNext(embd, out, tok)
				got = append(got, tc.v.tokens[tok])
				if tok == int(tc.v.id(tc.eos)) {
					break
				}
			}
			want := 4 // three words and EOS
			if tc.wantThink {
				want = 8
				if got[0] != "<think>" || got[3] != "</think>" {
					t.Errorf("no thought in %q", got)
				}
			}
			if len(got) != want || got[len(got)-1] != tc.eos {
				t.Fatalf("generated %q, want %d tokens ending in %s", got, want, tc.eos)
			}
			for _, s := range got {
				if s != "<think>" && s != "</think>" && s != tc.eos &&
					!strings.HasPrefix(s, "Ġ") && !strings.HasPrefix(s, "▁") {
					t.Errorf("generated %q, not a whole word", s)
				}
			}
		})
	}
}

func greedyNext(embd, out []float32, tok int) int {
	h := slices.Clone(embd[tok*ChatHidden : (tok+1)*ChatHidden])
	var ss float64
	for _, x := range h {
		ss += float64(x * x)
	}
	scale := float32(1 / math.Sqrt(ss/float64(len(h))+chatEpsilon))
	best, bestLogit := -1, float32(math.Inf(-1))
	for i := 0; i < len(out)/ChatHidden; i++ {
		var logit float32
		for j, x := range h {
			logit += x * scale * out[i*ChatHidden+j]
		}
		if logit > bestLogit {
			best, bestLogit = i, logit
		}
	}
	return best
}

func TestFloat16Bits(t *testing.T) {
	for _, tc := range []struct {
		in   float32
		want uint16
	}{
		{0, 0}, {1, 0x3c00}, {-2, 0xc000}, {0.5, 0x3800}, {65504, 0x7bff}, {1e6, 0x7c00},
		{0.1, 0x2e66}, {6e-8, 0x0001}, {1e-9, 0}, {float32(math.Inf(-1)), 0xfc00},
	} {
		if got := float16Bits(tc.in); got != tc.want {
			t.Errorf("float16Bits(%g) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
}

func TestQuantizeQ8_0(t *testing.T) {
	in := make([]float32, 64)
	for i := range in {
		in[i] = float32(i-32) / 10
	}
	b := quantizeQ8_0(in, 64)
	if len(b) != 2*34 {
		t.Fatalf("%d bytes, want 68", len(b))
	}
	d := float16ToFloat32(binary.LittleEndian.Uint16(b))
	for i := range 32 {
		if got := d * float32(int8(b[2+i])); math.Abs(float64(got-in[i])) > 0.02 {
			t.Errorf("value %d: %g, want %g", i, got, in[i])
		}
	}
}

func float16ToFloat32(h uint16) float32 {
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	v := math.Ldexp(1+mant/1024, exp-15)
	if exp == 0 {
		v = math.Ldexp(mant/1024, -14)
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return float32(v)
}

func firstDuplicate(s []string) string {
	seen := map[string]bool{}
	for _, x := range s {
		if seen[x] {
			return x
		}
		seen[x] = true
	}
	return ""
}
