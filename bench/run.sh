#!/usr/bin/env bash
# =============================================================================
# bench/run.sh - the start cost of `podkit-run` against bare `systemd-nspawn`
# and `runc run` on the same rootfs, and against image size, in the same run.
#
# 1. Builds (once; cached under $BENCH_DIR/cache/) an OCI layout,
#    written directly by a Python helper (tarfile + gzip, no external tool):
#      small  one layer: the host's static busybox as /bin/busybox, /bin/true
#             and /bin/sh links to it, /usr/bin (systemd-nspawn refuses a
#             tree without /usr), /etc/podkit-bench-image ("small"); ~2 MB
#      big    the same layer plus 5 layers of pseudo-random files (1-16 MiB
#             each, ~350 MB in all) and 400 small text files per layer; the
#             top layer overwrites /etc/podkit-bench-image ("big")
#    Content comes from seeded PRNGs (and the host's busybox), times and
#    owners are fixed, gzip has mtime 0: a rebuild gives the same digests
#    (a note is logged if they differ from the previous build).  The cache
#    directory is cache/big-<BIG_MB>-<hash of the recipe, busybox and zlib>;
#    a new recipe replaces the old one of the same BIG_MB.
# 2. Fetches both into a fresh store (oci:LAYOUT:TAG), runs each once
#    (layers are extracted at first use; timed, reported for information),
#    renders `small` with podkit-render into ROOTFS, writes a runc bundle of
#    ROOTFS (`runc spec`; root.path ROOTFS, writable; args /bin/true;
#    terminal false; no network namespace, as --net=host), and copies the
#    systemd-nspawn command line podkit's nspawn stage1 uses (`--debug`) with
#    its bundle and bind sources, pointed at a copy of ROOTFS.
# 3. Checks every command before timing it: each runs
#    `/bin/sh -c 'read x </etc/podkit-bench-image; [ "$x" = small ] && exit 7'`
#    (big: "big", and a file of the lowest and of the top data layer) and must
#    exit 7 - the payload ran in the image's rootfs and its status came back.
# 4. One untimed warm-up round, then RUNS rounds, each cell once per round,
#    the order rotated from round to round.  The page cache is NOT dropped:
#    warm starts are what matters here.  Cells:
#      stage1-nspawn  podkit-run --store S --stage1=nspawn SMALL -- /bin/true
#      nspawn-bare    unshare -m --propagation private sh -c 'mount -t tmpfs
#                     tmpfs /run/systemd/nspawn && exec "$@"' wrap
#                     systemd-nspawn --register=no --keep-unit -q -D ROOTFS /bin/true
#      nspawn-argv    (information) the same wrapper + systemd-nspawn with the
#                     arguments podkit's nspawn stage1 passes (--oci-bundle,
#                     binds, catatonit as PID 1), on a copy of ROOTFS
#      wrapper        (information) the wrapper alone, exec /bin/true
#      runc           runc --root RUNCROOT run -b BUNDLE <fresh id>
#      stage1-fly     podkit-run --stage1=fly SMALL -- /bin/true  (only when
#                     stage1/fly/manifest exists and its check passes)
#      size-small     podkit-run --store S SMALL -- /bin/true   (2 MB image)
#      size-big       podkit-run --store S BIG -- /bin/true     (~350 MB image)
#    Every podkit-run leaves an exited pod; it is removed after the run,
#    outside the timing (podkit-rm, or rm -rf of STORE/pods/run/UUID when
#    podkit-rm is missing).  Wall time from bash's EPOCHREALTIME around
#    /usr/bin/time, which gives peak RSS (%M: the largest process of the
#    tree) and user+system CPU of every run.
# 5. PROFILE=1: where podkit-run's time goes - start-up floors (interpreters,
#    imports), in-process timers around stage0's steps, `-X importtime`, and
#    strace (execve/mount/mkdir/exit only, --seccomp-bpf) timelines of every
#    command.
# 6. Prints a table (median, min), the ratios and the targets, and writes
#    everything to $BENCH_DIR/results/<UTC time>/.
#
# Knobs (environment):
#   RUNS        rounds (default 10; median and min reported)
#   BENCH_DIR   where everything lives (default /var/tmp/podkit-bench-run)
#   PODKIT_BIN  directory holding podkit-run/podkit-fetch/podkit-render/
#               podkit-rm and python3 (default: the .venv/bin of this checkout)
#   BIG_MB      MB of random data in big (default 350)
#   PROFILE     0 skips the "where the time goes" part (default 1)
#   TRACE_RUNS  strace timelines per command (default 5)
#   QUIET_PCT   before each round, wait until the machine's CPUs are at most
#               this busy (percent, over 1 s; default 10; 0: do not wait) -
#               on a shared machine other jobs (test suites) otherwise decide
#               the figures
#   QUIET_WAIT  give up waiting after this many seconds per round (default
#               300; the round then runs anyway and is marked in rounds.tsv)
#
# The sources are not snapshotted: podkit-run execs the stage1 from the
# checkout, so PODKIT_BIN's podkit is measured as it is; the summary records
# the commit, a hash of libaci/stage0/stage1 and whether it changed during the
# run.  The page cache is left alone (lib.sh's probe_drop is not called).
#
# Runs as root (podkit-run, nspawn, runc).  Outside $BENCH_DIR it makes
# runc and podkit cgroups that the tools remove themselves (checked at the
# end), and /run/systemd/nspawn if it is missing (as a mount point).
# =============================================================================
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_TOP=$(dirname "$HERE")
BENCH_DIR=${BENCH_DIR:-/var/tmp/podkit-bench-run}
RUNS=${RUNS:-10}
BIG_MB=${BIG_MB:-350}
PROFILE=${PROFILE:-1}
TRACE_RUNS=${TRACE_RUNS:-5}
QUIET_PCT=${QUIET_PCT:-10}
QUIET_WAIT=${QUIET_WAIT:-300}
PODKIT_BIN=${PODKIT_BIN:-$SRC_TOP/.venv/bin}
PY=/usr/bin/python3
# shellcheck source=lib.sh
source "$HERE/lib.sh"
IMAGE_VERSION=1                  # bump when the image recipe changes
LIB=$BENCH_DIR/lib
WORK=$BENCH_DIR/work
RESULTS=$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)
STORE=$WORK/store
ROOTFS=$WORK/rootfs
BUNDLE=$WORK/bundle
RUNCROOT=$WORK/runc-root
NSPAWN=/usr/bin/systemd-nspawn
# plain PATH: no shims or user bin directories in front of sh, mount, nspawn
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH PYTHONPROFILEIMPORTTIME PYTHONSTARTUP
# byte-compiled modules, as an installed podkit has them, kept out of the
# checkout: the caller's PYTHONDONTWRITEBYTECODE (set on this machine) would
# make every podkit-run compile the podkit modules that have no __pycache__
# entry in the checkout (measured separately in the profile)
CALLER_NO_PYC=${PYTHONDONTWRITEBYTECODE:-}
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX=$BENCH_DIR/pycache

log() { printf '[run-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

((RUNS >= 1)) || die "RUNS must be >= 1"
[[ $(id -u) == 0 ]] || die "run as root (podkit-run, systemd-nspawn, runc)"
for t in runc "$NSPAWN" catatonit unshare strace /usr/bin/time "$PY" \
         "$PODKIT_BIN/python3" "$PODKIT_BIN/podkit-run" "$PODKIT_BIN/podkit-fetch" \
         "$PODKIT_BIN/podkit-render"; do
    command -v "$t" >/dev/null || die "$t not found"
done
[[ -x /bin/busybox ]] && { ldd /bin/busybox 2>&1 || true; } | grep -Eq 'not a dynamic executable|statically linked' ||
    die "/bin/busybox (static) not found (Debian package busybox-static)"
RUN=$PODKIT_BIN/podkit-run
FETCH=$PODKIT_BIN/podkit-fetch
RENDER=$PODKIT_BIN/podkit-render
PODKIT_RM=$PODKIT_BIN/podkit-rm
[[ -x $PODKIT_RM ]] || PODKIT_RM=
VPY=$PODKIT_BIN/python3

# the wrapper for bare nspawn: a private mount namespace with a tmpfs on
# /run/systemd/nspawn, as podkit's stage1 makes, so nspawn's clean-up does not
# warn about the disk filesystem under /run/systemd/nspawn
WRAP=(unshare -m --propagation private /bin/sh -c 'mount -t tmpfs tmpfs /run/systemd/nspawn && exec "$@"' wrap)
CHECK_SMALL='read x </etc/podkit-bench-image; [ "$x" = small ] && exit 7; exit 1'
CHECK_BIG='read x </etc/podkit-bench-image; [ "$x" = big ] && [ -s /srv/l1/data/blob000.bin ] && [ -s /srv/l5/data/blob000.bin ] && exit 7; exit 1'

# -----------------------------------------------------------------------------
# helper programs, (re)written every run
# -----------------------------------------------------------------------------
write_helpers() {
    mkdir -p "$LIB"
    cp "$HERE/ocikit.py" "$LIB/ocikit.py"
    cat >"$LIB/mkimage.py" <<'PYEOF'
#!/usr/bin/env python3
"""mkimage.py LAYOUT BIG_MB BUSYBOX - write the OCI layout with the images small and big.

small: one layer with BUSYBOX as /bin/busybox, /bin/true and /bin/sh links,
/usr/bin, /etc/podkit-bench-image.  big: that layer plus 5 layers of
pseudo-random files (BIG_MB MB in all) and small text files.
Deterministic: one seeded PRNG per layer, fixed times and owners, PAX tars
with entries in a fixed order, gzip with mtime 0 and no file name.
Prints a JSON summary (per image: manifest digest, layers with sizes).
"""
import json, random, sys, tarfile

from ocikit import MIB, Layout, RandomFile

root, big_mb, busybox = sys.argv[1], float(sys.argv[2]), sys.argv[3]
out = Layout(root)


def base(add):
    for d in ("bin", "etc", "usr", "usr/bin"):
        add(d, tarfile.DIRTYPE, mode=0o755)
    with open(busybox, "rb") as f:
        data = f.read()
    add("bin/busybox", data=data, mode=0o755)
    add("bin/sh", tarfile.SYMTYPE, target="busybox", mode=0o777)
    add("bin/true", tarfile.SYMTYPE, target="busybox", mode=0o777)
    add("etc/podkit-bench-image", data=b"small\n")


def data_layer(k, mb, top):
    """Layer lK: pseudo-random files of 1-16 MiB adding up to ``mb`` MB, 400 text files."""

    def fill(add):
        rng = random.Random("podkit-run-bench-l%d" % k)
        words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(2, 10)))
                 for _ in range(800)]
        pre = "srv/l%d" % k
        for d in ("srv", pre, pre + "/data", pre + "/etc"):
            add(d, tarfile.DIRTYPE, mode=0o755)
        left, i = max(4096, int(mb * 1e6)), 0
        while left > 0:
            n = min(left, rng.choice((1, 2, 4, 8, 16)) * MIB)
            add("%s/data/blob%03d.bin" % (pre, i), fileobj=RandomFile(rng, n), size=n)
            left -= n
            i += 1
        for j in range(400):
            if j % 100 == 0:
                add("%s/etc/d%d" % (pre, j // 100), tarfile.DIRTYPE, mode=0o755)
            text = " ".join(rng.choices(words, k=rng.randint(150, 1200))).encode()[:rng.randint(1024, 8192)]
            add("%s/etc/d%d/f%04d.conf" % (pre, j // 100, j), data=text)
        if top:
            add("etc", tarfile.DIRTYPE, mode=0o755)
            add("etc/podkit-bench-image", data=b"big\n")

    return fill


def image(tag, fills):
    info = []
    for name, fill in fills:
        if name not in made:
            # level 1: the random data does not compress anyway
            made[name] = out.layer(fill, compresslevel=1)
            d, _, usize, n = made[name]
            print(f"  layer {name}: {d['size'] / 1e6:.1f} MB gzip, {usize / 1e6:.1f} MB tar, "
                  f"{n} entries", file=sys.stderr)
        desc, diff_id, usize, entries = made[name]
        info.append({"name": name, "digest": desc["digest"], "compressed": desc["size"],
                     "uncompressed": usize, "entries": entries})
    mdesc = out.image(tag, [made[name][:2] for name, _ in fills],
                      [f"mkimage.py {n}" for n, _ in fills])
    summary[tag] = {"manifest": mdesc["digest"], "layers": info,
                    "compressed": sum(x["compressed"] for x in info),
                    "uncompressed": sum(x["uncompressed"] for x in info),
                    "entries": sum(x["entries"] for x in info)}


summary, made = {}, {}
SHARES = [100, 85, 70, 55, 40]          # MB per data layer for BIG_MB = 350
image("small", [("base", base)])
image("big", [("base", base)] + [("l%d" % (k + 1), data_layer(k + 1, big_mb * s / sum(SHARES), k == 4))
                                 for k, s in enumerate(SHARES)])
out.close()
json.dump(summary, sys.stdout, indent=1)
PYEOF
    cat >"$LIB/phases.py" <<'PYEOF'
#!/usr/bin/env python3
"""phases.py OUT ARGS... - podkit-run ARGS with timers around stage0's steps.

Imports what podkit-run imports (stage0.cli.run, and what its run() imports
later), wraps the steps below, then calls stage0.cli.run.main().  Writes
"step<TAB>start_ms<TAB>duration_ms" lines to OUT, times since this script's
first line (interpreter start-up and site come before that), when the process
execs the stage1 (or exits).  Steps missing from this podkit are skipped.
"""
import os, sys, time

T0 = time.perf_counter()
OUT = sys.argv.pop(1)
MARKS = []


def ms(t):
    return (t - T0) * 1000


def dump():
    global MARKS
    if MARKS is None:
        return
    with open(OUT, "w") as f:
        for name, a, b in MARKS:
            f.write(f"{name}\t{ms(a):.2f}\t{(b - a) * 1000:.2f}\n")
    MARKS = None


import atexit
import importlib

atexit.register(dump)
t = time.perf_counter()
import stage0.cli.run  # noqa: E402
MARKS.append(("import stage0.cli.run (module level)", t, time.perf_counter()))
t = time.perf_counter()
for mod in ("stage0.launch", "stage0.podspec", "stage0.pods", "stage0.stage1", "libaci.store"):
    try:
        importlib.import_module(mod)
    except ImportError:
        pass
MARKS.append(("import stage0.launch, podspec, pods, stage1, libaci.store (run() imports)", t,
              time.perf_counter()))


def wrap(modname, path, label, last=False, entry=False):
    try:
        obj = importlib.import_module(modname)
        *owner_path, attr = path.split(".")
        for p in owner_path:
            obj = getattr(obj, p)
        f = getattr(obj, attr)
    except (ImportError, AttributeError):
        return

    def timed(*a, **k):
        t = time.perf_counter()
        if last or entry:                       # a point in time, not a span
            MARKS.append((label, t, t))
            if last:                            # exec: write the marks, then go
                dump()
            return f(*a, **k)
        try:
            return f(*a, **k)
        finally:
            MARKS.append((label, t, time.perf_counter()))

    setattr(obj, attr, timed)


wrap("stage0.cli.run", "build", "build the argument parser")
wrap("stage0.cli.run", "run", "run() starts (arguments parsed)", entry=True)
wrap("stage0.cli.run", "run_options", "run_options")
wrap("stage0.stage1", "select", "stage1.select")
wrap("stage0.cli.common", "store_of", "Store()")
wrap("stage0.cli.run", "image_record", "image_record (resolve the image)")
wrap("libaci.store", "Store.extract_layers", "store.extract_layers (all extracted: check)")
wrap("stage0.launch", "prepare", "launch.prepare (pod dir, manifest, app dirs)")
wrap("stage0.launch", "image_app", "launch.image_app (image config)")
wrap("stage0.podspec", "build_manifest", "podspec.build_manifest")
wrap("stage0.pods", "Pods.create", "Pods.create (uuid, lock)")
wrap("stage0.pods", "Pods.move", "Pods.move (rename)")
wrap("stage0.stage1", "attach", "stage1.attach")
wrap("stage0.launch", "read_manifest", "launch.read_manifest")
wrap("stage0.stage1", "of_pod", "stage1.of_pod")
wrap("stage0.launch", "mount_rootfs", "launch.mount_rootfs (unshare + overlay)")
wrap("stage0.stage1", "exec_entrypoint", "exec the stage1's run", last=True)
sys.argv[0] = "podkit-run"
MARKS.append(("main() starts", time.perf_counter(), time.perf_counter()))
sys.exit(stage0.cli.run.main())
PYEOF
    cat >"$LIB/timeline.py" <<'PYEOF'
#!/usr/bin/env python3
"""timeline.py TRACE... - median time of each event over strace -f -ttt traces.

Events, each at its first occurrence in a trace, in ms after the first line:
"exec NAME" (a successful execve, NAME the program's base name), "exit NAME"
(the process that last exec'd NAME ends), "mount overlay", "mount tmpfs
/run/systemd/nspawn", "first cgroup mkdir", "end" (the traced command exits).
"""
import os, re, statistics, sys

LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")
events, totals = {}, []
for path in sys.argv[1:]:
    seen, prog, t0, first_pid, last = {}, {}, None, None, None
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            pid, t, rest = m.group(1), float(m.group(2)), m.group(3)
            if t0 is None:
                t0, first_pid = t, pid
            at = (t - t0) * 1000
            ev = None
            if rest.startswith("execve("):
                if " = -1 " in rest:
                    continue
                name = os.path.basename(rest.split('"')[1])
                if name == "exe":                       # runc's /proc/self/exe
                    name = "exe (" + rest.split('"')[3] + " " + rest.split('"')[5] + ")"
                prog[pid] = name
                ev = "exec " + name
            elif rest.startswith("+++ exited"):
                if pid in prog:
                    ev = "exit " + prog[pid]
                if pid == first_pid:
                    last = at
            elif rest.startswith('mount("overlay"'):
                ev = "mount overlay"
            elif rest.startswith('mount("tmpfs", "/run/systemd/nspawn"'):
                ev = "mount tmpfs /run/systemd/nspawn"
            elif rest.startswith('mkdir("/sys/fs/cgroup/'):
                ev = "first cgroup mkdir"
            if ev and ev not in seen:
                seen[ev] = at
    if last is not None:
        seen["end"] = last
        totals.append(last)
    for ev, at in seen.items():
        events.setdefault(ev, []).append(at)
n = len(sys.argv) - 1
rows = sorted(((statistics.median(v), ev, len(v)) for ev, v in events.items()))
print(f"  {'ms (median)':>11}  event   [{n} traces]")
for med, ev, k in rows:
    print(f"  {med:11.1f}  {ev}" + ("" if k == n else f"  (in {k} of {n})"))
PYEOF
    cat >"$LIB/slowcalls.py" <<'PYEOF'
#!/usr/bin/env python3
"""slowcalls.py TRACE [N] - the N slowest system calls of an strace -f -ttt -T trace.

Leaves out calls that wait for another process or for input (wait4, poll,
read, futex...).  Each call is labelled with the program its process ran at
the time (from the execve calls).
"""
import os, re, sys

WAITS = {"wait4", "waitid", "poll", "ppoll", "epoll_wait", "epoll_pwait", "select", "pselect6",
         "futex", "read", "recvfrom", "recvmsg", "rt_sigtimedwait", "rt_sigsuspend",
         "clock_nanosleep", "nanosleep", "pause", "accept4", "accept"}
LINE = re.compile(r"^(\d+)\s+[\d.]+\s+(?:<\.\.\. )?(\w+)(\(| resumed>)(.*)<([\d.]+)>$")
prog, pend, rows = {}, {}, []
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    m = re.match(r'^(\d+)\s+[\d.]+\s+execve\("([^"]+)"', line)
    if m:
        prog[m.group(1)] = os.path.basename(m.group(2))
    m = re.match(r"^(\d+)\s+[\d.]+\s+(?:<\.\.\. )?(?:clone3?|vfork|fork)\b.*= (\d+)( <[\d.]+>)?$", line)
    if m:
        prog.setdefault(m.group(2), prog.get(m.group(1), "?").replace(" (child)", "") + " (child)")
    m = re.match(r"^(\d+)\s+[\d.]+\s+(\w+)\((.*) <unfinished \.\.\.>$", line)
    if m:
        pend[m.group(1), m.group(2)] = m.group(3)
        continue
    m = LINE.match(line)
    if not m:
        continue
    pid, name, kind, rest, dur = m.groups()
    if name in WAITS:
        continue
    args = pend.pop((pid, name), "") + rest if kind == " resumed>" else rest
    rows.append((float(dur) * 1000, prog.get(pid, "?"), name, args[:110]))
rows.sort(reverse=True)
for ms, p, name, args in rows[: int(sys.argv[2]) if len(sys.argv) > 2 else 15]:
    print(f"  {ms:6.2f} ms  {p:18s} {name}({args}")
PYEOF
    cat >"$LIB/importtime.py" <<'PYEOF'
#!/usr/bin/env python3
"""importtime.py FILE [MIN_MS] - -X importtime log as a tree, two levels deep.

Lines: "import time: SELF_US | CUMULATIVE_US | NAME", NAME indented by two
spaces per nesting level (top level: one space).  Shows top-level imports and
their direct children costing at least MIN_MS (default 1) cumulative."""
import sys

lim = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
rows, total = [], 0
for line in open(sys.argv[1]):
    if not line.startswith("import time:") or "[us]" in line:
        continue
    own, cum, name = line[len("import time:"):].rstrip("\n").split("|", 2)
    total += int(own)
    depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
    rows.append((depth, int(cum), name.strip()))
# -X importtime prints children before their parent: attach them on the way
out, pending = [], {}
for depth, cum, name in rows:
    kids = pending.pop(depth + 1, [])
    pending.setdefault(depth, []).append((cum, name, kids))
top = sorted(pending.get(0, []), reverse=True)
print(f"imports: {total / 1000:.0f} ms in all (sum of self times; -X importtime inflates them)")
for cum, name, kids in top:
    if cum / 1000 < lim:
        continue
    print(f"  {cum / 1000:6.1f} ms  {name}")
    for kcum, kname, _ in sorted(kids, reverse=True):
        if kcum / 1000 >= lim:
            print(f"  {kcum / 1000:6.1f} ms      {kname}")
PYEOF
    cat >"$LIB/report.py" <<'PYEOF'
#!/usr/bin/env python3
"""report.py RESULTS_DIR - table and ratios from times.tsv."""
import json, os, statistics, sys

res = sys.argv[1]
img = json.load(open(os.path.join(res, "image.json")))
env = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(res, "env.txt")) if "=" in l)
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(res, "times.tsv"))][1:]
MB = 1e6
CELLS = [
    ("stage1-nspawn", "podkit-run --stage1=nspawn small -- /bin/true"),
    ("nspawn-bare", "systemd-nspawn -D ROOTFS /bin/true (in the unshare+tmpfs wrapper)"),
    ("nspawn-argv", "systemd-nspawn with podkit's stage1 arguments (same wrapper; info)"),
    ("wrapper", "the unshare+tmpfs wrapper alone, exec /bin/true (info)"),
    ("runc", "runc run (bundle of ROOTFS)"),
    ("stage1-fly", "podkit-run --stage1=fly small -- /bin/true"),
    ("size-small", "podkit-run small (2 MB image)"),
    ("size-big", "podkit-run big (%.0f MB image)"),
]


def stats(cell):
    rs = [r for r in rows if r[0] == cell]
    if not rs:
        return None
    col = lambda i: [float(r[i]) for r in rs]
    return {"n": len(rs), "med": statistics.median(col(2)) * 1000, "min": min(col(2)) * 1000,
            "max": max(col(2)) * 1000, "rss": max(col(3)) / 1024,
            "cpu": statistics.median([a + b for a, b in zip(col(4), col(5))]) * 1000}


lines = []
p = lines.append
for tag in ("small", "big"):
    i = img[tag]
    p("image %s: %d layer(s), %.1f MB uncompressed, %.1f MB gzip, %d tar entries"
      % (tag, len(i["layers"]), i["uncompressed"] / MB, i["compressed"] / MB, i["entries"]))
p("machine: %s; %s CPUs; %s; rounds: %s; page cache not dropped (warm starts)"
  % (env.get("kernel"), env.get("cpus"), env.get("fs"), env.get("runs")))
p("podkit: %s" % env.get("podkit_src", "?"))
p("peers: %s; %s; catatonit %s" % (env.get("nspawn"), env.get("runc"), env.get("catatonit")))
p("")
p("| cell | command | median ms | min ms | max ms | CPU ms (user+sys, median) | peak RSS MB |")
p("|---|---|---:|---:|---:|---:|---:|")
S = {}
for cell, label in CELLS:
    s = stats(cell)
    if s is None:
        continue
    S[cell] = s
    if "%" in label:
        label = label % (img["big"]["uncompressed"] / MB)
    p("| %s | %s | %.1f | %.1f | %.1f | %.0f | %.1f |" % (cell, label, s["med"], s["min"], s["max"],
                                                       s["cpu"], s["rss"]))
p("")
first = [r for r in rows if r[0].startswith("first-")]
if first:
    p("first run of each image (extracts its layers; one run, information): "
      + ", ".join("%s %.2f s" % (r[0][6:], float(r[2])) for r in first))
    p("")


def ratio(a, b, label, target=None, cmp="le"):
    if a not in S or b not in S:
        return None
    r = S[a]["med"] / S[b]["med"]
    rm = S[a]["min"] / S[b]["min"]
    if target is None:
        p("%-44s = %.2f (min/min %.2f)" % (label, r, rm))
    else:
        ok = r <= target
        p("%-44s = %.2f (min/min %.2f; target %s)%s" % (label, r, rm, cmp, "" if ok else "  MISSED"))
    return r


ratio("stage1-nspawn", "nspawn-bare", "ratio podkit-run nspawn / bare nspawn", 1.25, "<= 1.25")
if "stage1-fly" in S:
    ratio("stage1-fly", "runc", "ratio podkit-run fly / runc", 1.5, "<= 1.5")
else:
    p("ratio podkit-run fly / runc: not measured (%s)" % env.get("fly", "no stage1/fly/manifest"))
ratio("size-big", "size-small", "ratio podkit-run big / small", 1.10, "~1.0, flagged above 1.10")
ratio("stage1-nspawn", "runc", "ratio podkit-run nspawn / runc")
ratio("nspawn-bare", "runc", "ratio bare nspawn / runc")
ratio("nspawn-argv", "nspawn-bare", "ratio nspawn with podkit's arguments / bare")
if all(c in S for c in ("stage1-nspawn", "nspawn-argv", "nspawn-bare", "wrapper")):
    w = S["wrapper"]["med"]
    p("")
    p("bare nspawn without the wrapper (median difference): %.1f ms; "
      "podkit-run nspawn / that = %.2f" % (S["nspawn-bare"]["med"] - w,
                                         S["stage1-nspawn"]["med"] / (S["nspawn-bare"]["med"] - w)))
    p("podkit-run nspawn - nspawn with podkit's arguments = %.1f ms (median difference): "
      "stage0 + the stage1 script + cgroups, the Python part"
      % (S["stage1-nspawn"]["med"] - S["nspawn-argv"]["med"]))
if "size-small" in S and "stage1-nspawn" in S:
    p("size-small and stage1-nspawn are the same command: %.1f vs %.1f ms (noise check)"
      % (S["size-small"]["med"], S["stage1-nspawn"]["med"]))
rt = os.path.join(res, "rounds.tsv")
if os.path.exists(rt):
    rr = [l.split() for l in list(open(rt))[1:] if len(l.split()) == 3 and l.split()[0].isdigit()]
    if rr:
        p("")
        p("CPUs busy (other jobs) in the second before each round: %s %%; waited %d s in all for them to calm down"
          % (" ".join(r[2] for r in rr), sum(int(r[1]) for r in rr)))
err = os.path.join(res, "stderr.txt")
if os.path.exists(err) and os.path.getsize(err):
    n = sum(1 for l in open(err) if l.startswith("== "))
    p("")
    p("NOTE: %d timed runs wrote to stderr (see stderr.txt)" % n)
print("\n".join(lines))
PYEOF
}

# -----------------------------------------------------------------------------
# the images (cached by recipe)
# -----------------------------------------------------------------------------
stamp() {
    { echo "image v$IMAGE_VERSION big $BIG_MB"; cat "$LIB/mkimage.py" "$LIB/ocikit.py"; sha256sum </bin/busybox
      "$PY" -c 'import zlib; print(zlib.ZLIB_RUNTIME_VERSION)'; } | sha256sum | cut -c1-16
}

ensure_image() {
    CACHE=$BENCH_DIR/cache/big-$BIG_MB-$(stamp)
    LAYOUT=$CACHE/oci
    if [[ -f $LAYOUT/index.json && -f $CACHE/image.json ]]; then
        log "images cached in $LAYOUT"
        return
    fi
    local old="" new d
    old=$(cat "$BENCH_DIR"/cache/big-"$BIG_MB"-*/image.json 2>/dev/null | grep -o '"manifest": "[^"]*"' | sort -u || true)
    for d in "$BENCH_DIR"/cache/big-"$BIG_MB"-*/; do
        if [[ -d $d ]]; then log "removing the cache of another recipe: $d"; rm -rf "$d"; fi
    done
    mkdir -p "$CACHE"
    log "building the images in $LAYOUT (big: $BIG_MB MB of random data)"
    rm -rf "$LAYOUT.tmp"
    "$PY" "$LIB/mkimage.py" "$LAYOUT.tmp" "$BIG_MB" /bin/busybox >"$CACHE/image.json.tmp"
    mv "$LAYOUT.tmp" "$LAYOUT"
    mv "$CACHE/image.json.tmp" "$CACHE/image.json"
    new=$(grep -o '"manifest": "[^"]*"' "$CACHE/image.json" | sort -u)
    if [[ -n $old && $old != "$new" ]]; then
        log "note: the images differ from the previous build (recipe, busybox or zlib changed)"
    fi
}

img_field() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]])' "$CACHE/image.json" "$1" "$2"; }

# -----------------------------------------------------------------------------
# sources, pods, clean-up
# -----------------------------------------------------------------------------
# remove the pods podkit-run left (exited: plain directories); checks there
# is exactly WANT of them (default 1)
remove_pods() {
    local want=${1:-1} pods=() u
    shopt -s nullglob
    pods=("$STORE"/pods/run/*/)
    shopt -u nullglob
    ((${#pods[@]} == want)) || die "expected $want pod(s) in $STORE/pods/run, found ${#pods[@]}"
    for u in "${pods[@]}"; do
        u=$(basename "$u")
        if [[ -n $PODKIT_RM ]]; then
            "$PODKIT_RM" --store "$STORE" "$u" >/dev/null || die "podkit-rm $u failed"
        else
            rm -rf "${STORE:?}/pods/run/$u"
        fi
    done
}

RUNC_IDS=()
cleanup() {
    local id
    for id in "${RUNC_IDS[@]}"; do   # `runc run` deletes its container; in case it did not
        if [[ -d $RUNCROOT/$id ]]; then runc --root "$RUNCROOT" delete -f "$id" >/dev/null 2>&1 || true; fi
    done
    if [[ -d $STORE/pods/run ]]; then
        shopt -s nullglob
        local pods=("$STORE"/pods/run/*/)
        shopt -u nullglob
        local u
        for u in "${pods[@]}"; do
            u=${u%/}
            if [[ -n $PODKIT_RM ]]; then "$PODKIT_RM" --store "$STORE" "${u##*/}" >/dev/null 2>&1 || true; fi
        done
    fi
    if grep -qs " $WORK" /proc/self/mountinfo; then
        log "WARNING: mounts left under $WORK:"; grep " $WORK" /proc/self/mountinfo >&2 || true
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# -----------------------------------------------------------------------------
# measuring
# -----------------------------------------------------------------------------
# t WANT CMD... : run CMD under /usr/bin/time (stdin /dev/null), expect exit
# status WANT; sets T_SECS, T_RSS (KiB), T_USER, T_SYS
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
    # /usr/bin/time writes "Command exited with non-zero status N" first
    read -r T_RSS T_USER T_SYS < <(tail -n1 "$WORK/rss")
}

runc_id() { RUNC_N=$((${RUNC_N:-0} + 1)); RUNC_ID=pkbench-$$-$RUNC_N; RUNC_IDS+=("$RUNC_ID"); }

# cmd_of CELL MODE: the command of CELL into CMD (MODE run or check)
cmd_of() {
    local cell=$1 mode=$2
    case $cell in
    stage1-nspawn|size-small)
        CMD=("$RUN" --store "$STORE" --stage1=nspawn "$SMALL_ID" --) ;;
    stage1-fly)
        CMD=("$RUN" --store "$STORE" --stage1=fly "$SMALL_ID" --) ;;
    size-big)
        CMD=("$RUN" --store "$STORE" --stage1=nspawn "$BIG_ID" --) ;;
    nspawn-bare)
        CMD=("${WRAP[@]}" "$NSPAWN" --register=no --keep-unit -q -D "$ROOTFS") ;;
    nspawn-argv)
        if [[ $mode == run ]]; then CMD=(env SYSTEMD_NSPAWN_TMPFS_TMP=1 "${WRAP[@]}" "${ARGV[@]}")
        else CMD=(env SYSTEMD_NSPAWN_TMPFS_TMP=1 "${WRAP[@]}" "${ARGV_CHECK[@]}"); fi
        return ;;
    wrapper)
        CMD=("${WRAP[@]}" /bin/true)
        return ;;
    runc)
        runc_id
        if [[ $mode == run ]]; then CMD=(runc --root "$RUNCROOT" run -b "$BUNDLE" "$RUNC_ID")
        else CMD=(runc --root "$RUNCROOT" run -b "$BUNDLE-check" "$RUNC_ID"); fi
        return ;;
    esac
    if [[ $mode == run ]]; then CMD+=(/bin/true)
    elif [[ $cell == size-big ]]; then CMD+=(/bin/sh -c "$CHECK_BIG")
    else CMD+=(/bin/sh -c "$CHECK_SMALL"); fi
}

is_podkit() { [[ $1 == stage1-* || $1 == size-* ]]; }

# measure CELL ROUND: one timed run, appended to times.tsv (ROUND 0: warm-up)
measure() {
    local cell=$1 round=$2
    cmd_of "$cell" run
    t 0 "${CMD[@]}"
    if is_podkit "$cell"; then remove_pods 1; fi
    if [[ -s $WORK/err ]]; then
        { echo "== $cell round $round"; cat "$WORK/err"; } >>"$RESULTS/stderr.txt"
    fi
    ((round > 0)) || return 0
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$cell" "$round" "$T_SECS" "$T_RSS" "$T_USER" "$T_SYS" \
        >>"$RESULTS/times.tsv"
    log "$(printf '%-14s round %2d: %7.1f ms  %6d KiB  (user %s sys %s)' "$cell" "$round" \
        "$(awk -v s="$T_SECS" 'BEGIN { print s * 1000 }')" "$T_RSS" "$T_USER" "$T_SYS")"
}

check() {   # CELL: the check command must exit 7
    cmd_of "$1" check
    t 7 "${CMD[@]}"
    if is_podkit "$1"; then remove_pods 1; fi
    log "check $1: ok (exit 7 from the image's rootfs)"
}

# -----------------------------------------------------------------------------
# set-up
# -----------------------------------------------------------------------------
make_bundle() {   # DIR ARGS_JSON
    mkdir -p "$1"
    (cd "$1" && runc spec)
    "$PY" - "$1/config.json" "$ROOTFS" "$2" <<'EOF'
import json, sys
path, rootfs, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
c = json.load(open(path))
c["root"] = {"path": rootfs, "readonly": False}        # writable, as podkit's and nspawn's
c["process"]["args"] = args
c["process"]["terminal"] = False
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
json.dump(c, open(path, "w"), indent=1)
EOF
}

# ARGV/ARGV_CHECK: the systemd-nspawn command podkit's nspawn stage1 runs, from
# `podkit-run --debug`, with its bundle and bind sources copied to WORK/argv
# and root.path pointed at a copy of ROOTFS
nspawn_argv() {
    local line pod
    t 0 "$RUN" --debug --store "$STORE" --stage1=nspawn "$SMALL_ID" -- /bin/true
    line=$(grep -m1 '^podkit-stage1-nspawn: /usr/bin/systemd-nspawn ' "$WORK/err" || true)
    [[ -n $line ]] || { cat "$WORK/err" >&2; die "podkit-run --debug printed no systemd-nspawn command"; }
    pod=$(ls -d "$STORE"/pods/run/*/)
    pod=${pod%/}
    rm -rf "$WORK/argv"
    mkdir -p "$WORK/argv"
    cp -a "$pod/stage1-state" "$WORK/argv/state"
    cp -a "$ROOTFS" "$WORK/argv/rootfs"
    remove_pods 1
    mapfile -t ARGV < <("$PY" - "$line" "$pod/stage1-state" "$WORK/argv" "$CHECK_SMALL" <<'EOF'
import json, os, shutil, sys
line, old, new, check = sys.argv[1:]
argv = line.split(": ", 1)[1].split(" ")      # podkit prints ' '.join(cmd); no spaces in its paths
argv = [a.replace(old, new + "/state") for a in argv]
bundle = new + "/state/bundle"
cfg = json.load(open(bundle + "/config.json"))
cfg["root"]["path"] = new + "/rootfs"
json.dump(cfg, open(bundle + "/config.json", "w"))
# the check variant: the same, with a bundle whose payload is the check
shutil.copytree(bundle, bundle + "-check")
cfg["process"]["args"] = cfg["process"]["args"][:2] + ["/bin/sh", "-c", check]
json.dump(cfg, open(bundle + "-check/config.json", "w"))
print("\n".join(argv))
EOF
    )
    ARGV_CHECK=("${ARGV[@]/%\/state\/bundle//state/bundle-check}")
    log "podkit's nspawn command: ${ARGV[*]}"
}

setup() {
    rm -rf "$WORK"
    mkdir -p "$WORK" "$RUNCROOT"
    [[ -d /run/systemd/nspawn ]] || { log "creating /run/systemd/nspawn (mount point)"; mkdir -p /run/systemd/nspawn; }
    log "fetching small and big into $STORE"
    t 0 "$FETCH" --store "$STORE" -q "oci:$LAYOUT:small"
    SMALL_ID=$(tail -n1 "$WORK/out")
    [[ $SMALL_ID == "$(img_field small manifest)" ]] || die "podkit-fetch of small printed '$SMALL_ID'"
    printf 'fetch-small\t0\t%s\t%s\t%s\t%s\n' "$T_SECS" "$T_RSS" "$T_USER" "$T_SYS" >>"$RESULTS/times.tsv"
    t 0 "$FETCH" --store "$STORE" -q "oci:$LAYOUT:big"
    BIG_ID=$(tail -n1 "$WORK/out")
    [[ $BIG_ID == "$(img_field big manifest)" ]] || die "podkit-fetch of big printed '$BIG_ID'"
    printf 'fetch-big\t0\t%s\t%s\t%s\t%s\n' "$T_SECS" "$T_RSS" "$T_USER" "$T_SYS" >>"$RESULTS/times.tsv"
    # first runs: the layers are extracted now (timed, information); they are
    # also the checks of podkit-run
    local c
    for c in size-small size-big; do
        cmd_of "$c" check
        t 7 "${CMD[@]}"
        remove_pods 1
        printf 'first-%s\t0\t%s\t%s\t%s\t%s\n' "${c#size-}" "$T_SECS" "$T_RSS" "$T_USER" "$T_SYS" >>"$RESULTS/times.tsv"
        log "first run of ${c#size-} (extracts its layers): $T_SECS s; check ok"
    done
    log "rendering small into $ROOTFS"
    "$RENDER" --store "$STORE" "$SMALL_ID" "$ROOTFS"
    make_bundle "$BUNDLE" '["/bin/true"]'
    make_bundle "$BUNDLE-check" "$("$PY" -c 'import json,sys; print(json.dumps(["/bin/sh", "-c", sys.argv[1]]))' "$CHECK_SMALL")"
    nspawn_argv
    CELLS=(stage1-nspawn nspawn-bare nspawn-argv wrapper runc size-small size-big)
    FLY=no
    if [[ -f $SRC_TOP/stage1/fly/manifest ]]; then
        cmd_of stage1-fly check
        local rc=0
        /usr/bin/time -f '%M %U %S' -o "$WORK/rss" "${CMD[@]}" </dev/null >"$WORK/out" 2>"$WORK/err" || rc=$?
        shopt -s nullglob; local left=("$STORE"/pods/run/*/); shopt -u nullglob
        remove_pods "${#left[@]}"
        if ((rc == 7)); then
            FLY=yes
            CELLS+=(stage1-fly)
            log "check stage1-fly: ok (exit 7 from the image's rootfs)"
        else
            FLY="stage1/fly exists but FAILED its check (exit $rc: $(tr '\n' ' ' <"$WORK/err" | cut -c1-200))"
            log "$FLY; not timed"
        fi
    else
        FLY="no stage1/fly/manifest in this checkout"
        log "$FLY: fly not timed"
    fi
    for c in stage1-nspawn nspawn-bare nspawn-argv runc; do check "$c"; done
    cmd_of wrapper run
    t 0 "${CMD[@]}"
}

# -----------------------------------------------------------------------------
# where the time goes
# -----------------------------------------------------------------------------
# floor LABEL CMD...: median and min of RUNS runs of CMD (ms)
floor() {
    local label=$1 i s=()
    shift
    for ((i = 0; i < RUNS; i++)); do t 0 "$@"; s+=("$T_SECS"); done
    printf '%s\t%s\n' "$label" "${s[*]}" >>"$PROF/floors.tsv"
}

profile() {
    PROF=$RESULTS/profile
    mkdir -p "$PROF/trace"
    local s1dir=$SRC_TOP/stage1/nspawn/rootfs i c
    quiet profile
    log "profile: start-up floors"
    : >"$PROF/floors.tsv"
    floor "python3 (venv) -S -c pass: bare interpreter" "$VPY" -S -c pass
    floor "python3 (venv) -c pass: + site (venv, editable-install finder, .pth files)" "$VPY" -c pass
    floor "python3 (venv) -c 'import stage0.cli.run': podkit-run's module-level imports" "$VPY" -c 'import stage0.cli.run'
    floor "python3 (venv) -c 'import stage0.cli.run, stage0.launch, ...': all podkit-run imports" \
        "$VPY" -c 'import stage0.cli.run, stage0.launch, stage0.podspec, stage0.pods, stage0.stage1, libaci.store'
    floor "python3 (venv) -S, sys.path by hand (PYTHONPATH): all podkit-run imports without site" \
        env PYTHONPATH="$SRC_TOP:$("$VPY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))'):/usr/lib/python3/dist-packages" \
        "$VPY" -S -c 'import stage0.cli.run, stage0.launch, stage0.podspec, stage0.pods, stage0.stage1, libaci.store'
    floor "python3 (venv) all podkit-run imports, no .pyc cache (PYTHONDONTWRITEBYTECODE=1, the checkout's __pycache__: $(find "$SRC_TOP/libaci" "$SRC_TOP/stage0" -name '*.pyc' | wc -l) .pyc for $(find "$SRC_TOP/libaci" "$SRC_TOP/stage0" -name '*.py' | wc -l) modules)" \
        env -u PYTHONPYCACHEPREFIX PYTHONDONTWRITEBYTECODE=1 \
        "$VPY" -c 'import stage0.cli.run, stage0.launch, stage0.podspec, stage0.pods, stage0.stage1, libaci.store'
    floor "podkit-run --help (imports + argparse)" "$RUN" --help
    floor "/usr/bin/python3 -IS -c pass: the stage1's interpreter" /usr/bin/python3 -IS -c pass
    floor "/usr/bin/python3 -IS: the stage1 run script's imports (json, subprocess, socket, threading, podkit_s1)" \
        /usr/bin/python3 -IS -c "import json, os, signal, socket, subprocess, sys, threading; sys.path.insert(0, '$s1dir'); import podkit_s1"
    floor "/usr/bin/python3 -IS: compile the nspawn stage1's run script (every start: a script gets no .pyc)" \
        /usr/bin/python3 -IS -c "compile(open('$s1dir/run').read(), 'run', 'exec')"
    for m in subprocess threading socket json; do
        floor "/usr/bin/python3 -IS -c 'import $m'" /usr/bin/python3 -IS -c "import $m"
    done
    floor "systemd-nspawn --version" "$NSPAWN" --version
    floor "runc --version" runc --version

    log "profile: stage0 in-process timers ($RUNS runs)"
    for ((i = 1; i <= RUNS; i++)); do
        t 0 "$VPY" "$LIB/phases.py" "$PROF/phases-$i.tsv" --store "$STORE" --stage1=nspawn "$SMALL_ID" -- /bin/true
        remove_pods 1
    done

    log "profile: -X importtime of podkit-run"
    t 0 env PYTHONPROFILEIMPORTTIME=1 "$RUN" --store "$STORE" --stage1=nspawn "$SMALL_ID" -- /bin/true
    cp "$WORK/err" "$PROF/podkit-run.importtime"
    remove_pods 1

    log "profile: strace timelines ($TRACE_RUNS per command)"
    local cells=(stage1-nspawn nspawn-bare nspawn-argv runc size-big)
    [[ $FLY != yes ]] || cells+=(stage1-fly)
    for ((i = 1; i <= TRACE_RUNS; i++)); do
        quiet "trace-$i"
        for c in "${cells[@]}"; do
            cmd_of "$c" run
            t 0 strace --seccomp-bpf -f -ttt -e trace=execve,mount,mkdir,exit_group \
                -o "$PROF/trace/$c-$i.txt" "${CMD[@]}"
            if is_podkit "$c"; then remove_pods 1; fi
        done
    done

    log "profile: one full strace (-f -T) of podkit-run nspawn"
    t 0 strace -f -ttt -T -o "$PROF/podkit-run-full.strace" "$RUN" --store "$STORE" --stage1=nspawn "$SMALL_ID" -- /bin/true
    remove_pods 1

    {
        echo "== start-up floors (ms, median / min of $RUNS runs) =="
        while IFS=$'\t' read -r label secs; do
            echo "$secs" | tr ' ' '\n' | sort -n | awk -v l="$label" '{ a[NR] = $1 * 1000 }
                END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
                      printf "  %6.1f / %6.1f  %s\n", m, a[1], l }'
        done <"$PROF/floors.tsv"
        echo
        echo "== podkit-run (stage0) in-process steps: ms after phases.py's first line (median of $RUNS runs; interpreter start-up and site come before) =="
        "$PY" - "$PROF"/phases-*.tsv <<'EOF'
import statistics, sys
runs = []
for path in sys.argv[1:]:
    d = {}
    for line in open(path):
        name, start, dur = line.rstrip("\n").split("\t")
        s, u = d.get(name, (None, 0.0))
        d[name] = (float(start) if s is None else s, u + float(dur))
    runs.append(d)
names = sorted({n for r in runs for n in r}, key=lambda n: statistics.median(r[n][0] for r in runs if n in r))
print(f"  {'start':>7} {'took':>7}  step (several calls: summed)")
for n in names:
    st = statistics.median(r[n][0] for r in runs if n in r)
    du = statistics.median(r[n][1] for r in runs if n in r)
    print(f"  {st:7.1f} {du:7.1f}  {n}")
EOF
        echo
        echo "== podkit-run: -X importtime (top level and direct children >= 1 ms) =="
        "$PY" "$LIB/importtime.py" "$PROF/podkit-run.importtime" 1
        echo
        echo "== slowest system calls of one podkit-run nspawn (strace -f -T, all calls: times inflated; waits left out) =="
        "$PY" "$LIB/slowcalls.py" "$PROF/podkit-run-full.strace" 15
        for c in "${cells[@]}"; do
            echo
            echo "== strace timeline: $c (strace --seccomp-bpf -f; tracing adds overhead, nspawn and runc the most) =="
            "$PY" "$LIB/timeline.py" "$PROF"/trace/"$c"-*.txt
        done
    } >"$PROF/top.txt"
    log "profile in $PROF/top.txt"
}

# -----------------------------------------------------------------------------
main() {
    local src0 i k n c rot
    src0=$(src_hash)
    write_helpers
    ensure_image
    mkdir -p "$RESULTS"
    cp "$CACHE/image.json" "$RESULTS/image.json"
    printf 'cell\tround\tsecs\trss_kib\tuser\tsys\n' >"$RESULTS/times.tsv"
    setup
    SRC_DESC="$(git_state libaci stage0 stage1), sources sha256 $src0 (live tree $SRC_TOP)"
    {
        echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "kernel=$(uname -sr)"
        echo "cpus=$(nproc)"
        echo "fs=$(df -T "$WORK" | awk 'NR == 2 { print $2 }') on $(df "$WORK" | awk 'NR == 2 { print $1 }')"
        echo "runs=$RUNS"
        echo "podkit=$("$RUN" --version)"
        echo "podkit_src=$SRC_DESC"
        echo "nspawn=$("$NSPAWN" --version | head -n1)"
        echo "runc=$(runc --version | head -n1)"
        echo "catatonit=$(catatonit --version 2>&1 | head -n1 | awk '{ print $NF }')"
        echo "fly=$FLY"
        echo "small_id=$SMALL_ID"
        echo "big_id=$BIG_ID"
        echo "caller_PYTHONDONTWRITEBYTECODE=${CALLER_NO_PYC:-unset} (bench: unset, PYTHONPYCACHEPREFIX=$PYTHONPYCACHEPREFIX)"
        if [[ -n $PODKIT_RM ]]; then echo "pod_removal=podkit-rm"; else echo "pod_removal=rm -rf STORE/pods/run/UUID"; fi
    } >"$RESULTS/env.txt"
    log "warm-up round (untimed): ${CELLS[*]}"
    for c in "${CELLS[@]}"; do measure "$c" 0; done
    n=${#CELLS[@]}
    log "timing: $RUNS rounds x ${n} cells, order rotated every round"
    printf 'round\twaited_s\tbusy_pct\n' >"$RESULTS/rounds.tsv"
    for ((i = 1; i <= RUNS; i++)); do
        quiet "$i"
        for ((k = 0; k < n; k++)); do
            rot=$(((k + i - 1) % n))
            measure "${CELLS[$rot]}" "$i"
        done
    done
    ((PROFILE == 0)) || profile
    if [[ $(src_hash) != "$src0" ]]; then
        log "note: podkit's sources changed during the run (sha256 $src0 at the start, $(src_hash) now)"
        echo "note=the sources changed during the run" >>"$RESULTS/env.txt"
    fi
    "$PY" "$LIB/report.py" "$RESULTS" | tee "$RESULTS/summary.md"
    if ((PROFILE)); then cat "$RESULTS/profile/top.txt" | tee -a "$RESULTS/summary.md"; fi
    # nothing of ours may be left: pods, runc containers, cgroups, mounts
    shopt -s nullglob
    local left=("$STORE"/pods/*/*/)
    shopt -u nullglob
    ((${#left[@]} == 0)) || die "pods left in the store: ${left[*]}"
    local id cg=()
    for id in "${RUNC_IDS[@]}"; do
        [[ ! -e $RUNCROOT/$id ]] || die "runc container $id left in $RUNCROOT"
    done
    mapfile -t cg < <(find /sys/fs/cgroup -maxdepth 5 -type d -name "pkbench-$$-*" 2>/dev/null)
    ((${#cg[@]} == 0)) || log "WARNING: runc cgroups left: ${cg[*]}"
    log "results in $RESULTS"
}
main "$@"; exit $?
