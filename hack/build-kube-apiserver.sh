#!/usr/bin/env bash
# Builds the upstream kube-apiserver from the Go module proxy, once per machine and version
# (see build-kube.sh, which builds every Kubernetes component the same way).
set -euo pipefail
exec "$(dirname "$0")/build-kube.sh" kube-apiserver
