#!/usr/bin/env bash
# Builds the upstream kube-apiserver from the Go module proxy, once per machine and version.
# The binary is cached outside the work tree; later runs only print its path.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.1}"
CACHE="${JOURNEY_CACHE:-$HOME/.cache/journey-operator}"
BIN="$CACHE/bin/kube-apiserver-$KUBE_VERSION"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

staging_version="v0.${KUBE_VERSION#v1.}"
mod="$CACHE/go/kube-apiserver-$KUBE_VERSION"
mkdir -p "$mod" "$CACHE/bin"
cd "$mod"

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
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO

export GOFLAGS=-mod=mod
echo "building kube-apiserver $KUBE_VERSION in $mod (cold: ~15-25 min on 2 cores)" >&2
go mod tidy >&2
pkg=k8s.io/component-base/version
cpkg=k8s.io/client-go/pkg/version
minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
date_now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
flags=""
for p in $pkg $cpkg; do
  flags="$flags -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  flags="$flags -X $p.gitTreeState=clean -X $p.buildDate=$date_now -X $p.gitCommit=module-proxy-$KUBE_VERSION"
done
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $flags" -o "$BIN.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
mv "$BIN.tmp" "$BIN"
echo "$BIN"
