package gguf

import (
	"fmt"
	"io"
	"math/rand/v2"
)

// Seed fixes every generated weight, so the same build writes byte-identical files.
const Seed = 20260101

// Shapes of the generated models. The chat models are as small as Ollama's loaders accept; the
// embedding model keeps a production-sized output (EmbeddingDim, nomic-embed-text's) and
// context length but one layer and a small vocabulary.
const (
	ChatHidden      = 64
	ChatLayers      = 2
	ChatHeads       = 4
	ChatKVHeads     = 2
	ChatHeadDim     = ChatHidden / ChatHeads
	ChatFFN         = 128
	Qwen3ContextLen = 40960  // qwen3:8b's
	LlamaContextLen = 131072 // deepseek-r1:14b's
	EmbeddingDim    = 768    // nomic-embed-text's
	BertContextLen  = 2048   // nomic-embed-text's
	bertFFN         = 256
	// One attention head: Ollama reserves a worst-case graph holding a context×context score
	// matrix per head (2048² × 4 B = 16 MiB); nomic's 12 heads would cost 200 MiB per runner.
	bertHeads        = 1
	bertLayers       = 1
	chatEpsilon      = 1e-6
	bertEpsilon      = 1e-12
	bertPoolingMean  = uint32(1)
	qwen3RopeBase    = 1e6
	llamaRopeBase    = 1e4
	outputClassLogit = 3.0 // weight of the class feature in an output row; see chatEmbeddings
)

// class is the generation state a token stands for. The chat models are wired as a fixed chain
// of classes, so every reply is <think> two words </think> three words EOS (the thinking part
// is skipped when the prompt already ends the thought, as templates do for think=false):
//
//	prompt → <think> → thought1 → thought2 → </think> → answer1 → answer2 → answer3 → EOS
type class int8

const noClass class = -1

const (
	classPrompt class = iota
	classThinkOpen
	classThought1
	classThought2
	classThinkClose
	classAnswer1
	classAnswer2
	classAnswer3
	numClasses
)

// wordClasses are the classes filled by whole-word tokens, assigned to words round-robin.
var wordClasses = []class{classThought1, classThought2, classAnswer1, classAnswer2, classAnswer3}

func predecessor(c class) class {
	switch c {
	case classThought1:
		return classThinkOpen
	case classThought2:
		return classThought1
	case classAnswer1:
		return classThinkClose
	case classAnswer2:
		return classAnswer1
	case classAnswer3:
		return classAnswer2
	}
	return noClass
}

var (
	promptRole     = role{after: classPrompt, predictedAfter: noClass}
	thinkOpenRole  = role{after: classThinkOpen, predictedAfter: classPrompt}
	thinkCloseRole = role{after: classThinkClose, predictedAfter: classThought2}
	eosRole        = role{after: classPrompt, predictedAfter: classAnswer3}
	// blankLineRole marks the token a think=false prompt ends with ("</think>\n\n"): the
	// answer follows directly.
	blankLineRole = role{after: classThinkClose, predictedAfter: noClass}
)

func wordRole(i int) role {
	c := wordClasses[i%len(wordClasses)]
	return role{after: c, predictedAfter: predecessor(c)}
}

// WriteQwen3 writes a qwen3-architecture chat model (Ollama's Go engine, like qwen3:8b) with a
// GPT-2 byte-level BPE tokenizer, ChatML special tokens and <think>/</think>. It needs a ChatML
// template at create time to answer /api/chat; /api/embed on it fails as on the real model.
func WriteQwen3(w io.Writer) error {
	v := qwen3Vocab()
	f := &file{}
	f.set("general.architecture", "qwen3")
	f.set("general.name", "rag-operator testbed qwen3")
	f.set("general.file_type", fileTypeMostlyF16)
	f.set("qwen3.context_length", uint32(Qwen3ContextLen))
	f.set("qwen3.embedding_length", uint32(ChatHidden))
	f.set("qwen3.block_count", uint32(ChatLayers))
	f.set("qwen3.feed_forward_length", uint32(ChatFFN))
	f.set("qwen3.attention.head_count", uint32(ChatHeads))
	f.set("qwen3.attention.head_count_kv", uint32(ChatKVHeads))
	f.set("qwen3.attention.key_length", uint32(ChatHeadDim))
	f.set("qwen3.attention.value_length", uint32(ChatHeadDim))
	f.set("qwen3.attention.layer_norm_rms_epsilon", float32(chatEpsilon))
	f.set("qwen3.rope.freq_base", float32(qwen3RopeBase))
	f.set("tokenizer.ggml.model", "gpt2")
	f.set("tokenizer.ggml.pre", "qwen2")
	f.set("tokenizer.ggml.tokens", v.tokens)
	f.set("tokenizer.ggml.token_type", v.types)
	f.set("tokenizer.ggml.merges", v.merges)
	f.set("tokenizer.ggml.bos_token_id", uint32(v.id("<|endoftext|>")))
	f.set("tokenizer.ggml.eos_token_id", uint32(v.id("<|im_end|>")))
	f.set("tokenizer.ggml.padding_token_id", uint32(v.id("<|endoftext|>")))
	f.set("tokenizer.ggml.add_bos_token", false)

	rng := newRand("qwen3")
	embd, out := chatEmbeddings(rng, v.vocab)
	n := len(v.tokens)
	f.addTensor("token_embd.weight", F16, embd, ChatHidden, n)
	for i := range ChatLayers {
		p := fmt.Sprintf("blk.%d.", i)
		f.addTensor(p+"attn_norm.weight", F32, ones(ChatHidden), ChatHidden)
		f.addTensor(p+"attn_q.weight", F16, uniform(rng, ChatHidden*ChatHeads*ChatHeadDim, 0.1), ChatHidden, ChatHeads*ChatHeadDim)
		f.addTensor(p+"attn_q_norm.weight", F32, ones(ChatHeadDim), ChatHeadDim)
		f.addTensor(p+"attn_k.weight", F16, uniform(rng, ChatHidden*ChatKVHeads*ChatHeadDim, 0.1), ChatHidden, ChatKVHeads*ChatHeadDim)
		f.addTensor(p+"attn_k_norm.weight", F32, ones(ChatHeadDim), ChatHeadDim)
		f.addTensor(p+"attn_v.weight", F16, uniform(rng, ChatHidden*ChatKVHeads*ChatHeadDim, mixAmplitude), ChatHidden, ChatKVHeads*ChatHeadDim)
		f.addTensor(p+"attn_output.weight", F16, uniform(rng, ChatHeads*ChatHeadDim*ChatHidden, mixAmplitude), ChatHeads*ChatHeadDim, ChatHidden)
		addChatFFN(f, rng, p)
	}
	f.addTensor("output_norm.weight", F32, ones(ChatHidden), ChatHidden)
	f.addTensor("output.weight", F16, out, ChatHidden, n)
	return f.writeTo(w)
}

// WriteLlama writes a llama-architecture chat model (llama.cpp runner: generate, chat and
// embed) with a SentencePiece tokenizer: <unk>, <s>, </s>, 256 byte tokens, whole words, and the
// DeepSeek-R1 chat tokens <｜User｜>, <｜Assistant｜>, <think>, </think>.
func WriteLlama(w io.Writer) error {
	v := llamaVocab()
	f := &file{}
	f.set("general.architecture", "llama")
	f.set("general.name", "rag-operator testbed llama")
	f.set("general.file_type", fileTypeMostlyF16)
	f.set("llama.context_length", uint32(LlamaContextLen))
	f.set("llama.embedding_length", uint32(ChatHidden))
	f.set("llama.block_count", uint32(ChatLayers))
	f.set("llama.feed_forward_length", uint32(ChatFFN))
	f.set("llama.attention.head_count", uint32(ChatHeads))
	f.set("llama.attention.head_count_kv", uint32(ChatKVHeads))
	f.set("llama.attention.layer_norm_rms_epsilon", float32(chatEpsilon))
	f.set("llama.rope.dimension_count", uint32(ChatHeadDim))
	f.set("llama.rope.freq_base", float32(llamaRopeBase))
	f.set("tokenizer.ggml.model", "llama")
	f.set("tokenizer.ggml.tokens", v.tokens)
	f.set("tokenizer.ggml.scores", v.scores)
	f.set("tokenizer.ggml.token_type", v.types)
	f.set("tokenizer.ggml.unknown_token_id", uint32(v.id("<unk>")))
	f.set("tokenizer.ggml.bos_token_id", uint32(v.id("<s>")))
	f.set("tokenizer.ggml.eos_token_id", uint32(v.id("</s>")))
	f.set("tokenizer.ggml.padding_token_id", uint32(v.id("<unk>")))
	f.set("tokenizer.ggml.add_bos_token", true)
	f.set("tokenizer.ggml.add_eos_token", false)

	rng := newRand("llama")
	embd, out := chatEmbeddings(rng, v)
	n := len(v.tokens)
	f.addTensor("token_embd.weight", F16, embd, ChatHidden, n)
	for i := range ChatLayers {
		p := fmt.Sprintf("blk.%d.", i)
		f.addTensor(p+"attn_norm.weight", F32, ones(ChatHidden), ChatHidden)
		f.addTensor(p+"attn_q.weight", F16, uniform(rng, ChatHidden*ChatHidden, 0.1), ChatHidden, ChatHidden)
		f.addTensor(p+"attn_k.weight", F16, uniform(rng, ChatHidden*ChatKVHeads*ChatHeadDim, 0.1), ChatHidden, ChatKVHeads*ChatHeadDim)
		f.addTensor(p+"attn_v.weight", F16, uniform(rng, ChatHidden*ChatKVHeads*ChatHeadDim, mixAmplitude), ChatHidden, ChatKVHeads*ChatHeadDim)
		f.addTensor(p+"attn_output.weight", F16, uniform(rng, ChatHidden*ChatHidden, mixAmplitude), ChatHidden, ChatHidden)
		addChatFFN(f, rng, p)
	}
	f.addTensor("output_norm.weight", F32, ones(ChatHidden), ChatHidden)
	f.addTensor("output.weight", F16, out, ChatHidden, n)
	return f.writeTo(w)
}

// WriteBert writes a bert-architecture embedding model (Ollama's Go engine) with a WordPiece
// tokenizer and mean pooling, whose vectors have dim dimensions (a multiple of 32; use
// EmbeddingDim to stand in for nomic-embed-text). Large matrices are Q8_0 to keep the file at a
// few MB. One weak layer over random token vectors makes it close to a bag of words: texts that
// share words get a higher cosine similarity.
func WriteBert(w io.Writer, dim int) error {
	if dim <= 0 || dim%32 != 0 { // Q8_0 rows hold whole blocks of 32
		return fmt.Errorf("gguf: bert dimension %d is not a positive multiple of 32", dim)
	}
	v := bertVocab()
	n := len(v.tokens)
	f := &file{}
	f.set("general.architecture", "bert")
	f.set("general.name", "rag-operator testbed bert")
	f.set("general.file_type", fileTypeMostlyQ8_0)
	f.set("bert.vocab_size", uint32(n))
	f.set("bert.context_length", uint32(BertContextLen))
	f.set("bert.embedding_length", uint32(dim))
	f.set("bert.block_count", uint32(bertLayers))
	f.set("bert.feed_forward_length", uint32(bertFFN))
	f.set("bert.attention.head_count", uint32(bertHeads))
	f.set("bert.attention.layer_norm_epsilon", float32(bertEpsilon))
	f.set("bert.attention.causal", false)
	f.set("bert.pooling_type", bertPoolingMean)
	f.set("tokenizer.ggml.model", "bert")
	f.set("tokenizer.ggml.tokens", v.tokens)
	f.set("tokenizer.ggml.token_type", v.types)
	f.set("tokenizer.ggml.scores", v.scores)
	f.set("tokenizer.ggml.padding_token_id", uint32(v.id("[PAD]")))
	f.set("tokenizer.ggml.unknown_token_id", uint32(v.id("[UNK]")))
	f.set("tokenizer.ggml.cls_token_id", uint32(v.id("[CLS]")))
	//nolint:misspell // the GGUF key really is spelled this way (llama.cpp and Ollama read it).
	f.set("tokenizer.ggml.seperator_token_id", uint32(v.id("[SEP]")))
	f.set("tokenizer.ggml.mask_token_id", uint32(v.id("[MASK]")))

	rng := newRand("bert")
	// Layer weights of ±0.03 move a layer-normed token by about a fifth of its length: the
	// output still mostly reflects which tokens occur, a little their order and position.
	const layerAmp = 0.03
	f.addTensor("token_embd.weight", Q8_0, uniform(rng, dim*n, 1), dim, n)
	f.addTensor("token_types.weight", F32, uniform(rng, dim*2, 0.02), dim, 2)
	f.addTensor("position_embd.weight", Q8_0, uniform(rng, dim*BertContextLen, 0.05), dim, BertContextLen)
	f.addTensor("token_embd_norm.weight", F32, ones(dim), dim)
	f.addTensor("token_embd_norm.bias", F32, zeros(dim), dim)
	for i := range bertLayers {
		p := fmt.Sprintf("blk.%d.", i)
		for _, name := range []string{"attn_q", "attn_k", "attn_v", "attn_output"} {
			f.addTensor(p+name+".weight", Q8_0, uniform(rng, dim*dim, layerAmp), dim, dim)
			f.addTensor(p+name+".bias", F32, zeros(dim), dim)
		}
		f.addTensor(p+"attn_output_norm.weight", F32, ones(dim), dim)
		f.addTensor(p+"attn_output_norm.bias", F32, zeros(dim), dim)
		f.addTensor(p+"ffn_up.weight", Q8_0, uniform(rng, dim*bertFFN, layerAmp), dim, bertFFN)
		f.addTensor(p+"ffn_up.bias", F32, zeros(bertFFN), bertFFN)
		f.addTensor(p+"ffn_down.weight", Q8_0, uniform(rng, bertFFN*dim, layerAmp), bertFFN, dim)
		f.addTensor(p+"ffn_down.bias", F32, zeros(dim), dim)
		f.addTensor(p+"layer_output_norm.weight", F32, ones(dim), dim)
		f.addTensor(p+"layer_output_norm.bias", F32, zeros(dim), dim)
	}
	return f.writeTo(w)
}

// mixAmplitude sizes the attention value/output projections of the chat models so attention
// adds about a tenth of a token's length: far too little to change the class chain. Replies
// therefore hardly depend on the prompt (qwen3 answers the same words to every chat prompt; the
// llama model varies a little).
const mixAmplitude = 0.07

func addChatFFN(f *file, rng *rand.Rand, p string) {
	f.addTensor(p+"ffn_norm.weight", F32, ones(ChatHidden), ChatHidden)
	f.addTensor(p+"ffn_gate.weight", F16, uniform(rng, ChatHidden*ChatFFN, 0.02), ChatHidden, ChatFFN)
	f.addTensor(p+"ffn_up.weight", F16, uniform(rng, ChatHidden*ChatFFN, 0.02), ChatHidden, ChatFFN)
	f.addTensor(p+"ffn_down.weight", F16, uniform(rng, ChatFFN*ChatHidden, 0.02), ChatFFN, ChatHidden)
}

// chatEmbeddings builds the token embedding and output matrices (vocab rows of ChatHidden) that
// make generation follow the class chain. The first numClasses dimensions are class features:
// a token's embedding is 1 on the class it stands for, plus small noise elsewhere. As layers
// only add a little, the final RMS-normed hidden state is dominated by the last token's class
// feature (about 6.4), and an output row carrying outputClassLogit on its predecessor class
// wins by more than ten logits. Which word of a class wins is decided by the noise dimensions,
// so it is deterministic gibberish. Tokens that must never be generated get a negative weight on
// every class feature.
func chatEmbeddings(rng *rand.Rand, v *vocab) (embd, out []float32) {
	n := len(v.tokens)
	embd = make([]float32, 0, n*ChatHidden)
	out = make([]float32, 0, n*ChatHidden)
	for _, r := range v.roles {
		row := make([]float32, ChatHidden)
		row[r.after] = 1
		copy(row[numClasses:], uniform(rng, ChatHidden-int(numClasses), 0.17))
		embd = append(embd, row...)

		row = make([]float32, ChatHidden)
		if r.predictedAfter == noClass {
			for c := range numClasses {
				row[c] = -1
			}
		} else {
			row[r.predictedAfter] = outputClassLogit
		}
		copy(row[numClasses:], uniform(rng, ChatHidden-int(numClasses), 0.5))
		out = append(out, row...)
	}
	return embd, out
}

// newRand returns a generator seeded from Seed and the model name, so models do not share
// weights and adding one model does not change another.
func newRand(model string) *rand.Rand {
	var h uint64 = 14695981039346656037 // FNV-1a
	for _, b := range []byte(model) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return rand.New(rand.NewPCG(Seed, h))
}

// uniform draws n values uniformly from [-amp, amp]. It uses only PCG's integer stream, whose
// output is specified, so files do not change with Go's float sampling algorithms.
func uniform(rng *rand.Rand, n int, amp float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		u := float32(rng.Uint64()>>40) / (1 << 24) // [0, 1)
		out[i] = (2*u - 1) * amp
	}
	return out
}

func ones(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

func zeros(n int) []float32 { return make([]float32, n) }

// bpeVocab is a byte-level BPE vocabulary with its merge list.
type bpeVocab struct {
	*vocab
	merges []string
}

// qwen3Vocab builds a GPT-2 style byte-level BPE vocabulary: the 256 byte tokens, " word"
// tokens reachable by a chain of merges, "\n\n", then Qwen's special tokens at the end.
func qwen3Vocab() bpeVocab {
	m := gpt2ByteRunes()
	v := bpeVocab{vocab: &vocab{}}
	for b := range 256 {
		v.add(string(m[b]), tokenNormal, 0, promptRole)
	}
	list := uniqueWords()
	// Whole words first, so a word that is also another word's prefix keeps its role.
	for i, w := range list {
		v.add(gpt2Encode(" "+w, m), tokenNormal, 0, wordRole(i))
	}
	seen := map[string]bool{}
	addMerge := func(left, right string) {
		if mg := left + " " + right; !seen[mg] {
			seen[mg] = true
			v.merges = append(v.merges, mg)
		}
	}
	for _, w := range list {
		runes := []rune(gpt2Encode(" "+w, m))
		for k := 2; k <= len(runes); k++ {
			v.add(string(runes[:k]), tokenNormal, 0, promptRole)
			addMerge(string(runes[:k-1]), string(runes[k-1]))
		}
	}
	nl := string(m['\n'])
	v.add(nl+nl, tokenNormal, 0, blankLineRole)
	addMerge(nl, nl)

	v.add("<|endoftext|>", tokenControl, 0, promptRole)
	v.add("<|im_start|>", tokenControl, 0, promptRole)
	v.add("<|im_end|>", tokenControl, 0, eosRole)
	v.add("<think>", tokenUserDefined, 0, thinkOpenRole)
	v.add("</think>", tokenUserDefined, 0, thinkCloseRole)
	return v
}

// llamaVocab builds a SentencePiece vocabulary. llama.cpp's SPM tokenizer merges adjacent
// pieces whose concatenation is in the vocabulary, highest score first, and falls back to the
// byte tokens; so every prefix of "▁word" is a piece, longer ones scoring higher.
func llamaVocab() *vocab {
	v := &vocab{}
	v.add("<unk>", tokenUnknown, 0, promptRole)
	v.add("<s>", tokenControl, 0, promptRole)
	v.add("</s>", tokenControl, 0, eosRole)
	for b := range 256 {
		r := promptRole
		if b == '\n' {
			r = blankLineRole
		}
		v.add(fmt.Sprintf("<0x%02X>", b), tokenByte, 0, r)
	}
	v.add("<｜User｜>", tokenControl, 0, promptRole)
	v.add("<｜Assistant｜>", tokenControl, 0, promptRole)
	v.add("<think>", tokenUserDefined, 0, thinkOpenRole)
	v.add("</think>", tokenUserDefined, 0, thinkCloseRole)
	v.add("▁", tokenNormal, -1000, promptRole)
	list := uniqueWords()
	for i, w := range list {
		v.add("▁"+w, tokenNormal, float32(len(w)), wordRole(i))
	}
	for _, w := range list {
		runes := []rune("▁" + w)
		for k := 2; k < len(runes); k++ {
			v.add(string(runes[:k]), tokenNormal, float32(k-1), promptRole)
		}
	}
	return v
}

// bertVocab builds a WordPiece vocabulary the way GGUF stores it: word-initial pieces carry the
// "▁" prefix, continuation pieces none. Single letters, digits and punctuation in both forms
// let any ASCII word be spelled, so only non-ASCII words become [UNK].
func bertVocab() *vocab {
	v := &vocab{}
	v.add("[PAD]", tokenControl, 0, promptRole)
	v.add("[UNK]", tokenUnknown, 0, promptRole)
	v.add("[CLS]", tokenControl, 0, promptRole)
	v.add("[SEP]", tokenControl, 0, promptRole)
	v.add("[MASK]", tokenControl, 0, promptRole)
	for _, w := range uniqueWords() {
		v.add("▁"+w, tokenNormal, 0, promptRole)
	}
	for _, s := range []string{"s", "es", "ed", "ing", "ly", "er", "est", "tion", "ment", "ness"} {
		v.add(s, tokenNormal, 0, promptRole)
	}
	for c := byte('!'); c <= '~'; c++ {
		if c >= 'A' && c <= 'Z' {
			continue // the tokenizer lower-cases
		}
		v.add("▁"+string(c), tokenNormal, 0, promptRole)
		v.add(string(c), tokenNormal, 0, promptRole)
	}
	return v
}
