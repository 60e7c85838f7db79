package ollamatest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Serve starts a server outside a test (benchmarks, tools), like Start: the project's build,
// a loopback port, its own models directory under a temporary root. Close stops it and removes
// the root. Without a built binary it returns the error Binary reports. A failed Restart on a
// server started this way panics (there is no test to fail).
func Serve(opts Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, fmt.Errorf("ollama binary unavailable (%w): run `make ollama` (or set OLLAMA_BIN)", err)
	}
	root, err := os.MkdirTemp("", "ollamatest-")
	if err != nil {
		return nil, err
	}
	s := &Server{
		ModelsDir: filepath.Join(root, "models"),
		LogPath:   filepath.Join(root, "ollama.log"),
		t:         noTest{},
		bin:       bin,
		opts:      opts,
	}
	fail := func(err error) (*Server, error) {
		if s.log != nil {
			_ = s.log.Close()
		}
		_ = os.RemoveAll(root)
		return nil, err
	}
	home := filepath.Join(root, "home")
	for _, d := range []string{s.ModelsDir, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fail(err)
		}
	}
	if s.log, err = os.Create(s.LogPath); err != nil {
		return fail(err)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OLLAMA_") && !strings.HasPrefix(kv, "HOME=") {
			s.env = append(s.env, kv)
		}
	}
	s.env = append(s.env, "HOME="+home, "OLLAMA_MODELS="+s.ModelsDir, "OLLAMA_NO_CLOUD=1")
	for k, v := range opts.Env {
		if k == "OLLAMA_HOST" || k == "OLLAMA_MODELS" || k == "HOME" {
			return fail(fmt.Errorf("ollamatest: %s is set by the harness", k))
		}
		s.env = append(s.env, k+"="+v)
	}
	var errs []error
	for range 3 { // a free port can be taken between probing and binding
		port, err := freePort()
		if err != nil {
			return fail(err)
		}
		s.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.URL = "http://" + s.Host
		if err = s.start(); err == nil {
			served.Store(s, root)
			return s, nil
		}
		errs = append(errs, err)
	}
	return fail(fmt.Errorf("ollama serve: %w\nlog:\n%s", errors.Join(errs...), tail(s.LogPath, 4<<10)))
}

// Close stops a server started with Serve and removes its models directory and log. For a
// server started with Start it only stops it (the test's cleanup removes the files).
func (s *Server) Close() {
	s.Stop()
	if root, ok := served.LoadAndDelete(s); ok {
		_ = s.log.Close()
		_ = os.RemoveAll(root.(string))
	}
}

// served maps each *Server started by Serve to its temporary root (Server's fields belong to
// Start's file).
var served sync.Map

// LogTail returns up to the last n bytes of the server's log, for error messages.
func (s *Server) LogTail(n int64) string { return tail(s.LogPath, n) }

// noTest stands in for the testing.TB of a server started by Serve: logs go to stderr and a
// fatal error panics. Only the methods the Server calls are overridden.
type noTest struct{ testing.TB }

func (noTest) Helper() {}
func (noTest) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ollamatest: "+format+"\n", args...)
}
func (noTest) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("ollamatest: "+format, args...))
}
