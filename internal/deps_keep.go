//go:build tools

// Package internal pins modules the project's packages are being built on, so go mod tidy keeps
// them while their first users land.
package internal

import (
	_ "github.com/google/uuid"
	_ "github.com/ollama/ollama/api"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/qdrant/go-client/qdrant"
	_ "golang.org/x/net/html"
	_ "google.golang.org/grpc"
	_ "modernc.org/sqlite"
)
