#!/usr/bin/env bash
# Builds the real node's pause image (the process every pod sandbox runs) from Debian's static
# busybox with umoci, as a docker-archive `ctr images import` accepts: no registry serves one
# here. Cached per busybox version; prints the archive's path.
set -euo pipefail
CACHE="${JOURNEY_CACHE:-$HOME/.cache/journey-operator}"
NAME=localhost/journey/pause:1
for pkg in busybox-static umoci skopeo; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="${missing:-} $pkg"
done
if [ -n "${missing:-}" ]; then
  echo "installing$missing" >&2
  apt-get install -y -qq $missing >&2 || { apt-get update -qq >&2 && apt-get install -y -qq $missing >&2; }
fi
version=$(dpkg-query -W -f '${Version}' busybox-static | tr -c "A-Za-z0-9.+\n-" _)
out="$CACHE/images/pause-busybox-$version.tar"
if [ -f "$out" ]; then
  echo "$out"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umoci init --layout "$work/oci" >&2
umoci new --image "$work/oci:pause" >&2
umoci unpack --image "$work/oci:pause" "$work/bundle" >&2
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/sh"
ln -s busybox "$work/bundle/rootfs/bin/sleep"
umoci repack --image "$work/oci:pause" "$work/bundle" >&2
# Sleeps until the runtime stops the sandbox, and exits at once on TERM.
umoci config --image "$work/oci:pause" --config.entrypoint /bin/sh --config.cmd -c \
  --config.cmd "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait \$!; done" >&2
mkdir -p "$CACHE/images"
skopeo copy --quiet "oci:$work/oci:pause" "docker-archive:$out.tmp:$NAME" >&2
mv "$out.tmp" "$out"
echo "$out"
