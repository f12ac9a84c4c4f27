#!/usr/bin/env bash
# The real node's figures for BENCHMARKS.md ("Real node"): BENCH_RUNS times (default 5) start a
# fresh node, run the node test (its "pod start to Ready" and rollout lines) and stop the node,
# printing each duration and the host state left behind. Needs JOURNEY_IMAGE and
# JOURNEY_IMAGE_ARCHIVE (hack/test.sh's image step, or hack/image.sh --binary) and root.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/lib.sh
. hack/lib.sh
: "${JOURNEY_IMAGE:?set JOURNEY_IMAGE (the image reference of the manifests)}"
: "${JOURNEY_IMAGE_ARCHIVE:?set JOURNEY_IMAGE_ARCHIVE (an archive ctr images import accepts)}"
ensure_kubectl
ensure_kube_apiserver
ensure_node_tools
cargo build -q -p xtask --tests
xtask="${CARGO_TARGET_DIR:-target}/debug/xtask"
echo "machine: nproc=$(nproc) cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\" load=\"$(cut -d' ' -f1-3 /proc/loadavg)\" kubelet=$("$KUBELET" --version | awk '{print $2}') containerd=$(containerd --version | awk '{print $3}') commit=$(git rev-parse --short HEAD)"
trap stop_node EXIT INT TERM
now() { date +%s.%N; }
for i in $(seq "${BENCH_RUNS:-5}"); do
  s=$(now); start_node "$xtask" 2>/dev/null; e=$(now)
  echo "run $i: node start $(echo "$e - $s" | bc) s"
  log="${TMPDIR:-/tmp}/bench-node-$i.log"
  if ! cargo test -q --test it node:: -- --nocapture >"$log" 2>&1; then
    echo "run $i: the node test failed; see $log" >&2
    exit 1
  fi
  grep -E '^node:' "$log" | sed "s/^/run $i: /"
  s=$(now); stop_node; e=$(now)
  echo "run $i: node stop $(echo "$e - $s" | bc) s; left behind: $(iptables-save | grep -cE 'KUBE|CNI' || true) iptables lines, $(grep -c journey-node /proc/self/mountinfo || true) mounts"
done
