#!/usr/bin/env bash
# Builds the journey-operator OCI image without a container daemon: the `dist` binary, the
# shared libraries `ldd` reports and their loader, Debian's CA bundle and a passwd entry for
# uid 65532, FROM scratch, assembled with umoci (Debian package, installed when missing).
#
#   hack/image.sh                             cargo build --profile dist, then assemble into
#                                             ${CARGO_TARGET_DIR:-target}/image/
#   hack/image.sh --binary PATH --out DIR     only assemble, from the given binary, into DIR
#
# Outputs in the output directory:
#   oci/                  OCI image layout, tagged with the Cargo version (oci/:0.1.0)
#   journey-operator.tar  docker-archive named $JOURNEY_IMAGE (podman load, ctr images import)
#   digest                the OCI manifest's digest (sha256:...)
#   sbom.cdx.json         CycloneDX SBOM of the Rust dependencies (cargo-cyclonedx, Cargo.lock)
#
# JOURNEY_IMAGE overrides the reference (default ghcr.io/journey-dev/journey-operator:VERSION).
# Reproducible: SOURCE_DATE_EPOCH (default: the HEAD commit's time) fixes every timestamp, files
# are root-owned with fixed modes and mtimes, so one binary assembled twice gives one digest.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/lib.sh
. hack/lib.sh

binary=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--binary PATH] [--out DIR]" >&2; exit 2 ;;
  esac
done

version="$(package_field version)"
source_url="$(package_field repository)"
image="${JOURNEY_IMAGE:-ghcr.io/journey-dev/journey-operator:$version}"
revision="$(git rev-parse HEAD)"
# Not exported before the cargo build: build scripts that watch it would rebuild on every commit.
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
target_dir="${CARGO_TARGET_DIR:-target}"
out="${out:-$target_dir/image}"

ensure_image_tools

if [ -z "$binary" ]; then
  log "cargo build --profile dist --bin journey-operator"
  cargo build --profile dist --bin journey-operator
  binary="$target_dir/dist/journey-operator"
  sbom=1
fi

# The root filesystem: real directories (no usr-merge symlinks), the libraries at the paths
# the binary's loader looks them up.
work="$(mktemp -d "${TMPDIR:-/tmp}/journey-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
install -D -m 0755 "$binary" "$root/usr/local/bin/journey-operator"
ldd "$binary" | awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
  install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
done
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
install -d -m 0755 "$root/etc"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chown -R 0:0 "$root"
find "$root" -exec touch -h -d "@$epoch" {} +

rm -rf "$out/oci"
mkdir -p "$out"
layout="$out/oci:$version"
umoci init --layout "$out/oci"
umoci new --image "$layout"
umoci insert --image "$layout" --history.created "$created" \
  --history.created_by "hack/image.sh" "$root" /
umoci config --image "$layout" --no-history --created "$created" \
  --os linux --architecture amd64 \
  --config.user 65532:65532 \
  --config.env PATH=/usr/local/bin:/usr/bin:/bin \
  --config.entrypoint journey-operator \
  --config.label "org.opencontainers.image.source=$source_url" \
  --config.label "org.opencontainers.image.revision=$revision" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.licenses=Apache-2.0" \
  --config.label "org.opencontainers.image.title=journey-operator" \
  --config.label "org.opencontainers.image.created=$created"
umoci gc --layout "$out/oci"
# umoci writes blobs 0600; a layout is for anyone to copy.
chmod -R a+rX "$out/oci"

digest="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$out/oci/index.json")"
printf '%s\n' "$digest" >"$out/digest"
rm -f "$out/journey-operator.tar"
skopeo copy --quiet "oci:$layout" "docker-archive:$out/journey-operator.tar:$image"

if [ -n "${sbom:-}" ]; then
  # cargo-cyclonedx writes one SBOM beside every workspace member's Cargo.toml: keep the
  # shipped package's, drop the others (a name of our own, so nothing else is touched).
  cyclonedx="$(ensure_cargo_cyclonedx)"
  name=".image-sbom-$$"
  "$cyclonedx" cyclonedx --quiet --format json --spec-version 1.5 --override-filename "$name" >&2
  mv "$name.json" "$out/sbom.cdx.json"
  find . -maxdepth 3 -name "$name.json" -delete
fi

compressed="$(python3 -c '
import json, sys, os
d = sys.argv[1]
idx = json.load(open(os.path.join(d, "index.json")))
h = idx["manifests"][0]["digest"].split(":")[1]
m = json.load(open(os.path.join(d, "blobs/sha256", h)))
print(sum(l["size"] for l in m["layers"]) + m["config"]["size"])' "$out/oci")"
uncompressed="$(du -sb --apparent-size "$root" | cut -f1)"
log "image $image"
log "digest $digest"
log "size: $compressed bytes compressed, $uncompressed bytes uncompressed"
printf '%s\n' "$digest"
