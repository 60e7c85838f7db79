#!/usr/bin/env bash
# Builds helm from the Go module proxy (nothing else is reachable) into the tool cache outside
# the clone, keyed by version, and prints the binary's path as its last line.
#
#   HELM_VERSION  (default v4.3.1)
#   HELM_BIN_DIR  (default ${XDG_CACHE_HOME:-~/.cache}/rag-operator/bin)
#
# Cached: a rerun with the binary present returns at once. A cold build takes minutes.
#
# Version stamping: a source build reports helm's placeholder version ("v4.3") unless
# helm.sh/helm/v4/internal/version.version is set, so we set it (and gitTreeState). The default
# Kubernetes version that `helm template`/`lint` assume (.Capabilities.KubeVersion) needs no flag
# in helm v4: pkg/chart/common.makeDefaultCapabilities derives it from the k8s.io/client-go
# version recorded in the binary's build info (client-go v0.37.x -> Kubernetes v1.37), which
# `go install module@version` keeps. (helm v3 instead hard-codes 1.20 unless its
# pkg/chartutil k8sVersionMajor/Minor ldflags are set; see testbed.md.)
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v4.3.1}"
BIN_DIR="${HELM_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rag-operator/bin}"
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"

major="${HELM_VERSION#v}"; major="${major%%.*}"
if [[ "$major" == "3" ]]; then
  module="helm.sh/helm/v3"
  ldflags="-s -w -X $module/internal/version.version=$HELM_VERSION -X $module/internal/version.gitTreeState=clean"
  ldflags+=" -X $module/pkg/chartutil.k8sVersionMajor=1 -X $module/pkg/chartutil.k8sVersionMinor=37"
else
  module="helm.sh/helm/v$major"
  ldflags="-s -w -X $module/internal/version.version=$HELM_VERSION -X $module/internal/version.gitTreeState=clean"
fi

out="$(cached_go_install helm "$HELM_VERSION" "$module/cmd/helm@$HELM_VERSION" "$ldflags" "$BIN_DIR")"
"$out" version --short >&2
echo "$out"
