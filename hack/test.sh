#!/usr/bin/env bash
# The one test command: installs what it needs, checks formatting and lints, starts a real
# local control plane (etcd + kube-apiserver) and runs every test against it. Each step prints
# the seconds it took, so CI's cost stays visible.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/lib.sh
. hack/lib.sh

started=$(date +%s)
step_started=$started
# Ends the step under way: prints how long it took.
step_done() {
  local now
  now=$(date +%s)
  log "$1 took $((now - step_started))s"
  step_started=$now
}

ensure_kubectl
log "kubectl: $("$KUBECTL" version --client 2>/dev/null | head -n 1)"
# Every Debian package in one apt-get, before anything runs in the background (dpkg's lock):
# the real node's runtime and the pause image's tools, podman and the image's CA bundle.
# shellcheck disable=SC2086
ensure_debian_packages $NODE_PACKAGES podman ca-certificates
ensure_pause_image
# The Go tools (kube-apiserver, the node's components, Helm, promtool) and the SBOM tool build
# in the background while cargo works below; wait_go_builds collects them before the tests.
start_go_builds
go_build_job cargo-cyclonedx "" ensure_cargo_cyclonedx
step_done "installing the packages and starting the background builds"

log "cargo fmt --check"
cargo fmt --all --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
step_done "fmt and clippy"

# Layering is Cargo's to enforce: what must never know Kubernetes must not be able to.
log "checking that the model and engine crates do not depend on Kubernetes"
for crate in crates/*/; do
  name=$(basename "$crate")
  if cargo tree -p "$name" -e normal,build --prefix none | grep -qE '^(kube|k8s-openapi)([- ]|$)'; then
    echo "$name depends on kube or k8s-openapi:" >&2
    cargo tree -p "$name" -e normal,build -i kube 2>/dev/null >&2 || true
    exit 1
  fi
done

# The shipped binary carries no test harness: the local control plane, its vendored etcd and
# the demo live in xtask, which only tests, benchmarks and hack/ use.
log "checking that the shipped journey-operator does not depend on xtask"
if cargo tree -p journey-operator -e normal,build --prefix none | grep -qE '^(xtask|etcd-bin-vendored|rcgen) '; then
  echo "journey-operator's shipped dependencies include the development harness:" >&2
  cargo tree -p journey-operator -e normal,build -i xtask 2>/dev/null >&2 || true
  exit 1
fi

log "cargo build"
cargo build --workspace --all-targets
step_done "cargo build"

# The shipped image (dist binary, FROM scratch, daemonless): the image tests load the archive
# into podman and re-assemble the layout from the same binary.
wait_go_build cargo-cyclonedx
log "hack/image.sh"
hack/image.sh
image_dir="${CARGO_TARGET_DIR:-target}/image"
JOURNEY_IMAGE="${JOURNEY_IMAGE:-ghcr.io/journey-dev/journey-operator:$(package_field version)}"
JOURNEY_IMAGE_ARCHIVE="$(realpath "$image_dir/journey-operator.tar")"
JOURNEY_IMAGE_DIGEST="$(cat "$image_dir/digest")"
JOURNEY_DIST_BINARY="$(realpath "${CARGO_TARGET_DIR:-target}/dist/journey-operator")"
export JOURNEY_IMAGE JOURNEY_IMAGE_ARCHIVE JOURNEY_IMAGE_DIGEST JOURNEY_DIST_BINARY
ensure_podman
step_done "building the image"

# The expression limits must hold on optimised frame sizes too, not only the debug build's.
log "cargo test --release -p journey-model (the CEL parsing path, release profile)"
cargo test --release -p journey-model -- "$@"
step_done "the release-profile tests of the parsing path"

log "waiting for the background builds"
wait_go_builds
log "helm: $("$HELM" version --short); promtool: $("$PROMTOOL" --version 2>&1 | head -n 1)"
step_done "waiting for the background builds"

xtask="${CARGO_TARGET_DIR:-target}/debug/xtask"
trap 'stop_node; stop_control_plane' EXIT INT TERM
log "starting the local control plane"
start_control_plane "$xtask"
log "kube-apiserver binary: $KUBE_APISERVER ($KUBE_APISERVER_VERSION); KUBECONFIG=$KUBECONFIG"
step_done "starting the control plane"

# A real node with a control plane of its own (the manifests' cluster-wide operator must not
# reconcile the other tests' journeys): tests/it/node.rs installs the manifests there.
log "starting the real node"
start_node "$xtask"
step_done "starting the node"

log "cargo test"
cargo test --workspace --lib --bins --tests -- "$@"
step_done "cargo test"
log "all tests passed in $(( $(date +%s) - started ))s"
