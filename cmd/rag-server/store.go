package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/store"
	"github.com/ragstack/rag-operator/internal/store/postgres"
)

// openStore opens the state store database.driver names. The result is a nil interface on
// error (never a typed nil that close would call).
func openStore(ctx context.Context, cfg serverconfig.Config, opts options, log *slog.Logger) (store.Store, error) {
	if cfg.Database.Driver != serverconfig.DriverPostgres {
		s, err := store.Open(ctx, cfg.DataDir)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	b, err := os.ReadFile(cfg.Database.URIFile)
	if err != nil {
		return nil, fmt.Errorf("database.uriFile: %w", err)
	}
	uri := strings.TrimSpace(string(b))
	if uri == "" {
		return nil, fmt.Errorf("database.uriFile: %s is empty; it must hold a connection URI such as postgresql://user:password@host:5432/db", cfg.Database.URIFile)
	}
	s, err := postgres.Open(ctx, postgres.Options{
		URI:      uri,
		SpoolDir: filepath.Join(cfg.DataDir, "tmp"),
		Lease:    opts.storeLease,
		Logger:   log,
	})
	if err != nil {
		return nil, fmt.Errorf("database (%s): %w", cfg.Database.URIFile, err)
	}
	log.Info("State store is PostgreSQL", "replica", s.ID(), "schemaVersion", postgres.SchemaVersion(), "lease", opts.storeLease)
	return s, nil
}
