#!/usr/bin/env bash
# The main job, on a fresh machine: uses the configured cluster, or starts the local control
# plane when there is none; installs the CRDs; runs the controller with the embedded engine;
# applies the example journeys; feeds simulated profiles and events through the engine's data
# plane so the journeys visibly move; prints a live status table until interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/lib.sh
. hack/lib.sh

ensure_kubectl
log "building journey-operator and the development tasks (xtask: control plane, demo)"
cargo build --quiet -p journey-operator --bin journey-operator
cargo build --quiet -p xtask
bin="${CARGO_TARGET_DIR:-target}/debug/journey-operator"
xtask="${CARGO_TARGET_DIR:-target}/debug/xtask"

state="$(mktemp -d "${TMPDIR:-/tmp}/journey-run.XXXXXX")"
CONTROLLER_PID=""
DEMO_PID=""
cleanup() {
  if [ -n "$DEMO_PID" ]; then
    kill -TERM "$DEMO_PID" 2>/dev/null || true
    wait "$DEMO_PID" 2>/dev/null || true
  fi
  if [ -n "$CONTROLLER_PID" ]; then
    kill -TERM "$CONTROLLER_PID" 2>/dev/null || true
    wait "$CONTROLLER_PID" 2>/dev/null || true
  fi
  stop_control_plane
  rm -rf "$state"
}
trap cleanup EXIT INT TERM

if [ -z "${JOURNEY_LOCAL:-}" ] && "$KUBECTL" version --request-timeout=5s >/dev/null 2>&1; then
  log "using the configured cluster: $("$KUBECTL" config current-context 2>/dev/null || echo in-cluster)"
else
  ensure_kube_apiserver
  log "no cluster configured: starting the local control plane"
  start_control_plane "$xtask"
fi

log "installing the CRDs"
"$bin" crd | "$KUBECTL" apply --server-side --field-manager=journey-operator -f -
"$KUBECTL" wait --for=condition=Established --timeout=60s crd/journeys.journey.dev >/dev/null
if "$KUBECTL" api-resources --api-group=admissionregistration.k8s.io -o name 2>/dev/null |
  grep -qx 'mutatingadmissionpolicies.admissionregistration.k8s.io'; then
  log "installing manifests/admission/ (the finalizer comes with each new journey; who changed the lifecycle is recorded)"
  "$KUBECTL" apply --server-side --field-manager=journey-operator -f manifests/admission/
else
  log "this cluster has no MutatingAdmissionPolicy: the controller adds its finalizer itself"
fi

ns="${JOURNEY_DEMO_NAMESPACE:-journeys-demo}"
ops_port="${JOURNEY_OPS_PORT:-18080}"
data_port="${JOURNEY_DATA_PLANE_PORT:-18090}"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$state/token"
log "starting the controller (engine data in $state/data, logs in $state/controller.log)"
"$bin" run --data-dir "$state/data" --namespace "$ns" \
  --ops-addr "127.0.0.1:$ops_port" --data-plane-addr "127.0.0.1:$data_port" \
  --data-plane-token-file "$state/token" --insecure-plain-http --counts-refresh 2s >"$state/controller.log" 2>&1 &
CONTROLLER_PID=$!
for _ in $(seq 1 300); do
  if curl -fsS "http://127.0.0.1:$ops_port/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$CONTROLLER_PID" 2>/dev/null; then cat "$state/controller.log" >&2; exit 1; fi
  sleep 0.1
done

"$KUBECTL" create namespace "$ns" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
log "applying manifests/examples/ to namespace $ns"
# An Established CRD can still answer "Kind=Journey not found" (503) for a few seconds while
# the apiserver's discovery catches up: retry, bounded.
for attempt in $(seq 1 30); do
  if "$KUBECTL" apply -n "$ns" -f manifests/examples/; then break; fi
  if [ "$attempt" -eq 30 ]; then exit 1; fi
  sleep 1
done

log "feeding simulated profiles and events and telling the lifecycle story on onboarding (Ctrl-C to stop)"
"$xtask" demo --namespace "$ns" --data-plane "http://127.0.0.1:$data_port" \
  --token-file "$state/token" --interval "${JOURNEY_STATUS_INTERVAL:-2s}" \
  --stage-seconds "${JOURNEY_STAGE_SECONDS:-10}" &
DEMO_PID=$!
# Whichever ends first ends the main job: a controller that dies must not leave the demo
# printing a table of '?' forever.
code=0
wait -n "$CONTROLLER_PID" "$DEMO_PID" || code=$?
if ! kill -0 "$CONTROLLER_PID" 2>/dev/null; then
  wait "$CONTROLLER_PID" 2>/dev/null || code=$?
  CONTROLLER_PID=""
  {
    echo
    echo "journey-operator run (the controller) exited with status $code; its last log lines ($state/controller.log):"
    tail -n 40 "$state/controller.log"
  } >&2
  exit 1
fi
exit "$code"
