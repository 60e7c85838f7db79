package gguf

import "strings"

// words is the whole-word vocabulary shared by all three tokenizers: common English and the
// words RAG tests tend to use, lower-case ASCII letters only so every tokenizer can spell them.
var words = strings.Fields(`
the of and to in is that it for on with as was at by be this are from or have an not but
which one all were they we when there can been has more if will no their what so about
would out up them some into only time other could its than then two may first any these
like now over such our also new most after where just way even because through each many
how well those both very good under while last long must still see same being here much
make world year day people part number sound place water word work back give name line
great old small large big light heat cold warm fast slow high low left right near far open
close start end run walk read write learn know think feel find keep hold bring tell ask
answer question system model vector index search query document chunk text data file page
source score rank memory cache queue batch token context server client cluster node pod
service request response error retry limit budget config value field table store disk
network power model cloud stream build test check ready status state level phase health
green blue red white black yellow orange purple brown gray river mountain forest ocean
desert island valley city town village road bridge tower garden field flower tree leaf
stone rock sand snow rain wind storm cloud sun moon star planet earth fire air metal glass
paper wood iron gold silver copper bread milk cheese apple orange lemon grape honey sugar
salt pepper rice bean corn fish bird horse cat dog mouse lion tiger bear wolf fox eagle
owl whale shark frog snake bee ant spider house room door window wall floor roof table
chair bed lamp clock book letter story song music art color shape circle square line
point angle edge corner center middle top bottom side front inside outside above below
between around across along toward away again always never often sometimes today tomorrow
morning evening night week month season spring summer autumn winter early late quick
quiet loud soft hard easy simple clear bright dark deep shallow wide narrow thick thin
heavy empty full rich poor young happy calm brave kind proud wise true false real free
safe ready equal whole single double half every few several little enough certain common
`)

// uniqueWords returns words without duplicates, in first-seen order (the list above is
// written for readability, not uniqueness).
func uniqueWords() []string {
	seen := make(map[string]bool, len(words))
	out := make([]string, 0, len(words))
	for _, w := range words {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// Token types as used by llama.cpp and Ollama (llama_token_type).
const (
	tokenNormal      int32 = 1
	tokenUnknown     int32 = 2
	tokenControl     int32 = 3
	tokenUserDefined int32 = 4
	tokenByte        int32 = 6
)

// vocab is a tokenizer vocabulary under construction plus, per token, the generation role that
// the weight generator wires into the model (see class).
type vocab struct {
	tokens []string
	types  []int32
	scores []float32
	roles  []role
	ids    map[string]int
}

// role says what a token predicts when it is the last token (after) and which class of
// previous token makes it the prediction (predictedAfter; noClass for never).
type role struct {
	after          class
	predictedAfter class
}

// add appends a token and returns its id; a token already present keeps its first id.
func (v *vocab) add(tok string, typ int32, score float32, r role) int {
	if id, ok := v.ids[tok]; ok {
		return id
	}
	if v.ids == nil {
		v.ids = map[string]int{}
	}
	id := len(v.tokens)
	v.ids[tok] = id
	v.tokens = append(v.tokens, tok)
	v.types = append(v.types, typ)
	v.scores = append(v.scores, score)
	v.roles = append(v.roles, r)
	return id
}

func (v *vocab) id(tok string) int32 {
	id, ok := v.ids[tok]
	if !ok {
		panic("gguf: token not in vocabulary: " + tok)
	}
	return int32(id)
}

// gpt2ByteRunes is GPT-2's byte-level BPE map from bytes to printable runes: printable Latin-1
// bytes map to themselves, the rest to U+0100 upwards in byte order (so ' ' is 'Ġ', '\n' 'Ċ').
func gpt2ByteRunes() [256]rune {
	var m [256]rune
	next := rune(256)
	for b := 0; b < 256; b++ {
		switch {
		case b >= '!' && b <= '~', b >= 0xa1 && b <= 0xac, b >= 0xae:
			m[b] = rune(b)
		default:
			m[b] = next
			next++
		}
	}
	return m
}

func gpt2Encode(s string, m [256]rune) string {
	var sb strings.Builder
	for _, b := range []byte(s) {
		sb.WriteRune(m[b])
	}
	return sb.String()
}

// Words is the vocabulary's whole words, each one token for every generated tokenizer: text
// made of them costs a generated model about what ordinary English costs a real one.
func Words() []string { return uniqueWords() }
