// Command demo-rag runs the RAG server on its own, in one command: the real Ollama (the
// project's CPU build) with the generated tiny models under the production names, the
// rag-server binary with the embedded vector store and its web UI, a few sample documents, and
// a fresh admin key and a user key limited to one tag. It prints the UI's URL and the keys and
// runs until Ctrl-C.
//
//	make demo-rag                          # builds Ollama and the server first
//	go run ./cmd/demo-rag -server bin/rag-server -listen 127.0.0.1:8080
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/testbed/ragproc"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-rag:", err)
		os.Exit(1)
	}
}

func run() error {
	server := flag.String("server", "", "the rag-server binary (default: built from ./cmd/rag-server)")
	listen := flag.String("listen", "127.0.0.1:8080", "where the RAG server and its UI listen")
	dataDir := flag.String("data-dir", "", "the server's data directory, kept across runs (default: a temporary one, removed at exit)")
	seed := flag.Bool("seed", true, "upload a few sample documents")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tmp, err := os.MkdirTemp("", "demo-rag-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if *server == "" {
		*server = filepath.Join(tmp, "rag-server")
		fmt.Println("Building the RAG server…")
		if err := ragproc.Build(ctx, *server); err != nil {
			return err
		}
	}

	fmt.Println("Starting Ollama with the tiny generated models…")
	ol, err := ollamatest.Serve(ollamatest.Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_KEEP_ALIVE": "-1"}})
	if err != nil {
		return err
	}
	defer ol.Close()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	err = ollamatest.CreateBaseModels(cctx, ol.Client())
	cancel()
	if err != nil {
		return fmt.Errorf("create the models: %w", err)
	}

	cfg := serverconfig.Default() // qwen3:8b and nomic-embed-text are the tiny models' names
	cfg.Listen = *listen
	if *dataDir != "" {
		if cfg.DataDir, err = filepath.Abs(*dataDir); err != nil {
			return err
		}
	}
	cfg.Ollama.URL = ol.URL
	cfg.Ollama.KeepAlive = "-1"
	admin, user := ragproc.NewToken(), ragproc.NewToken()
	fmt.Println("Starting the RAG server…")
	srv, err := ragproc.Start(ragproc.Options{Binary: *server, Dir: tmp, Config: cfg, Keys: []ragproc.Key{
		{Name: "admin", Token: admin, Role: "admin"},
		{Name: "demo-user", Token: user, Role: "user", Tags: []string{"demo"}},
	}})
	if err != nil {
		return err
	}
	defer srv.Stop()
	if *seed {
		if err := upload(srv.URL, admin); err != nil {
			fmt.Println("sample documents not uploaded:", err)
		}
	}

	fmt.Printf(`
  RAG server UI   %s/
  admin key       %s
  user key        %s   (sees only documents tagged "demo")

  Ollama          %s   (tiny generated models: answers are gibberish, retrieval and citations are real)
  server log      %s
  API             curl -H 'Authorization: Bearer %s' %s/api/documents

Ctrl-C to stop.
`, srv.URL, admin, user, ol.URL, srv.LogPath, admin, srv.URL)
	<-ctx.Done()
	fmt.Println("\nStopping…")
	return nil
}

// samples are small documents about a made-up company: two tagged "demo" (the user key sees
// them), one tagged "finance" (it does not).
var samples = []struct{ name, tags, text string }{
	{"handbook.md", "demo", "# Employee handbook\n\n## Vacation\nEmployees receive twenty five vacation days per year. Unused days expire at the end of March.\n\n## Remote work\nRemote work is allowed up to three days a week with the manager's agreement.\n"},
	{"it-policy.txt", "demo", "Laptops are replaced every four years. Report a lost laptop to the IT desk within one day. Passwords are at least fourteen characters long.\n"},
	{"budget-2026.csv", "finance", "department,budget,notes\nresearch,1200000,two new hires\nsales,800000,travel reduced\nsupport,450000,new ticket system\n"},
}

func upload(base, key string) error {
	for _, s := range samples {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("tags", s.tags)
		w, _ := mw.CreateFormFile("file", s.name)
		io.WriteString(w, s.text)
		mw.Close()
		req, _ := http.NewRequest("POST", base+"/api/documents", &b)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusConflict {
			return fmt.Errorf("%s: HTTP %d", s.name, resp.StatusCode)
		}
	}
	return nil
}
