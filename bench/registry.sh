#!/usr/bin/env bash
# =============================================================================
# bench/registry.sh - podkit-fetch and podkit-push against `skopeo copy`, on a
# local docker-registry, in the same run.
#
# 1. Builds (once; cached under $BENCH_DIR/cache) an OCI layout, written
#    directly by a Python helper (tarfile + gzip, no external tool):
#      big   8 gzip layers, ~220 MB compressed: mostly incompressible
#            pseudo-random files (1-20 MB each) plus ~250 small text files,
#            a few symlinks and directories per layer; layer 8 overwrites a
#            file and deletes another (whiteout);
#      one   1 gzip layer, ~25 MB compressed (memory: flat in layer size?).
#    Content comes from seeded PRNGs, all times/owners fixed, gzip with
#    mtime 0, so every build gives the same digests (a rebuild logs a note if
#    they differ from the last build).
# 2. Starts Debian's docker-registry (distribution 2.8, plain HTTP, filesystem
#    storage in $BENCH_DIR/work) on 127.0.0.1:<free port> - the "source"
#    registry - and pushes both images to it with `skopeo copy`
#    (bench/big:1, bench/one:1).  Every registry this script starts is
#    stopped by its PID at exit.
# 3. Times, RUNS times each, interleaved (the order of podkit and skopeo
#    alternates from one run to the next).  Before every run: the previous
#    output is removed, `sync`, and the page cache is dropped (skipped if
#    /proc/sys/vm/drop_caches is not writable).
#      fetch cold  podkit-fetch --store NEW docker://SRC/bench/IMG:1
#                  skopeo copy --src-tls-verify=false docker://SRC/bench/IMG:1 oci:NEW:IMG
#                  curl of every blob of the image, one process (the floor:
#                  registry + loopback, nothing verified or written)
#                  pyfloor.py: the least a fetch in Python does (manifest, then
#                  config and layers on 4 threads, each hashed, written,
#                  written back every 8 MiB and fsynced, as podkit-fetch does;
#                  no store, models, options, retries or auth): the floor for
#                  any Python implementation, in the same interpreter
#                  podkit-fetch --extract (information only: it also
#                  decompresses, checks diff IDs and extracts every layer,
#                  which podkit-fetch otherwise leaves to the first use)
#      fetch warm  the same two commands again into the destination that the
#                  cold run just filled (page cache dropped, then the programs,
#                  the registry's storage and the destination's metadata
#                  re-read)
#      push cold   podkit-push --store STORE ID docker://PUSH/bench/pushN:1
#                  skopeo copy --dest-tls-verify=false oci:LAYOUT:IMG docker://PUSH/bench/skopeoN:1
#                  PUSH is a second docker-registry, started for every push
#                  run with empty storage on a port not used before in this
#                  invocation, so that neither tool can skip or mount a blob
#                  (podkit's store and skopeo's blob-info cache key their
#                  mount hints by host:port): every byte is uploaded.
#    skopeo runs with --retry-times 0, REGISTRY_AUTH_FILE set to an empty
#    file (for podkit too), and in a private mount namespace where an empty
#    directory hides /var/lib/containers/cache (its blob-info cache), fresh
#    for every run, so host state neither helps nor changes.
#    Every result is checked: the image ID podkit-fetch prints, the manifest
#    digest in skopeo's index.json, the digest podkit-push prints and the
#    digest the push registry serves for each pushed tag.
#    Peak RSS of every process comes from /usr/bin/time -f %M (user and
#    system CPU time are recorded too).
# 4. PROFILE=1: py-spy (from PODKIT_BIN) records one cold podkit-fetch and
#    one cold podkit-push of big (raw collapsed stacks, all threads, and an
#    SVG flame graph) and prints their top functions (self and inclusive).
# 5. Prints a table (median, min, peak RSS), the ratios and the targets, and
#    writes everything to $BENCH_DIR/results/<UTC time>/.
#
# Knobs (environment):
#   RUNS       runs per measurement (default 5; median and min reported)
#   BENCH_DIR  where everything lives (default /var/tmp/podkit-bench-registry)
#   PODKIT_BIN directory holding podkit-fetch/podkit-push/py-spy
#              (default: the .venv/bin of this checkout)
#   SCALE      size factor of the random files (default 1; e.g. 0.05 for a
#              smoke test of the script itself - figures are then meaningless)
#   PROFILE    0 skips the py-spy profiles (default 1)
#   SNAPSHOT   1 (default): copy this checkout's libaci/stage0/stage1/schemas to
#              $BENCH_DIR/podkit-src at the start and run that (PYTHONPATH), so
#              edits made while the benchmark runs cannot mix versions;
#              0: run whatever PODKIT_BIN imports
#   PODKIT_REV a commit (e.g. HEAD): snapshot that commit (`git archive`)
#              instead of the working tree, so that uncommitted edits are
#              left out (needs SNAPSHOT=1)
#
# Runs as root (drop_caches; the mount namespace for skopeo).  Outside
# $BENCH_DIR it only writes /proc/sys/vm/drop_caches (and creates
# /var/lib/containers/cache if it is missing, as a mount point).
# =============================================================================
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/podkit-bench-registry}
RUNS=${RUNS:-5}
SCALE=${SCALE:-1}
PROFILE=${PROFILE:-1}
SNAPSHOT=${SNAPSHOT:-1}
PODKIT_REV=${PODKIT_REV:-}
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
IMAGES=(big one)
BIC_MNT=/var/lib/containers/cache   # skopeo's blob-info cache dir (root)

log() { printf '[registry-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

((RUNS >= 1)) || die "RUNS must be >= 1"
[[ $(id -u) == 0 ]] || die "run as root (drop_caches, mount namespace for skopeo)"
for t in skopeo curl unshare /usr/bin/docker-registry /usr/bin/time \
         "$PODKIT_BIN/podkit-fetch" "$PODKIT_BIN/podkit-push" "$PODKIT_BIN/python3"; do
    command -v "$t" >/dev/null || die "$t not found"
done
if ((PROFILE)); then command -v "$PODKIT_BIN/py-spy" >/dev/null || die "$PODKIT_BIN/py-spy not found (PROFILE=0 skips profiling)"; fi
FETCH=$PODKIT_BIN/podkit-fetch
PUSH=$PODKIT_BIN/podkit-push
FETCH_BIN=$FETCH

# -----------------------------------------------------------------------------
# helper programs, (re)written every run
# -----------------------------------------------------------------------------
write_helpers() {
    mkdir -p "$LIB"
    cp "$HERE/ocikit.py" "$LIB/ocikit.py"
    cat >"$LIB/mkimage.py" <<'PYEOF'
#!/usr/bin/env python3
"""mkimage.py LAYOUT SCALE - write the OCI layout with the images big and one.

Deterministic: every layer has its own seeded PRNG, all times and owners are
fixed, tars are PAX with sorted entries, gzip has mtime 0 and no file name.
Prints a JSON summary (per image: manifest digest, layers with compressed and
uncompressed sizes, entries).
"""
import json, os, random, sys, tarfile

from ocikit import MIB, Layout, RandomFile

root, scale = sys.argv[1], float(sys.argv[2])
out = Layout(root)


def sized(mib):
    return max(4096, int(mib * MIB * scale))


def layer(seed, random_mib, small=250, overwrite=(), whiteouts=()):
    """One layer: random files adding up to ``random_mib`` MiB + small text files.

    Returns (descriptor, diff_id, uncompressed size, entries)."""
    rng = random.Random("podkit-registry-bench-" + seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(2, 10)))
             for _ in range(800)]

    def fill(add):
        top = "srv/" + seed
        dirs = set()

        def mkdirs(path):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    add(d, tarfile.DIRTYPE, mode=0o755)

        for name in whiteouts:
            mkdirs(name)
            d, b = os.path.split(name)
            add(f"{d}/.wh.{b}")
        for name in overwrite:
            mkdirs(name)
            add(name, data=b"overwritten by layer %s\n" % seed.encode())
        # random files: sizes 1-20 MiB until random_mib is reached
        left, i = sized(random_mib), 0
        while left > 0:
            k = min(left, sized(rng.choice((1, 2, 3, 5, 8, 12, 20))))
            name = f"{top}/data/blob{i:03d}.bin"
            mkdirs(name)
            add(name, fileobj=RandomFile(rng, k), size=k, mode=0o644)
            left -= k
            i += 1
        # small text files (1-8 KiB), a few owners and modes, some symlinks
        for j in range(small):
            text = " ".join(rng.choices(words, k=rng.randint(150, 1200))).encode()[:rng.randint(1024, 8192)]
            name = f"{top}/etc/d{j // 50:02d}/f{j:04d}.conf"
            mkdirs(name)
            r = rng.random()
            mode, uid, gid = (0o755, 0, 0) if r < 0.1 else (0o600, 1000, 1000) if r < 0.2 else (0o644, 0, 0)
            add(name, data=text, mode=mode, uid=uid, gid=gid)
        for j in range(5):
            name = f"{top}/bin/link{j}"
            mkdirs(name)
            add(name, tarfile.SYMTYPE, target=f"../etc/d00/f{j:04d}.conf")

    return out.layer(fill, compresslevel=6)


def image(tag, layers):
    made, info = [], []
    for seed, kw in layers:
        desc, diff_id, usize, entries = layer(seed, **kw)
        made.append((desc, diff_id))
        info.append({"digest": desc["digest"], "compressed": desc["size"],
                     "uncompressed": usize, "entries": entries})
        print(f"  {tag} layer {seed}: {desc['size'] / 1e6:.1f} MB gzip, "
              f"{usize / 1e6:.1f} MB tar, {entries} entries", file=sys.stderr)
    mdesc = out.image(tag, made, [f"mkimage.py {s}" for s, _ in layers])
    summary[tag] = {"manifest": mdesc["digest"], "layers": info,
                    "compressed": sum(x["compressed"] for x in info),
                    "uncompressed": sum(x["uncompressed"] for x in info),
                    "largest_layer": max(x["compressed"] for x in info),
                    "entries": sum(x["entries"] for x in info)}


summary = {}
RANDOM_MIB = [40, 36, 32, 28, 24, 20, 16, 12]          # big: 208 MiB of random data
big = [(f"l{k + 1}", {"random_mib": mib}) for k, mib in enumerate(RANDOM_MIB)]
big[-1][1].update(overwrite=["srv/l1/etc/d00/f0001.conf"], whiteouts=["srv/l1/etc/d00/f0002.conf"])
image("big", big)
image("one", [("one", {"random_mib": 23.5, "small": 250})])
out.close()
json.dump(summary, sys.stdout, indent=1)
PYEOF
    cat >"$LIB/profile.py" <<'PYEOF'
#!/usr/bin/env python3
"""profile.py RAW [N] - top functions of a py-spy raw (collapsed) profile.

Lines are "frame;frame;...;frame COUNT", outermost first (with --threads the
first frame is the thread).  Self = samples where the function is the leaf;
inclusive = samples where it is anywhere on the stack (counted once).
"""
import collections, re, sys

path, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 15
self_c, incl_c, threads = collections.Counter(), collections.Counter(), collections.Counter()
total = 0


def short(frame):
    # "func (path/to/mod.py:123)" -> "func (mod.py)"
    m = re.match(r"(.*) \((?:.*/)?([^/:]+)(?::\d+)?\)$", frame)
    return f"{m.group(1)} ({m.group(2)})" if m else frame


for line in open(path):
    line = line.rstrip("\n")
    if not line:
        continue
    stack, _, n = line.rpartition(" ")
    n = int(n)
    frames = stack.split(";")
    thread = "?"
    while frames and frames[0].startswith(("thread (", "process ")):
        if frames[0].startswith("thread ("):
            thread = frames[0]
        frames = frames[1:]
    if not frames:
        continue
    threads[thread] += n
    total += n
    names = [short(f) for f in frames]
    self_c[names[-1]] += n
    for f in set(names):
        incl_c[f] += n

print(f"{total} samples (active threads only, all threads summed); per thread: "
      + ", ".join(str(v) for _, v in threads.most_common()))
print("\nself (leaf) - top %d" % top)
for f, n in self_c.most_common(top):
    print(f"  {100 * n / total:5.1f}%  {f}")
print("\ninclusive - top %d (without <module>/main/run wrappers)" % top)
shown = 0
for f, n in incl_c.most_common():
    if f.startswith(("<module>", "main (", "run (")) or f.endswith(("(threading.py)", "(thread.py)")):
        continue                       # entry points, thread and pool plumbing
    print(f"  {100 * n / total:5.1f}%  {f}")
    shown += 1
    if shown == top:
        break
PYEOF
    cat >"$LIB/phases.py" <<'PYEOF'
#!/usr/bin/env python3
"""phases.py SCRIPT ARGS... - run a podkit-* script with timers around podkit-fetch's steps.

Wraps (if this podkit has them) the manifest request, the platform/manifest
resolution, the parallel layer downloads into the store's staging, the
optional extraction and the commit, and prints when each starts and ends
and the peak RSS so far.  Times are from the interpreter's first line
(start-up before it is not counted; `python3 -c pass` is ~20 ms).
"""
import importlib, resource, runpy, sys, time

T0 = time.perf_counter()
HOOKS = [("libaci.registry.client", "Registry.get_manifest", "manifest GET"),
         ("libaci.sources.oci_import", "resolve_manifest", "resolve"),
         ("libaci.sources.oci_import", "read_verified", "small blob"),
         ("libaci.sources.oci_import", "Validation.wait", "schema check"),
         ("libaci.store", "Staging.download", "a blob"),
         ("libaci.store", "Staging.extract", "extract"),
         ("libaci.store", "Staging.commit", "commit")]


def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def wrap(modname, attr, label):
    try:
        mod = importlib.import_module(modname)
    except ImportError:
        return
    owner, _, name = attr.rpartition(".")
    obj = getattr(mod, owner) if owner else mod
    f = getattr(obj, name, None)
    if f is None:
        print(f"  ({attr} not in this podkit)", file=sys.stderr)
        return

    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            now = time.perf_counter()
            print(f"  {label:12s} {now - t:6.3f} s (from {t - T0:6.3f} to {now - T0:6.3f} s), "
                  f"peak RSS so far {rss():.0f} MiB", file=sys.stderr)
    setattr(obj, name, timed)


for hook in HOOKS:
    wrap(*hook)
print(f"  imports      {time.perf_counter() - T0:6.3f} s (the hooked modules and what they pull in), "
      f"peak RSS {rss():.0f} MiB", file=sys.stderr)
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print(f"  total        {time.perf_counter() - T0:6.3f} s in the interpreter, peak RSS {rss():.0f} MiB",
          file=sys.stderr)
PYEOF
    cat >"$LIB/importtime.py" <<'PYEOF'
#!/usr/bin/env python3
"""importtime.py FILE [N] - the N slowest top-level imports of a -X importtime log.

Lines: "import time: SELF_US | CUMULATIVE_US | NAME", NAME indented by nesting
(top level: one space)."""
import sys

rows, total = [], 0
for line in open(sys.argv[1]):
    if not line.startswith("import time:") or "[us]" in line:
        continue
    own, cum, name = line[len("import time:"):].rstrip("\n").split("|", 2)
    total += int(own)
    if not name.startswith("  "):
        rows.append((int(cum), name.strip()))
rows.sort(reverse=True)
print(f"imports: {total / 1000:.0f} ms in all (sum of self times; -X importtime inflates them)")
for us, name in rows[: int(sys.argv[2]) if len(sys.argv) > 2 else 10]:
    print(f"  {us / 1000:6.1f} ms  {name}")
PYEOF
    cat >"$LIB/pyfloor.py" <<'PYEOF'
"""pyfloor.py ADDR REPO TAG DIR - the least a fetch written in Python has to do.

GET the manifest (OCI and Docker schema2 in Accept), then the config and the
layers on 4 threads over plain HTTP/1.1 sockets: every blob is hashed (sha256)
and checked, written to DIR/<hex> in 1 MiB blocks with writeback started every
8 MiB and an fsync at the end, as podkit-fetch does.  No store, no models, no
option parsing, no retries, no auth, no TLS.  Runs under `python3 -S` and ends
with os._exit, as podkit's commands do, so the difference to podkit-fetch is
what podkit does beyond this.
"""
import hashlib, json, os, socket, sys, threading

ADDR, REPO, TAG, DEST = sys.argv[1:5]
HOST, _, PORT = ADDR.rpartition(":")
ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
CHUNK, WRITEBACK = 1 << 20, 8 << 20


def get(path, accept=None):
    s = socket.create_connection((HOST, int(PORT)))
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: {ADDR}\r\nConnection: close\r\n"
               + (f"Accept: {accept}\r\n" if accept else "") + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(65536)
        if not b:
            raise SystemExit(f"{path}: connection closed in the headers")
        head += b
    head, _, body = head.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if lines[0].split()[1] != "200":
        raise SystemExit(f"{path}: {lines[0]}")
    size = next(int(l.split(":", 1)[1]) for l in lines[1:] if l.lower().startswith("content-length:"))
    return s, size, body


def blob(digest, size):
    s, n, body = get(f"/v2/{REPO}/blobs/{digest}")
    if n != size:
        raise SystemExit(f"{digest}: {n} bytes served, {size} expected")
    h = hashlib.sha256()
    path = os.path.join(DEST, digest.split(":")[1])
    fd = os.open(path + ".part", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    got = flushed = 0
    if body:
        h.update(body)
        os.write(fd, body)
        got = len(body)
    while got < n:
        k = s.recv_into(mv, min(CHUNK, n - got))
        if not k:
            raise SystemExit(f"{digest}: connection closed at byte {got}")
        h.update(mv[:k])
        view = mv[:k]
        while view:
            view = view[os.write(fd, view):]
        got += k
        if got - flushed >= WRITEBACK:
            os.posix_fadvise(fd, flushed, got - flushed, os.POSIX_FADV_DONTNEED)
            flushed = got
    os.fsync(fd)
    os.close(fd)
    s.close()
    if "sha256:" + h.hexdigest() != digest:
        raise SystemExit(f"{digest}: digest mismatch")
    os.rename(path + ".part", path)


def main():
    s, n, body = get(f"/v2/{REPO}/manifests/{TAG}", ACCEPT)
    while len(body) < n:
        body += s.recv(n - len(body))
    s.close()
    m = json.loads(body)
    os.makedirs(DEST, exist_ok=True)
    todo = [(d["digest"], d["size"]) for d in [m["config"], *m["layers"]]]
    lock, errors = threading.Lock(), []

    def work():
        while True:
            with lock:
                if not todo or errors:
                    return
                d = todo.pop(0)
            try:
                blob(*d)
            except BaseException as e:
                errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print(f"pyfloor: {errors[0]}", file=sys.stderr)
        os._exit(1)
    print("sha256:" + hashlib.sha256(body).hexdigest())
    sys.stdout.flush()
    os._exit(0)


main()
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
TOOLS = {"podkit": "podkit-fetch", "skopeo": "skopeo copy", "curl": "curl, all blobs (floor)",
         "pyfloor": "python3 -S pyfloor.py (floor of a fetch in Python)",
         "podkit-extract": "podkit-fetch --extract (information)"}


def stats(cell, image, tool):
    rs = [r for r in rows if r[0] == cell and r[1] == image and r[2] == tool]
    if not rs:
        return None
    col = lambda i: [float(r[i]) for r in rs]
    return {"n": len(rs), "med": statistics.median(col(4)), "min": min(col(4)),
            "rss": max(col(5)) / 1024, "cpu": statistics.median([a + b for a, b in zip(col(6), col(7))])}


lines = []
p = lines.append
for tag in ("big", "one"):
    i = img[tag]
    p("image %s: %d layers, %.0f MB gzip (largest layer %.0f MB), %.0f MB uncompressed, %d tar entries"
      % (tag, len(i["layers"]), i["compressed"] / MB, i["largest_layer"] / MB,
         i["uncompressed"] / MB, i["entries"]))
p("machine: %s; %s CPUs; %s; runs per cell: %s; page cache dropped before every run: %s"
  % (env.get("kernel"), env.get("cpus"), env.get("fs"), env.get("runs"), env.get("drop")))
p("podkit: %s" % env.get("podkit_src", "?"))
p("peers: %s; %s" % (env.get("skopeo"), env.get("registry")))
p("")
p("| what | image | tool | median s | min s | CPU s (user+sys, median) | peak RSS MB |")
p("|---|---|---|---:|---:|---:|---:|")
S = {}
order = [("fetch-cold", "cold fetch"), ("fetch-warm", "warm re-fetch"), ("push-cold", "cold push")]
for cell, label in order:
    for tag in ("big", "one"):
        for tool in ("podkit", "podkit-extract", "skopeo", "curl", "pyfloor"):
            s = stats(cell, tag, tool)
            if s is None:
                continue
            S[cell, tag, tool] = s
            name = TOOLS[tool] if cell.startswith("fetch") else {"podkit": "podkit-push"}.get(tool, TOOLS[tool])
            p("| %s | %s | %s | %.2f | %.2f | %.2f | %.0f |" % (label, tag, name, s["med"], s["min"],
                                                            s["cpu"], s["rss"]))
p("")
targets = [("fetch-cold", "cold fetch    podkit/skopeo", 0.6),
           ("fetch-warm", "warm re-fetch podkit/skopeo", 2.0),
           ("push-cold", "cold push     podkit/skopeo", 0.7)]
for tag in ("big", "one"):
    for cell, label, target in targets:
        a, b = S.get((cell, tag, "podkit")), S.get((cell, tag, "skopeo"))
        if not a or not b:
            continue
        r = a["med"] / b["med"]
        if tag == "big":
            p("ratio %s (big) = %.2f (target <= %.1f)%s" % (label, r, target, "" if r <= target else "  MISSED"))
        else:
            p("ratio %s (one) = %.2f (information)" % (label, r))
    if tag == "big":
        for x, y, label, note in (
                ("podkit-extract", "skopeo", "podkit-fetch --extract/skopeo", " (information: also extracts)"),
                ("podkit", "curl", "podkit/curl floor", ""),
                ("pyfloor", "skopeo", "python floor/skopeo", " (the least a fetch in Python takes here)"),
                ("podkit", "pyfloor", "podkit/python floor", None)):
            a, b = S.get(("fetch-cold", "big", x)), S.get(("fetch-cold", "big", y))
            if a and b:
                if note is None:
                    note = " (%+.0f ms)" % (1000 * (a["med"] - b["med"]))
                p("ratio cold fetch %s (big) = %.2f%s" % (label, a["med"] / b["med"], note))
p("")
p("peak RSS MB (max over runs; target for podkit <= 40 MB, flat in layer size)")
p("")
p("| tool | one (1 layer, %.0f MB) | big (8 layers, %.0f MB) |" % (img["one"]["compressed"] / MB,
                                                               img["big"]["compressed"] / MB))
p("|---|---:|---:|")
worst = 0
for cell, tool, name in (("fetch-cold", "podkit", "podkit-fetch (cold)"),
                         ("fetch-warm", "podkit", "podkit-fetch (warm)"),
                         ("push-cold", "podkit", "podkit-push"),
                         ("fetch-cold", "podkit-extract", "podkit-fetch --extract (cold)"),
                         ("fetch-cold", "skopeo", "skopeo copy (fetch, cold)"),
                         ("fetch-warm", "skopeo", "skopeo copy (fetch, warm)"),
                         ("push-cold", "skopeo", "skopeo copy (push)")):
    o, b = S.get((cell, "one", tool)), S.get((cell, "big", tool))
    if not o or not b:
        continue
    if tool == "podkit":  # --extract is there for information only
        worst = max(worst, o["rss"], b["rss"])
    p("| %s | %.0f | %.0f |" % (name, o["rss"], b["rss"]))
p("")
p("podkit peak RSS = %.0f MB (target <= 40)%s" % (worst, "" if worst <= 40 else "  MISSED"))
print("\n".join(lines))
PYEOF
}

# -----------------------------------------------------------------------------
# the image (cached)
# -----------------------------------------------------------------------------
stamp() {
    { echo "image v$IMAGE_VERSION scale $SCALE"; cat "$LIB/mkimage.py" "$LIB/ocikit.py"
      "$PY" -c 'import zlib; print(zlib.ZLIB_RUNTIME_VERSION)'; } \
        | sha256sum | cut -c1-16
}

ensure_image() {
    mkdir -p "$CACHE"
    if [[ -f $LAYOUT/index.json && -f $CACHE/image.json && $(cat "$CACHE/stamp" 2>/dev/null) == "$(stamp)" ]]; then
        log "image cached in $LAYOUT"
        return
    fi
    local old="" new
    [[ -f $CACHE/image.json ]] && old=$(grep -o '"manifest": "[^"]*"' "$CACHE/image.json" | sort)
    log "building the images in $LAYOUT (scale $SCALE)"
    rm -rf "$LAYOUT.tmp" "$LAYOUT"
    "$PY" "$LIB/mkimage.py" "$LAYOUT.tmp" "$SCALE" >"$CACHE/image.json.tmp"
    mv "$LAYOUT.tmp" "$LAYOUT"
    mv "$CACHE/image.json.tmp" "$CACHE/image.json"
    stamp >"$CACHE/stamp"
    new=$(grep -o '"manifest": "[^"]*"' "$CACHE/image.json" | sort)
    if [[ -n $old && $old != "$new" ]]; then
        log "note: the rebuilt image differs from the previous build (recipe or zlib changed?)"
    fi
}

# img_field TAG KEY: a field of image.json
img_field() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]])' "$CACHE/image.json" "$1" "$2"; }
# img_blobs TAG: config and layer digests of TAG
img_blobs() {
    "$PY" - "$LAYOUT" "$(img_field "$1" manifest)" <<'EOF'
import json, os, sys
m = json.load(open(os.path.join(sys.argv[1], "blobs", "sha256", sys.argv[2][7:])))
print(" ".join([m["config"]["digest"]] + [l["digest"] for l in m["layers"]]))
EOF
}

# -----------------------------------------------------------------------------
# registries: started by this script, stopped by PID
# -----------------------------------------------------------------------------
declare -A REG_PID=() REG_DIR=() REG_ADDR=()
USED_PORTS=" "

free_port() {
    local port
    while :; do
        port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        [[ $USED_PORTS == *" $port "* ]] || break
    done
    USED_PORTS+="$port "
    echo "$port"
}

# start_registry NAME DIR: docker-registry on a new port, storage DIR/data
start_registry() {
    local name=$1 dir=$2 port addr pid i
    port=$(free_port)
    addr=127.0.0.1:$port
    rm -rf "$dir"
    mkdir -p "$dir/data"
    cat >"$dir/config.yml" <<EOF
# docker-registry (distribution 2.8) config written by bench/registry.sh
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $addr
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    # setsid: its own session (no terminal signals); env -i: no REGISTRY_*
    # variable of the caller's becomes configuration; neither forks, so $! is
    # the registry's PID
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin setsid /usr/bin/docker-registry serve "$dir/config.yml" \
        >"$dir/registry.log" 2>&1 </dev/null &
    pid=$!
    REG_PID[$name]=$pid REG_DIR[$name]=$dir REG_ADDR[$name]=$addr
    for ((i = 0; i < 100; i++)); do
        curl -fsS -o /dev/null --max-time 1 "http://$addr/v2/" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$dir/registry.log" >&2; die "registry $name exited"; }
        sleep 0.1
    done
    cat "$dir/registry.log" >&2
    die "registry $name did not come up on $addr"
}

# stop_registry NAME: kill the PID we started (only if it is docker-registry)
stop_registry() {
    local name=$1 pid i
    pid=${REG_PID[$name]:-}
    [[ -n $pid ]] || return 0
    unset "REG_PID[$name]"
    if kill -0 "$pid" 2>/dev/null && [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */docker-registry ]]; then
        kill -TERM "$pid"
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
    fi
    wait "$pid" 2>/dev/null || true
}

stop_all() {
    local name
    for name in "${!REG_PID[@]}"; do stop_registry "$name"; done
}
trap stop_all EXIT

# digest the registry NAME serves for REPO:TAG
served_digest() {
    curl -fsSI -H "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json" \
        "http://${REG_ADDR[$1]}/v2/$2/manifests/$3" | tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }'
}

# -----------------------------------------------------------------------------
# measuring
# -----------------------------------------------------------------------------



# warm_inputs TOOL DEST: re-read what a warm re-fetch reads: the program, the
# source registry's storage, the destination's metadata (not the extracted
# layer trees: depth <= 4 and < 1 MB)
warm_inputs() {
    if [[ $1 == podkit* ]]; then
        find "${PYDIRS[@]}" -type f \( -name '*.py' -o -name '*.pyc' -o -name '*.so' \) \
            -exec cat {} + >/dev/null
        cat "$(readlink -f "$PODKIT_BIN/python3")" >/dev/null
        if [[ -n ${PODKIT_BUNDLE:-} && -f $PODKIT_BUNDLE ]]; then cat "$PODKIT_BUNDLE" >/dev/null; fi
    else
        cat /usr/bin/skopeo >/dev/null
    fi
    find "${REG_DIR[src]}/data" -type f -exec cat {} + >/dev/null
    find "$2" -maxdepth 4 -type f -size -1M -exec cat {} + >/dev/null
}

# REGISTRY_AUTH_FILE only for the clients: not exported, as docker-registry
# reads REGISTRY_* variables as configuration (REGISTRY_AUTH_FILE = auth.file)
AUTH=(env "REGISTRY_AUTH_FILE=$WORK/auth.json")
# --insecure-options=image: no signature check (skopeo copy checks none either, and
# the test image is not signed); without it a trust policy may refuse the image
NOVERIFY=--insecure-options=image
FETCH=("${AUTH[@]}" "$FETCH" "$NOVERIFY")
PUSH=("${AUTH[@]}" "$PUSH")
# skopeo with an empty, fresh blob-info cache (private mount namespace)
SKOPEO=("${AUTH[@]}" unshare -m sh -c 'mount --bind "$0" '"$BIC_MNT"' && exec skopeo "$@"' "$WORK/bic")
fresh_bic() { rm -rf "$WORK/bic"; mkdir -p "$WORK/bic"; }

# t NAME CMD... : run CMD under /usr/bin/time; sets T_SECS, T_RSS (KiB), T_USER, T_SYS
t() {
    local name=$1 t0 t1
    shift
    t0=$EPOCHREALTIME
    if ! /usr/bin/time -f '%M %U %S' -o "$WORK/rss" "$@" >"$WORK/out" 2>"$WORK/err"; then
        cat "$WORK/err" >&2
        die "$name failed: $*"
    fi
    t1=$EPOCHREALTIME
    T_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    read -r T_RSS T_USER T_SYS < <(tail -n1 "$WORK/rss")
}

record() {   # CELL IMAGE TOOL RUN
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$T_SECS" "$T_RSS" "$T_USER" "$T_SYS" \
        >>"$RESULTS/times.tsv"
    log "$(printf '%-10s %-3s %-16s run %d: %7.2f s  %6d KiB  (user %s sys %s)' "$1" "$2" "$3" "$4" \
        "$T_SECS" "$T_RSS" "$T_USER" "$T_SYS")"
}

check_fetched() {   # TOOL IMAGE DEST
    local want got
    want=$(img_field "$2" manifest)
    case $1 in
    podkit* | pyfloor) got=$(tail -n1 "$WORK/out") ;;
    skopeo) got=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$3/index.json") ;;
    esac
    [[ $got == "$want" ]] || die "$1 fetch of $2: got manifest '$got', expected $want"
}

# fetch CELL TOOL IMAGE RUN: one fetch of IMAGE from the source registry
fetch() {
    local cell=$1 tool=$2 tag=$3 run=$4 dest=$WORK/fetch-$2-$3 src=docker://${REG_ADDR[src]}/bench/$3:1
    if [[ $cell == fetch-cold ]]; then rm -rf "$dest"; fi
    if [[ $tool == skopeo ]]; then fresh_bic; fi
    settle
    if [[ $cell == fetch-warm ]]; then warm_inputs "$tool" "$dest"; fi
    case $tool in
    podkit) t "$cell" "${FETCH[@]}" --store "$dest" -q "$src" ;;
    podkit-extract) t "$cell" "${FETCH[@]}" --extract --store "$dest" -q "$src" ;;
    skopeo) t "$cell" "${SKOPEO[@]}" copy -q --retry-times 0 --src-tls-verify=false "$src" "oci:$dest:$tag" ;;
    esac
    check_fetched "$tool" "$tag" "$dest"
    record "$cell" "$tag" "$tool" "$run"
}

# floor IMAGE RUN: every blob of IMAGE with one curl, nothing written
floor() {
    local tag=$1 run=$2 d args=()
    for d in $(img_blobs "$tag"); do args+=(-o /dev/null "http://${REG_ADDR[src]}/v2/bench/$tag/blobs/$d"); done
    settle
    t floor curl -fsS "${args[@]}"
    record fetch-cold "$tag" curl "$run"
}

# pyfloor IMAGE RUN: the least a fetch in Python does (see pyfloor.py), same interpreter
pyfloor() {
    local tag=$1 run=$2 dest=$WORK/fetch-pyfloor-$1
    rm -rf "$dest"
    settle
    t pyfloor "$PODKIT_BIN/python3" -S "$LIB/pyfloor.py" "${REG_ADDR[src]}" "bench/$tag" 1 "$dest"
    check_fetched pyfloor "$tag" "$dest"
    record fetch-cold "$tag" pyfloor "$run"
}

# push TOOL IMAGE RUN: to a fresh registry (empty storage, new port)
push() {
    local tool=$1 tag=$2 run=$3 repo want got
    want=$(img_field "$tag" manifest)
    stop_registry push
    start_registry push "$WORK/push-registry"
    if [[ $tool == skopeo ]]; then fresh_bic; fi
    settle
    case $tool in
    podkit)
        repo=bench/push$run
        t push "${PUSH[@]}" --store "$WORK/store" -q "$want" "docker://${REG_ADDR[push]}/$repo:1"
        got=$(tail -n1 "$WORK/out")
        [[ $got == "$want" ]] || die "podkit-push printed '$got', expected $want" ;;
    skopeo)
        repo=bench/skopeo$run
        t push "${SKOPEO[@]}" copy -q --retry-times 0 --dest-tls-verify=false \
            "oci:$LAYOUT:$tag" "docker://${REG_ADDR[push]}/$repo:1" ;;
    esac
    got=$(served_digest push "$repo" 1)
    [[ $got == "$want" ]] || die "$tool push of $tag: the registry serves $repo:1 as '$got', expected $want"
    record push-cold "$tag" "$tool" "$run"
    stop_registry push
    rm -rf "$WORK/push-registry"
}

# spy OUT FORMAT RATE CMD...: py-spy record of CMD (all threads, no idle samples)
spy() {
    local out=$1 fmt=$2 rate=$3
    shift 3
    "$PODKIT_BIN/py-spy" record --threads --rate "$rate" --format "$fmt" -o "$out" -- "$@" \
        >"$out.log" 2>&1 || { cat "$out.log" >&2; die "py-spy failed: $*"; }
}

# push_fresh OUT FORMAT RATE: profile one podkit-push of big to a fresh registry
push_fresh() {
    stop_registry push
    start_registry push "$WORK/push-registry"
    settle
    spy "$1" "$2" "$3" "${PUSH[@]}" --store "$WORK/store" -q "$(img_field big manifest)" \
        "docker://${REG_ADDR[push]}/bench/prof:1"
    stop_registry push
    rm -rf "$WORK/push-registry"
}

profile() {
    local dir=$RESULTS/profile store=$WORK/prof-store tag fmt ext
    local src=docker://${REG_ADDR[src]}/bench/big:1
    mkdir -p "$dir"
    for fmt in raw flamegraph; do
        ext=${fmt/flamegraph/svg}
        rm -rf "$store"
        settle
        spy "$dir/fetch-cold-big.$ext" "$fmt" 250 "${FETCH[@]}" --store "$store" -q "$src"
        settle
        warm_inputs podkit "$store"
        spy "$dir/fetch-warm-big.$ext" "$fmt" 1000 "${FETCH[@]}" --store "$store" -q "$src"
        push_fresh "$dir/push-cold-big.$ext" "$fmt" 250
    done
    # import costs of a warm re-fetch (nothing to download, nothing to extract)
    settle
    warm_inputs podkit "$store"
    PYTHONPROFILEIMPORTTIME=1 "${FETCH[@]}" --store "$store" -q "$src" >/dev/null 2>"$dir/fetch-warm-big.importtime"
    rm -rf "$store"
    # the steps of a cold podkit-fetch (in-process timers)
    {
        for tag in big one; do
            rm -rf "$store"
            settle
            echo "podkit-fetch $tag, cold:"
            "${AUTH[@]}" "$PODKIT_BIN/python3" "$LIB/phases.py" "$FETCH_BIN" "$NOVERIFY" --store "$store" -q \
                "docker://${REG_ADDR[src]}/bench/$tag:1" 2>&1 >/dev/null
        done
    } >"$dir/phases.txt"
    rm -rf "$store"
    {
        echo "== podkit-fetch: phases (wall clock, cold; in-process timers) =="
        cat "$dir/phases.txt"
        echo
        local what
        for what in fetch-cold fetch-warm push-cold; do
            echo "== podkit-${what%%-*} big, ${what#*-} (py-spy) =="
            "$PY" "$LIB/profile.py" "$dir/$what-big.raw" 15
            echo
        done
        echo "== podkit-fetch big, warm: imports (-X importtime) =="
        "$PY" "$LIB/importtime.py" "$dir/fetch-warm-big.importtime" 10
    } >"$dir/top.txt"
    log "profiles in $dir (summary: $dir/top.txt; flame graphs: *.svg)"
}


snapshot_podkit() {
    ((SNAPSHOT)) || { SRC_DESC="live tree $SRC_TOP, sources sha256 $(src_hash "$SRC_TOP")"; return; }
    local snap=$BENCH_DIR/podkit-src d got
    rm -rf "$snap"
    mkdir -p "$snap"
    if [[ -n $PODKIT_REV ]]; then
        local rev dirs=()
        rev=$(git -C "$SRC_TOP" rev-parse --verify --short "$PODKIT_REV^{commit}") || die "PODKIT_REV: no commit $PODKIT_REV"
        for d in libaci stage0 stage1 schemas; do
            if git -C "$SRC_TOP" cat-file -e "$rev:$d" 2>/dev/null; then dirs+=("$d"); fi
        done
        git -C "$SRC_TOP" archive "$rev" "${dirs[@]}" | tar -x -C "$snap"
    else
        for d in libaci stage0 stage1 schemas; do
            if [[ -d $SRC_TOP/$d ]]; then cp -a "$SRC_TOP/$d" "$snap/"; fi
        done
    fi
    find "$snap" -name __pycache__ -prune -exec rm -rf {} +
    "$PODKIT_BIN/python3" -m compileall -q "$snap" >/dev/null
    export PYTHONPATH=$snap
    # from /: `python3 -c` puts the working directory first on sys.path (a
    # checkout as the working directory would shadow the snapshot there; the
    # podkit-* scripts themselves do not look at the working directory)
    got=$(cd / && "$PODKIT_BIN/python3" -c 'import libaci, stage0.cli; print(libaci.__file__)')
    [[ $got == "$snap/libaci/__init__.py" ]] || die "snapshot not used (libaci from $got)"
    # the launchers' module bundle, built for the snapshot (the installed one is built
    # for the checkout without PYTHONPATH, and switches itself off here)
    (cd / && "$PODKIT_BIN/python3" -m stage0.cli.launchers --bundle "$BENCH_DIR/podkit-modules.bundle" \
        "$PODKIT_BIN") 2>>"$BENCH_DIR/bundle.log" || die "building the module bundle failed (see $BENCH_DIR/bundle.log)"
    export PODKIT_BUNDLE=$BENCH_DIR/podkit-modules.bundle
    got=$(cd / && { sed -e '/^from stage0\.cli/,$d' "$PODKIT_BIN/podkit-fetch"
                    echo 'import libaci.store; print(type(libaci.store.__spec__.loader).__name__)'; } |
          "$PODKIT_BIN/python3" -S -)
    [[ $got == BundledLoader ]] || die "the launchers do not use the module bundle (libaci.store by $got)"
    SRC_DIR=$snap
    if [[ -n $PODKIT_REV ]]; then
        SRC_DESC="git $rev (exported with git archive), sources sha256 $(src_hash "$snap") (snapshot in $snap)"
        return
    fi
    SRC_DESC="$(git_state libaci stage0 stage1 schemas), sources sha256 $(src_hash "$snap") (snapshot in $snap)"
}

main() {
    snapshot_podkit
    python_dirs
    write_helpers
    ensure_image
    rm -rf "$WORK"
    mkdir -p "$WORK" "$RESULTS"
    [[ -d $BIC_MNT ]] || mkdir -p "$BIC_MNT"
    cp "$CACHE/image.json" "$RESULTS/image.json"
    # no credentials (REGISTRY_AUTH_FILE, see AUTH); "{}": skopeo 1.9 refuses a
    # 0-byte auth file ("unexpected end of JSON input")
    echo '{}' >"$WORK/auth.json"
    local tag

    start_registry src "$WORK/src-registry"
    log "source registry pid ${REG_PID[src]} on ${REG_ADDR[src]}"
    for tag in "${IMAGES[@]}"; do
        fresh_bic
        "${SKOPEO[@]}" copy -q --retry-times 0 --dest-tls-verify=false "oci:$LAYOUT:$tag" \
            "docker://${REG_ADDR[src]}/bench/$tag:1"
        [[ $(served_digest src "bench/$tag" 1) == "$(img_field "$tag" manifest)" ]] ||
            die "the source registry serves bench/$tag:1 with another digest than the layout's"
    done
    log "pushed ${IMAGES[*]} to the source registry"
    log "fetching ${IMAGES[*]} into the push store $WORK/store"
    for tag in "${IMAGES[@]}"; do
        [[ $("${FETCH[@]}" --store "$WORK/store" -q "docker://${REG_ADDR[src]}/bench/$tag:1" | tail -n1) == \
            "$(img_field "$tag" manifest)" ]] || die "podkit-fetch of $tag printed another ID"
    done
    {
        echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "kernel=$(uname -sr)"
        echo "cpus=$(nproc)"
        echo "fs=$(df -T "$WORK" | awk 'NR == 2 { print $2 }') on $(df "$WORK" | awk 'NR == 2 { print $1 }')"
        echo "runs=$RUNS"
        echo "drop=$([[ $CAN_DROP == 1 ]] && echo yes || echo 'no (not permitted)')"
        echo "skopeo=$(skopeo --version)"
        echo "registry=docker-registry $(docker-registry --version | awk '{ print $3 }')"
        echo "podkit=$("$FETCH_BIN" --version)"
        echo "podkit_src=$SRC_DESC"
    } >"$RESULTS/env.txt"
    printf 'cell\timage\ttool\trun\tsecs\trss_kib\tuser\tsys\n' >"$RESULTS/times.tsv"
    local i tool tools
    for ((i = 1; i <= RUNS; i++)); do
        if ((i % 2)); then tools=(podkit skopeo); else tools=(skopeo podkit); fi
        for tag in "${IMAGES[@]}"; do
            for tool in "${tools[@]}"; do fetch fetch-cold "$tool" "$tag" "$i"; done
            for tool in "${tools[@]}"; do fetch fetch-warm "$tool" "$tag" "$i"; done
            fetch fetch-cold podkit-extract "$tag" "$i"
            floor "$tag" "$i"
            pyfloor "$tag" "$i"
            rm -rf "$WORK"/fetch-*
            for tool in "${tools[@]}"; do push "$tool" "$tag" "$i"; done
        done
    done
    ((PROFILE == 0)) || profile
    if ((SNAPSHOT)) && [[ -z $PODKIT_REV && $(src_hash "$SRC_TOP") != $(src_hash "$SRC_DIR") ]]; then
        log "note: podkit's working tree changed during the run; the snapshot taken at the start was measured"
    fi
    "$PY" "$LIB/report.py" "$RESULTS" | tee "$RESULTS/summary.md"
    if ((PROFILE)); then cat "$RESULTS/profile/top.txt"; fi
    log "results in $RESULTS"
    stop_all
    rm -rf "$WORK"
}
main "$@"; exit $?
