// Package ollamatest runs a real Ollama server (built by hack/build-ollama.sh) for tests, with
// tiny generated models registered under the production names the operator uses.
package ollamatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
)

// Version is the Ollama release hack/build-ollama.sh builds.
const Version = "0.24.0"

// RequireEnv names the variable that turns a missing binary from a skip into a failure (CI
// sets it, so the real-Ollama tests cannot silently stop running).
const RequireEnv = "RAG_REQUIRE_OLLAMA"

// Binary returns the path of the ollama binary: $OLLAMA_BIN if set, else where
// hack/build-ollama.sh caches it. It fails when the file is not an executable.
func Binary() (string, error) {
	path := os.Getenv("OLLAMA_BIN")
	if path == "" {
		dir := os.Getenv("OLLAMA_BIN_DIR")
		if dir == "" {
			cache := os.Getenv("XDG_CACHE_HOME")
			if cache == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return "", err
				}
				cache = filepath.Join(home, ".cache")
			}
			dir = filepath.Join(cache, "rag-operator", "ollama-v"+Version)
		}
		path = filepath.Join(dir, "ollama")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file", path)
	}
	return path, nil
}

// Options configure a test server.
type Options struct {
	// Env adds server settings, e.g. OLLAMA_NUM_PARALLEL, OLLAMA_MAX_QUEUE, OLLAMA_KEEP_ALIVE.
	// OLLAMA_HOST, OLLAMA_MODELS and HOME are the harness's and cannot be overridden.
	Env map[string]string
	// ReadyTimeout bounds the wait for /api/version to answer; 0 means 30 s.
	ReadyTimeout time.Duration
}

// Server is a running `ollama serve` on a loopback port, with its own models directory.
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:41234.
	URL string
	// Host is host:port, the form OLLAMA_HOST takes.
	Host string
	// ModelsDir is OLLAMA_MODELS; it survives Restart.
	ModelsDir string
	// LogPath receives the server's stdout and stderr across restarts.
	LogPath string

	t    testing.TB
	bin  string
	env  []string
	opts Options

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *os.File
}

// Start runs a server for the test and stops it (runners included) when the test ends. Without
// a built binary the test is skipped, or fails when RAG_REQUIRE_OLLAMA=1.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("ollama binary unavailable (%v) and %s=1: run `make ollama`", err, RequireEnv)
		}
		t.Skipf("ollama binary unavailable (%v): run `make ollama` (or set OLLAMA_BIN) to run this test", err)
	}
	root := t.TempDir()
	s := &Server{
		ModelsDir: filepath.Join(root, "models"),
		LogPath:   filepath.Join(root, "ollama.log"),
		t:         t,
		bin:       bin,
		opts:      opts,
	}
	home := filepath.Join(root, "home")
	for _, d := range []string{s.ModelsDir, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.log, err = os.Create(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("ollama log (%s), last part:\n%s", s.LogPath, tail(s.LogPath, 8<<10))
		}
		_ = s.log.Close()
	})

	// The developer's OLLAMA_* settings must not leak into the test server.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OLLAMA_") && !strings.HasPrefix(kv, "HOME=") {
			s.env = append(s.env, kv)
		}
	}
	s.env = append(s.env, "HOME="+home, "OLLAMA_MODELS="+s.ModelsDir, "OLLAMA_NO_CLOUD=1")
	for k, v := range opts.Env {
		if k == "OLLAMA_HOST" || k == "OLLAMA_MODELS" || k == "HOME" {
			t.Fatalf("ollamatest: %s is set by the harness", k)
		}
		s.env = append(s.env, k+"="+v)
	}

	// A free port can be taken between probing and binding; try a few.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.URL = "http://" + s.Host
		err = s.start()
		if err == nil {
			return s
		}
		if attempt == 3 {
			t.Fatalf("ollama serve: %v\nlog:\n%s", err, tail(s.LogPath, 4<<10))
		}
	}
}

// Client returns an Ollama API client for this server.
func (s *Server) Client() *api.Client {
	u, err := url.Parse(s.URL)
	if err != nil {
		panic(err)
	}
	return api.NewClient(u, http.DefaultClient)
}

// Stop sends SIGTERM (Ollama then stops its runners) and waits; after 15 s it kills the whole
// process group. Stopping a stopped server does nothing.
func (s *Server) Stop() { s.stop(false) }

// Kill ends the server and its runners with SIGKILL, as a crash would.
func (s *Server) Kill() { s.stop(true) }

// Restart stops the server and starts it again on the same address and models directory, so
// clients made earlier keep working and created models are still there.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("ollama restart: %v\nlog:\n%s", err, tail(s.LogPath, 4<<10))
	}
}

// Running reports whether the server process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin, "serve")
	cmd.Env = append(append([]string{}, s.env...), "OLLAMA_HOST="+s.Host)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	timeout := s.opts.ReadyTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := s.clientLocked()
	for {
		if _, err := client.Version(ctx); err == nil {
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("exited before answering: %v", cmd.ProcessState)
		case <-ctx.Done():
			s.killLocked()
			return fmt.Errorf("no answer on %s within %s", s.URL, timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) clientLocked() *api.Client {
	u, _ := url.Parse(s.URL)
	return api.NewClient(u, &http.Client{Timeout: time.Second})
}

func (s *Server) stop(kill bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	if kill {
		s.killLocked()
		return
	}
	_ = terminate(s.cmd.Process)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.t.Logf("ollama did not stop within 15 s of SIGTERM; killing it")
	}
	s.killLocked() // also reaps runners that outlived the server
}

func (s *Server) killLocked() {
	killGroup(s.cmd.Process)
	<-s.done
	s.cmd = nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns up to the last n bytes of a file, for failure messages.
func tail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// IsStatus reports whether err is an Ollama API error with the given HTTP status code.
func IsStatus(err error, code int) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.StatusCode == code
}
