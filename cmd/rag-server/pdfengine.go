package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ragstack/rag-operator/internal/parse"
	"github.com/ragstack/rag-operator/internal/serverconfig"
)

// pdfCompileCommand is the subcommand that compiles the PDF engine into the data volume's
// cache and exits: the operator runs it as the RAG server pod's init container, so the
// compile's memory (about 300 MiB for seconds) is never the server's (docs/rag-server.md).
const pdfCompileCommand = "pdf-engine-compile"

// pdfCacheDir is where the compiled PDF engine is kept under a data directory.
func pdfCacheDir(dataDir string) string { return filepath.Join(dataDir, "cache", "pdfium") }

func pdfCompileMain(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(pdfCompileCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", os.Getenv("RAG_DATA_DIR"), "the server's data directory (env RAG_DATA_DIR; default the config default)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dataDir == "" {
		*dataDir = serverconfig.Default().DataDir
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()
	dir := pdfCacheDir(*dataDir)
	if err := parse.CompilePDFEngine(ctx, dir); err != nil {
		fmt.Fprintf(stderr, "compiling the PDF engine into %s: %v\n", dir, err)
		return 1
	}
	fmt.Fprintf(stderr, "PDF engine compiled into %s in %.1f s\n", dir, time.Since(start).Seconds())
	return 0
}
