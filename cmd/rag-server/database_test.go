package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragstack/rag-operator/internal/serverconfig"
)

// TestDatabaseProblemsNamed: with database.driver postgres, a missing URI file, an empty one,
// and a database nobody answers at each stop the server with a message naming the field and
// the problem (and never the password).
func TestDatabaseProblemsNamed(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	down := filepath.Join(dir, "down")
	os.WriteFile(down, []byte("postgresql://rag:s3cret@127.0.0.1:1/rag?sslmode=disable&connect_timeout=2\n"), 0o600)
	for _, c := range []struct{ uriFile, want string }{
		{filepath.Join(dir, "missing"), "database.uriFile: open " + filepath.Join(dir, "missing")},
		{empty, "database.uriFile: " + empty + " is empty"},
		{down, `connect to 127.0.0.1:1 database "rag" as "rag"`},
	} {
		cfg := testConfig(filepath.Join(dir, "data"), "http://127.0.0.1:1")
		cfg.Database = serverconfig.Database{Driver: serverconfig.DriverPostgres, URIFile: c.uriFile}
		path := filepath.Join(dir, "config.json")
		os.WriteFile(path, cfg.Marshal(), 0o600)
		var stderr bytes.Buffer
		code := run(context.Background(), []string{"--config", path, "--insecure-no-auth"}, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), c.want) || strings.Contains(stderr.String(), "s3cret") {
			t.Errorf("%s: exit %d, stderr %q; want %q and no password", c.uriFile, code, stderr.String(), c.want)
		}
	}
}
