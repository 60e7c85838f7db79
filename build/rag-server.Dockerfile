# syntax=docker/dockerfile:1
# The RAG server (cmd/rag-server): listens on :8080, reads its config from $RAG_CONFIG.
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 -f build/rag-server.Dockerfile .
# The builder runs on the build machine's platform and cross-compiles (no emulation); cgo is off
# (modernc.org/sqlite is pure Go).

ARG GO_VERSION=1.26
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
ENV GOTOOLCHAIN=local CGO_ENABLED=0

COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

# Sources: .dockerignore is an allow-list (go.mod, go.sum and the Go package trees).
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w" -o /out/rag-server ./cmd/rag-server

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="rag-server" \
      org.opencontainers.image.source="https://github.com/ragstack/rag-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /
COPY --from=builder /out/rag-server /rag-server
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/rag-server"]
