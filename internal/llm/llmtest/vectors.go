// Package llmtest holds test helpers shared by the packages that fake an llm.Client.
package llmtest

import (
	"hash/fnv"
	"math"
	"strings"
	"unicode"
)

// BagOfWords is a deterministic stand-in embedding: each word (lower-cased letters and digits)
// is hashed into one of dim buckets and the counts are normalised, so the cosine similarity of
// two texts is their word overlap and a test controls its scores by choosing words.
func BagOfWords(s string, dim int) []float32 {
	v := make([]float32, dim)
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		h := fnv.New32a()
		_, _ = h.Write([]byte(w))
		v[h.Sum32()%uint32(dim)]++
	}
	var n float64
	for _, x := range v {
		n += float64(x * x)
	}
	if n == 0 {
		v[0] = 1
		return v
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(n))
	}
	return v
}
