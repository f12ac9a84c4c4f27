#!/usr/bin/env bash
# The main job: uses the configured cluster, or starts the local control plane when there is
# none, installs the CRDs, applies the example journeys and shows their status until
# interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/lib.sh
. hack/lib.sh

ensure_kubectl
log "building journey-operator"
cargo build --quiet --bin journey-operator
bin=target/debug/journey-operator

if [ -z "${JOURNEY_LOCAL:-}" ] && "$KUBECTL" version --request-timeout=5s >/dev/null 2>&1; then
  log "using the configured cluster: $("$KUBECTL" config current-context 2>/dev/null || echo in-cluster)"
else
  ensure_kube_apiserver
  trap stop_control_plane EXIT INT TERM
  log "no cluster configured: starting the local control plane"
  start_control_plane "$bin"
fi

log "installing the CRDs"
"$bin" crd | "$KUBECTL" apply --server-side --field-manager=journey-operator -f -
"$KUBECTL" wait --for=condition=Established --timeout=60s crd/journeys.journey.dev >/dev/null

ns="${JOURNEY_DEMO_NAMESPACE:-journeys-demo}"
"$KUBECTL" create namespace "$ns" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
log "applying manifests/examples/ to namespace $ns"
"$KUBECTL" apply -n "$ns" -f manifests/examples/

log "journeys (Ctrl-C to stop):"
while true; do
  "$KUBECTL" get journeys -n "$ns" -o wide
  sleep "${JOURNEY_STATUS_INTERVAL:-5}"
  echo
done
