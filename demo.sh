#!/bin/bash
# The podkit walkthrough: the whole mission on this machine, step by step.
#
#   a local registry (Debian's docker-registry on 127.0.0.1, started here and
#   stopped at the end) -> a base image built by podkit-build (a Debian rootfs
#   from debootstrap when a Debian mirror is reachable, else busybox) -> a
#   cosign key, signed and pushed -> fetched into a fresh store, verified and
#   run -> the classic interactive session: podkit-run -t -i, install a package,
#   exit -> podkit-list -a -> podkit-commit -> podkit-images -> podkit-push
#   ("already exists, skipping" for the base layers) -> fetched into another
#   fresh store and run serving HTTP on the host network, checked with curl.
#
# Everything lives in a temporary directory (stores, registry, keys, policy)
# that is removed at the end; nothing outside it changes except the debootstrap
# cache (/var/cache/podkit-demo).  DEMO_BASE=busybox skips debootstrap.
set -Eeuo pipefail
HERE=$(dirname "$(readlink -f "$0")")
export PATH=$HERE/.venv/bin:/usr/local/bin:$PATH
WORK=$(mktemp -d /var/tmp/podkit-demo.XXXXXX)
REG_PID=
POD_PIDS=()
cleanup() {
    local rc=$?
    set +e
    for p in "${POD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for s in "$WORK"/store-*; do
        [ -d "$s/pods" ] || continue
        podkit-list --store "$s" -q -a 2>/dev/null | podkit-stop --store "$s" --force >/dev/null 2>&1 || true
    done
    if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null; fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
step() { printf '\033[1;34m$ %s\033[0m\n' "$*"; }
run() { step "$*"; "$@"; }
SUMMARY=()
done_() { SUMMARY+=("$*"); }

export PODKIT_CONFIG_DIR=$WORK/etc          # policy.json and trusted keys of this demo only
unset PODKIT_POLICY PODKIT_STORE            # (a policy or store of the caller's is not ours)
mkdir -p "$PODKIT_CONFIG_DIR"
A=$WORK/store-build B=$WORK/store-fresh C=$WORK/store-final

# -- 1. a registry on loopback -------------------------------------------------------------
bold "1. A local registry (Debian's docker-registry 2.8) on 127.0.0.1"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
mkdir -p "$WORK/registry/data"
cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $WORK/registry/data}
  delete: {enabled: true}
http:
  addr: $REG
EOF
env -i /usr/bin/docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -fs "http://$REG/v2/" >/dev/null && break; sleep 0.1; done
curl -fs "http://$REG/v2/" >/dev/null || { echo "the registry did not start" >&2; exit 1; }
echo "registry at http://$REG (pid $REG_PID)"
done_ "registry on $REG"

# -- 2. a base image built by podkit ---------------------------------------------------------
bold "2. A base image, built by podkit-build"
CTX=$WORK/base
mkdir -p "$CTX"
BASE=busybox
if [ "${DEMO_BASE:-}" != busybox ] && command -v debootstrap >/dev/null &&
    curl -fsI --max-time 5 http://deb.debian.org/debian/dists/bookworm/Release >/dev/null; then
    BASE=debian
fi
if [ "$BASE" = debian ]; then
    CACHE=/var/cache/podkit-demo/bookworm-minbase.tar
    if [ ! -s "$CACHE" ]; then
        step "debootstrap --variant=minbase bookworm (once; cached in $CACHE)"
        mkdir -p /var/cache/podkit-demo "$WORK/deb"
        debootstrap --variant=minbase bookworm "$WORK/deb" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1
        rm -rf "$WORK/deb/var/cache/apt/archives/"*.deb "$WORK/deb/var/lib/apt/lists/"*
        tar -C "$WORK/deb" --numeric-owner -cf "$CACHE.new" . && mv "$CACHE.new" "$CACHE"
        rm -rf "$WORK/deb"
    fi
    cp "$CACHE" "$CTX/rootfs.tar"
    cat >"$CTX/Dockerfile" <<'EOF'
FROM scratch
ADD rootfs.tar /
ENV LANG=C.UTF-8
CMD ["/bin/bash"]
EOF
    SHELL_CMD=/bin/bash
else
    echo "(no Debian mirror or debootstrap: using a busybox base; the package install is skipped)"
    mkdir -p "$CTX/rootfs/bin" "$CTX/rootfs/etc" "$CTX/rootfs/srv" "$CTX/rootfs/tmp"
    cp /bin/busybox "$CTX/rootfs/bin/busybox"
    for a in sh ls cat echo mkdir httpd sleep; do ln -s busybox "$CTX/rootfs/bin/$a"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/srv:/bin/sh\n' >"$CTX/rootfs/etc/passwd"
    printf 'root:x:0:\nwww:x:33:\n' >"$CTX/rootfs/etc/group"
    cat >"$CTX/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
CMD ["/bin/sh"]
EOF
    SHELL_CMD=/bin/sh
fi
step "podkit-build --store $A -t $REG/demo/base:1 $CTX"
BASE_ID=$(podkit-build --store "$A" -t "$REG/demo/base:1" "$CTX")
echo "$BASE_ID"
done_ "base image ($BASE) built: $BASE_ID"

# -- 3. sign and push ------------------------------------------------------------------------
bold "3. A cosign key; push the image and sign it in the registry"
export COSIGN_PASSWORD=demo-passphrase
run podkit-keygen --output "$WORK/cosign"
run podkit-push --store "$A" --progress=plain "$BASE_ID" "docker://$REG/demo/base:1"
run podkit-sign --store "$A" "$BASE_ID" "docker://$REG/demo/base:1" --key "$WORK/cosign.key"
run podkit-trust --skip-fingerprint-review --scope "$REG/demo" --sigstore-key "$WORK/cosign.pub"
done_ "pushed to $REG/demo/base:1 and signed (sha256-<hex>.sig)"

# -- 4. a fresh store: fetch (verified), verify, run --------------------------------------------
bold "4. Fetch into a fresh store (the policy requires the signature), verify, run"
step "podkit-fetch --store $B docker://$REG/demo/base:1 | podkit-verify --store $B"
ID=$(podkit-fetch --store "$B" "docker://$REG/demo/base:1" | podkit-verify --store "$B")
echo "$ID"
run podkit-run --store "$B" "$ID" -- $SHELL_CMD -c 'echo "hello from a pod: $(cat /etc/os-release 2>/dev/null | head -1 || echo busybox)"; id'
step "podkit-fetch --store $WORK/store-unsigned docker://$REG/demo/unsigned:1  (refused)"
podkit-push --store "$A" -q "$BASE_ID" "docker://$REG/other/unsigned:1"
if podkit-fetch --store "$WORK/store-unsigned" "docker://$REG/other/unsigned:1"; then
    echo "an unsigned image was accepted" >&2; exit 1
fi
done_ "fetched and verified in a fresh store; an unsigned image was refused"

# -- 5. the interactive session: run -t -i, install a package, exit ----------------------------
bold "5. podkit-run -t -i $REG/demo/base:1 $SHELL_CMD  (a scripted terminal session)"
if [ "$BASE" = debian ]; then
    SESSION='apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox >/dev/null && echo installed: $(busybox | head -1)
mkdir -p /srv && echo "served by a committed podkit image" > /srv/index.html
exit'
else
    SESSION='echo "(busybox base: no package manager; skipping the install)"
mkdir -p /srv && echo "served by a committed podkit image" > /srv/index.html
exit'
fi
printf '%s\n' "$SESSION" >"$WORK/session"
step "podkit-run -t -i $ID $SHELL_CMD   (typed into a real terminal by tests/data/ptydrive.py)"
python3 "$HERE/tests/data/ptydrive.py" "$WORK/session" -- \
    podkit-run --store "$B" --uuid-file-save="$WORK/pod.uuid" -t -i "$ID" "$SHELL_CMD"
POD=$(cat "$WORK/pod.uuid")
run podkit-list --store "$B" -a
done_ "interactive pod $POD: $( [ "$BASE" = debian ] && echo "package installed, " )page written"

# -- 6. commit, images, push -------------------------------------------------------------------
bold "6. podkit-commit the pod, list images, push it next to its base (base layers: already exist)"
step "podkit-commit --store $B $POD $REG/demo/base:web --change 'CMD [\"busybox\",\"httpd\",\"-f\",\"-p\",\"PORT\",\"-h\",\"/srv\"]'"
HTTP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
WEB_ID=$(podkit-commit --store "$B" "$POD" "$REG/demo/base:web" \
    --change "CMD [\"busybox\",\"httpd\",\"-f\",\"-p\",\"127.0.0.1:$HTTP_PORT\",\"-h\",\"/srv\"]")
echo "$WEB_ID"
run podkit-images --store "$B"
run podkit-push --store "$B" --progress=plain "$WEB_ID" "docker://$REG/demo/base:web"
podkit-sign --store "$B" "$WEB_ID" "docker://$REG/demo/base:web" --key "$WORK/cosign.key" >/dev/null
done_ "committed $WEB_ID and pushed it (base layers skipped)"

# -- 7. fetch into yet another store and serve HTTP ----------------------------------------------
bold "7. Fetch the committed image into a fresh store and serve HTTP on the host network"
run podkit-fetch --store "$C" "docker://$REG/demo/base:web"
step "podkit-run --store $C --net=host $REG/demo/base:web &"
podkit-run --store "$C" --net=host --uuid-file-save="$WORK/web.uuid" "$REG/demo/base:web" &
POD_PIDS+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$HTTP_PORT/" >/dev/null 2>&1 && break; sleep 0.1; done
run curl -fsS "http://127.0.0.1:$HTTP_PORT/"
run podkit-stop --store "$C" --uuid-file "$WORK/web.uuid"
wait "${POD_PIDS[@]}" 2>/dev/null || true
POD_PIDS=()
run podkit-list --store "$C" -a
done_ "served HTTP from the committed image on 127.0.0.1:$HTTP_PORT; stopped"

bold "Summary"
for line in "${SUMMARY[@]}"; do printf '  ok  %s\n' "$line"; done
printf '\nEverything ran in %s (removed now).\n' "$WORK"
