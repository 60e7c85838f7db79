package postgres

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestStartQueryStop: the server answers SQL on its URI, each NewDatabase is its own database,
// and Stop removes the directory.
func TestStartQueryStop(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	a, b := s.NewDatabase(t), s.NewDatabase(t)
	if a == b {
		t.Fatalf("two databases share a URI: %s", a)
	}
	for _, uri := range []string{a, b} {
		conn, err := pgx.Connect(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		var v int
		if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v); err != nil || v < 150000 {
			t.Fatalf("version %d %v", v, err)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil { // fails if a and b were one database
			t.Fatal(err)
		}
		conn.Close(ctx)
	}
	s.Stop()
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Fatalf("directory left after Stop: %v", err)
	}
	if _, err := pgx.Connect(ctx, s.URI); err == nil {
		t.Fatal("server still answers after Stop")
	}
}
