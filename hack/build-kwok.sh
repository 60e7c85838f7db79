#!/usr/bin/env bash
# Builds KWOK (Kubernetes WithOut Kubelet) from the Go module proxy into the tool cache outside
# the clone, keyed by version, and prints the binary's path as its last line. KWOK simulates the
# nodes and pods of the local cluster (internal/testbed/cluster): the demo and the e2e tests.
#
#   KWOK_VERSION  (default v0.8.0)
#   KWOK_BIN_DIR  (default ${XDG_CACHE_HOME:-~/.cache}/rag-operator/bin)
#
# Cached: a rerun with the binary present returns at once. A cold build takes minutes.
# No version ldflags are needed: sigs.k8s.io/kwok/pkg/consts.Version is a constant in the module
# ("0.8.0"), so a source build reports its own version.
# The stock Stage objects ship inside the module (kustomize/stage/...); the cluster package
# writes its own copy of them (with model-sync pods left to the demo's job runner), so only the
# binary is needed.
set -euo pipefail

KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
BIN_DIR="${KWOK_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rag-operator/bin}"
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"

out="$(cached_go_install kwok "$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "-s -w" "$BIN_DIR")"
"$out" --version >&2 || true
echo "$out"
