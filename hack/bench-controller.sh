#!/usr/bin/env bash
# The controller benchmarks (BENCHMARKS.md, "Controller"): builds journey-operator with the
# `dist` profile (release + whole-program LTO, the shipped binary) and the bench in release
# mode, starts a fresh local control plane (etcd + kube-apiserver, as hack/test.sh does) and
# runs benches/controller.rs against it, which drives the real `journey-operator run` binary as
# a child process. Prints the figures; never fails on a missed target.
# BENCH_ONLY=latency,idle,cold,memory,hold picks figures (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/lib.sh
. hack/lib.sh

ensure_tools
log "cargo build --profile dist (the shipped journey-operator) and the controller bench"
cargo build -q --profile dist --bin journey-operator
cargo bench -q --bench controller --no-run
cargo build -q --release -p xtask
# The bench drives the shipped build (JOURNEY_OPERATOR_BIN overrides it).
JOURNEY_OPERATOR_BIN="${JOURNEY_OPERATOR_BIN:-${CARGO_TARGET_DIR:-target}/dist/journey-operator}"
export JOURNEY_OPERATOR_BIN

# A fresh control plane every time: the figures must not depend on what a cluster already holds.
trap stop_control_plane EXIT INT TERM
log "starting the local control plane"
start_control_plane "${CARGO_TARGET_DIR:-target}/release/xtask"
log "kube-apiserver: $KUBE_APISERVER ($KUBE_APISERVER_VERSION); load before: $(uptime)"
cargo bench -q --bench controller
log "load after: $(uptime)"
