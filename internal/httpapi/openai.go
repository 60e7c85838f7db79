package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ragstack/rag-operator/internal/chat"
	"github.com/ragstack/rag-operator/internal/llm"
)

// The OpenAI-compatible routes let existing chat UIs and SDKs use the server as if it were an
// OpenAI endpoint (base URL …/v1, the API key as the bearer token), with retrieval applied to
// every question.
//
// Mapping: the last message must be the user's and is the question; earlier user and assistant
// messages are the history (the budget keeps the newest turns that fit). System and developer
// messages are ignored: the server's own system prompt carries the citation rules and has a
// fixed budget, and a client's prompt could tell the model to answer from outside the sources.
// Sampling parameters (temperature, max_tokens, …) and the model name are ignored too: the
// answering pipeline has one configured model, options and token budget; responses name the
// model /v1/models lists. A model name other than that one or its aliases (Config.ModelAliases)
// is refused with 404 model_not_found. Every error under /v1, the 401 and the router's 404 and
// 405 included, has OpenAI's shape {"error": {message, type, param, code}}. Sources go in a non-standard "sources" field of the response (and of
// the stream's final chunk); nothing is appended to the content, so clients that do not know
// the field show the answer unchanged.

// completionRequest is the subset of OpenAI's chat completion request the server reads.
// Unknown fields are accepted and ignored, as clients send many.
type completionRequest struct {
	Model         string          `json:"model"`
	Messages      []openAIMessage `json:"messages"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	// Tags is an extension: it narrows retrieval as in /api/chat.
	Tags []string `json:"tags"`
}

type openAIMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// messageText reads a message's content: a string, null, or an array of parts of which the
// text parts are joined (images and other parts are ignored: the model is text-only).
func messageText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("message content must be a string or an array of content parts")
	}
	var texts []string
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n"), nil
}

// toChatRequest splits messages into the question and its history.
func toChatRequest(msgs []openAIMessage) (question string, history []llm.Message, err error) {
	var conv []llm.Message
	for i, m := range msgs {
		text, err := messageText(m.Content)
		if err != nil {
			return "", nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		switch m.Role {
		case "user", "assistant":
			conv = append(conv, llm.Message{Role: m.Role, Content: text})
		case "system", "developer", "tool", "function":
			// See the package comment above: not part of the conversation the server answers.
		default:
			return "", nil, fmt.Errorf("messages[%d]: unknown role %q", i, m.Role)
		}
	}
	if len(conv) == 0 || conv[len(conv)-1].Role != "user" {
		return "", nil, errors.New("the last user or assistant message must be the user's question")
	}
	return conv[len(conv)-1].Content, conv[:len(conv)-1], nil
}

// openAIError is OpenAI's error body, which SDKs parse into their exception types.
type openAIError struct {
	Error openAIErrorBody `json:"error"`
}

type openAIErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func newOpenAIError(code int, msg string) openAIError {
	return newOpenAIErrorCode(code, "", msg)
}

// newOpenAIErrorCode is newOpenAIError with an explicit error code ("" picks the status's).
func newOpenAIErrorCode(code int, errCode, msg string) openAIError {
	typ, c := "invalid_request_error", ""
	switch code {
	case http.StatusUnauthorized:
		typ, c = "authentication_error", "invalid_api_key"
	case http.StatusForbidden:
		typ, c = "permission_error", "forbidden"
	case http.StatusNotFound:
		c = "not_found"
	case http.StatusMethodNotAllowed:
		c = "method_not_allowed"
	case http.StatusUnsupportedMediaType:
		c = "unsupported_media_type"
	case http.StatusInsufficientStorage:
		typ, c = "api_error", "insufficient_storage"
	case http.StatusRequestEntityTooLarge:
		c = "context_length_exceeded"
	case http.StatusTooManyRequests:
		typ, c = "rate_limit_error", "rate_limit_exceeded"
	case http.StatusGatewayTimeout:
		typ, c = "timeout_error", "timeout"
	case http.StatusServiceUnavailable:
		typ, c = "api_error", "service_unavailable"
	default:
		if code >= 500 {
			typ, c = "api_error", "upstream_error"
		}
	}
	if errCode != "" {
		c = errCode
	}
	e := openAIError{Error: openAIErrorBody{Message: msg, Type: typ}}
	if c != "" {
		e.Error.Code = &c
	}
	return e
}

func writeOpenAIError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, newOpenAIError(code, fmt.Sprintf(format, args...)))
}

// Response shapes (https://platform.openai.com/docs/api-reference/chat).

type openAIUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usageOf(u chat.Usage) openAIUsage {
	return openAIUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.PromptTokens + u.CompletionTokens}
}

type completionMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type completionChoice struct {
	Index        int               `json:"index"`
	Message      completionMessage `json:"message"`
	FinishReason string            `json:"finish_reason"`
}

// Completion is a non-streamed chat.completion.
type Completion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"` // "chat.completion"
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   openAIUsage        `json:"usage"`
	Sources []Source           `json:"sources"` // extension: the cited sources
}

type chunkDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        chunkDelta `json:"delta"`
	FinishReason *string    `json:"finish_reason"` // null until the last chunk
}

// CompletionChunk is one chat.completion.chunk of a stream.
type CompletionChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"` // "chat.completion.chunk"
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	// Usage is only on the extra last chunk sent for stream_options.include_usage, whose
	// choices are empty (as OpenAI does it).
	Usage *openAIUsage `json:"usage,omitempty"`
	// Sources (extension) is only on the chunk that carries finish_reason.
	Sources *[]Source `json:"sources,omitempty"`
}

func finishReason(u chat.Usage) string {
	if u.DoneReason == "length" {
		return "length" // the response budget ran out
	}
	return "stop"
}

// completions serves POST /v1/chat/completions.
func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeOpenAIError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	var body completionRequest
	lr := http.MaxBytesReader(w, r.Body, s.cfg.MaxCompletionBytes)
	if err := json.NewDecoder(lr).Decode(&body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeOpenAIError(w, http.StatusRequestEntityTooLarge, "request body larger than %d bytes", s.cfg.MaxCompletionBytes)
		} else {
			writeOpenAIError(w, http.StatusBadRequest, "invalid JSON body: %v", err)
		}
		return
	}
	// Read to the end, so the server starts watching the connection and cancels the request's
	// context (and with it the Ollama call) as soon as the client goes away.
	if _, err := io.Copy(io.Discard, lr); err != nil {
		writeOpenAIError(w, http.StatusRequestEntityTooLarge, "request body larger than %d bytes", s.cfg.MaxCompletionBytes)
		return
	}
	if !s.knownModel(body.Model) {
		writeJSON(w, http.StatusNotFound, newOpenAIErrorCode(http.StatusNotFound, "model_not_found",
			fmt.Sprintf("The model %q does not exist; this server answers with %q (GET /v1/models lists it)", body.Model, s.cfg.ChatModel)))
		return
	}
	question, history, err := toChatRequest(body.Messages)
	if err != nil {
		writeOpenAIError(w, http.StatusBadRequest, "%v", err)
		return
	}
	tags, code, err := chatTags(principal(r), body.Tags)
	if err != nil {
		writeOpenAIError(w, code, "%v", err)
		return
	}
	if s.answerUnavailable(w, "openai", writeOpenAIError) {
		return
	}

	id := "chatcmpl-" + strings.ReplaceAll(uuid.NewString(), "-", "")
	created := time.Now().Unix()
	chunk := func(choices []chunkChoice) CompletionChunk {
		return CompletionChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: s.cfg.ChatModel, Choices: choices}
	}
	run := answerRun{api: "openai"}
	if body.Stream {
		// Clients expect the assistant role in the first delta.
		run.stream = newSSE(w, s.cfg.RagTimeout+30*time.Second, func(w io.Writer) error {
			empty := ""
			return sseData(w, chunk([]chunkChoice{{Delta: chunkDelta{Role: "assistant", Content: &empty}}}))
		})
		run.token = func(w io.Writer, content string) error {
			return sseData(w, chunk([]chunkChoice{{Delta: chunkDelta{Content: &content}}}))
		}
	}
	resp, err := s.answer(r, run, chat.Request{Question: question, History: history, Tags: tags})
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		code, msg, _ := answerError(err)
		if run.stream != nil && run.stream.opened() {
			// OpenAI's own mid-stream failure form; SDKs raise it as an APIError.
			run.stream.write(func(w io.Writer) error { return sseData(w, newOpenAIError(code, msg)) })
			return
		}
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", fmt.Sprint(int(s.cfg.RetryAfter/time.Second)))
		}
		writeOpenAIError(w, code, "%s", msg)
		return
	}
	src := sources(resp.Sources)
	reason := finishReason(resp.Usage)
	if run.stream != nil {
		run.stream.write(func(w io.Writer) error {
			last := chunk([]chunkChoice{{Delta: chunkDelta{}, FinishReason: &reason}})
			last.Sources = &src
			if err := sseData(w, last); err != nil {
				return err
			}
			if body.StreamOptions != nil && body.StreamOptions.IncludeUsage {
				u := usageOf(resp.Usage)
				usage := chunk([]chunkChoice{})
				usage.Usage = &u
				if err := sseData(w, usage); err != nil {
					return err
				}
			}
			return sseData(w, "[DONE]")
		})
		return
	}
	writeJSON(w, http.StatusOK, Completion{
		ID: id, Object: "chat.completion", Created: created, Model: s.cfg.ChatModel,
		Choices: []completionChoice{{Message: completionMessage{Role: "assistant", Content: resp.Answer}, FinishReason: reason}},
		Usage:   usageOf(resp.Usage), Sources: src,
	})
}

// Model is an entry of GET /v1/models.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "model"
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (s *Server) modelEntry() Model {
	return Model{ID: s.cfg.ChatModel, Object: "model", Created: s.started.Unix(), OwnedBy: "rag-server"}
}

// knownModel reports whether a request may name this model: the configured one, one of its
// aliases, or none at all (the configured one is meant). Any other name is 404
// model_not_found, as OpenAI answers, rather than silently answered by another model.
func (s *Server) knownModel(name string) bool {
	return name == "" || name == s.cfg.ChatModel || slices.Contains(s.cfg.ModelAliases, name)
}

// models serves GET /v1/models: the model the server answers with, then its aliases.
func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	list := []Model{s.modelEntry()}
	for _, a := range s.cfg.ModelAliases {
		m := s.modelEntry()
		m.ID = a
		list = append(list, m)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": list})
}

// model serves GET /v1/models/{id}.
func (s *Server) model(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" || !s.knownModel(id) {
		writeJSON(w, http.StatusNotFound, newOpenAIErrorCode(http.StatusNotFound, "model_not_found",
			fmt.Sprintf("The model %q does not exist; this server answers with %q", id, s.cfg.ChatModel)))
		return
	}
	m := s.modelEntry()
	m.ID = id
	writeJSON(w, http.StatusOK, m)
}
