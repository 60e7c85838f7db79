#!/usr/bin/env bash
# Copies the generated manifests the Helm chart renders from into charts/rag-operator/files/,
# byte for byte (test/chart checks for drift). Run by `make manifests` after controller-gen.
#
#   config/crd/bases/*.yaml  -> charts/rag-operator/files/crds/   (templates/crds.yaml)
#   config/rbac/role.yaml    -> charts/rag-operator/files/rbac/manager-role.yaml
#                                                              (templates/rbac.yaml, rules only)
#
# The CRDs are deliberately NOT in the chart's crds/ folder: Helm installs crds/ once, never
# upgrades it and cannot switch it off from values. The chart renders them as templates instead,
# behind `crds.install` and with `helm.sh/resource-policy: keep` (the cert-manager approach), so a
# `helm upgrade` upgrades the CRD and `helm uninstall` keeps it (and every RagAppliance).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="$root/charts/rag-operator"

[[ -d "$chart" ]] || { echo "no chart at $chart" >&2; exit 1; }

rm -rf "$chart/files/crds"
mkdir -p "$chart/files/crds" "$chart/files/rbac"
cp "$root"/config/crd/bases/*.yaml "$chart/files/crds/"
cp "$root/config/rbac/role.yaml" "$chart/files/rbac/manager-role.yaml"
# A crds/ folder next to templates/crds.yaml would make Helm create the CRD twice.
rm -rf "$chart/crds"
