#!/bin/bash
# The podkit demo: make a real image with the peers (umoci + skopeo), fetch it
# into podkit's store, list it, inspect it, render its rootfs, export it and
# let skopeo and umoci read the results.  Uses $PODKIT_STORE (default
# /var/lib/podkit) and a temporary work directory that it removes.
set -Eeuo pipefail
export PATH=/usr/local/bin:$PATH
WORK=$(mktemp -d /tmp/podkit-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
STORE=${PODKIT_STORE:-/var/lib/podkit}
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; "$@"; }

# 1. a busybox image, written by umoci and copied by skopeo (as a registry would hand it over)
umoci init --layout "$WORK/build" >/dev/null
umoci new --image "$WORK/build:base" >/dev/null
umoci unpack --image "$WORK/build:base" "$WORK/bundle" >/dev/null
mkdir -p "$WORK/bundle/rootfs/bin" "$WORK/bundle/rootfs/etc"
cp /bin/busybox "$WORK/bundle/rootfs/bin/busybox"
for a in sh ls cat echo; do ln -s /bin/busybox "$WORK/bundle/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$WORK/bundle/rootfs/etc/passwd"
umoci repack --image "$WORK/build:busybox" "$WORK/bundle" >/dev/null
umoci config --image "$WORK/build:busybox" --config.cmd /bin/sh >/dev/null
run skopeo copy -q "oci:$WORK/build:busybox" "oci:$WORK/layout:example.com/demo/busybox:1.0"

# 2. podkit
step "podkit-fetch oci:$WORK/layout:example.com/demo/busybox:1.0"
ID=$(podkit-fetch "oci:$WORK/layout:example.com/demo/busybox:1.0")
echo "$ID"
run podkit images
step "podkit-inspect $ID | sed -n 1,12p"
podkit-inspect "$ID" | sed -n 1,12p
run podkit-render --overwrite example.com/demo/busybox:1.0 "$WORK/rootfs"
run ls -l "$WORK/rootfs/bin"
run podkit-export "$ID" "oci-archive:$WORK/busybox.tar"
step "skopeo inspect oci-archive:$WORK/busybox.tar | grep Digest"
skopeo inspect "oci-archive:$WORK/busybox.tar" | grep '"Digest"'
step "umoci ls --layout $STORE"
umoci ls --layout "$STORE"
printf '\nThe store at %s is an OCI image layout: skopeo and umoci read it as it is.\n' "$STORE"
