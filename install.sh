#!/bin/bash
# Install podkit and everything it and its tests need on Debian 12, as root,
# then run the demo (skip it with --no-demo).
#   Debian packages  -> apt-get
#   podkit           -> .venv (Debian's python3, --system-site-packages for python3-systemd),
#                       commands linked into /usr/local/bin, man pages, bash completion
set -Eeuo pipefail
cd "$(dirname "$(readlink -f "$0")")"
ROOT=$PWD

DEBS=(python3 python3-venv python3-pip python3-systemd python3-nacl python3-yaml python3-hypothesis
      skopeo umoci docker-registry systemd-container busybox-static
      zstd xz-utils bzip2 tar man-db gnupg
      catatonit util-linux bsdutils runc gcc libc6-dev buildah)  # catatonit: PID 1 of nspawn pods;
      # script(1), runc and a static C helper (gcc, libc6-dev) in tests; buildah: the
      # oracle of podkit-build's tests

log() { printf '[install] %s\n' "$*" >&2; }

missing=()
for p in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# Debian's interpreter, not whatever python3 comes first on PATH
PY=/usr/bin/python3
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import systemd' 2>/dev/null; then
    log "creating .venv"
    rm -rf .venv
    "$PY" -m venv --system-site-packages .venv
fi
log "pip install -e .[test]"
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' >&2
# the console scripts start without `site` (its .pth files and the editable finder cost
# ~20 ms per command) and load their modules from one file, .venv/lib/podkit-modules.bundle
# (~15 ms less from a cold cache): see stage0/cli/launchers.py and stage0/cli/bundle.py
.venv/bin/python -m stage0.cli.launchers .venv/bin >&2
# byte-compile now: commands start ~16 ms faster than when they compile on first import
.venv/bin/python -m compileall -q -j 0 libaci stage0 stage1 schemas >&2 || true

mkdir -p /usr/local/bin /usr/local/share/man/man1 /usr/local/share/man/man5 \
    /usr/local/share/man/man7 /etc/bash_completion.d
for exe in .venv/bin/podkit .venv/bin/podkit-*; do
    ln -sfn "$ROOT/$exe" "/usr/local/bin/$(basename "$exe")"
done
for page in man/*.1; do ln -sfn "$ROOT/$page" /usr/local/share/man/man1/; done
for page in man/*.5; do ln -sfn "$ROOT/$page" /usr/local/share/man/man5/; done
for page in man/*.7; do ln -sfn "$ROOT/$page" /usr/local/share/man/man7/; done
if [ -f completion/podkit.bash ]; then
    ln -sfn "$ROOT/completion/podkit.bash" /etc/bash_completion.d/podkit
fi
log "installed: $(ls .venv/bin | grep -c '^podkit') podkit commands in /usr/local/bin"

if [ "${1:-}" != "--no-demo" ]; then
    exec bash "$ROOT/demo.sh"
fi
