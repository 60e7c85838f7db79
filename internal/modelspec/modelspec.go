// Package modelspec turns a declared model variant into what Ollama's API speaks (parameter
// names and values) and checks what Ollama reports back. The operator (Job arguments, status)
// and the model-sync command share it, so both agree on names, values and the spec hash.
package modelspec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// Variant is the part of a ModelVariant that defines the created model.
type Variant struct {
	Name       string         `json:"name"`
	From       string         `json:"from"`
	Parameters map[string]any `json:"parameters"`
	System     string         `json:"system,omitempty"`
	Template   string         `json:"template,omitempty"`
}

// FromSpec converts the API type, with parameters under Ollama's snake_case names.
func FromSpec(m ragv1.ModelVariant) Variant {
	return Variant{Name: m.Name, From: m.From, Parameters: Parameters(m.Parameters), System: m.System, Template: m.Template}
}

// Parameters maps declared parameters to Ollama's names (api/types.go FormatParams).
func Parameters(p ragv1.ModelParameters) map[string]any {
	out := map[string]any{"num_ctx": int(p.NumCtx)}
	ints := map[string]*int32{
		"num_thread": p.NumThread, "num_gpu": p.NumGPU, "num_batch": p.NumBatch, "main_gpu": p.MainGPU,
		"num_keep": p.NumKeep, "seed": p.Seed, "num_predict": p.NumPredict, "top_k": p.TopK, "repeat_last_n": p.RepeatLastN,
	}
	for name, v := range ints {
		if v != nil {
			out[name] = int(*v)
		}
	}
	floats := map[string]*ragv1.Number{
		"top_p": p.TopP, "min_p": p.MinP, "typical_p": p.TypicalP, "temperature": p.Temperature,
		"repeat_penalty": p.RepeatPenalty, "presence_penalty": p.PresencePenalty, "frequency_penalty": p.FrequencyPenalty,
	}
	for name, v := range floats {
		if v != nil {
			out[name] = v.Float64()
		}
	}
	if p.UseMmap != nil {
		out["use_mmap"] = *p.UseMmap
	}
	if len(p.Stop) > 0 {
		out["stop"] = append([]string(nil), p.Stop...)
	}
	return out
}

// Hash is a short, stable hash of everything that defines the created model; a change means
// the variant must be created again.
func (v Variant) Hash() string {
	b, _ := json.Marshal(v) // map keys are sorted by encoding/json
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:10]
}

// Accepted are the PARAMETER names Ollama's FormatParams knows (api/types.go). Ollama's create
// endpoint stores other names without complaint and fails later, at load; we refuse them first.
var Accepted = []string{"num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread", "num_keep", "seed",
	"num_predict", "top_k", "top_p", "min_p", "typical_p", "repeat_last_n", "temperature", "repeat_penalty",
	"presence_penalty", "frequency_penalty", "stop"}

// ValidateNames names every parameter Ollama does not accept.
func ValidateNames(params map[string]any) error {
	var unknown []string
	for _, name := range sortedKeys(params) {
		known := false
		for _, a := range Accepted {
			known = known || a == name
		}
		if !known {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("unknown parameter %s: Ollama accepts %s", strings.Join(unknown, ", "), strings.Join(Accepted, ", "))
	}
	return nil
}

// ParseShown reads the `parameters` text of /api/show ("num_ctx    8192\nstop \"<|im_end|>\"").
func ParseShown(text string) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		value := strings.Join(fields[1:], " ")
		if unq, err := strconv.Unquote(value); err == nil {
			value = unq
		}
		out[fields[0]] = append(out[fields[0]], value)
	}
	return out
}

// Verify checks every declared parameter appears in what Ollama shows with the same value; the
// error names each one that does not.
func Verify(declared map[string]any, shown map[string][]string) error {
	var problems []string
	for _, name := range sortedKeys(declared) {
		want := declared[name]
		got, ok := shown[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s not applied (declared %v)", name, want))
			continue
		}
		if !sameValue(want, got) {
			problems = append(problems, fmt.Sprintf("%s = %s, declared %v", name, strings.Join(got, ","), want))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("parameters differ from the spec: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Applied is the shown parameters as name=value strings, sorted, for status.
func Applied(shown map[string][]string) []string {
	var out []string
	for _, name := range sortedKeys(shown) {
		out = append(out, name+"="+strings.Join(shown[name], ","))
	}
	return out
}

func sameValue(want any, got []string) bool {
	switch w := want.(type) {
	case []string:
		a, b := append([]string(nil), w...), append([]string(nil), got...)
		sort.Strings(a)
		sort.Strings(b)
		return strings.Join(a, "\x00") == strings.Join(b, "\x00")
	case float64:
		g, err := strconv.ParseFloat(got[0], 64)
		return err == nil && fmt.Sprintf("%.6g", g) == fmt.Sprintf("%.6g", w)
	default:
		return len(got) == 1 && got[0] == fmt.Sprint(w)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
