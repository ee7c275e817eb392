#!/usr/bin/env bash
# =============================================================================
# bench/render.sh - podkit-render (and podkit-fetch + podkit-render) against
# `umoci unpack`, on one large multi-layer OCI image, in the same run.
#
# 1. Builds (once; cached under $BENCH_DIR/cache) an OCI layout with umoci:
#      big    5 gzip layers, ~60k small text files (1-8 KiB), a few 5-30 MB
#             random files, owners/modes, symlinks, hardlinks, upper layers with
#             whiteouts (files and directories deleted, `umoci repack`), an
#             opaque directory and whiteouts of a directory and a big file
#             (hand-made tars, `umoci raw add-layer`);
#      l1 l2 l3  the first 1, 2, 3 layers of big (memory sweep);
#      small  one ~6 MB layer (memory sweep).
#    Content comes from seeded PRNGs with fixed times, so every build gives the
#    same image (a rebuild logs a note if the digests differ from the last one).
#    The build layout is copied with `skopeo copy` into the final layout.
# 2. Checks once that `umoci unpack` and `podkit-render` give the same rootfs
#    (type, mode, owner, size, hardlink count, symlink target of every path,
#    then file contents with diff -r);
#    exits 1 with the differences if not.
# 3. Times, RUNS times each, interleaved.  Before every run the previous
#    output is removed, `sync`, and the page cache is dropped (skipped if
#    /proc/sys/vm/drop_caches is not writable); "cold" runs start like that,
#    "warm" runs first re-read their inputs (layout blobs, store layers,
#    Python modules):
#      umoci        umoci unpack --image LAYOUT:big BUNDLE          (peer)
#      render       podkit-render --store STORE ID DEST   (image already fetched)
#      fetch+render podkit-fetch --store NEWSTORE oci:LAYOUT:big; podkit-render
#    Every run writes a fresh directory, removed (and synced) afterwards,
#    untimed.  Peak RSS of every process comes from /usr/bin/time -f %M.
# 4. Memory sweep: peak RSS of umoci, podkit-fetch and podkit-render for
#    small, l1, l2, l3, big (one warm run each).
# 5. Prints a table (median, min), the ratios against umoci and the targets,
#    and writes them to $BENCH_DIR/results/<UTC time>/.
#
# Knobs (environment):
#   RUNS       runs per measurement (default 5; median and min reported)
#   BENCH_DIR  where everything lives (default /var/tmp/podkit-bench)
#   PODKIT_BIN directory holding podkit-fetch/podkit-render
#              (default: the .venv/bin of this checkout)
#   SCALE      image size factor (default 1; e.g. 0.05 for a smoke test of the
#              script itself - figures are then meaningless)
#   SWEEP      0 skips the memory sweep (default 1)
#   SNAPSHOT   1 (default): copy this checkout's libaci/stage0/stage1/schemas to
#              $BENCH_DIR/podkit-src at the start and run that (PYTHONPATH), so
#              edits made while the benchmark runs cannot mix versions;
#              0: run whatever PODKIT_BIN imports
#
# Runs as root (uids/gids and drop_caches).  Outside $BENCH_DIR it only writes
# /proc/sys/vm/drop_caches.
# =============================================================================
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/podkit-bench}
RUNS=${RUNS:-5}
SCALE=${SCALE:-1}
SWEEP=${SWEEP:-1}
SNAPSHOT=${SNAPSHOT:-1}
PODKIT_BIN=${PODKIT_BIN:-$(dirname "$HERE")/.venv/bin}
PY=/usr/bin/python3
SRC_TOP=$(dirname "$HERE")
# shellcheck source=lib.sh
source "$HERE/lib.sh"
probe_drop
SRC_DIR=$SRC_TOP
IMAGE_VERSION=1                  # bump when the image recipe changes
CACHE=$BENCH_DIR/cache/scale-$SCALE
LAYOUT=$CACHE/oci
LIB=$BENCH_DIR/lib
WORK=$BENCH_DIR/work
RESULTS=$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)
FIXED_TIME=2024-01-01T00:00:00Z

log() { printf '[render-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

((RUNS >= 1)) || die "RUNS must be >= 1"
[[ $(id -u) == 0 ]] || die "run as root (owners in the image, drop_caches)"
for t in umoci skopeo /usr/bin/time "$PODKIT_BIN/podkit-fetch" "$PODKIT_BIN/podkit-render"; do
    command -v "$t" >/dev/null || die "$t not found"
done
FETCH=$PODKIT_BIN/podkit-fetch
RENDER=$PODKIT_BIN/podkit-render

# -----------------------------------------------------------------------------
# helper programs, (re)written every run
# -----------------------------------------------------------------------------
write_helpers() {
    mkdir -p "$LIB"
    cat >"$LIB/mkcontent.py" <<'PYEOF'
#!/usr/bin/env python3
"""mkcontent.py STEP DIR SCALE - write one layer's worth of changes into DIR.

Deterministic: every step has its own seeded PRNG, all times are fixed.
Steps: l1 l2 l3 small: changes to an unpacked rootfs (then `umoci repack`);
       l4 l5: DIR is a tar file to write (then `umoci raw add-layer`): an
       opaque directory; whiteouts.  (Not `umoci insert`: umoci 0.4.7 leaves
       the tar footer and the last padding out of inserted layers, umoci#436.)
"""
import os, random, sys

MIB = 1 << 20
MTIME = 1704067200            # 2024-01-01T00:00:00Z
step, root, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
rng = random.Random("podkit-render-bench-" + step)


def n(count):
    return max(1, int(count * scale))


def size(mib):
    return max(4096, int(mib * MIB * scale))


WORDS = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz_")
                 for _ in range(rng.randint(2, 12))) for _ in range(1500)]
POOL = "".join("%s = %s\n" % (rng.choice(WORDS), " ".join(rng.choices(WORDS, k=rng.randint(3, 14))))
               for _ in range(60000)).encode()


def text(lo=1024, hi=8192):
    k = rng.randint(lo, hi)
    o = rng.randrange(len(POOL) - k)
    return POOL[o:o + k]


def put(rel, data, mode=0o644, uid=0, gid=0):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    if os.path.lexists(p):
        os.unlink(p)
    with open(p, "wb") as f:
        f.write(data)
    os.chown(p, uid, gid)
    os.chmod(p, mode)
    os.utime(p, (MTIME, MTIME))


def big(rel, mib):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        left = size(mib)
        while left:
            k = min(left, 4 * MIB)
            f.write(rng.randbytes(k))
            left -= k
    os.utime(p, (MTIME, MTIME))


def link(rel, target):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    os.symlink(target, p)
    os.utime(p, (MTIME, MTIME), follow_symlinks=False)


def tree(prefix, count, per_dir=200, ext=".txt"):
    """``count`` small text files, ``per_dir`` per directory, under ``prefix``."""
    names = []
    for i in range(n(count)):
        rel = "%s/d%03d/%s%05d%s" % (prefix, i // per_dir, rng.choice(WORDS)[:6], i, ext)
        mode, uid, gid = 0o644, 0, 0
        r = rng.random()
        if r < 0.05:
            mode = 0o755
        elif r < 0.07:
            mode, uid, gid = 0o600, 1000, 1000
        elif r < 0.08:
            mode, uid, gid = 0o640, 33, 33
        put(rel, text(), mode, uid, gid)
        names.append(rel)
    return names


def fix_dirs():
    """Fixed mode/time on every directory (deletions change dir mtimes)."""
    for d, subdirs, _ in os.walk(root):
        os.utime(d, (MTIME, MTIME))


if step == "l1":                 # base: 30k small files, 30 MB big, symlinks
    files = tree("usr/lib/pkgs", 24000)
    tree("usr/share/locale", 3000, per_dir=100, ext=".mo")
    tree("etc/conf.d", 3000, per_dir=300, ext=".conf")
    for i, rel in enumerate(files[: n(400)]):
        link("usr/bin/tool%04d" % i, "../lib/pkgs/" + rel.split("/", 3)[3])
    link("usr/lib/libbench.so", "/usr/lib/pkgs/d000/" + os.path.basename(files[0]))
    big("usr/lib/big/blob-20M.bin", 20)
    big("var/cache/app/data-10M.bin", 10)
    fix_dirs()
elif step == "l2":               # an application: 20k files, 35 MB big, hardlinks
    files = tree("opt/app/share", 20000, per_dir=250)
    for i, rel in enumerate(files[: n(100)]):
        p = os.path.join(root, "opt/app/links/h%03d" % i)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        os.link(os.path.join(root, rel), p)
    tree("opt/app/cache", 500, per_dir=100)
    big("opt/app/models/model-30M.bin", 30)
    big("opt/app/assets/pack-5M.bin", 5)
    fix_dirs()
elif step == "l3":               # deletions (whiteouts), overwrites, chmod, new files
    files = sorted(os.path.relpath(os.path.join(d, f), root)
                   for d, _, fs in os.walk(os.path.join(root, "usr/lib/pkgs")) for f in fs)
    for rel in files[::12]:                                  # ~2000 single files
        os.unlink(os.path.join(root, rel))
    for rel in files[5::40]:                                 # overwrite
        if os.path.exists(os.path.join(root, rel)):
            put(rel, text())
    for rel in files[7::97]:                                 # metadata-only change
        p = os.path.join(root, rel)
        if os.path.exists(p):
            os.chmod(p, 0o700)
    import shutil
    for d in sorted(os.listdir(os.path.join(root, "etc/conf.d")))[:3]:   # whole dirs
        shutil.rmtree(os.path.join(root, "etc/conf.d", d))
    os.unlink(os.path.join(root, "var/cache/app/data-10M.bin"))
    tree("usr/share/new", 5000, per_dir=500)
    big("srv/data/extra-8M.bin", 8)
    fix_dirs()
elif step in ("l4", "l5"):       # hand-made tars for `umoci raw add-layer`
    import io, tarfile

    tf = tarfile.open(root, "w", format=tarfile.PAX_FORMAT)

    def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = kind, mode, MTIME, uid, gid
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data) if data else None)

    if step == "l4":             # an opaque directory: replaces usr/share/locale
        entry("usr/share/locale", tarfile.DIRTYPE, mode=0o755)
        entry("usr/share/locale/.wh..wh..opq")
        per_dir = 250
        for i in range(n(5000)):
            if i % per_dir == 0:
                entry("usr/share/locale/x%03d" % (i // per_dir), tarfile.DIRTYPE, mode=0o755)
            entry("usr/share/locale/x%03d/%s%05d.mo" % (i // per_dir, rng.choice(WORDS)[:6], i),
                  data=text())
    else:                        # whiteouts only (a directory, a big file) + 2 files
        entry("opt/app/.wh.cache")
        entry("usr/lib/big/.wh.blob-20M.bin")
        entry("etc/motd", data=b"podkit render benchmark image\n")
        entry("etc/bench-release", data=b"big 1\n")
    tf.close()
elif step == "small":
    tree("srv/small", 1000, per_dir=100)
    big("srv/small/blob-1M.bin", 1)
    fix_dirs()
else:
    sys.exit("unknown step " + step)
PYEOF
    cat >"$LIB/describe.py" <<'PYEOF'
#!/usr/bin/env python3
"""describe.py LAYOUT TAG... - JSON summary of images in an OCI layout.

Per layer: compressed and uncompressed size, entries, whiteouts, opaque dirs.
"""
import gzip, json, os, sys, tarfile

root, tags = sys.argv[1], sys.argv[2:]
blobs = os.path.join(root, "blobs", "sha256")
index = json.load(open(os.path.join(root, "index.json")))
by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
out, cache = {}, {}


class Counting:
    """Reads the decompressed layer and counts its bytes (the tar size)."""

    def __init__(self, path):
        self.f, self.size = gzip.open(path, "rb"), 0

    def read(self, k=-1):
        r = self.f.read(k)
        self.size += len(r)
        return r


def layer(desc):
    d = desc["digest"]
    if d not in cache:
        z = Counting(os.path.join(blobs, d[7:]))
        st = {"digest": d, "compressed": desc["size"], "entries": 0, "files": 0,
              "whiteouts": 0, "opaque": 0, "hardlinks": 0, "symlinks": 0}
        with tarfile.open(fileobj=z, mode="r|") as tf:
            for m in tf:
                st["entries"] += 1
                base = os.path.basename(m.name.rstrip("/"))
                if base == ".wh..wh..opq":
                    st["opaque"] += 1
                elif base.startswith(".wh."):
                    st["whiteouts"] += 1
                elif m.isreg():
                    st["files"] += 1
                elif m.islnk():
                    st["hardlinks"] += 1
                elif m.issym():
                    st["symlinks"] += 1
        while z.read(1 << 20):
            pass
        st["uncompressed"] = z.size
        cache[d] = st
    return cache[d]


for tag in tags:
    m = json.load(open(os.path.join(blobs, by_tag[tag]["digest"][7:])))
    ls = [layer(x) for x in m["layers"]]
    out[tag] = {"manifest": by_tag[tag]["digest"], "layers": ls,
                "compressed": sum(x["compressed"] for x in ls),
                "uncompressed": sum(x["uncompressed"] for x in ls),
                "largest_layer": max(x["uncompressed"] for x in ls)}
json.dump(out, sys.stdout, indent=1)
PYEOF
    cat >"$LIB/report.py" <<'PYEOF'
#!/usr/bin/env python3
"""report.py RESULTS_DIR - table, ratios and memory sweep from times.tsv/sweep.tsv."""
import json, os, statistics, sys

res = sys.argv[1]
img = json.load(open(os.path.join(res, "image.json")))
env = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(res, "env.txt")) if "=" in l)
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(res, "times.tsv"))][1:]
NAMES = {"umoci": "umoci unpack (peer)", "render": "podkit-render (store warm)",
         "fetch+render": "podkit-fetch + podkit-render"}
MB = 1e6


def stats(tool, cache):
    rs = [r for r in rows if r[0] == tool and r[1] == cache]
    if not rs:
        return None
    col = lambda i: [float(r[i]) for r in rs if r[i] != "-"]
    return {"n": len(rs), "med": statistics.median(col(3)), "min": min(col(3)),
            "rss": max(int(x) for x in col(4)),
            "a": statistics.median(col(5)) if col(5) else None,
            "b": statistics.median(col(7)) if col(7) else None,
            "rss_a": max(col(6)) if col(6) else None, "rss_b": max(col(8)) if col(8) else None}


b = img["big"]
lines = []
p = lines.append
p("image big: %d layers, %.0f MB uncompressed (largest layer %.0f MB), %.0f MB gzip, "
  "%d entries (%d regular files, %d whiteouts, %d opaque dirs); rootfs: %s"
  % (len(b["layers"]), b["uncompressed"] / MB, b["largest_layer"] / MB, b["compressed"] / MB,
     sum(l["entries"] for l in b["layers"]), sum(l["files"] for l in b["layers"]),
     sum(l["whiteouts"] for l in b["layers"]), sum(l["opaque"] for l in b["layers"]),
     env.get("rootfs", "?")))
p("machine: %s; %s CPUs; %s; runs per cell: %s; page cache dropped before every run: %s"
  % (env.get("kernel"), env.get("cpus"), env.get("fs"), env.get("runs"), env.get("drop")))
p("podkit: %s" % env.get("podkit_src", "?"))
p("")
p("| tool | cache | median s | min s | peak RSS MB | detail (medians) |")
p("|---|---|---:|---:|---:|---|")
S = {}
for cache in ("cold", "warm"):
    for tool in ("umoci", "render", "fetch+render"):
        s = stats(tool, cache)
        if s is None:
            continue
        S[tool, cache] = s
        detail = ""
        if tool == "fetch+render":
            detail = "fetch %.2f s (%.0f MB) + render %.2f s (%.0f MB)" % (
                s["a"], s["rss_a"] / 1024, s["b"], s["rss_b"] / 1024)
        p("| %s | %s | %.2f | %.2f | %.0f | %s |" % (NAMES[tool], cache, s["med"], s["min"],
                                                    s["rss"] / 1024, detail))
p("")
for cache in ("cold", "warm"):
    u = S.get(("umoci", cache))
    if not u:
        continue
    r = S[("render", cache)]["med"] / u["med"]
    f = S[("fetch+render", cache)]["med"] / u["med"]
    p("ratio render/umoci (%s)       = %.2f (target <= 0.60)%s" % (cache, r, "" if r <= 0.60 else "  MISSED"))
    p("ratio fetch+render/umoci (%s) = %.2f" % (cache, f))
sweep = os.path.join(res, "sweep.tsv")
if os.path.exists(sweep):
    p("")
    p("peak RSS against image size (one warm run each; target: flat in layer size)")
    p("")
    p("| image | layers | uncompressed MB | largest layer MB | umoci MB | podkit-fetch MB | podkit-render MB | umoci s | fetch s | render s |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for l in list(open(sweep))[1:]:
        tag, u, f, r, us, fs, rs = l.split()
        i = img[tag]
        p("| %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |" % (
            tag, len(i["layers"]), i["uncompressed"] / MB, i["largest_layer"] / MB,
            int(u) / 1024, int(f) / 1024, int(r) / 1024, float(us), float(fs), float(rs)))
print("\n".join(lines))
PYEOF
}

# -----------------------------------------------------------------------------
# the image (cached)
# -----------------------------------------------------------------------------
stamp() {
    { echo "image v$IMAGE_VERSION scale $SCALE"; cat "$LIB/mkcontent.py"; declare -f build_image; } \
        | sha256sum | cut -c1-16
}

build_image() {
    local b=$CACHE/build bundle=$CACHE/build/bundle lay=$CACHE/build/oci k
    rm -rf "$b" "$LAYOUT.tmp"
    mkdir -p "$b"
    log "building the image in $b (scale $SCALE)"
    umoci init --layout "$lay"
    umoci new --image "$lay:big"
    umoci config --image "$lay:big" --no-history --created "$FIXED_TIME" \
        --author podkit-bench --config.cmd /bin/sh \
        --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    umoci unpack --image "$lay:big" "$bundle" >/dev/null
    for k in 1 2 3; do
        "$PY" "$LIB/mkcontent.py" "l$k" "$bundle/rootfs" "$SCALE"
        umoci repack --refresh-bundle --history.created "$FIXED_TIME" \
            --history.created_by "mkcontent.py l$k" --image "$lay:big" "$bundle"
        umoci tag --image "$lay:big" "l$k"
        log "layer $k done"
    done
    rm -rf "$bundle"
    # layer 4: an opaque directory; layer 5: whiteouts.  Hand-made tars, as
    # umoci insert (0.4.7) writes truncated ones (umoci#436, fixed upstream by PR #534).
    for k in 4 5; do
        "$PY" "$LIB/mkcontent.py" "l$k" "$b/l$k.tar" "$SCALE"
        umoci raw add-layer --history.created "$FIXED_TIME" --history.created_by "mkcontent.py l$k" \
            --image "$lay:big" "$b/l$k.tar"
    done
    # small: one layer of ~6 MB, a separate image
    umoci new --image "$lay:small"
    umoci config --image "$lay:small" --no-history --created "$FIXED_TIME" --config.cmd /bin/sh
    umoci unpack --image "$lay:small" "$bundle" >/dev/null
    "$PY" "$LIB/mkcontent.py" small "$bundle/rootfs" "$SCALE"
    umoci repack --history.created "$FIXED_TIME" --image "$lay:small" "$bundle"
    rm -rf "$bundle"
    for k in small l1 l2 l3 big; do
        skopeo copy -q "oci:$lay:$k" "oci:$LAYOUT.tmp:$k"
    done
    rm -rf "$b"
    "$PY" "$LIB/describe.py" "$LAYOUT.tmp" small l1 l2 l3 big >"$CACHE/image.json.tmp"
    rm -rf "$LAYOUT"
    mv "$LAYOUT.tmp" "$LAYOUT"
    mv "$CACHE/image.json.tmp" "$CACHE/image.json"
    stamp >"$CACHE/stamp"
}

ensure_image() {
    mkdir -p "$CACHE"
    if [[ -d $LAYOUT && -f $CACHE/image.json && $(cat "$CACHE/stamp" 2>/dev/null) == "$(stamp)" ]]; then
        log "image cached in $LAYOUT"
        return
    fi
    local old=""
    [[ -f $CACHE/image.json ]] && old=$(grep -o '"manifest": "[^"]*"' "$CACHE/image.json" | sort)
    build_image
    local new
    new=$(grep -o '"manifest": "[^"]*"' "$CACHE/image.json" | sort)
    if [[ -n $old && $old != "$new" ]]; then
        log "note: the rebuilt image differs from the previous build (recipe changed?)"
    fi
}

# -----------------------------------------------------------------------------
# measuring
# -----------------------------------------------------------------------------



# warm_inputs TOOL [STORE]: read what TOOL reads into the page cache
warm_inputs() {
    cat "$LAYOUT"/blobs/sha256/* /usr/bin/umoci >/dev/null
    if [[ $1 != umoci ]]; then
        find "${PYDIRS[@]}" -type f \( -name '*.py' -o -name '*.pyc' -o -name '*.so' \) \
            -exec cat {} + >/dev/null
        cat /usr/bin/python3 >/dev/null
    fi
    if [[ $1 == render ]]; then
        find "$2/layers" -type f -exec cat {} + >/dev/null
    fi
}

# t NAME CMD... : run CMD under /usr/bin/time; sets T_SECS and T_RSS (KiB)
t() {
    local name=$1 t0 t1
    shift
    t0=$EPOCHREALTIME
    if ! /usr/bin/time -f %M -o "$WORK/rss" "$@" >"$WORK/out" 2>"$WORK/err"; then
        cat "$WORK/err" >&2
        die "$name failed: $*"
    fi
    t1=$EPOCHREALTIME
    T_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    T_RSS=$(tail -n1 "$WORK/rss")
}

# one measurement of TOOL with CACHE (cold|warm), appended to times.tsv
measure() {
    local tool=$1 cache=$2 run=$3 secs rss a=- ra=- b=- rb=- id
    rm -rf "$WORK/out-dir" "$WORK/fresh-store"
    settle
    if [[ $cache == warm ]]; then warm_inputs "$tool" "$WORK/store"; fi
    case $tool in
    umoci)
        t umoci umoci unpack --image "$LAYOUT:big" "$WORK/out-dir"
        secs=$T_SECS rss=$T_RSS ;;
    render)
        t render "$RENDER" --store "$WORK/store" "$IMAGE_ID" "$WORK/out-dir"
        secs=$T_SECS rss=$T_RSS ;;
    fetch+render)
        t fetch "$FETCH" --store "$WORK/fresh-store" -q "oci:$LAYOUT:big"
        a=$T_SECS ra=$T_RSS
        id=$(tail -n1 "$WORK/out")
        [[ $id == "$IMAGE_ID" ]] || die "podkit-fetch printed '$id', expected $IMAGE_ID"
        t render "$RENDER" --store "$WORK/fresh-store" "$id" "$WORK/out-dir"
        b=$T_SECS rb=$T_RSS
        secs=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a + b }')
        rss=$((ra > rb ? ra : rb)) ;;
    esac
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$cache" "$run" "$secs" "$rss" \
        "$a" "$ra" "$b" "$rb" >>"$RESULTS/times.tsv"
    log "$(printf '%-13s %s run %d: %7.2f s  %6d KiB' "$tool" "$cache" "$run" "$secs" "$rss")"
    rm -rf "$WORK/out-dir" "$WORK/fresh-store"
}

# listing of a tree: path type mode uid gid size links link-target
# (directories: no size, no link count)
listing() {
    (cd "$1" && find . -printf '%p %y %m %U %G %s %n %l\n' |
        awk '$2 == "d" { $6 = "-"; $7 = "-" } { print }' | LC_ALL=C sort)
}

count() { awk -v t="$1" '$2 == t { n++ } END { print n + 0 }' "$RESULTS/listing-umoci.txt"; }

check_equal() {
    log "checking that umoci and podkit give the same rootfs"
    rm -rf "$WORK/check-umoci" "$WORK/check-podkit"
    umoci unpack --image "$LAYOUT:big" "$WORK/check-umoci" >/dev/null
    "$RENDER" --store "$WORK/store" "$IMAGE_ID" "$WORK/check-podkit"
    listing "$WORK/check-umoci/rootfs" >"$RESULTS/listing-umoci.txt"
    listing "$WORK/check-podkit" >"$RESULTS/listing-podkit.txt"
    local bad=0
    if ! diff -u "$RESULTS/listing-umoci.txt" "$RESULTS/listing-podkit.txt" >"$RESULTS/listing.diff"; then
        log "ROOTFS DIFFERS (metadata): $(grep -c '^[-+][^-+]' "$RESULTS/listing.diff") lines in $RESULTS/listing.diff"
        head -n 40 "$RESULTS/listing.diff" >&2
        bad=1
    fi
    if ! diff -r --no-dereference "$WORK/check-umoci/rootfs" "$WORK/check-podkit" >"$RESULTS/content.diff" 2>&1; then
        log "ROOTFS DIFFERS (content): $RESULTS/content.diff"
        head -n 20 "$RESULTS/content.diff" >&2
        bad=1
    fi
    ((bad == 0)) || die "podkit-render and umoci unpack disagree; not timing a wrong result"
    # informational: mtimes of non-directories
    (cd "$WORK/check-umoci/rootfs" && find . ! -type d -printf '%p %T@\n' | LC_ALL=C sort) >"$WORK/mt-u"
    (cd "$WORK/check-podkit" && find . ! -type d -printf '%p %T@\n' | LC_ALL=C sort) >"$WORK/mt-p"
    if ! cmp -s "$WORK/mt-u" "$WORK/mt-p"; then
        log "note: $(diff "$WORK/mt-u" "$WORK/mt-p" | grep -c '^<') non-directory mtimes differ (not fatal)"
    fi
    ROOTFS_DESC="$(count f) files, $(count d) dirs, $(count l) symlinks, $(du -sm --apparent-size "$WORK/check-umoci/rootfs" | cut -f1) MB"
    log "rootfs equal: $ROOTFS_DESC"
    rm -rf "$WORK/check-umoci" "$WORK/check-podkit" "$WORK/mt-u" "$WORK/mt-p"
}

sweep() {
    local tag u f r id us fs rs
    printf 'tag\tumoci_kib\tfetch_kib\trender_kib\tumoci_s\tfetch_s\trender_s\n' >"$RESULTS/sweep.tsv"
    for tag in small l1 l2 l3 big; do
        rm -rf "$WORK/out-dir" "$WORK/fresh-store"
        settle; warm_inputs umoci
        t umoci umoci unpack --image "$LAYOUT:$tag" "$WORK/out-dir"; u=$T_RSS us=$T_SECS
        rm -rf "$WORK/out-dir"
        settle; warm_inputs fetch
        t fetch "$FETCH" --store "$WORK/fresh-store" -q "oci:$LAYOUT:$tag"; f=$T_RSS fs=$T_SECS
        id=$(tail -n1 "$WORK/out")
        settle; warm_inputs render "$WORK/fresh-store"
        t render "$RENDER" --store "$WORK/fresh-store" "$id" "$WORK/out-dir"; r=$T_RSS rs=$T_SECS
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tag" "$u" "$f" "$r" "$us" "$fs" "$rs" >>"$RESULTS/sweep.tsv"
        log "sweep $tag: umoci $u KiB, podkit-fetch $f KiB, podkit-render $r KiB"
    done
    rm -rf "$WORK/out-dir" "$WORK/fresh-store"
}


# Measure a copy of the working tree taken now: the tree may be edited (or
# committed to) while the benchmark runs, and one run must not mix versions.
snapshot_podkit() {
    ((SNAPSHOT)) || { SRC_DESC="live tree $SRC_TOP, sources sha256 $(src_hash "$SRC_TOP")"; return; }
    local snap=$BENCH_DIR/podkit-src d got
    rm -rf "$snap"
    mkdir -p "$snap"
    for d in libaci stage0 stage1 schemas; do
        if [[ -d $SRC_TOP/$d ]]; then cp -a "$SRC_TOP/$d" "$snap/"; fi
    done
    find "$snap" -name __pycache__ -prune -exec rm -rf {} +
    "$PODKIT_BIN/python3" -m compileall -q "$snap" >/dev/null
    export PYTHONPATH=$snap
    got=$(cd / && "$PODKIT_BIN/python3" -c 'import libaci, stage0.cli; print(libaci.__file__)')
    [[ $got == "$snap/libaci/__init__.py" ]] || die "snapshot not used (libaci from $got)"
    SRC_DIR=$snap
    SRC_DESC="$(git_state libaci stage0 stage1 schemas), sources sha256 $(src_hash "$snap") (snapshot in $snap)"
}

main() {
    snapshot_podkit
    python_dirs
    write_helpers
    ensure_image
    rm -rf "$WORK"
    mkdir -p "$WORK" "$RESULTS"
    cp "$CACHE/image.json" "$RESULTS/image.json"
    log "fetching big into the warm store $WORK/store"
    IMAGE_ID=$("$FETCH" --store "$WORK/store" -q "oci:$LAYOUT:big" | tail -n1)
    [[ -n $IMAGE_ID ]] || die "podkit-fetch printed no image ID"
    check_equal
    {
        echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "kernel=$(uname -sr)"
        echo "cpus=$(nproc)"
        echo "fs=$(df -T "$WORK" | awk 'NR == 2 { print $2 }') on $(df "$WORK" | awk 'NR == 2 { print $1 }')"
        echo "runs=$RUNS"
        echo "drop=$([[ $CAN_DROP == 1 ]] && echo yes || echo 'no (not permitted)')"
        echo "rootfs=$ROOTFS_DESC"
        echo "umoci=$(umoci --version | awk '{ print $3 }')"
        echo "podkit=$("$RENDER" --version)"
        echo "podkit_src=$SRC_DESC"
        echo "image_id=$IMAGE_ID"
    } >"$RESULTS/env.txt"
    printf 'tool\tcache\trun\tsecs\trss_kib\tfetch_secs\tfetch_rss\trender_secs\trender_rss\n' \
        >"$RESULTS/times.tsv"
    log "timing: $RUNS runs x {umoci, render, fetch+render} x {cold, warm}, interleaved"
    local i tool cache
    for ((i = 1; i <= RUNS; i++)); do
        for tool in umoci render fetch+render; do
            for cache in cold warm; do
                measure "$tool" "$cache" "$i"
            done
        done
    done
    ((SWEEP == 0)) || sweep
    if ((SNAPSHOT)) && [[ $(src_hash "$SRC_TOP") != $(src_hash "$SRC_DIR") ]]; then
        log "note: podkit's working tree changed during the run; the snapshot taken at the start was measured"
    fi
    "$PY" "$LIB/report.py" "$RESULTS" | tee "$RESULTS/summary.md"
    log "results in $RESULTS"
    rm -rf "$WORK"
}
main "$@"; exit $?
