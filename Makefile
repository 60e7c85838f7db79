# rag-operator Makefile. Every tool is built from the Go module proxy into a cache outside the
# clone ($(CACHE)), so reruns are fast and a fresh machine needs nothing but Go and gcc.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rag-operator
BIN := $(CACHE)/bin
CONTROLLER_GEN_VERSION ?= v0.23.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
K8S_VERSION ?= 1.37.2
K8S_ASSETS ?= $(CACHE)/k8s-v$(K8S_VERSION)
GOARCHES ?= amd64 arm64
OUT ?= bin
HELM_VERSION ?= v4.3.1
HELM := $(BIN)/helm-$(HELM_VERSION)
OLLAMA_BIN_DIR ?= $(CACHE)/ollama-v0.24.0
KWOK_VERSION ?= v0.8.0
KWOK := $(BIN)/kwok-$(KWOK_VERSION)
KUSTOMIZE_VERSION ?= v5.8.2
KUSTOMIZE := $(BIN)/kustomize-$(KUSTOMIZE_VERSION)
REGISTRY ?= ghcr.io/ragstack
VERSION ?= v0.1.0
PLATFORMS ?= linux/amd64,linux/arm64
IMAGE_OUTPUT ?= --push

export GOTOOLCHAIN := local

.PHONY: all
all: build

##@ Code generation

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/controller-gen $(CONTROLLER_GEN)

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC manifests (and the chart's copy of the CRD).
	$(CONTROLLER_GEN) rbac:roleName=rag-operator-manager crd paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	go run ./hack/crd-descriptions config/crd/bases/*.yaml
	hack/sync-chart.sh

.PHONY: verify-gen
verify-gen: generate manifests ## Regenerate and fail if anything changed.
	@gofmt -l $$(git ls-files '*.go') | (! grep .) || (echo "gofmt needed on the files above" && exit 1)
	@git diff --exit-code -- api config charts || (echo "generated files are stale: run 'make generate manifests' and commit" && exit 1)
	@test -z "$$(git status --porcelain -- api config charts | grep '^??')" || (echo "untracked generated files:"; git status --porcelain -- api config charts; exit 1)

##@ Build and run

.PHONY: build
build: ## Build the manager and the RAG server for this machine.
	CGO_ENABLED=0 go build -trimpath -o $(OUT)/manager ./cmd/manager
	@if [ -d cmd/rag-server ]; then CGO_ENABLED=0 go build -trimpath -o $(OUT)/rag-server ./cmd/rag-server; fi

.PHONY: cross
cross: ## Cross-compile both binaries for linux/amd64 and linux/arm64 with cgo off.
	@for a in $(GOARCHES); do \
	  echo "linux/$$a"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$a go build -trimpath -o $(OUT)/linux-$$a/manager ./cmd/manager; \
	  if [ -d cmd/rag-server ]; then CGO_ENABLED=0 GOOS=linux GOARCH=$$a go build -trimpath -o $(OUT)/linux-$$a/rag-server ./cmd/rag-server; fi; \
	done

.PHONY: k8s-assets
k8s-assets: ## Build kube-apiserver, etcd, controller-manager and scheduler from the module proxy (cached).
	K8S_VERSION=$(K8S_VERSION) K8S_ASSETS=$(K8S_ASSETS) hack/build-k8s-bundle.sh

.PHONY: ollama
ollama: ## Build Ollama v0.24.0 (CPU) from the module proxy (cached), for tests and the demo.
	OLLAMA_BIN_DIR=$(OLLAMA_BIN_DIR) hack/build-ollama.sh

$(KWOK):
	KWOK_VERSION=$(KWOK_VERSION) KWOK_BIN_DIR=$(BIN) hack/build-kwok.sh

.PHONY: kwok
kwok: $(KWOK) ## Build KWOK from the module proxy (cached), for the demo and the e2e tests.

$(KUSTOMIZE):
	KUSTOMIZE_VERSION=$(KUSTOMIZE_VERSION) KUSTOMIZE_BIN_DIR=$(BIN) hack/build-kustomize.sh

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Build kustomize from the module proxy (cached), for the chart/kustomize parity test.

$(HELM):
	HELM_VERSION=$(HELM_VERSION) HELM_BIN_DIR=$(BIN) hack/build-helm.sh

.PHONY: helm
helm: $(HELM) ## Build helm from the module proxy (cached).

.PHONY: chart-package
chart-package: helm manifests ## Package the Helm chart into $(OUT).
	$(HELM) package charts/rag-operator --destination $(OUT)

.PHONY: images
images: ## Build multi-arch images with docker buildx (needs a Docker engine; pushes by default).
	docker buildx build --platform $(PLATFORMS) -f build/manager.Dockerfile -t $(REGISTRY)/rag-operator:$(VERSION) $(IMAGE_OUTPUT) .
	docker buildx build --platform $(PLATFORMS) -f build/rag-server.Dockerfile -t $(REGISTRY)/rag-server:$(VERSION) $(IMAGE_OUTPUT) .

.PHONY: run
run: ## Run the manager against the cluster in $$KUBECONFIG.
	go run ./cmd/manager

.PHONY: demo
demo: k8s-assets kwok helm ollama ## Local cluster with simulated DGX Spark nodes, operator installed by its chart, samples reconciled to Ready, printed.
	KUBEBUILDER_ASSETS=$(K8S_ASSETS) KWOK_BIN=$(KWOK) HELM=$(HELM) OLLAMA_BIN=$(OLLAMA_BIN_DIR)/ollama go run ./cmd/demo

.PHONY: demo-rag
demo-rag: ollama ## The RAG server alone: real Ollama with tiny models, rag-server (embedded store) and its UI on http://127.0.0.1:8080, keys printed; Ctrl-C stops.
	CGO_ENABLED=0 go build -trimpath -o $(OUT)/rag-server ./cmd/rag-server
	OLLAMA_BIN=$(OLLAMA_BIN_DIR)/ollama go run ./cmd/demo-rag -server $(OUT)/rag-server $(DEMO_RAG_FLAGS)

##@ Test

.PHONY: test
test: k8s-assets kwok ollama helm kustomize ## Run every test against the real parts (control plane, KWOK, Ollama, helm, kustomize).
	KUBEBUILDER_ASSETS=$(K8S_ASSETS) KWOK_BIN=$(KWOK) OLLAMA_BIN=$(OLLAMA_BIN_DIR)/ollama HELM=$(HELM) KUSTOMIZE=$(KUSTOMIZE) go test ./... -count=1 -timeout 30m

.PHONY: test-e2e
test-e2e: k8s-assets kwok ollama helm ## Chart lifecycle on a local cluster with a simulated node.
	KUBEBUILDER_ASSETS=$(K8S_ASSETS) KWOK_BIN=$(KWOK) HELM=$(HELM) OLLAMA_BIN=$(OLLAMA_BIN_DIR)/ollama RAG_REQUIRE_E2E=1 go test ./test/e2e/ ./internal/testbed/cluster/ -count=1 -v

.PHONY: bench
bench: ollama ## Bulk ingest while health and chat are measured: ours vs the guide's failure and fix; then 1 and 3 replicas on PostgreSQL vs 1 on SQLite (writes docs/benchmarks/bench.*; BENCH_FLAGS='-phases scale' writes scale.*).
	OLLAMA_BIN=$(OLLAMA_BIN_DIR)/ollama go run ./test/bench -out docs/benchmarks $(BENCH_FLAGS)

.PHONY: test-ui
test-ui: ollama ## The web UI in Chromium against the real server and Ollama; screenshots in $$TMPDIR/rag-ui-screenshots.
	OLLAMA_BIN=$(OLLAMA_BIN_DIR)/ollama RAG_REQUIRE_CHROMIUM=1 RAG_REQUIRE_OLLAMA=1 go test ./test/ui/ -count=1 -v

.PHONY: drills
drills: ollama ## Fault drills against the real rag-server, Ollama and the Qdrant double, 40 documents each (writes docs/reliability.*).
	OLLAMA_BIN=$(OLLAMA_BIN_DIR)/ollama RAG_REQUIRE_OLLAMA=1 RAG_DRILLS=1 RAG_DRILL_DOCS=40 RAG_DRILLS_OUT=$(CURDIR)/docs go test ./test/drills/ -count=1 -v -timeout 60m

.PHONY: bench-ui
bench-ui: ## Web UI in Chromium: first paint, time to interactive, bytes, the list with 5,000 documents (writes docs/benchmarks/ui.*).
	CGO_ENABLED=0 go build -trimpath -o $(OUT)/rag-server ./cmd/rag-server
	go run ./test/benchui -out docs/benchmarks -server $(OUT)/rag-server $(BENCH_UI_FLAGS)

.PHONY: bench-operator
bench-operator: k8s-assets ## Apply 50 appliances; time to children, API writes per steady-state reconcile, peak memory.
	KUBEBUILDER_ASSETS=$(K8S_ASSETS) go run ./test/benchoperator -n 50 -out docs/benchmarks

.PHONY: test-chart
test-chart: helm kustomize ## Lint and render-test the Helm chart and config/default.
	HELM=$(HELM) KUSTOMIZE=$(KUSTOMIZE) RAG_REQUIRE_HELM=1 go test ./test/chart/ -count=1

.PHONY: test-unit
test-unit: ## Run the tests that need no control plane.
	go test ./... -count=1 -short

.PHONY: help
help:
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
