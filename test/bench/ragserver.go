package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// moduleRoot is the directory of the main module's go.mod (the bench runs from anywhere in it).
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the rag-operator module")
	}
	return filepath.Dir(mod), nil
}

// buildServer builds cmd/rag-server as `make build` does.
func buildServer(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "rag-server")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/rag-server")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/rag-server: %w\n%s", err, out)
	}
	return bin, nil
}

// serverConfig is the config the operator renders for a default appliance (the CRD defaults),
// pointed at this run's Ollama and Qdrant. warming is limits.warmingMaxConcurrentQueries.
func serverConfig(dataDir, ollamaURL, qdrantAddr string, warming int) serverconfig.Config {
	return serverconfig.Config{
		Listen:  "127.0.0.1:0",
		DataDir: dataDir,
		Ollama:  serverconfig.Ollama{URL: ollamaURL, KeepAlive: "24h"},
		Qdrant: serverconfig.Qdrant{Address: qdrantAddr,
			Collection: serverconfig.Collection{Name: collectionName, VectorSize: ollamatest.EmbedDim, Distance: "Cosine"}},
		Models: serverconfig.Models{Chat: chatModel, Embedding: embedModel, Summary: chatModel, Tagging: tagModel},
		Limits: serverconfig.Limits{EmbedConcurrency: 2, EmbedBatchSize: 32, MaxConcurrentProcessing: 3, JobWorkers: 3,
			RagTimeout: "60s", WarmingMaxConcurrentQueries: warming, MaxQueuedDocuments: 10000},
		Tokens:  serverconfig.Tokens{Context: 6000, History: 1500, System: 500, Response: chatResponseTokens, NumCtx: 8192},
		Chunk:   serverconfig.Chunk{Size: chunkOptions.Size, Overlap: chunkOptions.Overlap},
		Search:  serverconfig.Search{TopK: 8, ScoreThreshold: 0.3, MaxChunksPerDocument: 3, HNSWEf: 128},
		Uploads: serverconfig.Uploads{MaxFileBytes: 100 << 20, MaxFilesPerRequest: 100, AllowedTypes: []string{"txt", "md", "html", "csv", "pdf", "docx"}},
	}
}

const collectionName = "documents"

// serverProc is a running rag-server.
type serverProc struct {
	URL string
	// MetricsURL is the metrics listener (--metrics-listen), where Prometheus scrapes without a
	// key, as in the cluster.
	MetricsURL string
	cmd        *exec.Cmd
	done       chan struct{}
	logPath    string
}

func startServer(ctx context.Context, bin, dir string, cfg serverconfig.Config, enrich bool, logLevel string, cpuProfile bool, extra ...string) (*serverProc, error) {
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, cfg.Marshal(), 0o600); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	maddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &serverProc{URL: "http://" + addr, MetricsURL: "http://" + maddr, done: make(chan struct{}), logPath: filepath.Join(dir, "rag-server.log")}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s.cmd = exec.Command(bin, "--config", cfgPath, "--insecure-no-auth", "--enrich="+strconv.FormatBool(enrich),
		"--listen", addr, "--metrics-listen", maddr, "--data-dir", cfg.DataDir, "--log-level", cmp.Or(logLevel, "warn"))
	if cpuProfile {
		s.cmd.Args = append(s.cmd.Args, "--cpu-profile", filepath.Join(dir, "cpu.pprof"))
	}
	s.cmd.Args = append(s.cmd.Args, extra...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = childProcAttr()
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	// Ready: /readyz passes (the server itself) and the probes report Ollama and Qdrant up.
	client := probeClient()
	deadline := time.Now().Add(90 * time.Second)
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := getOK(rctx, client, s.URL+"/readyz")
		if err == nil {
			err = dependenciesUp(rctx, client, s.URL)
		}
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("rag-server exited: %v\n%s", s.cmd.ProcessState, tailFile(s.logPath, 4<<10))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("rag-server not ready in 90 s: %v\n%s", err, tailFile(s.logPath, 4<<10))
		}
	}
}

// dependenciesUp is nil when the server's last probe of every dependency passed (the bench runs
// the server without keys, so the details need none).
func dependenciesUp(ctx context.Context, c *http.Client, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/health/dependencies", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		Dependencies map[string]struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"dependencies"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("dependencies: status %d: %w", resp.StatusCode, err)
	}
	if len(out.Dependencies) == 0 {
		return errors.New("dependencies: none reported")
	}
	for name, d := range out.Dependencies {
		if !d.OK {
			return fmt.Errorf("%s: %s", name, d.Error)
		}
	}
	return nil
}

// stop sends SIGTERM, waits up to 30 s, then kills; it returns the peak RSS in MiB.
func (s *serverProc) stop() float64 { return stopProcess(s.cmd, s.done) }

func stopProcess(cmd *exec.Cmd, done chan struct{}) float64 {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return maxRSSMiB(cmd.ProcessState)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// uploadAll uploads every document, one file per request, workers at a time; a 503 is retried
// after its Retry-After (at most 2 s here) until ctx ends. It returns the accepted ids.
func uploadAll(ctx context.Context, base string, docs []document, workers int) (ids []string, failed map[string]int, uploadMs []float64) {
	client := probeClient()
	var mu sync.Mutex
	failed = map[string]int{}
	next := make(chan document, len(docs))
	for _, d := range docs {
		next <- d
	}
	close(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for d := range next {
				start := time.Now()
				id, err := uploadOne(ctx, client, base, d)
				mu.Lock()
				uploadMs = append(uploadMs, ms(time.Since(start)))
				if err != nil {
					failed[firstLine(err.Error())]++
				} else {
					ids = append(ids, id)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ids, failed, uploadMs
}

func uploadOne(ctx context.Context, c *http.Client, base string, d document) (string, error) {
	for attempt := 1; ; attempt++ {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("file", d.Name)
		fw.Write(d.Data)
		mw.Close()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/documents", &body)
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && attempt < 100 {
			wait := 2 * time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
				wait = min(wait, time.Duration(s)*time.Second)
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		var out struct {
			IDs []string `json:"ids"`
		}
		if resp.StatusCode != http.StatusAccepted || json.Unmarshal(data, &out) != nil || len(out.IDs) != 1 {
			return "", fmt.Errorf("upload %s: status %d: %s", d.Name, resp.StatusCode, firstLine(string(data)))
		}
		return out.IDs[0], nil
	}
}

// metrics is a scrape of the server's /metrics (base: its metrics listener): sample name (with
// labels) → value.
type metrics map[string]float64

func scrape(ctx context.Context, c *http.Client, base string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: status %d", resp.StatusCode)
	}
	m := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// sum adds the samples of a metric whose labels contain every one of labels (`k="v"`).
func (m metrics) sum(name string, labels ...string) float64 {
	total := 0.0
	for k, v := range m {
		base, lbl, _ := strings.Cut(k, "{")
		if base != name {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(lbl, l)
		}
		if ok {
			total += v
		}
	}
	return total
}

// documentCounts lists the documents by status (GET /api/documents?status=…), the failures'
// errors, and when the last ready or failed document was last updated.
func documentCounts(ctx context.Context, c *http.Client, base string) (counts, errs map[string]int, last time.Time, err error) {
	counts = map[string]int{}
	errs = map[string]int{}
	for _, st := range []string{"pending", "processing", "ready", "failed"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/documents?limit=1000&status="+st, nil)
		if err != nil {
			return nil, nil, last, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, nil, last, err
		}
		var out struct {
			Documents []struct {
				Error      string    `json:"error"`
				UpdatedAt  time.Time `json:"updatedAt"`
				Enrichment *struct {
					Status string `json:"status"`
					Error  string `json:"error"`
				} `json:"enrichment"`
			} `json:"documents"`
			Total int `json:"total"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil {
			return nil, nil, last, fmt.Errorf("list %s documents: %w", st, err)
		}
		counts[st] = out.Total
		for _, d := range out.Documents {
			if st == "failed" {
				errs[firstLine(d.Error)]++
			}
			if e := d.Enrichment; e != nil && e.Status == "failed" {
				errs["enrichment: "+firstLine(e.Error)]++
			}
			if (st == "ready" || st == "failed") && d.UpdatedAt.After(last) {
				last = d.UpdatedAt
			}
		}
	}
	return counts, errs, last, nil
}

// waitPDFEngine waits until the server reports rag_pdf_engine_ready 1 and returns how long
// that took; a server without the metric is not waited for.
func waitPDFEngine(ctx context.Context, base string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	client := probeClient()
	for {
		m, err := scrape(ctx, client, base)
		if err != nil {
			return time.Since(start), err
		}
		v, ok := m["rag_pdf_engine_ready"]
		if !ok || v == 1 {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("not ready after %s: the ingest ran while it compiled", timeout)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
