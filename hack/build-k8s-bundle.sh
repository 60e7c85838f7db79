#!/usr/bin/env bash
# Builds the local control plane from the Go module proxy (nothing else is reachable):
# one multi-call binary "k8s-bundle" holding kube-apiserver, kube-controller-manager,
# kube-scheduler and etcd, linked under each name. One binary instead of four shares the
# compile of most of Kubernetes (~15 CPU-min instead of ~40).
#
# Output: $K8S_ASSETS (default ${XDG_CACHE_HOME:-~/.cache}/rag-operator/k8s-v$K8S_VERSION),
# usable as KUBEBUILDER_ASSETS. Cached: a rerun with the binary present returns at once.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
# etcd: the server release Kubernetes $K8S_VERSION itself pins in its go.mod, so both
# share one dependency graph.
ETCD_VERSION="${ETCD_VERSION:-3.7.0}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/rag-operator"
OUT="${K8S_ASSETS:-$CACHE_ROOT/k8s-v$K8S_VERSION}"

if [[ -x "$OUT/k8s-bundle" && -e "$OUT/kube-apiserver" && -e "$OUT/etcd" ]]; then
  echo "$OUT"
  exit 0
fi

work="$CACHE_ROOT/src/k8s-bundle-v$K8S_VERSION"
mkdir -p "$work" "$OUT"
cd "$work"

staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt
  kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming)

{
  echo "module local/k8s-bundle"
  echo
  echo "go 1.26.0"
  echo
  echo "require ("
  echo "	k8s.io/kubernetes v$K8S_VERSION"
  echo "	go.etcd.io/etcd/server/v3 v$ETCD_VERSION"
  echo ")"
  echo
  echo "replace ("
  for m in "${staging[@]}"; do echo "	k8s.io/$m => k8s.io/$m v0.${K8S_VERSION#1.}"; done
  echo ")"
} > go.mod

cat > main.go <<'GO'
// Command k8s-bundle is kube-apiserver, kube-controller-manager, kube-scheduler and etcd in
// one binary, chosen by the name it is invoked under.
package main

import (
	"os"
	"path/filepath"
	_ "time/tzdata"

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "etcd":
		etcdmain.Main(os.Args)
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	default:
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	}
}
GO

export GOFLAGS=-mod=mod GOTOOLCHAIN=local
go mod tidy
minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
ver=k8s.io/component-base/version
go build -trimpath -o "$OUT/k8s-bundle.tmp" -ldflags "-s -w \
  -X $ver.gitVersion=v$K8S_VERSION -X $ver.gitMajor=1 -X $ver.gitMinor=$minor \
  -X $ver.gitTreeState=clean -X $ver.buildDate=1970-01-01T00:00:00Z" .
mv "$OUT/k8s-bundle.tmp" "$OUT/k8s-bundle"
for n in kube-apiserver kube-controller-manager kube-scheduler etcd; do
  ln -sf k8s-bundle "$OUT/$n"
done
echo "$OUT"
