#!/usr/bin/env bash
# The one test command: installs what it needs, checks formatting and lints, starts a real
# local control plane (etcd + kube-apiserver) and runs every test against it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/lib.sh
. hack/lib.sh

started=$(date +%s)
ensure_tools
log "kubectl: $("$KUBECTL" version --client 2>/dev/null | head -n 1)"

log "cargo fmt --check"
cargo fmt --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
log "cargo build"
cargo build --all-targets

trap stop_control_plane EXIT INT TERM
log "starting the local control plane"
start_control_plane target/debug/journey-operator
log "kube-apiserver binary: $KUBE_APISERVER ($KUBE_APISERVER_VERSION); KUBECONFIG=$KUBECONFIG"

log "cargo test"
cargo test --lib --bins --tests -- "$@"
log "all tests passed in $(( $(date +%s) - started ))s"
