#!/usr/bin/env bash
# Builds a Go command-line tool from the Go module proxy, once per machine and version, in a
# module of its own: `go install pkg@version` resolves the tool's own go.mod, so the k8s.io pins
# of the kube-apiserver module (hack/build-kube-apiserver.sh) never override the tool's.
# Usage: hack/build-go-tool.sh NAME PACKAGE VERSION [LDFLAGS] [TAGS]; prints the cached binary's
# path. TAGS (comma-separated build tags) leave optional parts out of big tools.
set -euo pipefail
name="$1"
pkg="$2"
version="$3"
ldflags="${4:-}"
tags="${5:-}"
CACHE="${JOURNEY_CACHE:-$HOME/.cache/journey-operator}"
bin="$CACHE/bin/$name-$version"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
gobin="$CACHE/go/tools/$name-$version"
mkdir -p "$gobin" "$CACHE/bin"
echo "building $name $version ($pkg) from the Go module proxy" >&2
GOFLAGS=-mod=mod GOBIN="$gobin" CGO_ENABLED=0 go install -trimpath -tags "$tags" -ldflags "-s -w $ldflags" "$pkg@$version" >&2
mv "$gobin/$(basename "$pkg")" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "$bin"
