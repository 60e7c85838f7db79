package controllers

import (
	"context"
	"fmt"

	"github.com/ollama/ollama/api"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/internal/modelsync"
)

// poolServer is one Ollama server of a pool and its address (named in errors).
type poolServer struct {
	url string
	api OllamaAPI
}

// ollamaPool is the operator's view of a pool of Ollama servers as one OllamaAPI, so the model
// reconcile reads "every server" where it reads "the server": a variant is listed only when
// every server lists it with the same digest, Show fails unless every server shows it (and
// returns the first that differs), a model is running only where it runs on every server, and
// warm-ups go to every server. Errors name the server.
type ollamaPool []poolServer

func (p ollamaPool) Version(ctx context.Context) (string, error) {
	var first string
	for i, s := range p {
		v, err := s.api.Version(ctx)
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.url, err)
		}
		if i == 0 {
			first = v
		}
	}
	return first, nil
}

func (p ollamaPool) List(ctx context.Context) (*api.ListResponse, error) {
	var lists []*api.ListResponse
	for _, s := range p {
		l, err := s.api.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.url, err)
		}
		lists = append(lists, l)
	}
	out := &api.ListResponse{}
	for _, m := range lists[0].Models {
		everywhere := true
		for _, l := range lists[1:] {
			if listedDigest(l, m.Name) != m.Digest {
				everywhere = false
				break
			}
		}
		if everywhere {
			out.Models = append(out.Models, m)
		}
	}
	return out, nil
}

func (p ollamaPool) ListRunning(ctx context.Context) (*api.ProcessResponse, error) {
	var lists []*api.ProcessResponse
	for _, s := range p {
		l, err := s.api.ListRunning(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.url, err)
		}
		lists = append(lists, l)
	}
	out := &api.ProcessResponse{}
	for _, m := range lists[0].Models {
		keep := m
		everywhere := true
		for _, l := range lists[1:] {
			var found *api.ProcessModelResponse
			for j := range l.Models {
				if modelsync.SameModel(l.Models[j].Name, m.Name) {
					found = &l.Models[j]
				}
			}
			if found == nil {
				everywhere = false
				break
			}
			if found.ContextLength != m.ContextLength {
				keep = *found // a context mismatch on any server is reported
			}
		}
		if everywhere {
			out.Models = append(out.Models, keep)
		}
	}
	return out, nil
}

func (p ollamaPool) Show(ctx context.Context, req *api.ShowRequest) (*api.ShowResponse, error) {
	var first *api.ShowResponse
	for i, s := range p {
		r, err := s.api.Show(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.url, err)
		}
		if i == 0 {
			first = r
		} else if r.Parameters != first.Parameters || r.System != first.System || r.Template != first.Template {
			return r, nil // verification fails on the server that differs
		}
	}
	return first, nil
}

func (p ollamaPool) Generate(ctx context.Context, req *api.GenerateRequest, fn api.GenerateResponseFunc) error {
	for _, s := range p {
		if err := s.api.Generate(ctx, req, fn); err != nil {
			return fmt.Errorf("%s: %w", s.url, err)
		}
	}
	return nil
}

func (p ollamaPool) Embed(ctx context.Context, req *api.EmbedRequest) (*api.EmbedResponse, error) {
	var first *api.EmbedResponse
	for i, s := range p {
		r, err := s.api.Embed(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.url, err)
		}
		if i == 0 {
			first = r
		}
	}
	return first, nil
}

// perServer lists every server's models, in pool order (for per-server status).
func (p ollamaPool) perServer(ctx context.Context) ([]*api.ListResponse, error) {
	lists := make([]*api.ListResponse, 0, len(p))
	for _, s := range p {
		l, err := s.api.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.url, err)
		}
		lists = append(lists, l)
	}
	return lists, nil
}

// serverStatuses is each server's view of a variant; addresses are the pods' in-cluster ones
// when the pool maps one to one onto them (else the addresses the operator used).
func (p ollamaPool) serverStatuses(lists []*api.ListResponse, podURLs []string, name string) []ragv1.ModelServerStatus {
	out := make([]ragv1.ModelServerStatus, len(p))
	for i, s := range p {
		server := s.url
		if len(podURLs) == len(p) {
			server = podURLs[i]
		}
		d := listedDigest(lists[i], name)
		out[i] = ragv1.ModelServerStatus{Server: server, Present: d != "", Digest: d}
	}
	return out
}
