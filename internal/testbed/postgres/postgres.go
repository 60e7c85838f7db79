// Package postgres runs a real PostgreSQL server (Debian's postgresql package) for tests: its
// own cluster in a temporary directory, on a free loopback port, with trust authentication,
// stopped and removed when the test ends. initdb refuses to run as root, so under root the
// server runs as the unprivileged user nobody, which owns the directory.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequireEnv names the variable that turns missing binaries from a skip into a failure (CI
// sets it, so the PostgreSQL tests cannot silently stop running).
const RequireEnv = "RAG_REQUIRE_POSTGRES"

// BinDir returns the directory holding initdb and postgres: $POSTGRES_BIN_DIR if set, else
// the newest /usr/lib/postgresql/<version>/bin.
func BinDir() (string, error) {
	dirs := []string{os.Getenv("POSTGRES_BIN_DIR")}
	if dirs[0] == "" {
		found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		sort.Slice(found, func(i, j int) bool { return versionOf(found[i]) > versionOf(found[j]) })
		dirs = found
	}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "postgres")) && isExec(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL binaries (initdb, postgres) under /usr/lib/postgresql/*/bin or $POSTGRES_BIN_DIR: apt-get install postgresql")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Server is a running postgres.
type Server struct {
	// URI is a libpq connection URI for the database "postgres" as the superuser.
	URI     string
	Port    int
	Dir     string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	dbs     atomic.Int64
	stop    sync.Once
}

// Start starts a server for the test (or skips the test when the binaries are missing, unless
// RequireEnv is 1) and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Serve()
	if errors.Is(err, errNoBinaries) {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%v and %s=1", err, RequireEnv)
		}
		t.Skipf("%v: this test needs a real PostgreSQL", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

var errNoBinaries = errors.New("PostgreSQL binaries unavailable")

var shared struct {
	mu  sync.Mutex
	srv *Server
	err error
}

// Shared is Start for a whole test binary: one server, started by the first test that asks
// (a database per test keeps them apart, see NewDatabase). TestMain calls StopShared after
// m.Run.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = Serve()
	}
	if errors.Is(shared.err, errNoBinaries) {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%v and %s=1", shared.err, RequireEnv)
		}
		t.Skipf("%v: this test needs a real PostgreSQL", shared.err)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

// StopShared stops the server Shared started, if any.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.Stop()
	}
}

// Serve starts a server; the caller calls Stop. It is Start for TestMain.
func Serve() (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoBinaries, err)
	}
	// Not under t.TempDir: its parents are private to root, and nobody must reach the socket
	// directory and the data directory.
	dir, err := os.MkdirTemp("", "rag-pg-*")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, LogPath: filepath.Join(dir, "postgres.log"), done: make(chan struct{})}
	cred, err := runAs(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// A free port can be taken between probing and binding; try a few.
	for attempt := 1; ; attempt++ {
		if err = s.start(bin, data, cred); err == nil {
			return s, nil
		}
		if attempt == 3 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

// runAs returns the credential to run the server with (nobody when running as root, the
// current user otherwise) and gives dir to that user.
func runAs(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("postgres must not run as root and there is no user nobody: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

func (s *Server) start(bin, data string, cred *syscall.Credential) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	// Three replicas with their pools, and the tests' own connections.
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(s.Port), "-k", s.Dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	setParentDeathSignal(s.cmd.SysProcAttr)
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { s.cmd.Wait(); logf.Close(); close(done) }()
	s.done = done
	s.URI = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.URI)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("postgres exited: %s", s.LogTail())
		default:
		}
		if time.Now().After(deadline) {
			s.cmd.Process.Kill()
			<-done
			return fmt.Errorf("postgres did not accept connections in 60s (%v): %s", err, s.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// NewDatabase creates an empty database and returns its URI: tests sharing one server stay
// independent.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(s.URI)
	u.Path = "/" + name
	return u.String()
}

// Stop shuts the server down (fast shutdown, then SIGKILL after 10 s) and removes its directory.
func (s *Server) Stop() {
	s.stop.Do(func() {
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
		os.RemoveAll(s.Dir)
	})
}

// LogTail is the end of the server's log.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(s.LogPath)
	if len(b) > 4<<10 {
		b = b[len(b)-4<<10:]
	}
	return string(b)
}
