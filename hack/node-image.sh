#!/usr/bin/env bash
# The real node's stand-in image until hack/image.sh builds the shipped one: a binary, its
# shared libraries, the CA bundle and a passwd entry for uid 65532, FROM scratch, as a
# docker-archive `ctr images import` accepts. $1: binary, $2: archive, $3: image name.
set -euo pipefail
bin="$1"; out="$2"; name="$3"
mkdir -p "$(dirname "$out")"; rm -f "$out"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
umoci init --layout "$work/oci" >&2
umoci new --image "$work/oci:x" >&2
umoci unpack --image "$work/oci:x" "$work/b" >&2
r="$work/b/rootfs"
mkdir -p "$r/usr/bin" "$r/etc" "$r/tmp"
cp "$bin" "$r/usr/bin/journey-operator"
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do mkdir -p "$r$(dirname "$lib")"; cp -L "$lib" "$r$lib"; done
mkdir -p "$r/etc/ssl/certs"; cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"
echo "nonroot:x:65532:65532::/home/nonroot:/sbin/nologin" > "$r/etc/passwd"
umoci repack --image "$work/oci:x" "$work/b" >&2
umoci config --image "$work/oci:x" --config.entrypoint /usr/bin/journey-operator --config.user 65532:65532 >&2
skopeo copy --quiet "oci:$work/oci:x" "docker-archive:$out:$name" >&2
echo "$out"
