"""stage1/fly against the real kernel: namespaces, pivot_root, cgroups, capabilities.

Every test runs real pods as root with ``podkit-run --stage1=fly`` and the
busybox test image, then checks what the app saw from the inside and what
the pod left behind: each pod's lock must be released and its
``podkit-<uuid>`` cgroups removed once podkit-run has returned.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shlex
import signal
import subprocess
import time

import pytest
from helpers import ROOT, TOOLS, Podkit
from imagekit import sh
from tarkit import E, tar

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods need root")

FLY = os.path.join(ROOT, "stage1", "fly", "rootfs")
CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
        "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
        "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN")  # bit = index
# Docker's default bounding set, as podkit-run applies it without --caps-retain
DEFAULT_CAPS = ("CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
                "CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP",
                "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT")
DEFAULT_MASK = 0x00000000A80425FB
STANDARD_DEV = {"fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr",
                "stdin", "stdout", "tty", "urandom", "zero"}


def _field(status: str, name: str) -> str:
    for line in status.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} in {status!r}")


def _pod_dirs(store: str) -> dict[str, str]:
    return {os.path.basename(p): p for p in glob.glob(os.path.join(store, "pods", "*", "*"))}


def _locked(pod_dir: str) -> bool:
    fd = os.open(pod_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _cgroups_of(uuid: str) -> list[str]:
    return glob.glob(f"/sys/fs/cgroup/*/podkit-{uuid}") + \
        glob.glob(f"/sys/fs/cgroup/memory/**/podkit-{uuid}", recursive=True)


def _kill_pod(pod_dir: str) -> None:
    """Last resort for a test that failed half-way: SIGKILL the pod and its cgroups."""
    subprocess.run([os.path.join(FLY, "stop"), "--force", os.path.basename(pod_dir)],
                   cwd=pod_dir, check=False, timeout=30)


class Fly:
    """podkit-run --stage1=fly of the busybox image in one store; checks every pod's end."""

    def __init__(self, podkit: Podkit) -> None:
        self.podkit = podkit
        self.store = podkit.store
        self.procs: list[subprocess.Popen] = []

    def run(self, *args: str, app: str = "", input: str | None = None,
            opts: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        cmd = ["run", "--stage1=fly", *opts, "busybox"]
        if app:
            cmd += ["--", "sh", "-c", app]
        cmd += list(args)
        before = set(_pod_dirs(self.store))
        r = self.podkit(*cmd, input=input, timeout=120)
        for uuid in set(_pod_dirs(self.store)) - before:
            self.check_released(uuid)
        return r

    def start(self, app: str, *opts: str) -> tuple[subprocess.Popen, str, str]:
        """A pod in the background whose app printed "ready": (process, uuid, pod dir)."""
        uuid_file = os.path.join(self.store, f"uuid-{len(self.procs)}")
        p = subprocess.Popen([os.path.join(TOOLS, "podkit-run"), "--store", self.store,
                              "--stage1=fly", "--uuid-file-save", uuid_file, *opts, "busybox",
                              "--", "sh", "-c", app],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line == "ready\n", (line, p.stderr.read() if p.poll() is not None else "")
        with open(uuid_file) as f:
            uuid = f.read().strip()
        return p, uuid, _pod_dirs(self.store)[uuid]

    def check_released(self, uuid: str) -> None:
        pod_dir = _pod_dirs(self.store)[uuid]
        assert not _locked(pod_dir), f"pod {uuid} still locked after podkit-run returned"
        assert _cgroups_of(uuid) == [], f"cgroups of {uuid} left behind"

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for pod_dir in _pod_dirs(self.store).values():
            if _locked(pod_dir):
                _kill_pod(pod_dir)
        for p in self.procs:
            p.wait(timeout=30)
        for uuid in _pod_dirs(self.store):
            for d in _cgroups_of(uuid):
                for sub, _, _ in sorted(os.walk(d), key=lambda t: -len(t[0])):
                    os.rmdir(sub)


@pytest.fixture
def fly(podkit: Podkit, images: dict[str, str]):  # type: ignore[no-untyped-def]
    podkit.ok("fetch", f"oci:{images['layout']}:tiny", "--name", "busybox")
    f = Fly(podkit)
    try:
        yield f
    finally:
        f.cleanup()


# -- exit status and stdio ------------------------------------------------------------
@pytest.mark.parametrize("code", [0, 1, 42, 255])
def test_exit_code_is_the_apps(fly: Fly, code: int) -> None:
    r = fly.run(app=f"exit {code}", opts=("--uuid-file-save", os.path.join(fly.store, "u")))
    assert r.returncode == code, r.stderr
    assert r.stderr == ""
    with open(os.path.join(fly.store, "u")) as f:
        uuid = f.read().strip()
    with open(os.path.join(_pod_dirs(fly.store)[uuid], "status", "busybox")) as f:
        assert f.read().strip() == str(code)


@pytest.mark.parametrize(("sig", "code"), [("KILL", 137), ("TERM", 143), ("SEGV", 139)])
def test_signal_death_is_128_plus_n(fly: Fly, sig: str, code: int) -> None:
    # the shell is not PID 1 (the stage1 is): a signal with no handler kills it
    r = fly.run(app=f"kill -{sig} $$; echo survived")
    assert r.returncode == code, r.stderr
    assert "survived" not in r.stdout


def test_stdio_passes_through_unchanged(fly: Fly) -> None:
    r = fly.run(app="cat; echo out; echo err >&2; printf 'a\\nb'", input="from stdin\n")
    assert r.returncode == 0
    assert r.stdout == "from stdin\nout\na\nb"
    assert r.stderr == "err\n"


def test_missing_command_is_127(fly: Fly) -> None:
    r = fly.run("--", "no-such-command")
    assert r.returncode == 127
    assert r.stderr.strip().splitlines() == [
        "podkit-stage1-fly: no-such-command: No such file or directory"]


def test_setup_failure_is_one_line_and_status_1(fly: Fly, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = fly.run(app="true", opts=("--volume", f"{tmp_path}:/etc/passwd",
                                  "--uuid-file-save", str(tmp_path / "u")))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("podkit-stage1-fly: "), r.stderr
    assert "/etc/passwd" in lines[0]
    uuid = (tmp_path / "u").read_text().strip()
    assert os.listdir(os.path.join(_pod_dirs(fly.store)[uuid], "status")) == []


# -- namespaces -----------------------------------------------------------------------
def test_own_pid_namespace(fly: Fly) -> None:
    # the glob is expanded by the shell itself: the pod holds PID 1 and the shell only
    r = fly.run(app="echo $$ $PPID; echo /proc/[0-9]*")
    assert r.returncode == 0, r.stderr
    ids, procs = r.stdout.splitlines()
    assert ids.split() == ["2", "1"]
    assert procs.split() == ["/proc/1", "/proc/2"]
    r = fly.run(app="sleep 1 & sleep 2 & busybox ps -o pid,ppid,comm; true")
    rows = [ln.split() for ln in r.stdout.splitlines()[1:]]
    assert {int(row[0]) for row in rows} == {1, 2, 3, 4, 5}, r.stdout
    assert all(row[1] == "2" for row in rows if row[0] in ("3", "4", "5")), r.stdout


def test_pid_file_names_pid_1(fly: Fly) -> None:
    p, _, pod_dir = fly.start("echo ready; sleep 100")
    with open(os.path.join(pod_dir, "pid")) as f:
        pid = int(f.read())
    with open(f"/proc/{pid}/status") as f:
        nspid = _field(f.read(), "NSpid").split()
    assert nspid == [str(pid), "1"]
    p.send_signal(signal.SIGTERM)  # forwarded as the stop signal
    assert p.wait(timeout=30) == 143


def test_hostname(fly: Fly) -> None:
    r = fly.run(app="busybox hostname; cat /etc/hostname; grep flyhost /etc/hosts",
                opts=("--hostname", "flyhost"))
    assert r.stdout.splitlines() == ["flyhost", "flyhost", "127.0.1.1\tflyhost"]
    r = fly.run(app="busybox hostname", opts=("--uuid-file-save", os.path.join(fly.store, "u")))
    with open(os.path.join(fly.store, "u")) as f:
        assert r.stdout.strip() == f.read().strip().replace("-", "")[:12]
    assert r.stdout.strip() != os.uname().nodename


def test_two_pods_do_not_see_each_other(fly: Fly) -> None:
    a, _, _ = fly.start("echo secret > /tmp/mine; echo ready; sleep 100")
    r = fly.run(app="cat /tmp/mine; echo /proc/[0-9]*; busybox ps -o comm")
    assert "secret" not in r.stdout
    assert "No such file" in r.stderr
    assert "sleep" not in r.stdout
    a.send_signal(signal.SIGTERM)
    assert a.wait(timeout=30) == 143


def test_net_none_has_only_loopback_up(fly: Fly) -> None:
    r = fly.run(app="ls /sys/class/net; cat /sys/class/net/lo/flags", opts=("--net=none",))
    assert r.returncode == 0, r.stderr
    names, flags = r.stdout.split("\n", 1)[0], r.stdout.splitlines()[-1]
    assert names == "lo"
    assert int(flags, 16) & 1, "lo is down"
    r = fly.run(app="ls /sys/class/net")
    assert sorted(r.stdout.split()) == sorted(os.listdir("/sys/class/net"))


# -- privileges -----------------------------------------------------------------------
def test_default_capability_bounding_set(fly: Fly) -> None:
    r = fly.run(app="cat /proc/self/status")
    bnd = int(_field(r.stdout, "CapBnd"), 16)
    assert bnd == DEFAULT_MASK
    assert not bnd & (1 << 21), "CAP_SYS_ADMIN kept"
    assert not bnd & (1 << 16), "CAP_SYS_MODULE kept"
    assert int(_field(r.stdout, "CapEff"), 16) == DEFAULT_MASK  # root: all of the bounding set
    assert int(_field(r.stdout, "CapInh"), 16) == 0
    assert int(_field(r.stdout, "CapAmb"), 16) == 0
    assert _field(r.stdout, "NoNewPrivs") == "0"


def test_caps_retain_is_the_exact_bounding_set(fly: Fly) -> None:
    r = fly.run(app="cat /proc/self/status", opts=("--caps-retain", "CAP_NET_ADMIN,chown"))
    bnd = int(_field(r.stdout, "CapBnd"), 16)
    assert bnd == (1 << CAPS.index("CAP_NET_ADMIN")) | (1 << CAPS.index("CAP_CHOWN"))


def test_no_new_privileges(fly: Fly) -> None:
    r = fly.run(app="grep NoNewPrivs /proc/self/status", opts=("--no-new-privileges",))
    assert r.stdout.split() == ["NoNewPrivs:", "1"]


def test_proc_and_sys_are_read_only(fly: Fly) -> None:
    # opened for writing, nothing written (busybox's test -w trusts root blindly)
    r = fly.run(app="for f in /proc/sys/kernel/domainname /proc/sysrq-trigger "
                    "/proc/sys/vm/drop_caches /sys/kernel/uevent_helper; do "
                    "[ -e $f ] && (: > $f) && echo writable $f; done; echo end")
    assert r.stdout == "end\n", r.stdout
    assert "Read-only file system" in r.stderr


def test_dev_has_only_the_standard_nodes(fly: Fly) -> None:
    r = fly.run(app="ls /dev; echo x > /dev/null && busybox head -c 4 /dev/zero | busybox wc -c")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert set(lines[:-1]) == STANDARD_DEV
    assert lines[-1] == "4"
    # a node made with CAP_MKNOD opens nothing (nodev mounts, devices cgroup)
    r = fly.run(app="busybox mknod /tmp/mem c 1 1 && busybox head -c 1 /tmp/mem && echo read")
    assert "read" not in r.stdout
    assert "Permission denied" in r.stderr or "Operation not permitted" in r.stderr


def test_user_numeric_and_by_name(fly: Fly) -> None:
    for user in ("1000", "user"):
        r = fly.run(app="id -u; id -g; grep -E '^Cap(Eff|Prm)' /proc/self/status; "
                        "touch /root-owned 2>&1 || echo denied",
                    opts=("--user", user))
        out = r.stdout.splitlines()
        assert out[:2] == ["1000", "1000"], r.stdout
        assert int(out[2].split()[1], 16) == 0 and int(out[3].split()[1], 16) == 0
        assert out[-1] == "denied"


def test_environment_and_fds_are_exactly_the_manifests(fly: Fly,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAK_ME", "1")
    r = fly.run(app="env; ls /proc/$$/fd; true", opts=("--set-env", "FOO=bar", "--working-dir",
                                                 "/home/user", "--user", "user"))
    out = r.stdout.splitlines()
    env = dict(line.split("=", 1) for line in out if "=" in line)
    env.pop("PWD"), env.pop("SHLVL", None)  # the shell's own
    assert env == {"PATH": "/usr/bin:/bin", "FOO": "bar", "HOME": "/home/user",
                   "HOSTNAME": env["HOSTNAME"]}
    assert sorted(x for x in out if "=" not in x) == ["0", "1", "2"]  # no lock, no pipe


def test_working_directory(fly: Fly) -> None:
    r = fly.run(app="pwd", opts=("--working-dir", "/home/user"))
    assert r.stdout == "/home/user\n"


# -- resources ------------------------------------------------------------------------
def _has_cap(n: int) -> bool:
    for line in open("/proc/self/status"):
        if line.startswith("CapBnd:"):
            return bool(int(line.split()[1], 16) >> n & 1)
    return False


def test_pid1_is_out_of_the_oom_ranking(fly: Fly) -> None:
    """PID 1 (a fork of the Python stage1, larger than a small app) must not be the OOM
    killer's pick: under load it was, and the whole pod died with it (the tests with
    --memory).  On cgroup v1 it leaves the pod's memory cgroup once the app is forked;
    it also lowers its OOM score where CAP_SYS_RESOURCE allows (some sandboxes withhold
    it from root: then both keep the default)."""
    r = fly.run(app="sleep 0.3; cat /proc/1/oom_score_adj /proc/self/oom_score_adj; "
                    "grep -c :memory:/$ /proc/1/cgroup; grep -c :memory:/$ /proc/self/cgroup",
                opts=("--memory", "64m"))
    pid1 = "-1000" if _has_cap(24) else "0"  # CAP_SYS_RESOURCE
    out = r.stdout.split()
    assert out[:2] == [pid1, "0"], (r.stdout, r.stderr)
    if os.path.isdir("/sys/fs/cgroup/memory"):  # cgroup v1: PID 1 outside the pod's
        # memory cgroup (not at the root of its cgroup namespace), the app inside
        assert out[2:] == ["0", "1"], (r.stdout, r.stderr)


def test_memory_limit_kills_a_hog(fly: Fly) -> None:
    r = fly.run(app="busybox awk 'BEGIN { s = \"x\"; while (1) s = s s }'; echo awk=$?",
                opts=("--memory", "32m"))
    assert "awk=137" in r.stdout, (r.stdout, r.stderr)
    r = fly.run(app="busybox head -c 100m /dev/zero | busybox tail -c 50m > /dev/null; "
                    "echo tail=$?", opts=("--memory", "32m"))
    assert "tail=137" in r.stdout, (r.stdout, r.stderr)
    r = fly.run(app="busybox head -c 20m /dev/zero | busybox tail -c 10m | busybox wc -c",
                opts=("--memory", "64m"))
    assert r.stdout.strip() == "10485760"


def test_pids_limit(fly: Fly) -> None:
    r = fly.run(app="for i in 1 2 3 4 5 6 7 8; do sleep 3 & done; echo forked",
                opts=("--pids-limit", "5"))
    assert "can't fork" in r.stderr
    r = fly.run(app="for i in 1 2 3; do sleep 1 & done; wait; echo forked",
                opts=("--pids-limit", "5"))
    assert r.stdout == "forked\n" and r.stderr == ""


# -- file systems ---------------------------------------------------------------------
def test_host_volumes_ro_and_rw(fly: Fly, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tmp_path = tmp_path / "vol"  # not the store's parent
    tmp_path.mkdir()
    (tmp_path / "f").write_text("host data\n")
    r = fly.run(app="cat /ro/f; echo x > /ro/new || echo ro-refused; echo pod > /rw/new; "
                    "echo y > /rw2/new2",
                opts=("--volume", f"{tmp_path}:/ro:ro", "--volume", f"{tmp_path}:/rw",
                      "--volume", f"v2,kind=host,source={tmp_path}",
                      "--mount", "volume=v2,target=/rw2"))
    assert r.stdout == "host data\nro-refused\n", r.stderr
    assert (tmp_path / "new").read_text() == "pod\n"
    assert (tmp_path / "new2").read_text() == "y\n"
    r = fly.run(app="cat /new/mount/point/f; ls /new/mount/point",
                opts=("--volume", f"{tmp_path}:/new/mount/point:ro", "--readonly-rootfs"))
    assert r.stdout.splitlines()[0] == "host data", r.stderr
    assert sorted(r.stdout.split()[2:]) == ["f", "new", "new2"]


def test_empty_volume(fly: Fly) -> None:
    r = fly.run(app="ls -ld /scratch; echo hi > /scratch/f && cat /scratch/f",
                opts=("--volume", "scratch,kind=empty,mode=0770,uid=1000,gid=1000",
                      "--mount", "volume=scratch,target=/scratch", "--user", "1000",
                      "--uuid-file-save", os.path.join(fly.store, "u")))
    assert r.returncode == 0, r.stderr
    mode, _, uid, gid = r.stdout.split()[:4]
    assert (mode, uid, gid) == ("drwxrwx---", "user", "user")
    assert r.stdout.splitlines()[-1] == "hi"
    with open(os.path.join(fly.store, "u")) as f:
        pod_dir = _pod_dirs(fly.store)[f.read().strip()]
    with open(os.path.join(pod_dir, "volumes", "scratch", "f")) as f:
        assert f.read() == "hi\n"


def test_readonly_rootfs(fly: Fly) -> None:
    r = fly.run(app="touch /etc/x || echo refused; echo ok > /run/x && cat /run/x; "
                    "echo ok > /dev/shm/x && cat /dev/shm/x",
                opts=("--readonly-rootfs",))
    assert r.stdout == "refused\nok\nok\n", r.stderr
    assert "Read-only file system" in r.stderr


def test_writes_land_in_the_pods_upper_dir(fly: Fly) -> None:
    r = fly.run(app="echo new > /data/new", opts=("--uuid-file-save",
                                                   os.path.join(fly.store, "u")))
    assert r.returncode == 0
    with open(os.path.join(fly.store, "u")) as f:
        pod_dir = _pod_dirs(fly.store)[f.read().strip()]
    with open(os.path.join(pod_dir, "apps", "busybox", "upper", "data", "new")) as f:
        assert f.read() == "new\n"


def test_image_symlinks_cannot_reach_the_host(fly: Fly, images: dict[str, str],
                                              tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Mount points behind symbolic links that lead out of the rootfs stay in the pod."""
    layout = str(tmp_path / "layout")
    sh("cp", "-a", images["build"], layout)
    escape = tmp_path / "escaped"
    escape.mkdir()
    up = "../" * 16  # out of apps/APP/rootfs, had it been resolved on the host
    hostile = {"hosts": [E("etc/hosts", "symlink", link=f"{up}{escape}/hosts")],
               "vol": [E("vol", "symlink", link=f"{up}{escape}")]}
    for tag, entries in hostile.items():
        layer = tmp_path / f"{tag}.tar"
        layer.write_bytes(tar(*entries))
        sh("umoci", "raw", "add-layer", "--image", f"{layout}:tiny", "--tag", tag, str(layer))
        fly.podkit.ok("fetch", f"oci:{layout}:{tag}", "--name", f"hostile-{tag}")
    vol = ("--volume", f"{tmp_path}:/vol/in")
    for image, opts in (("hostile-hosts", ()), ("hostile-vol", vol)):
        r = fly.podkit("run", "--stage1=fly", *opts, image, "--", "cat", "/etc/hosts")
        assert list(escape.iterdir()) == [], f"{image}: a mount point was made on the host"
        # the link dangles in the pod: refused, in one line
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert len(r.stderr.splitlines()) == 1
        assert r.stderr.startswith("podkit-stage1-fly: cannot set the pod up: "), r.stderr


# -- lifecycle ------------------------------------------------------------------------
def test_stop_and_force_stop(fly: Fly) -> None:
    p, uuid, pod_dir = fly.start("echo ready; sleep 100")
    subprocess.run([os.path.join(FLY, "stop"), uuid], cwd=pod_dir, check=True, timeout=30)
    assert p.wait(timeout=30) == 143
    fly.check_released(uuid)
    p, uuid, pod_dir = fly.start("trap '' TERM; echo ready; sleep 100")
    subprocess.run([os.path.join(FLY, "stop"), uuid], cwd=pod_dir, check=True, timeout=30)
    time.sleep(0.3)
    assert p.poll() is None, "TERM was ignored by the app: the pod must still run"
    subprocess.run([os.path.join(FLY, "stop"), "--force", uuid], cwd=pod_dir, check=True,
                   timeout=30)
    assert p.wait(timeout=30) == 137
    with open(os.path.join(pod_dir, "status", "busybox")) as f:
        assert f.read().strip() == "137"
    fly.check_released(uuid)


def test_enter_joins_the_pod(fly: Fly) -> None:
    p, _, pod_dir = fly.start("echo inside > /tmp/mark; echo ready; sleep 100",
                              "--hostname", "entered", "--no-new-privileges")
    with open(os.path.join(pod_dir, "pid")) as f:
        pid = f.read().strip()
    r = subprocess.run([os.path.join(FLY, "enter"), f"--pid={pid}", "--appname=busybox", "--",
                        "sh", "-c", "cat /tmp/mark; busybox hostname; echo $$; "
                        "grep -E 'CapBnd|NoNewPrivs' /proc/self/status"],
                       cwd=pod_dir, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    mark, host, mypid, bnd, nnp = r.stdout.splitlines()
    assert (mark, host) == ("inside", "entered")
    assert 2 < int(mypid) < 100  # a PID of the pod's namespace
    assert int(bnd.split()[1], 16) == DEFAULT_MASK and nnp.split()[1] == "1"
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 143


def test_interactive_terminal(fly: Fly) -> None:
    cmd = shlex.join([os.path.join(TOOLS, "podkit-run"), "--store", fly.store,
                      "--stage1=fly", "--uuid-file-save", os.path.join(fly.store, "u"),
                      "-t", "-i", "busybox", "/bin/sh"])
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], input="echo hi; tty; exit 3\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, (r.stdout, r.stderr)
    lines = [ln.strip() for ln in r.stdout.splitlines()]
    assert "hi" in lines and "/dev/console" in lines, r.stdout
    with open(os.path.join(fly.store, "u")) as f:
        fly.check_released(f.read().strip())


def _stat_fields(line: str) -> dict[str, int]:
    """pgrp, session, tty_nr, tpgid from a /proc/PID/stat line (as the pod sees them)."""
    f = line.rsplit(")", 1)[1].split()
    return {"ppid": int(f[1]), "pgrp": int(f[2]), "session": int(f[3]), "tty_nr": int(f[4]),
            "tpgid": int(f[5])}


def test_interactive_app_is_the_terminals_foreground_job(fly: Fly) -> None:
    cmd = shlex.join([os.path.join(TOOLS, "podkit-run"), "--store", fly.store,
                      "--stage1=fly", "-t", "-i", "busybox", "--", "sh", "-c",
                      "cat /proc/self/stat; echo $$"])
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    stat_line, shell = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()][-2:]
    st = _stat_fields(stat_line)
    assert st["tty_nr"] != 0, "no controlling terminal"
    assert st["pgrp"] == int(shell) == st["tpgid"], st  # its own group, in the foreground


def test_without_interactive_the_app_has_no_terminal(fly: Fly) -> None:
    cmd = shlex.join([os.path.join(TOOLS, "podkit-run"), "--store", fly.store,
                      "--stage1=fly", "busybox", "--", "sh", "-c", "cat /proc/self/stat"])
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    st = _stat_fields(r.stdout.strip().splitlines()[-1])
    # a session of the pod's own (PID 1's): terminal signals go to podkit-run only
    assert (st["session"], st["tty_nr"]) == (1, 0), st
