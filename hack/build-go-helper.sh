#!/usr/bin/env bash
# Builds one of the project's small Go test helpers (hack/go/NAME) inside the same cached Go
# module as kube-apiserver, so shared modules compile once per machine. Cached by source hash.
set -euo pipefail
name="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/hack/go/$name"
KUBE_VERSION="${KUBE_VERSION:-v1.37.1}"
CACHE="${JOURNEY_CACHE:-$HOME/.cache/journey-operator}"
hash=$(cat "$src"/*.go "$src"/deps.txt 2>/dev/null | sha256sum | cut -c1-12)
bin="$CACHE/bin/$name-$hash"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
"$root/hack/build-kube-apiserver.sh" >/dev/null
mod="$CACHE/go/kube-apiserver-$KUBE_VERSION"
mkdir -p "$mod/helpers/$name"
cp "$src"/*.go "$mod/helpers/$name/"
cd "$mod"
export GOFLAGS=-mod=mod
# Pinned versions (e.g. the gopher-lua Argo CD ships).
if [ -f "$src/deps.txt" ]; then
  while read -r dep; do [ -n "$dep" ] && go get "$dep" >&2; done < "$src/deps.txt"
fi
go build -o "$bin.tmp" "./helpers/$name" >&2
mv "$bin.tmp" "$bin"
echo "$bin"
