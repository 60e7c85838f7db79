package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ragSystemPrompt is a RAG system prompt of the usual shape, for the chats the bench sends
// without the server (the baselines, and the direct path).
const ragSystemPrompt = "You answer questions using only the numbered sources below. Cite them as [SourceId: doc:chunk]. " +
	"If the sources do not contain the answer, say so."

// chatResponseTokens is the server's response budget (tokens.response), used for every chat.
const chatResponseTokens = 192

func ollamaChatBody(system, context, question string) map[string]any {
	return map[string]any{
		"model":  chatModel,
		"stream": true,
		"think":  false,
		"messages": []map[string]string{
			{"role": "system", "content": system + "\n\n" + context},
			{"role": "user", "content": question},
		},
		"options": map[string]any{"num_predict": chatResponseTokens},
	}
}

// postJSON posts body and decodes a 200 answer into out (nil: discarded); other codes are errors.
func postJSON(ctx context.Context, c *http.Client, url string, body, out any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("%s: status %d: %s", url, resp.StatusCode, strings.TrimSpace(string(data[:min(len(data), 300)])))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s: decoding answer: %w", url, err)
		}
	}
	return resp.StatusCode, nil
}

// streamOllamaChat posts a streamed /api/chat and reads it to the done line; it returns when the
// first content arrived. onLine, when set, runs each line's decoding (the baseline app decodes
// them on its event loop); onContent, when set, receives each piece of content.
// ollamaChatStats is how a streamed /api/chat went: when its first content arrived, and
// Ollama's own account from the done line.
type ollamaChatStats struct {
	First        time.Time
	PromptTokens int
	Load         time.Duration
	PromptEval   time.Duration
}

func streamOllamaChat(ctx context.Context, c *http.Client, base string, body map[string]any, onLine func(func()), onContent func(string)) (ollamaChatStats, error) {
	var st ollamaChatStats
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/chat", bytes.NewReader(b))
	if err != nil {
		return st, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return st, fmt.Errorf("ollama chat: status %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	rd := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, rerr := rd.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var chunk struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
				Done               bool          `json:"done"`
				Error              string        `json:"error"`
				PromptEvalCount    int           `json:"prompt_eval_count"`
				LoadDuration       time.Duration `json:"load_duration"`
				PromptEvalDuration time.Duration `json:"prompt_eval_duration"`
			}
			var derr error
			decode := func() { derr = json.Unmarshal(line, &chunk) }
			if onLine != nil {
				onLine(decode)
			} else {
				decode()
			}
			switch {
			case derr != nil:
				return st, fmt.Errorf("ollama chat: decoding stream: %w", derr)
			case chunk.Error != "":
				return st, fmt.Errorf("ollama chat: %s", chunk.Error)
			}
			if chunk.Message.Content != "" {
				if st.First.IsZero() {
					st.First = time.Now()
				}
				if onContent != nil {
					onContent(chunk.Message.Content)
				}
			}
			if chunk.Done {
				if st.First.IsZero() {
					return st, errors.New("ollama chat: answer without content")
				}
				st.PromptTokens, st.Load, st.PromptEval = chunk.PromptEvalCount, chunk.LoadDuration, chunk.PromptEvalDuration
				return st, nil
			}
		}
		if rerr != nil {
			return st, fmt.Errorf("ollama chat: stream ended early: %w", rerr)
		}
	}
}
