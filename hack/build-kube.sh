#!/usr/bin/env bash
# Builds one upstream Kubernetes component (kube-apiserver, kubelet, kube-controller-manager,
# kube-scheduler, kube-proxy) from the Go module proxy, once per machine and version. All of them
# share one Go module (one set of pins, one build cache), so the second component reuses most of
# the first one's packages. The binary is cached outside the work tree; later runs only print its
# path.
set -euo pipefail

COMPONENT="${1:?usage: build-kube.sh COMPONENT}"
case "$COMPONENT" in
  kube-apiserver|kubelet|kube-controller-manager|kube-scheduler|kube-proxy) ;;
  *) echo "build-kube.sh: unknown component $COMPONENT" >&2; exit 2 ;;
esac

KUBE_VERSION="${KUBE_VERSION:-v1.37.1}"
CACHE="${JOURNEY_CACHE:-$HOME/.cache/journey-operator}"
BIN="$CACHE/bin/$COMPONENT-$KUBE_VERSION"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

staging_version="v0.${KUBE_VERSION#v1.}"
# The module keeps the name it had when it only built kube-apiserver, so existing caches stay valid.
mod="$CACHE/go/kube-apiserver-$KUBE_VERSION"
mkdir -p "$mod" "$CACHE/bin"
cd "$mod"

# Two builds at once (a test run and a benchmark) would rewrite go.mod under each other.
exec 9>"$mod/.lock"
flock 9
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

# k8s.io/kubernetes refers to its staging modules with "./staging/..." replace lines that only
# work inside its own repository; a consumer has to pin each of them to the published v0.x twin.
staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt
  kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming)
{
  echo "module journey-operator.local/kube-apiserver-build"
  echo
  echo "go 1.26.0"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  for m in "${staging[@]}"; do echo "	k8s.io/$m => k8s.io/$m $staging_version"; done
  echo ")"
} > go.mod.new
# An existing go.mod is kept: build-go-helper.sh adds its helpers' pins to it, and tidy keeps them.
[ -f go.mod ] && rm go.mod.new || mv go.mod.new go.mod
# Every component is listed, so one `go mod tidy` pins the dependencies of all of them.
tools='//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)'

export GOFLAGS=-mod=mod
echo "building $COMPONENT $KUBE_VERSION in $mod (cold: kube-apiserver ~15-25 min on 2 cores, each other component a few minutes after it)" >&2
if [ "$(cat tools.go 2>/dev/null)" != "$tools" ] || ! [ -f go.sum ]; then
  printf '%s\n' "$tools" > tools.go
  go mod tidy >&2
fi
pkg=k8s.io/component-base/version
cpkg=k8s.io/client-go/pkg/version
minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
date_now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
flags=""
for p in $pkg $cpkg; do
  flags="$flags -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  flags="$flags -X $p.gitTreeState=clean -X $p.buildDate=$date_now -X $p.gitCommit=module-proxy-$KUBE_VERSION"
done
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $flags" -o "$BIN.tmp" "k8s.io/kubernetes/cmd/$COMPONENT" >&2
mv "$BIN.tmp" "$BIN"
echo "$BIN"
