#!/usr/bin/env bash
# =============================================================================
# bench/build.sh - podkit-build against `buildah bud --layers`, a 10-step
# Dockerfile on the busybox base, cold and fully cached, in the same run.
#
# 1. Writes (every run; deterministic, ~1 s) an OCI layout with one image,
#    `busybox`: one gzip layer with the host's static busybox as
#    /bin/busybox, a symlink for each of its applets (`busybox --list-full`),
#    /etc/passwd and /etc/group (root, user 1000), /tmp, /root, /run, /var; fixed
#    times and owners, gzip mtime 0.  Both tools start from this image:
#    podkit-fetch puts it in podkit's store, `buildah pull oci:LAYOUT:busybox`
#    in buildah's, tagged docker.io/library/busybox:latest and
#    localhost/busybox:latest, so `FROM busybox` finds it in both.
# 2. Writes the context (5 config files, a script, a README) and the
#    Dockerfile (10 instructions: FROM, ENV, WORKDIR, COPY dir, COPY of two
#    files, RUN writing 8 files, RUN writing a 0600 file, LABEL, RUN running
#    the copied script and making a symlink, CMD).
# 3. Checks, once, before any timing: both tools build it; podkit's image,
#    rendered (podkit-render), has the expected files, modes and contents and
#    the expected config; buildah's image, pushed to an OCI layout and
#    unpacked by umoci, has the same tree (paths, types, modes, owners,
#    contents, link targets; buildah's empty placeholders /dev, /proc, /sys,
#    /etc/hosts, /etc/hostname, /etc/resolv.conf left out) and the same Env,
#    Cmd, WorkingDir and Labels.  Exits 1 with the differences otherwise.
# 4. One untimed warm-up round, then RUNS rounds.  Every round, for each tool
#    (which tool goes first alternates from round to round):
#      cold    a fresh store in a new directory (podkit: `podkit-fetch --store
#              NEW` of the layout; buildah: `--root NEW/root --runroot
#              NEW/runroot`, pull + tag; set-up untimed; the stores are all
#              removed at the end, not between runs: on this VM a run right
#              after the deletion of a tree is slower), then
#                podkit-build --store NEW --no-cache -q -t bench:cold CTX
#                buildah --root .. --runroot .. --storage-driver DRIVER bud
#                  --layers --no-cache --isolation chroot --pull=never
#                  --identity-label=false -q -t bench:cold CTX
#      cached  the same build again in that store, with its cache:
#                podkit-build --store NEW -q -t bench:cached CTX
#                buildah ... bud --layers --isolation chroot --pull=never
#                  --identity-label=false -q -t bench:cached CTX
#    The cold runs of both tools come first, then the cached ones
#    (A cold, B cold, A cached, B cached).  Every run is checked: it prints
#    an image ID, and the cached build prints the same ID as the cold build
#    of its store (every step came from the cache).  `sync` before every
#    timed run (untimed), so one run's write-back does not land in the next;
#    the page cache is not dropped (warm builds are what a developer sees).
#    Wall time is bash's EPOCHREALTIME around /usr/bin/time, which gives the
#    peak RSS (%M, the largest process of the tree) and user+system CPU.
# 5. Prints a table (median, min, max), the ratios and the targets, and
#    writes everything to $BENCH_DIR/results/<UTC time>/.
#
# Knobs (environment):
#   RUNS            rounds (default 5; median and min reported)
#   BENCH_DIR       where everything lives (default /var/tmp/podkit-bench-build)
#   PODKIT_BIN      directory holding podkit-build/podkit-fetch/podkit-render/
#                   podkit-inspect and python3 (default: this checkout's .venv/bin)
#   STAGE1          podkit-build --stage1 (default: podkit's default, nspawn)
#   BUILDAH_DRIVER  buildah's storage driver (default overlay, buildah's own
#                   default and its fastest; vfs copies the whole rootfs per
#                   layer)
#   QUIET_PCT       before each round, wait until the machine's CPUs are at
#                   most this busy (percent, over 1 s; default 10; 0: do not
#                   wait) - other jobs' test suites otherwise decide the figures
#   QUIET_WAIT      give up waiting after this many seconds per round
#                   (default 300; the round then runs anyway)
#
# The sources are not snapshotted (as in run.sh: podkit-build execs the
# stage1 of the checkout); the summary records the commit, a hash of
# libaci/stage0/stage1 and whether they changed during the run.  The page
# cache is left alone (lib.sh's probe_drop is not called).
#
# Runs as root (podkit-build mounts overlays and runs pods; buildah's chroot
# isolation).  Everything it makes is under $BENCH_DIR (podkit's pods and
# buildah's containers are removed by the tools; checked at the end).
# =============================================================================
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_TOP=$(dirname "$HERE")
BENCH_DIR=${BENCH_DIR:-/var/tmp/podkit-bench-build}
RUNS=${RUNS:-5}
STAGE1=${STAGE1:-}
BUILDAH_DRIVER=${BUILDAH_DRIVER:-overlay}
QUIET_PCT=${QUIET_PCT:-10}
QUIET_WAIT=${QUIET_WAIT:-300}
PODKIT_BIN=${PODKIT_BIN:-$SRC_TOP/.venv/bin}
PY=/usr/bin/python3
# shellcheck source=lib.sh
source "$HERE/lib.sh"
LIB=$BENCH_DIR/lib
WORK=$BENCH_DIR/work
RESULTS=$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)
LAYOUT=$WORK/oci
CTX=$WORK/ctx
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH PYTHONPROFILEIMPORTTIME PYTHONSTARTUP SOURCE_DATE_EPOCH BUILDAH_LAYERS BUILDAH_FORMAT
# byte-compiled modules, as an installed podkit has them, kept out of the
# checkout (see run.sh)
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX=$BENCH_DIR/pycache

log() { printf '[build-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

((RUNS >= 1)) || die "RUNS must be >= 1"
[[ $(id -u) == 0 ]] || die "run as root (podkit-build mounts overlays and runs pods)"
for t in buildah umoci /usr/bin/time "$PY" "$PODKIT_BIN/python3" "$PODKIT_BIN/podkit-build" \
         "$PODKIT_BIN/podkit-fetch" "$PODKIT_BIN/podkit-render" "$PODKIT_BIN/podkit-inspect"; do
    command -v "$t" >/dev/null || die "$t not found"
done
[[ -x /bin/busybox ]] && { ldd /bin/busybox 2>&1 || true; } | grep -Eq 'not a dynamic executable|statically linked' ||
    die "/bin/busybox (static) not found (Debian package busybox-static)"
BUILD=$PODKIT_BIN/podkit-build
FETCH=$PODKIT_BIN/podkit-fetch
STAGE1_ARG=()
[[ -z $STAGE1 ]] || STAGE1_ARG=(--stage1 "$STAGE1")

# -----------------------------------------------------------------------------
# helper programs, (re)written every run
# -----------------------------------------------------------------------------
write_helpers() {
    mkdir -p "$LIB"
    cp "$HERE/ocikit.py" "$LIB/ocikit.py"
    cat >"$LIB/mkbase.py" <<'PYEOF'
#!/usr/bin/env python3
"""mkbase.py LAYOUT BUSYBOX - the OCI layout with the image `busybox`.

One gzip layer: BUSYBOX as /bin/busybox, a relative symlink for every applet
of `BUSYBOX --list-full`, /etc/passwd and /etc/group (root, user 1000),
/root, /run, /tmp, /var.  Fixed times and owners, PAX tar, gzip mtime 0: the same
digest every time for the same busybox.  Prints the manifest digest.
"""
import subprocess, sys, tarfile

from ocikit import Layout

root, busybox = sys.argv[1], sys.argv[2]
applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True,
                         check=True).stdout.split()


def fill(add):
    for d, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("run", 0o755),
                    ("sbin", 0o755), ("tmp", 0o1777), ("usr", 0o755), ("usr/bin", 0o755), ("usr/sbin", 0o755),
                    ("var", 0o755)):
        add(d, tarfile.DIRTYPE, mode=mode)
    with open(busybox, "rb") as f:
        add("bin/busybox", data=f.read(), mode=0o755)
    add("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"
                           b"user:x:1000:1000:user:/home/user:/bin/sh\n")
    add("etc/group", data=b"root:x:0:\nuser:x:1000:\n")
    for a in sorted(set(applets) - {"bin/busybox"}):
        depth = a.count("/")
        add(a, tarfile.SYMTYPE, mode=0o777,
            target="busybox" if a.startswith("bin/") else "../" * depth + "bin/busybox")


out = Layout(root)
layer, diff_id, usize, _ = out.layer(fill, compresslevel=6)
mdesc = out.image("busybox", [(layer, diff_id)], ["mkbase.py"])
out.close()
print(mdesc["digest"])
print(f"busybox: {len(applets)} applets, layer {layer['size'] / 1e6:.2f} MB gzip, "
      f"{usize / 1e6:.2f} MB tar", file=sys.stderr)
PYEOF
    cat >"$LIB/check.py" <<'PYEOF'
#!/usr/bin/env python3
"""check.py OURS THEIRS OURS_CONFIG THEIRS_CONFIG OUT_DIR - the two builds agree.

OURS: podkit's rendered rootfs; THEIRS: buildah's image unpacked by umoci;
*_CONFIG: the image configs (podkit-inspect's Config, the OCI config blob).
Checks podkit's tree for the files the Dockerfile makes, then compares both
trees (path, type, mode, owner, size, content, link target; not mtimes)
leaving out buildah's empty placeholders, then the config fields.  Writes
the two listings to OUT_DIR; exit 1 with the problems.
"""
import hashlib, json, os, stat, sys

ours, theirs, ocfg, tcfg, out = sys.argv[1:]
PLACEHOLDER_DIRS = {"dev", "proc", "sys"}
PLACEHOLDER_FILES = {"etc/hosts", "etc/hostname", "etc/resolv.conf"}


def listing(root):
    rows = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            extra = ""
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    extra = hashlib.sha256(f.read()).hexdigest()[:16]
            elif stat.S_ISLNK(st.st_mode):
                extra = "-> " + os.readlink(p)
            rows[rel] = (stat.filemode(st.st_mode), st.st_uid, st.st_gid,
                         st.st_size if stat.S_ISREG(st.st_mode) else "-", extra)
    return rows


def empty_placeholder(rel, row):
    full = os.path.join(theirs, rel)
    if rel in PLACEHOLDER_DIRS:
        return row[0].startswith("d") and not os.listdir(full)
    return rel in PLACEHOLDER_FILES and row[0].startswith("-") and row[3] == 0


problems = []
a = listing(ours)
b = {k: v for k, v in listing(theirs).items() if k in a or not empty_placeholder(k, v)}
for name, rows in (("podkit", a), ("buildah", b)):
    with open(os.path.join(out, f"tree-{name}.txt"), "w") as f:
        for k in sorted(rows):
            f.write("%s %s:%s %s %s %s\n" % (rows[k][0], rows[k][1], rows[k][2], rows[k][3],
                                             k, rows[k][4]))


def read(rel):
    with open(os.path.join(ours, rel)) as f:
        return f.read()


expect = {"opt/app/out.txt": "tool: /opt/app level 3\n", "etc/app.conf": "/opt/app level 3\n",
          "usr/local/bin/README.txt": "podkit build benchmark\n"}
expect.update({f"opt/app/data/f{i}.txt": f"line {i}\n" for i in range(1, 9)})
expect.update({f"opt/app/conf/c{i}.conf": f"key{i}=value{i}\n" for i in range(1, 6)})
for rel, text in expect.items():
    try:
        if read(rel) != text:
            problems.append(f"podkit: /{rel} holds {read(rel)!r}, expected {text!r}")
    except OSError as e:
        problems.append(f"podkit: /{rel}: {e}")
for rel, mode in (("etc/app.conf", "-rw-------"), ("usr/local/bin/tool.sh", "-rwxr-xr-x"),
                  ("opt/app/latest.txt", "lrwxrwxrwx")):
    if rel not in a or a[rel][0] != mode:
        problems.append(f"podkit: /{rel}: {a.get(rel, ('missing',))[0]}, expected {mode}")
if a.get("opt/app/latest.txt", ("",) * 5)[4] != "-> out.txt":
    problems.append("podkit: /opt/app/latest.txt is not a link to out.txt")
for k in sorted(set(a) | set(b)):
    if k not in b:
        problems.append(f"only in podkit's image: /{k} {a[k]}")
    elif k not in a:
        problems.append(f"only in buildah's image: /{k} {b[k]}")
    elif a[k] != b[k]:
        problems.append(f"differs: /{k}: podkit {a[k]} buildah {b[k]}")
oc = json.load(open(ocfg))["config"]
tc = json.load(open(tcfg))["config"]
want = {"WorkingDir": "/opt/app", "Cmd": ["tool.sh"], "Labels": {"org.example.bench": "build"}}
for field, value in want.items():
    if oc.get(field) != value:
        problems.append(f"podkit: config {field} = {oc.get(field)!r}, expected {value!r}")
for field in ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels"):
    if oc.get(field) != tc.get(field):
        problems.append(f"config {field}: podkit {oc.get(field)!r} buildah {tc.get(field)!r}")
for p in problems:
    print(p)
print(f"trees: podkit {len(a)} entries, buildah {len(b)} (placeholders left out)"
      + ("" if problems else "; equal; podkit's files as expected; config equal"),
      file=sys.stderr)
sys.exit(1 if problems else 0)
PYEOF
    cat >"$LIB/report.py" <<'PYEOF'
#!/usr/bin/env python3
"""report.py RESULTS_DIR - table and ratios from times.tsv."""
import os, statistics, sys

res = sys.argv[1]
env = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(res, "env.txt")) if "=" in l)
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(res, "times.tsv"))][1:]
CELLS = [
    ("podkit-cold", "podkit-build --no-cache (fresh store)"),
    ("buildah-cold", "buildah bud --layers --no-cache --isolation chroot (fresh storage)"),
    ("podkit-cached", "podkit-build, second identical build (its cache)"),
    ("buildah-cached", "buildah bud --layers --isolation chroot, second identical build"),
]
lines = []
p = lines.append
p("Dockerfile: %s instructions on busybox (%s); context %s files" % (env.get("steps"), env.get("base"), env.get("ctx_files")))
p("machine: %s; %s CPUs; %s; rounds: %s; page cache not dropped" % (env.get("kernel"), env.get("cpus"), env.get("fs"), env.get("runs")))
p("podkit: %s; stage1 %s" % (env.get("podkit_src"), env.get("stage1")))
p("buildah: %s, storage driver %s" % (env.get("buildah"), env.get("driver")))
p("")
p("| cell | command | median s | min s | max s | CPU s (user+sys, median) | peak RSS MB |")
p("|---|---|---:|---:|---:|---:|---:|")
S = {}
for cell, label in CELLS:
    rs = [r for r in rows if r[0] == cell]
    if not rs:
        continue
    col = lambda i: [float(r[i]) for r in rs]
    s = S[cell] = {"med": statistics.median(col(2)), "min": min(col(2)), "max": max(col(2)),
                   "rss": max(col(3)) / 1024,
                   "cpu": statistics.median([a + b for a, b in zip(col(4), col(5))])}
    p("| %s | %s | %.3f | %.3f | %.3f | %.2f | %.1f |" % (cell, label, s["med"], s["min"], s["max"], s["cpu"], s["rss"]))
p("")


def ratio(a, b, label, target=None):
    r = S[a]["med"] / S[b]["med"]
    rm = S[a]["min"] / S[b]["min"]
    if target is None:
        p("%-40s = %.2f (min/min %.2f)" % (label, r, rm))
    else:
        p("%-40s = %.2f (min/min %.2f; target <= %s)%s" % (label, r, rm, target, "" if r <= target else "  MISSED"))


ratio("podkit-cold", "buildah-cold", "ratio cold podkit / buildah", 1.0)
ratio("podkit-cached", "buildah-cached", "ratio fully cached podkit / buildah", 0.5)
ratio("podkit-cached", "podkit-cold", "podkit cached / cold")
ratio("buildah-cached", "buildah-cold", "buildah cached / cold")
rt = os.path.join(res, "rounds.tsv")
rr = [l.split() for l in list(open(rt))[1:] if len(l.split()) == 4]
if rr:
    p("")
    p("first tool of each round: %s" % " ".join(r[3] for r in rr))
    p("CPUs busy (other jobs) in the second before each round: %s %%; waited %d s in all"
      % (" ".join(r[2] for r in rr), sum(int(r[1]) for r in rr)))
if env.get("note"):
    p("NOTE: " + env["note"])
print("\n".join(lines))
PYEOF
}

# -----------------------------------------------------------------------------
# the base image and the context
# -----------------------------------------------------------------------------
make_context() {
    rm -rf "$CTX"
    mkdir -p "$CTX/conf" "$CTX/bin"
    local i
    for i in 1 2 3 4 5; do echo "key$i=value$i" >"$CTX/conf/c$i.conf"; done
    printf '#!/bin/sh\necho "tool: $APP level $LEVEL"\n' >"$CTX/bin/tool.sh"
    echo "podkit build benchmark" >"$CTX/README.txt"
    chmod 755 "$CTX" "$CTX/conf" "$CTX/bin" "$CTX/bin/tool.sh"
    chmod 644 "$CTX"/conf/*.conf "$CTX/README.txt"
    cat >"$CTX/Dockerfile" <<'EOF'
FROM busybox
ENV APP=/opt/app LEVEL=3
WORKDIR /opt/app
COPY conf/ ./conf/
COPY bin/tool.sh README.txt /usr/local/bin/
RUN mkdir -p data && for i in 1 2 3 4 5 6 7 8; do echo "line $i" > data/f$i.txt; done
RUN echo "$APP level $LEVEL" > /etc/app.conf && chmod 600 /etc/app.conf
LABEL org.example.bench=build
RUN tool.sh > out.txt && ln -s out.txt latest.txt
CMD ["tool.sh"]
EOF
    chmod 644 "$CTX/Dockerfile"
}

# -----------------------------------------------------------------------------
# stores, measuring, clean-up
# -----------------------------------------------------------------------------
# t WANT CMD... : run CMD under /usr/bin/time (stdin /dev/null), expect exit
# status WANT; sets T_SECS, T_RSS (KiB), T_USER, T_SYS; stdout in $WORK/out
t() {
    local want=$1 t0 t1 rc=0
    shift
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%M %U %S' -o "$WORK/rss" "$@" </dev/null >"$WORK/out" 2>"$WORK/err" || rc=$?
    t1=$EPOCHREALTIME
    if ((rc != want)); then
        cat "$WORK/out" "$WORK/err" >&2
        die "exit status $rc, expected $want: $*"
    fi
    T_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
    read -r T_RSS T_USER T_SYS < <(tail -n1 "$WORK/rss")
}

bah() { buildah --root "$1/root" --runroot "$1/runroot" --storage-driver "$BUILDAH_DRIVER" "${@:2}"; }

# fresh TOOL ROUND: a new store for TOOL with the base image in it (untimed),
# in a directory of its own (WORK/TOOL-ROUND; STORE_<tool> names it).  The
# stores of earlier rounds stay until the end: on this VM a run that follows
# the deletion of a tree is slower (see render.sh), and each store is a few MB
fresh() {
    local tool=$1 dir=$WORK/$1-$2 id
    declare -g "STORE_$tool=$dir"
    mkdir -p "$dir"
    if [[ $tool == podkit ]]; then
        id=$("$FETCH" --store "$dir/store" -q "oci:$LAYOUT:busybox" --name busybox | tail -n1)
        [[ $id == "$BASE_ID" ]] || die "podkit-fetch printed '$id', expected $BASE_ID"
    else
        id=$(bah "$dir" pull -q "oci:$LAYOUT:busybox" | tail -n1)
        bah "$dir" tag "$id" docker.io/library/busybox:latest localhost/busybox:latest
    fi
}

# cmd_of TOOL KIND: the build command into CMD
cmd_of() {
    local tool=$1 kind=$2 store_var="STORE_$1"
    local dir=${!store_var}
    if [[ $tool == podkit ]]; then
        CMD=("$BUILD" --store "$dir/store" "${STAGE1_ARG[@]}" -q -t "bench:$kind")
        [[ $kind == cached ]] || CMD+=(--no-cache)
    else
        CMD=(buildah --root "$dir/root" --runroot "$dir/runroot" --storage-driver "$BUILDAH_DRIVER"
             bud --layers --isolation chroot --pull=never --identity-label=false -q
             -t "bench:$kind")
        [[ $kind == cached ]] || CMD+=(--no-cache)
    fi
    CMD+=("$CTX")
}

# the image ID a build printed (its last line; buildah without sha256:)
image_id() { local x; x=$(tail -n1 "$WORK/out"); echo "${x#sha256:}"; }

# measure TOOL KIND ROUND: one timed build, checked, appended to times.tsv
measure() {
    local tool=$1 kind=$2 round=$3 id
    cmd_of "$tool" "$kind"
    sync
    t 0 "${CMD[@]}"
    id=$(image_id)
    [[ $id =~ ^[0-9a-f]{64}$ ]] || die "$tool $kind printed no image ID: $(cat "$WORK/out")"
    if [[ $kind == cold ]]; then
        declare -g "COLD_$tool=$id"
    else
        local cold_var="COLD_$tool"
        [[ $id == "${!cold_var}" ]] || die "$tool: the cached build gave $id, the cold one ${!cold_var} (not fully cached)"
    fi
    if [[ -s $WORK/err ]]; then
        { echo "== $tool $kind round $round"; cat "$WORK/err"; } >>"$RESULTS/stderr.txt"
    fi
    ((round > 0)) || return 0
    printf '%s-%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$kind" "$round" "$T_SECS" "$T_RSS" "$T_USER" "$T_SYS" \
        >>"$RESULTS/times.tsv"
    log "$(printf '%-15s round %2d: %6.3f s  %6d KiB  (user %s sys %s)' "$tool-$kind" "$round" \
        "$T_SECS" "$T_RSS" "$T_USER" "$T_SYS")"
}

# round N FIRST SECOND: cold builds of both, then cached builds of both
round() {
    local n=$1 a=$2 b=$3
    fresh "$a" "$n"
    fresh "$b" "$n"
    measure "$a" cold "$n"
    measure "$b" cold "$n"
    measure "$a" cached "$n"
    measure "$b" cached "$n"
}

cleanup() {
    local d
    for d in "$WORK"/buildah-*/; do
        if [[ -d $d/root ]]; then bah "${d%/}" rm --all >/dev/null 2>&1 || true; fi
    done
    if grep -qs " $WORK[/ ]" /proc/self/mountinfo; then
        log "WARNING: mounts left under $WORK:"; grep " $WORK[/ ]" /proc/self/mountinfo >&2 || true
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# -----------------------------------------------------------------------------
# the check, once, before any timing
# -----------------------------------------------------------------------------
check_builds() {
    local chk=$RESULTS/check ours theirs
    mkdir -p "$chk"
    fresh podkit check
    fresh buildah check
    measure podkit cold 0
    ours=$(tail -n1 "$WORK/out")
    measure buildah cold 0
    theirs=$(image_id)
    "$PODKIT_BIN/podkit-render" --store "$STORE_podkit/store" "$ours" "$WORK/check-ours" >/dev/null
    "$PODKIT_BIN/podkit-inspect" --store "$STORE_podkit/store" "$ours" |
        "$PY" -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["Config"]))' >"$chk/config-podkit.json"
    bah "$STORE_buildah" push -q "$theirs" "oci:$WORK/check-layout:theirs" >/dev/null
    umoci unpack --image "$WORK/check-layout:theirs" "$WORK/check-theirs" >/dev/null
    "$PY" - "$WORK/check-layout" >"$chk/config-buildah.json" <<'EOF'
import json, os, sys
root = sys.argv[1]
blob = lambda d: json.load(open(os.path.join(root, "blobs", *d.split(":"))))
idx = json.load(open(os.path.join(root, "index.json")))
print(json.dumps(blob(blob(idx["manifests"][0]["digest"])["config"]["digest"])))
EOF
    if ! "$PY" "$LIB/check.py" "$WORK/check-ours" "$WORK/check-theirs/rootfs" \
            "$chk/config-podkit.json" "$chk/config-buildah.json" "$chk" >"$chk/problems.txt"; then
        cat "$chk/problems.txt" >&2
        die "the builds do not agree (see $chk)"
    fi
    log "check: podkit's image has the expected files and config; buildah's has the same tree and config"
    rm -rf "$WORK/check-ours" "$WORK/check-theirs" "$WORK/check-layout"
}

# -----------------------------------------------------------------------------
main() {
    local src0 i first second
    src0=$(src_hash)
    write_helpers
    rm -rf "$WORK"
    mkdir -p "$WORK" "$RESULTS"
    BASE_ID=$("$PY" "$LIB/mkbase.py" "$LAYOUT" /bin/busybox)
    log "base image busybox: $BASE_ID"
    make_context
    printf 'cell\tround\tsecs\trss_kib\tuser\tsys\n' >"$RESULTS/times.tsv"
    printf 'round\twaited_s\tbusy_pct\tfirst\n' >"$RESULTS/rounds.tsv"
    cp "$CTX/Dockerfile" "$RESULTS/Dockerfile"
    {
        echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "kernel=$(uname -sr)"
        echo "cpus=$(nproc)"
        echo "fs=$(df -T "$WORK" | awk 'NR == 2 { print $2 }') on $(df "$WORK" | awk 'NR == 2 { print $1 }')"
        echo "runs=$RUNS"
        echo "podkit=$("$BUILD" --version)"
        echo "podkit_src=$(git_state libaci stage0 stage1), sources sha256 $src0 (live tree $SRC_TOP)"
        echo "stage1=${STAGE1:-default}"
        echo "buildah=$(buildah --version)"
        echo "driver=$BUILDAH_DRIVER"
        echo "base=$BASE_ID"
        echo "steps=$(grep -c '^[A-Z]' "$CTX/Dockerfile")"
        echo "ctx_files=$(find "$CTX" -type f | wc -l)"
    } >"$RESULTS/env.txt"
    check_builds
    log "warm-up round (untimed)"
    round 0 podkit buildah
    log "timing: $RUNS rounds (cold podkit + buildah, then cached podkit + buildah; the first tool alternates)"
    for ((i = 1; i <= RUNS; i++)); do
        if ((i % 2)); then first=podkit second=buildah; else first=buildah second=podkit; fi
        quiet "$i" "$first"
        round "$i" "$first" "$second"
    done
    if [[ $(src_hash) != "$src0" ]]; then
        log "note: podkit's sources changed during the run (sha256 $src0 at the start, $(src_hash) now)"
        echo "note=podkit's sources changed during the run" >>"$RESULTS/env.txt"
    fi
    "$PY" "$LIB/report.py" "$RESULTS" | tee "$RESULTS/summary.md"
    # nothing of ours may be left: podkit's pods, buildah's containers
    shopt -s nullglob
    local left=("$WORK"/podkit-*/store/pods/*/*/) d
    shopt -u nullglob
    ((${#left[@]} == 0)) || die "pods left in podkit's stores: ${left[*]}"
    for d in "$WORK"/buildah-*/; do
        [[ -z $(bah "${d%/}" containers -q 2>/dev/null) ]] || die "buildah containers left in $d"
    done
    log "results in $RESULTS"
}
main "$@"; exit $?
