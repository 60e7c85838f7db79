package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	oaoption "github.com/openai/openai-go/v3/option"

	"github.com/ragstack/rag-operator/internal/llm"
)

// TestOpenAIClientLibraryErrors drives the /v1 routes with OpenAI's own Go client library
// (github.com/openai/openai-go) against the real server: every refusal must come back as the
// library's *openai.Error with the status, type and code an OpenAI client expects.
func TestOpenAIClientLibraryErrors(t *testing.T) {
	f := &chatLLM{}
	h := newChatHarness(t, f, chatOptions{cfg: func(c *Config) {
		c.ModelAliases = []string{"gpt-4o-mini"}
		c.MaxCompletionBytes = 8 << 10
	}})
	h.seed()
	ctx := context.Background()
	client := func(key string) *openai.Client {
		c := openai.NewClient(oaoption.WithBaseURL(h.srv.URL+"/v1/"), oaoption.WithAPIKey(key), oaoption.WithMaxRetries(0))
		return &c
	}
	admin := client(adminTok)
	ask := func(c *openai.Client, model, question string) (*openai.ChatCompletion, error) {
		return c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(question)},
		})
	}
	expect := func(what string, err error, status int, typ, code string) {
		t.Helper()
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) {
			t.Errorf("%s: got %v (%T), want *openai.Error", what, err, err)
			return
		}
		if apiErr.StatusCode != status || apiErr.Type != typ || apiErr.Code != code || apiErr.Message == "" {
			t.Errorf("%s: got status %d type %q code %q message %q, want %d %q %q", what,
				apiErr.StatusCode, apiErr.Type, apiErr.Code, apiErr.Message, status, typ, code)
		}
		if strings.Contains(apiErr.Message, "10.0.0.7") || strings.Contains(apiErr.Message, h.dir) {
			t.Errorf("%s: internal detail in %q", what, apiErr.Message)
		}
	}

	// The configured model and its alias answer.
	for _, m := range []string{"qwen3-rag", "gpt-4o-mini"} {
		c, err := ask(admin, m, vacationQ)
		if err != nil || len(c.Choices) != 1 || c.Choices[0].Message.Content == "" {
			t.Fatalf("model %s: %v %+v", m, err, c)
		}
	}
	list, err := admin.Models.List(ctx)
	if err != nil || len(list.Data) != 2 || list.Data[0].ID != "qwen3-rag" || list.Data[1].ID != "gpt-4o-mini" {
		t.Fatalf("models: %v %+v", err, list)
	}

	// 401: no key, a wrong key.
	_, err = client("wrong-key-0123456789").Models.List(ctx)
	expect("wrong key", err, http.StatusUnauthorized, "authentication_error", "invalid_api_key")
	_, err = ask(client(""), "qwen3-rag", vacationQ)
	expect("no key", err, http.StatusUnauthorized, "authentication_error", "invalid_api_key")

	// 404: a model that does not exist is not answered by the configured one.
	calls, _, _ := f.stats()
	_, err = ask(admin, "gpt-5-turbo", vacationQ)
	expect("unknown model", err, http.StatusNotFound, "invalid_request_error", "model_not_found")
	if n, _, _ := f.stats(); n != calls {
		t.Errorf("the unknown model was answered: %d chat calls, was %d", n, calls)
	}
	_, err = admin.Models.Get(ctx, "gpt-5-turbo")
	expect("unknown model get", err, http.StatusNotFound, "invalid_request_error", "model_not_found")
	// 404 and 405 from the router.
	err = admin.Get(ctx, "no/such/route", nil, nil)
	expect("unknown route", err, http.StatusNotFound, "invalid_request_error", "not_found")
	err = admin.Delete(ctx, "models", nil, nil)
	expect("wrong method", err, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed")

	// 413: a body over MaxCompletionBytes.
	_, err = ask(admin, "qwen3-rag", strings.Repeat("word ", 4<<10))
	expect("body too large", err, http.StatusRequestEntityTooLarge, "invalid_request_error", "context_length_exceeded")

	// 429: the chat model's queue is full.
	f.set(func(f *chatLLM) {
		f.chatErr = fmt.Errorf("chat: %w: chat queue of the interactive lane is full", llm.ErrBusy)
	})
	_, err = ask(admin, "qwen3-rag", vacationQ)
	expect("queue full", err, http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded")
	// 502: Ollama failed; its address stays in the log.
	f.set(func(f *chatLLM) { f.chatErr = errors.New("dial tcp 10.0.0.7:11434: connection refused") })
	_, err = ask(admin, "qwen3-rag", vacationQ)
	expect("ollama down", err, http.StatusBadGateway, "api_error", "upstream_error")
}
