#!/usr/bin/env bash
# Builds kustomize from the Go module proxy into the tool cache outside the clone, keyed by
# version, and prints the binary's path as its last line. The chart/kustomize parity test
# (test/chart) renders config/ with it, so it runs in CI instead of depending on a kubectl
# that may be absent or unable to work offline.
#
#   KUSTOMIZE_VERSION  (default v5.8.2; v5.8.3 needs Go 1.27)
#   KUSTOMIZE_BIN_DIR  (default ${XDG_CACHE_HOME:-~/.cache}/rag-operator/bin)
set -euo pipefail

KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
BIN_DIR="${KUSTOMIZE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rag-operator/bin}"
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"

out="$(cached_go_install kustomize "$KUSTOMIZE_VERSION" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" "-s -w" "$BIN_DIR")"
"$out" version >&2
echo "$out"
