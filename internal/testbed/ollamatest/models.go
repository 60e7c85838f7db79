package ollamatest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/ragstack/rag-operator/internal/testbed/gguf"
)

// The production model names the operator uses; CreateBaseModels registers stand-ins under
// exactly these names so project code runs unchanged.
const (
	ChatModel      = "qwen3:8b"         // qwen3 arch, Go engine; chat with thinking; no embed (501)
	EmbedModel     = "nomic-embed-text" // bert arch, 768-d embeddings; no chat
	ReasoningModel = "deepseek-r1:14b"  // llama arch, llama.cpp runner; chat with thinking, embed works
)

// EmbedDim is the vector size of EmbedModel (nomic-embed-text's).
const EmbedDim = gguf.EmbeddingDim

// BaseModel is a generated model and how it is registered.
type BaseModel struct {
	Name       string
	Write      func(io.Writer) error
	Template   string
	Parameters map[string]any
}

// BaseModels lists the models CreateBaseModels creates. Templates and parameters follow the
// ones the Ollama library ships for the real models (trimmed), so thinking, stop sequences and
// the think=false prefill behave as in production.
var BaseModels = []BaseModel{
	{
		Name:     ChatModel,
		Write:    gguf.WriteQwen3,
		Template: qwen3Template,
		Parameters: map[string]any{
			"temperature":    0.6,
			"top_k":          20,
			"top_p":          0.95,
			"repeat_penalty": 1,
			"stop":           []string{"<|im_start|>", "<|im_end|>"},
		},
	},
	{
		Name:  EmbedModel,
		Write: func(w io.Writer) error { return gguf.WriteBert(w, gguf.EmbeddingDim) },
	},
	{
		Name:     ReasoningModel,
		Write:    gguf.WriteLlama,
		Template: deepseekR1Template,
		Parameters: map[string]any{
			"temperature": 0.6,
			"stop":        []string{"<｜User｜>", "<｜Assistant｜>"},
		},
	},
}

// CreateBaseModels uploads the generated GGUF files as blobs and creates every BaseModel.
func CreateBaseModels(ctx context.Context, client *api.Client) error {
	for _, m := range BaseModels {
		if err := m.Create(ctx, client); err != nil {
			return err
		}
	}
	return nil
}

// StartWithModels starts a server (see Start) and creates BaseModels on it.
func StartWithModels(t testing.TB, opts Options) *Server {
	t.Helper()
	s := Start(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := CreateBaseModels(ctx, s.Client()); err != nil {
		t.Fatal(err)
	}
	return s
}

// CreateBaseModel creates one of BaseModels by name.
func CreateBaseModel(ctx context.Context, client *api.Client, name string) error {
	for _, m := range BaseModels {
		if m.Name == name {
			return m.Create(ctx, client)
		}
	}
	return fmt.Errorf("ollamatest: no base model named %q", name)
}

// Create uploads the model's GGUF (generated once per process) and creates the model.
func (m BaseModel) Create(ctx context.Context, client *api.Client) error {
	data, digest, err := m.gguf()
	if err != nil {
		return err
	}
	if err := client.CreateBlob(ctx, digest, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("upload %s blob: %w", m.Name, err)
	}
	stream := false
	req := &api.CreateRequest{
		Model:      m.Name,
		Stream:     &stream,
		Files:      map[string]string{"model.gguf": digest},
		Template:   m.Template,
		Parameters: m.Parameters,
	}
	if err := client.Create(ctx, req, func(api.ProgressResponse) error { return nil }); err != nil {
		return fmt.Errorf("create %s: %w", m.Name, err)
	}
	return nil
}

type generated struct {
	once   sync.Once
	data   []byte
	digest string
	err    error
}

var ggufCache sync.Map // model name → *generated

func (m BaseModel) gguf() ([]byte, string, error) {
	v, _ := ggufCache.LoadOrStore(m.Name, &generated{})
	g := v.(*generated)
	g.once.Do(func() {
		var buf bytes.Buffer
		if g.err = m.Write(&buf); g.err != nil {
			return
		}
		g.data = buf.Bytes()
		g.digest = fmt.Sprintf("sha256:%x", sha256.Sum256(g.data))
	})
	return g.data, g.digest, g.err
}

// qwen3Template is the library's qwen3 template: ChatML, tools, and thinking. With think=false
// it pre-fills an empty thought, which the generated model answers directly.
const qwen3Template = `{{- $lastUserIdx := -1 -}}
{{- range $idx, $msg := .Messages -}}
{{- if eq $msg.Role "user" }}{{ $lastUserIdx = $idx }}{{ end -}}
{{- end }}
{{- if or .System .Tools }}<|im_start|>system
{{ if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>
{{- end -}}
<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}
{{- if and $.IsThinkSet (eq $i $lastUserIdx) }}
   {{- if $.Think -}}
      {{- " "}}/think
   {{- else -}}
      {{- " "}}/no_think
   {{- end -}}
{{- end }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if (and $.IsThinkSet (and .Thinking (or $last (gt $i $lastUserIdx)))) -}}
<think>{{ .Thinking }}</think>
{{ end -}}
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ if and $.IsThinkSet (not $.Think) -}}
<think>

</think>

{{ end -}}
{{ end }}
{{- end }}`

// deepseekR1Template is the library's deepseek-r1 template, with the generated vocabulary's
// </s> as end of turn.
const deepseekR1Template = `{{- if .System }}{{ .System }}{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1}}
{{- if eq .Role "user" }}<｜User｜>{{ .Content }}
{{- else if eq .Role "assistant" }}<｜Assistant｜>
  {{- if and $.IsThinkSet (and $last .Thinking) -}}
<think>
{{ .Thinking }}
</think>
{{- end }}{{ .Content }}{{- if not $last }}</s>{{- end }}
{{- end }}
{{- if and $last (ne .Role "assistant") }}<｜Assistant｜>
{{- if and $.IsThinkSet (not $.Think) -}}
<think>

</think>

{{ end }}
{{- end -}}
{{- end }}`
