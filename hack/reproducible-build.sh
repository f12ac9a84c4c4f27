#!/usr/bin/env bash
# Whether two cargo builds of the shipped binary are bit-for-bit identical: two `dist` builds
# in two fresh target directories under DIR (default: a temporary directory), compared by
# sha256. Not part of hack/test.sh (two cold dist builds); BENCHMARKS.md records its result.
#
#   hack/reproducible-build.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/lib.sh
. hack/lib.sh

dir="${1:-$(mktemp -d "${TMPDIR:-/tmp}/journey-repro.XXXXXX")}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
# Paths differ between the two target directories; remapping them keeps them out of the
# binary (panic locations, debug info).
for n in 1 2; do
  started=$(date +%s)
  CARGO_TARGET_DIR="$dir/target-$n" \
    RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$dir/target-$n=/target --remap-path-prefix=$HOME=/home" \
    cargo build --quiet --profile dist --bin journey-operator
  log "build $n took $(($(date +%s) - started))s"
done
a="$(sha256sum <"$dir/target-1/dist/journey-operator" | cut -d' ' -f1)"
b="$(sha256sum <"$dir/target-2/dist/journey-operator" | cut -d' ' -f1)"
log "build 1: $a"
log "build 2: $b"
if [ "$a" = "$b" ]; then
  echo "identical: sha256 $a"
else
  echo "different: $a vs $b"
  exit 1
fi
