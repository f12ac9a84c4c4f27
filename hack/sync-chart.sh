#!/usr/bin/env bash
# Copies what the Helm chart shares with the kustomize base into the chart: the CRDs into its
# crds/ (Helm installs them, never upgrades them) and the manifests its templates read verbatim
# into its files/. manifests/ and crds/ are the source; the chart's copies are never edited.
# Usage: hack/sync-chart.sh          rewrite the copies
#        hack/sync-chart.sh --check  exit 1 (with a diff) when a copy differs from its source
set -euo pipefail
cd "$(dirname "$0")/.."
chart=charts/journey-operator

# Writes the copies under $1 (the chart's directory, or a scratch one for --check).
copy_into() {
  local out="$1"
  rm -rf "$out/crds" "$out/files"
  mkdir -p "$out/crds" "$out/files"
  cp crds/journey.dev.yaml "$out/crds/"
  cp manifests/rbac.yaml manifests/roles.yaml "$out/files/"
  local dir
  for dir in policy admission monitoring; do
    # monitoring/ may not exist yet; the chart's templates say so when it is enabled.
    if [ -d "manifests/$dir" ]; then
      mkdir -p "$out/files/$dir"
      cp "manifests/$dir"/* "$out/files/$dir/"
    fi
  done
}

if [ "${1:-}" = "--check" ]; then
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  copy_into "$scratch"
  if ! diff -ru "$scratch/crds" "$chart/crds" || ! diff -ru "$scratch/files" "$chart/files"; then
    echo "the chart's copies differ from crds/ and manifests/: run hack/sync-chart.sh" >&2
    exit 1
  fi
  exit 0
fi
copy_into "$chart"
