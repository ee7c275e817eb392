"""The pod lifecycle with real pods (the nspawn stage1): prepare, run-prepared, list,
status, enter, stop, rm and gc, killed stage1s, and every command's bad input."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from datetime import datetime

import pytest
from helpers import ROOT, TOOLS, store_state

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("systemd-nspawn") is None,
    reason="pods need root and systemd-nspawn")

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
APP = "busybox"


def tool(verb: str) -> str:
    return os.path.join(TOOLS, f"podkit-{verb}")


def kv(text: str) -> dict[str, str]:
    """podkit-status output as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines())


def pod_dir(store: str, uuid: str) -> str | None:
    for state in ("embryo", "prepare", "prepared", "run", "exited-garbage", "garbage"):
        d = os.path.join(store, "pods", state, uuid)
        if os.path.isdir(d):
            return d
    return None


def row(listing: str, uuid: str) -> str | None:
    """The line of a podkit-list table for the pod (by its short UUID)."""
    for line in listing.splitlines()[1:]:
        if line.split()[0] in (uuid, uuid[:8]):
            return line
    return None


def alive(pid: int) -> bool:
    """A live, non-zombie process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Pods:
    """Pods started in the background with podkit-run; all stopped and removed at the end."""

    def __init__(self, podkit, tmp_path) -> None:  # type: ignore[no-untyped-def]
        self.podkit = podkit
        self.tmp = tmp_path
        self.started: list[subprocess.Popen] = []
        self.uuids: list[str] = []

    def start(self, *cmd: str, opts: tuple[str, ...] = (), ready: bool = True) -> tuple[
            str, subprocess.Popen, str]:
        """(uuid, the podkit-run process, the file with the app's output)."""
        n = len(self.started)
        uuid_file = str(self.tmp / f"pod-{n}.uuid")
        out = str(self.tmp / f"pod-{n}.out")
        with open(out, "wb") as f:
            p = subprocess.Popen([tool("run"), "--store", self.podkit.store,
                                  "--uuid-file-save", uuid_file, *opts, APP, "--", *cmd],
                                 stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        self.started.append(p)
        deadline = time.monotonic() + 30
        while not os.path.exists(uuid_file):
            assert p.poll() is None, f"podkit-run exited with {p.returncode}: " \
                                     f"{open(out).read()}"
            assert time.monotonic() < deadline, "podkit-run wrote no UUID"
            time.sleep(0.02)
        with open(uuid_file) as f:
            uuid = f.read().strip()
        self.uuids.append(uuid)
        if ready:
            st = kv(self.podkit.ok("status", "--wait-ready=30", uuid))
            assert st["state"] == "running" and st["ready"] == "true", st
        return uuid, p, out

    def cleanup(self) -> None:
        for uuid in self.uuids:
            self.podkit("stop", "--force", "--timeout=5", uuid)
            self.podkit("rm", uuid)
        for p in self.started:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)


@pytest.fixture
def busybox(podkit, images):  # type: ignore[no-untyped-def]
    return podkit.ok("fetch", f"oci:{images['layout']}:tiny", "--name", APP).strip()


@pytest.fixture
def pods(podkit, busybox, tmp_path):  # type: ignore[no-untyped-def]
    p = Pods(podkit, tmp_path)
    try:
        yield p
    finally:
        p.cleanup()


def run_exited(podkit, *cmd: str) -> str:  # type: ignore[no-untyped-def]
    """Run a pod to its end; its UUID."""
    r = podkit("run", "--uuid-file-save", os.path.join(podkit.store, "..", "last.uuid"), APP,
               "--", *cmd)
    assert r.returncode >= 0, r.stderr
    with open(os.path.join(podkit.store, "..", "last.uuid")) as f:
        return f.read().strip()


# -- prepare / run-prepared ----------------------------------------------------------------

def test_prepare_then_run_prepared(podkit, busybox, store):
    out = podkit.ok("prepare", APP, "--", "sh", "-c", "echo from-the-pod; exit 7")
    uuid = out.strip()
    assert out == uuid + "\n" and UUID.match(uuid), out
    d = os.path.join(store, "pods", "prepared", uuid)
    assert os.path.isfile(os.path.join(d, "pod"))
    assert row(podkit.ok("list"), uuid) is None  # not running
    line = row(podkit.ok("list", "-a"), uuid)
    assert line is not None and line.endswith("   prepared"), line
    assert "sh -c 'echo from-the-pod; exit 7'"[:29] in line
    st = kv(podkit.ok("status", uuid))
    assert st["state"] == "prepared" and st["exited"] == "false" and "started" not in st, st

    r = podkit("run-prepared", uuid[:8])
    assert r.returncode == 7, r.stderr
    assert r.stdout == "from-the-pod\n"
    assert not os.path.exists(d)
    st = kv(podkit.ok("status", uuid))
    assert st["state"] == "exited" and st["exited"] == "true", st
    assert st[f"app-{APP}"] == "7"
    assert st["created"] <= st["started"]
    assert row(podkit.ok("list", "-a"), uuid).endswith("   exited (7)")
    podkit.fail("run-prepared", uuid, status=5, match="not prepared")
    assert podkit.ok("rm", uuid) == uuid + "\n"
    assert pod_dir(store, uuid) is None


def test_run_prepared_overrides_net_and_reads_stdin(podkit, busybox, store):
    uuid = podkit.ok("prepare", APP, "--", "cat", "/proc/net/dev").strip()
    r = podkit("run-prepared", "--net=none", input=uuid + "\n")
    assert r.returncode == 0, r.stderr
    ifaces = {line.split(":")[0].strip() for line in r.stdout.splitlines()[2:]}
    assert ifaces == {"lo"}, r.stdout
    with open(os.path.join(pod_dir(store, uuid), "pod")) as f:
        ann = {a["name"]: a["value"] for a in json.load(f)["annotations"]}
    assert ann["podkit.io/net"] == "none"
    # without the override, the prepared (host) network
    uuid2 = podkit.ok("prepare", "--uuid-file-save", f"{store}.uuid", APP, "--",
                      "cat", "/proc/net/dev").strip()
    r = podkit("run-prepared", "--uuid-file", f"{store}.uuid")
    assert r.returncode == 0, r.stderr
    with open("/proc/net/dev") as f:
        host = {line.split(":")[0].strip() for line in f.read().splitlines()[2:]}
    assert {line.split(":")[0].strip() for line in r.stdout.splitlines()[2:]} == host
    podkit.ok("rm", uuid, uuid2)


# -- list, status, enter, stop with a running and an exited pod -------------------------------

def test_list_status_enter_stop(podkit, pods, store):
    exited = run_exited(podkit, "sh", "-c", "exit 3")
    uuid, proc, out = pods.start("sh", "-c", "busybox grep CapBnd /proc/self/status; "
                                 "exec sleep 30", opts=("--hostname", "lifecycle-test"))
    d = os.path.join(store, "pods", "run", uuid)

    listing = podkit.ok("list")
    assert listing.splitlines()[0].split() == ["UUID", "IMAGE", "COMMAND", "CREATED", "STATUS"]
    assert row(listing, uuid).endswith("   running")
    assert row(listing, exited) is None
    assert "docker.io/library/busybox:latest" in row(listing, uuid)
    listing = podkit.ok("list", "-a")
    assert row(listing, uuid).endswith("   running")
    assert row(listing, exited).endswith("   exited (3)")
    assert listing.splitlines()[1].startswith(uuid[:8])  # newest first
    assert "\u2026" in row(listing, uuid)  # the command is cut at 30 characters
    full = podkit.ok("list", "-a", "--no-trunc")
    assert "sh -c 'busybox grep CapBnd /proc/self/status; exec sleep 30'" in row(full, uuid)
    assert podkit.ok("list", "-q") == uuid + "\n"
    assert set(podkit.ok("list", "-a", "-q").split()) == {uuid, exited}

    docs = {p["uuid"]: p for p in json.loads(podkit.ok("list", "-a", "--json"))}
    assert set(docs) == {uuid, exited}
    with open(os.path.join(d, "pid")) as f:
        pid = int(f.read())
    run = docs[uuid]
    assert run["state"] == "running" and run["pid"] == pid and run["exitCode"] is None
    assert run["app"] == APP and run["image"]["name"] == "docker.io/library/busybox:latest"
    assert run["image"]["id"].startswith("sha256:") and run["exited"] is None
    assert run["command"].startswith("sh -c 'busybox grep")
    gone = docs[exited]
    assert gone["state"] == "exited" and gone["exitCode"] == 3 and gone["pid"] is None
    times = [datetime.fromisoformat(gone[k].replace("Z", "+00:00"))
             for k in ("created", "started", "exited")]
    assert times == sorted(times)
    assert [p["uuid"] for p in json.loads(podkit.ok("list", "--json"))] == [uuid]

    st = kv(podkit.ok("status", "--wait-ready=10", uuid[:6]))
    assert st["state"] == "running" and st["pid"] == str(pid) and st["exited"] == "false"
    assert st["ready"] == "true" and not any(k.startswith("app-") for k in st)
    doc = json.loads(podkit.ok("status", "--json", uuid))
    assert doc["pid"] == pid and doc["ready"] is True and doc["exitCodes"] == {}

    # enter: the pod's hostname, PID namespace and capability bounding set
    assert podkit.ok("enter", uuid, "busybox", "hostname") == "lifecycle-test\n"
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        pid1 = f.read()
    r = subprocess.run([tool("enter"), "--store", store, uuid, "cat", "/proc/1/cmdline"],
                       capture_output=True, timeout=60, check=False)
    assert r.returncode == 0 and r.stdout == pid1, r
    assert b"exec sleep 30" in pid1  # the pod's PID 1 (catatonit running the app)
    with open("/proc/1/cmdline", "rb") as f:
        assert f.read() != pid1
    deadline = time.monotonic() + 10
    while not open(out).read().endswith("\n"):  # the app may not have run grep yet
        assert time.monotonic() < deadline, "the app printed nothing"
        time.sleep(0.02)
    with open(out) as f:
        app_capbnd = f.read().split("\n")[0]
    assert app_capbnd.startswith("CapBnd:"), app_capbnd
    with open("/proc/self/status") as f:
        host_capbnd = next(x for x in f.read().splitlines() if x.startswith("CapBnd:"))
    assert app_capbnd != host_capbnd  # the pod has fewer
    entered = podkit.ok("enter", "--app", APP, uuid, "busybox", "grep", "CapBnd",
                        "/proc/self/status")
    assert entered.strip() == app_capbnd
    assert podkit("enter", uuid, "sh", "-c", "exit 9").returncode == 9
    assert podkit.ok("enter", uuid, "cat", input="via stdin") == "via stdin"
    assert podkit.ok("enter", "--uuid-file", pods.tmp / "pod-0.uuid", "--", "echo", "x") \
        == "x\n"
    podkit.fail("enter", "--app=nope", uuid, "true", status=4, match="no app 'nope'")

    # stop: SIGTERM reaches the app; the pod exits; again is fine
    assert podkit.ok("stop", uuid[:8]) == uuid + "\n"
    assert proc.wait(timeout=30) == 143
    st = kv(podkit.ok("status", uuid))
    assert st["state"] == "exited" and st["exited"] == "true" and "pid" not in st
    assert st[f"app-{APP}"] == "143" and st["ready"] == "false"
    assert podkit.ok("stop", uuid) == uuid + "\n"
    podkit.fail("enter", uuid, "true", status=5, match="not running")
    assert row(podkit.ok("list", "-a"), uuid).endswith("   exited (143)")


def test_stop_kills_an_app_that_ignores_sigterm(podkit, pods):
    uuid, proc, _ = pods.start("sh", "-c", "trap '' TERM; sleep 60")
    t = time.monotonic()
    assert podkit.ok("stop", "--timeout=1", uuid) == uuid + "\n"
    took = time.monotonic() - t
    assert 1 <= took < 10, took
    assert proc.wait(timeout=30) == 137
    assert kv(podkit.ok("status", uuid))[f"app-{APP}"] == "137"


def test_stop_force_and_status_wait(podkit, pods, store):
    uuid, proc, _ = pods.start("sleep", "60")
    podkit.fail("status", "--wait=0.3", uuid, status=1, match="not exited")
    waiter = subprocess.Popen([tool("status"), "--store", store, "--wait", uuid],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    assert waiter.poll() is None  # still waiting
    t = time.monotonic()
    assert podkit.ok("stop", "--force", "--timeout=30", uuid) == uuid + "\n"
    assert time.monotonic() - t < 10
    out, _ = waiter.communicate(timeout=30)
    assert waiter.returncode == 0
    assert kv(out)["state"] == "exited" and kv(out)["exited"] == "true"
    assert proc.wait(timeout=30) == 137
    # the stage1 removed the pod's cgroups although their processes were still dying
    cgroups = open(os.path.join(store, "pods", "run", uuid, "cgroup")).read().split()
    assert cgroups and not [c for c in cgroups if os.path.exists(c)]


# -- rm and gc -----------------------------------------------------------------------------

def test_rm(podkit, pods, store):
    a = run_exited(podkit, "true")
    b = run_exited(podkit, "false")
    prepared = podkit.ok("prepare", APP, "--", "true").strip()
    r = podkit("rm", input=f"{a}\n{b}\n{prepared}\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [a, b, prepared]
    assert all(pod_dir(store, u) is None for u in (a, b, prepared))
    assert os.listdir(os.path.join(store, "pods", "exited-garbage")) == []
    assert os.listdir(os.path.join(store, "pods", "garbage")) == []

    uuid, _, _ = pods.start("sleep", "60")
    podkit.fail("rm", uuid, status=5, match=f"stop it first (podkit-stop {uuid})")
    assert os.path.isdir(os.path.join(store, "pods", "run", uuid))
    # several pods: a failure is a warning, the others are removed, its status is the exit's
    c = run_exited(podkit, "true")
    r = podkit("rm", uuid, c)
    assert r.returncode == 5
    assert r.stdout == c + "\n"
    assert f"stop it first (podkit-stop {uuid})" in r.stderr
    assert pod_dir(store, c) is None
    assert os.path.isdir(os.path.join(store, "pods", "run", uuid))
    podkit.ok("stop", uuid)
    assert podkit.ok("rm", "--uuid-file", pods.tmp / "pod-0.uuid") == uuid + "\n"


def test_rm_never_deletes_through_a_mount(podkit, busybox, store, tmp_path):
    uuid = run_exited(podkit, "true")
    host = tmp_path / "host-data"
    host.mkdir()
    (host / "precious").write_text("keep")
    target = os.path.join(store, "pods", "run", uuid, "apps", APP, "rootfs")
    subprocess.run(["mount", "--bind", str(host), target], check=True)
    try:
        assert podkit.ok("rm", uuid) == uuid + "\n"
    finally:
        subprocess.run(["umount", target], check=False, capture_output=True)
    assert (host / "precious").read_text() == "keep"
    assert pod_dir(store, uuid) is None


def test_gc_marks_then_removes_pods_then_images(podkit, busybox, store):
    a = run_exited(podkit, "true")
    b = run_exited(podkit, "sh", "-c", "exit 2")
    kept = podkit.ok("prepare", APP, "--", "true").strip()
    # marked, not removed: the grace period has not passed
    assert podkit.ok("gc", "--mark-only") == ""
    assert podkit.ok("gc") == ""
    for u in (a, b):
        assert os.path.isdir(os.path.join(store, "pods", "exited-garbage", u))
    assert row(podkit.ok("list", "-a"), b).endswith("   exited garbage")
    assert kv(podkit.ok("status", b))[f"app-{APP}"] == "2"
    dry = podkit.ok("gc", "--dry-run", "--grace-period=0").splitlines()
    assert [x for x in dry if x.startswith("pod ")] == [f"pod {u}" for u in sorted((a, b))]
    assert os.path.isdir(os.path.join(store, "pods", "exited-garbage", a))
    # the image is still used by the pods
    podkit.fail("rmi", busybox, status=5, match="used by a pod")
    r = podkit("gc", "--grace-period=0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"pod {u}" for u in sorted((a, b))]
    assert "podkit-gc: 2 pods, 0 blobs, 0 layers" in r.stderr
    assert pod_dir(store, a) is None and pod_dir(store, b) is None
    assert os.path.isdir(os.path.join(store, "pods", "prepared", kept))  # not expired
    # expire the prepared pod, and an aborted prepare
    aborted = podkit.ok("prepare", APP, "--", "true").strip()
    os.rename(os.path.join(store, "pods", "prepared", aborted),
              os.path.join(store, "pods", "prepare", aborted))
    assert row(podkit.ok("list", "-a"), aborted).endswith("   aborted prepare")
    assert podkit.ok("gc", "--expire-prepared=1h") == f"pod {aborted}\n"
    podkit.fail("rmi", busybox, status=5, match="used by a pod")
    assert podkit.ok("gc", "--expire-prepared=0") == f"pod {kept}\n"
    assert os.listdir(os.path.join(store, "pods", "prepared")) == []
    # no pod left: the image can go, and its blobs with it
    assert podkit.ok("rmi", busybox) == busybox + "\n"
    blobs = os.path.join(store, "blobs", "sha256")
    assert busybox.split(":")[1] not in os.listdir(blobs)
    assert podkit.ok("gc") == ""


def test_gc_grace_period_counts_from_the_mark(podkit, busybox, store):
    a = run_exited(podkit, "true")
    podkit.ok("gc", "--mark-only")
    d = os.path.join(store, "pods", "exited-garbage", a)
    assert podkit.ok("gc", "--grace-period=1h") == ""
    time.sleep(1.2)
    assert podkit.ok("gc", "--grace-period=1s") == f"pod {a}\n"
    assert not os.path.exists(d)


# -- killed stage1s ----------------------------------------------------------------------

def test_killed_stage1_leaves_a_running_pod(podkit, pods, store):
    uuid, proc, _ = pods.start("sleep", "60")
    d = os.path.join(store, "pods", "run", uuid)
    cgroups = open(os.path.join(d, "cgroup")).read().split()
    with open(os.path.join(d, "pid")) as f:
        pid1 = int(f.read())
    os.kill(proc.pid, signal.SIGKILL)  # podkit-run exec'ed the stage1: this is it
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert row(podkit.ok("list"), uuid).endswith("   running")  # nspawn holds the lock
    assert kv(podkit.ok("status", uuid))["state"] == "running"
    podkit.fail("rm", uuid, status=5, match="stop it first")
    podkit.ok("gc", "--grace-period=0")
    assert os.path.isdir(d) and alive(pid1)

    assert podkit.ok("stop", uuid) == uuid + "\n"
    st = kv(podkit.ok("status", uuid))
    assert st["state"] == "exited" and not any(k.startswith("app-") for k in st), st
    assert row(podkit.ok("list", "-a"), uuid).endswith("   exited")
    assert json.loads(podkit.ok("status", "--json", uuid))["exitCode"] is None
    assert not alive(pid1)
    assert podkit.ok("gc", "--grace-period=0") == f"pod {uuid}\n"
    assert pod_dir(store, uuid) is None
    assert not [c for c in cgroups if os.path.exists(c)]


def test_killed_stage1_and_nspawn_leave_an_exited_pod(podkit, pods, store):
    uuid, proc, _ = pods.start("sleep", "60")
    d = os.path.join(store, "pods", "run", uuid)
    cgroups = open(os.path.join(d, "cgroup")).read().split()
    assert any("/pids/" in c for c in cgroups), cgroups
    with open(os.path.join(d, "ppid")) as f:
        nspawn = int(f.read())
    with open(os.path.join(d, "pid")) as f:
        pid1 = int(f.read())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    os.kill(nspawn, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while kv(podkit.ok("status", uuid))["state"] != "exited":
        assert time.monotonic() < deadline, "the pod never read as exited"
        time.sleep(0.05)
    assert row(podkit.ok("list", "-a"), uuid).endswith("   exited")
    assert row(podkit.ok("list"), uuid) is None
    assert podkit.ok("stop", uuid) == uuid + "\n"  # already exited: fine
    assert podkit.ok("gc", "--grace-period=0") == f"pod {uuid}\n"
    assert pod_dir(store, uuid) is None
    assert not os.path.exists(f"/sys/fs/cgroup/pids/podkit-{uuid}")
    assert not [c for c in cgroups if os.path.exists(c)]
    assert not alive(pid1)


# -- completion ----------------------------------------------------------------------------

def test_completion_offers_pods(podkit, busybox, store):
    uuid = podkit.ok("prepare", APP, "--", "true").strip()
    script = (f"source {shlex.quote(os.path.join(ROOT, 'completion', 'podkit.bash'))}\n"
              f"COMP_LINE={shlex.quote(f'podkit-rm --store {store} ')}; "
              "COMP_POINT=${#COMP_LINE}\n_podkit\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                       text=True, timeout=60, check=False,
                       env={**os.environ, "PATH": TOOLS + os.pathsep + os.environ["PATH"]})
    assert r.returncode == 0 and r.stdout.split() == [uuid], r
    podkit.ok("rm", uuid)


# -- bad input -------------------------------------------------------------------------------

@pytest.fixture
def seeded(podkit, busybox, store):  # type: ignore[no-untyped-def]
    """A store with a prepared pod, an exited one and two pods sharing a UUID prefix;
    (prepared, exited, ambiguous prefix)."""
    prepared = podkit.ok("prepare", APP, "--", "true").strip()
    exited = run_exited(podkit, "true")
    twin = prepared[:8] + "-0000-4000-8000-000000000000"
    if twin == prepared:
        twin = prepared[:8] + "-0000-4000-8000-000000000001"
    shutil.copytree(os.path.join(store, "pods", "prepared", prepared),
                    os.path.join(store, "pods", "prepared", twin), symlinks=True)
    os.unlink(os.path.join(store, "..", "last.uuid"))
    return prepared, exited, prepared[:8]


BAD = [
    # (verb, args, status, message)
    ("status", ["0000000f"], 4, "no pod 0000000f"),
    ("status", ["{ambiguous}"], 2, "ambiguous"),
    ("status", ["not-a-uuid!"], 2, "is not a pod UUID"),
    ("status", [], 2, "no arguments given"),
    ("status", ["--uuid-file", "{tmp}/missing"], 4, "no such file"),
    ("status", ["--uuid-file", "{tmp}/empty"], 2, "does not hold one pod UUID"),
    ("status", ["--wait=soon", "{prepared}"], 2, "not a duration"),
    ("status", ["--wait=0.2", "{prepared}"], 1, "not exited, after 0.2 seconds"),
    ("status", ["--wait-ready=0.2", "{prepared}"], 1, "not ready"),
    ("run-prepared", ["0000000f"], 4, "no pod"),
    ("run-prepared", ["{ambiguous}"], 2, "ambiguous"),
    ("run-prepared", ["xyz"], 2, "is not a pod UUID"),
    ("run-prepared", ["{exited}"], 5, "not prepared"),
    ("run-prepared", [], 2, "no arguments given"),
    ("run-prepared", ["--uuid-file", "{tmp}/missing"], 4, "no such file"),
    ("run-prepared", ["--net=bridge", "{prepared}"], 2, "invalid choice"),
    ("enter", ["0000000f"], 4, "no pod"),
    ("enter", ["{ambiguous}", "true"], 2, "ambiguous"),
    ("enter", ["xyz", "true"], 2, "is not a pod UUID"),
    ("enter", ["{exited}", "true"], 5, "is exited, not running"),
    ("enter", ["{prepared}"], 5, "is prepared, not running"),
    ("enter", [], 2, "no pod UUID given"),
    ("enter", ["--uuid-file", "{tmp}/missing", "true"], 4, "no such file"),
    ("stop", ["0000000f"], 4, "no pod"),
    ("stop", ["{exited}", "0000000f"], 4, "no pod"),  # looked up first: nothing stops
    ("stop", ["{ambiguous}"], 2, "ambiguous"),
    ("stop", ["xyz"], 2, "is not a pod UUID"),
    ("stop", ["{prepared}"], 5, "is prepared, not running"),
    ("stop", [], 2, "no arguments given"),
    ("stop", ["--uuid-file", "{tmp}/missing"], 4, "no such file"),
    ("stop", ["--uuid-file", "{tmp}/uuid", "{exited}"], 2, "not both"),
    ("stop", ["--timeout=later", "{exited}"], 2, "not a duration"),
    ("rm", ["0000000f"], 4, "no pod"),
    ("rm", ["{exited}", "0000000f"], 4, "no pod"),  # looked up first: nothing removed
    ("rm", ["{ambiguous}"], 2, "ambiguous"),
    ("rm", ["xyz"], 2, "is not a pod UUID"),
    ("rm", ["{locked}"], 5, "stop it first"),
    ("rm", [], 2, "no arguments given"),
    ("rm", ["--uuid-file", "{tmp}/missing"], 4, "no such file"),
    ("list", ["extra"], 2, "unrecognized arguments"),
    ("list", ["-q", "--json"], 2, "not allowed with"),
    ("prepare", [], 2, "required"),
    ("prepare", ["--pull-policy=never", "nosuch"], 4, "not in the store"),
    ("prepare", ["--memory=lots", APP], 2, "not a size"),
    ("gc", ["--grace-period=soon"], 2, "not a duration"),
    ("gc", ["--expire-prepared=-1h"], 2, "not a duration"),
]


@pytest.mark.parametrize(("verb", "args", "status", "match"), BAD,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input(podkit, store, seeded, tmp_path, verb, args, status, match):
    prepared, exited, ambiguous = seeded
    (tmp_path / "empty").write_text("")
    (tmp_path / "uuid").write_text(exited + "\n")
    values = [a.format(prepared=prepared, exited=exited, ambiguous=ambiguous, tmp=tmp_path,
                       locked=exited) for a in args]
    before = store_state(store)
    fd = os.open(os.path.join(store, "pods", "run", exited), os.O_RDONLY | os.O_DIRECTORY)
    try:
        if "{locked}" in args:
            fcntl.flock(fd, fcntl.LOCK_EX)  # its lock held: the pod reads as running
        podkit.fail(verb, *values, status=status, match=match, input="")
    finally:
        os.close(fd)
    assert store_state(store) == before
