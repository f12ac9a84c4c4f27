#!/usr/bin/env bash
# The image's figures for BENCHMARKS.md: its size, hack/image.sh warm (nothing changed), and
# podman start to /readyz (the podman test, RUNS times, median), on a control plane of its own.
# The cold figure is hack/image.sh's first run in an empty target directory, timed by hand.
#
#   hack/bench-image.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/lib.sh
. hack/lib.sh
runs="${1:-5}"
target_dir="${CARGO_TARGET_DIR:-target}"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
ensure_tools
ensure_podman
hack/image.sh >/dev/null
started=$(date +%s%N)
hack/image.sh >/dev/null 2>"$target_dir/image/warm.log"
echo "hack/image.sh warm: $(( ($(date +%s%N) - started) / 1000000 )) ms"
grep -E 'size:' "$target_dir/image/warm.log" | sed 's/^==> /image /'

cargo build --quiet -p xtask
trap stop_control_plane EXIT INT TERM
start_control_plane "$target_dir/debug/xtask" 2>/dev/null
export JOURNEY_IMAGE="${JOURNEY_IMAGE:-ghcr.io/journey-dev/journey-operator:$(package_field version)}"
JOURNEY_IMAGE_ARCHIVE="$(realpath "$target_dir/image/journey-operator.tar")"
JOURNEY_DIST_BINARY="$(realpath "$target_dir/dist/journey-operator")"
export JOURNEY_IMAGE_ARCHIVE JOURNEY_DIST_BINARY
times=()
for _ in $(seq "$runs"); do
  ms="$(cargo test --quiet --test it image::the_image_runs_like_a_pod -- --nocapture 2>&1 |
    sed -n 's/^podman start to \/readyz: \([0-9]*\) ms$/\1/p')"
  [ -n "$ms" ] || { echo "the podman test failed" >&2; exit 1; }
  times+=("$ms")
done
sorted="$(printf '%s\n' "${times[@]}" | sort -n | tr '\n' ' ')"
median="$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')"
echo "podman start to /readyz over $runs runs: median $median ms (all: $sorted)"
