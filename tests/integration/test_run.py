"""podkit-run end to end: real pods, real overlayfs, each built-in stage1.

Every test runs once per stage1 flavour (``stage1`` parameter): the same
acceptance for nspawn and fly, except where fly documents that it cannot
give an isolation.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import time

import pytest
from helpers import TOOLS, snapshot

STAGE1S = ["nspawn", "fly"]


@pytest.fixture(params=STAGE1S)
def stage1(request) -> str:  # type: ignore[no-untyped-def]
    return request.param


@pytest.fixture
def busybox(podkit, images) -> str:  # type: ignore[no-untyped-def]
    return podkit.ok("fetch", f"oci:{images['layout']}:tiny", "--name", "busybox").strip()


def run(podkit, stage1: str, *args: str, **kw):  # type: ignore[no-untyped-def]
    return podkit("run", f"--stage1={stage1}", *args, **kw)


def pods_in(store: str, where: str) -> list[str]:
    try:
        return os.listdir(os.path.join(store, "pods", where))
    except FileNotFoundError:
        return []


@pytest.mark.parametrize("code", [0, 1, 42, 255])
def test_exit_status_is_the_apps(podkit, busybox, stage1, store, code):
    r = run(podkit, stage1, "busybox", "--", "sh", "-c", f"exit {code}")
    assert r.returncode == code, r.stderr
    assert r.stderr == ""
    (uuid,) = pods_in(store, "run")
    assert open(os.path.join(store, "pods/run", uuid, "status/busybox")).read().strip() \
        == str(code)


@pytest.mark.parametrize(("sig", "code"), [("KILL", 137), ("TERM", 143), ("SEGV", 139)])
def test_signal_death_is_128_plus_n(podkit, busybox, stage1, sig, code):
    r = run(podkit, stage1, "busybox", "--", "sh", "-c", f"kill -{sig} $$")
    assert r.returncode == code, r.stderr


def test_stdout_and_stderr_reach_the_caller_unchanged(podkit, busybox, stage1):
    r = subprocess.run([os.path.join(TOOLS, "podkit-run"), "--store", podkit.store,
                        f"--stage1={stage1}", "busybox", "--", "sh", "-c",
                        r"printf 'out\r\n\001\377'; printf 'err\n' >&2; cat"],
                       input=b"from stdin\n", capture_output=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"out\r\n\x01\xfffrom stdin\n"
    assert r.stderr == b"err\n"


def test_interactive_shell_on_a_pseudo_terminal(podkit, busybox, stage1, store):
    cmd = (f"{TOOLS}/podkit-run --store {store} --stage1={stage1} -t -i busybox /bin/sh")
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], input="echo h''i; exit 3\n",
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 3, r.stdout + r.stderr
    assert re.search(r"^hi\r?$", r.stdout, re.M), r.stdout
    (uuid,) = pods_in(store, "run")
    fd = os.open(os.path.join(store, "pods/run", uuid), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # released: the pod exited
    finally:
        os.close(fd)


def _inside(podkit, stage1: str, script: str, *opts: str) -> str:  # type: ignore[no-untyped-def]
    r = run(podkit, stage1, *opts, "busybox", "--", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_isolation_inside_the_pod(podkit, busybox, stage1):
    out = _inside(podkit, stage1, "busybox hostname; ls /proc | busybox grep -c '^[0-9]'; "
                  "busybox grep -E '^(CapBnd|CapEff|NoNewPrivs)' /proc/self/status; "
                  "echo x > /proc/sysrq-trigger && echo sysrq-writable; ls /dev",
                  "--hostname", "podhost")
    lines = out.split("\n")
    assert lines[0] == "podhost"
    assert int(lines[1]) <= 4  # its own PID namespace: PID 1, the shell, ls
    caps = int(re.search(r"CapBnd:\s*([0-9a-f]+)", out).group(1), 16)  # type: ignore[union-attr]
    assert not caps & (1 << 21) and not caps & (1 << 16)  # CAP_SYS_ADMIN, CAP_SYS_MODULE
    assert caps == int(re.search(r"CapEff:\s*([0-9a-f]+)", out).group(1), 16)  # type: ignore[union-attr]
    assert "sysrq-writable" not in out
    devs = set(out.split("\n")[5:]) - {""}
    assert devs <= {"char", "console", "core", "fd", "full", "mqueue", "net", "null", "ptmx", "pts",
                    "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"}
    assert not {"sda", "vda", "kmsg", "mem", "kvm"} & devs


def test_capabilities_and_no_new_privileges(podkit, busybox, stage1):
    out = _inside(podkit, stage1, "busybox grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status",
                  "--caps-retain=CAP_CHOWN,kill", "--no-new-privileges")
    assert re.search(r"CapBnd:\s*0*21\b", out), out  # CHOWN (0) + KILL (5)
    assert re.search(r"NoNewPrivs:\s*1", out), out
    out = _inside(podkit, stage1, "busybox grep CapBnd /proc/self/status",
                  "--caps-remove=CAP_NET_RAW")
    assert not int(out.split()[1], 16) & (1 << 13)


def test_user_group_env_and_working_dir_from_image_and_options(podkit, busybox, stage1,
                                                                tmp_path):
    out = _inside(podkit, stage1, "id -u; id -g; pwd; echo $PATH; echo $HOME; echo $A; echo $B")
    assert out.split("\n")[:4] == ["0", "0", "/", "/usr/bin:/bin"]  # the image's Env
    envf = tmp_path / "env"
    envf.write_text("# comment\nA=from file\nB=b1\n")
    out = _inside(podkit, stage1, "id -u; id -g; pwd; echo $HOME; echo $A; echo $B",
                  "--user=user", "--working-dir=/home/user", f"--set-env-file={envf}",
                  "--set-env=B=from option")
    assert out.split("\n")[:6] == ["1000", "1000", "/home/user", "/home/user", "from file",
                                   "from option"]
    out = _inside(podkit, stage1, "id -u; id -g; busybox grep ^Groups: /proc/self/status",
                  "--user=4242:77")
    assert out.split() == ["4242", "77", "Groups:", "77"]  # the primary group too, as runc
    out = _inside(podkit, stage1, "pwd", "--working-dir=/not/in/the/image")  # made, as docker
    assert out == "/not/in/the/image\n"


def test_memory_and_pids_limits(podkit, busybox, stage1):
    r = run(podkit, stage1, "--memory=32m", "busybox", "--", "sh", "-c",
            "busybox head -c 300m /dev/zero | busybox tail >/dev/null; echo tail=$?")
    assert r.returncode == 0, r.stderr
    assert "tail=137" in r.stdout  # the OOM killer took the process over the limit
    r = run(podkit, stage1, "--pids-limit=4", "busybox", "--", "sh", "-c",
            "for i in 1 2 3 4 5 6; do sleep 3 & done; wait")
    assert "can't fork" in r.stderr


def test_volumes_and_readonly_rootfs(podkit, busybox, stage1, tmp_path):
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "in").write_text("host file\n")
    out = _inside(podkit, stage1, "cat /ro/in; echo new > /rw/out; echo x > /ro/no || echo ro-ok;"
                  " echo e > /scratch/f && cat /scratch/f",
                  f"--volume={rw}:/rw", f"--volume=ro,kind=host,source={ro},readOnly=true",
                  "--mount=volume=ro,target=/ro",
                  "--volume=scratch,kind=empty,mode=0700", "--mount=volume=scratch,target=/scratch")
    assert out.split("\n")[:3] == ["host file", "ro-ok", "e"]
    assert (rw / "out").read_text() == "new\n"
    assert not (ro / "no").exists()
    r = run(podkit, stage1, "--readonly-rootfs", "busybox", "--", "sh", "-c",
            "echo x > /newfile")
    assert r.returncode != 0 and "Read-only file system" in r.stderr


def test_two_pods_of_one_image_do_not_see_each_other(podkit, busybox, stage1, store):
    assert run(podkit, stage1, "busybox", "--", "true").returncode == 0  # extracts the layers
    layers = os.path.join(store, "layers")
    before = snapshot(layers)
    assert before
    a = subprocess.Popen([os.path.join(TOOLS, "podkit-run"), "--store", store,
                          f"--stage1={stage1}", "busybox", "--", "sh", "-c",
                          "echo a > /data/a; echo mine > /only-a; sleep 2; cat /data/a"],
                         stdout=subprocess.PIPE, text=True)
    time.sleep(0.8)
    out = _inside(podkit, stage1, "cat /data/a | busybox head -1; "
                  "test -e /only-a && echo visible || echo invisible")
    assert out.split("\n")[:2] == ["data a", "invisible"]
    assert a.communicate(timeout=60)[0] == "a\n"
    assert a.returncode == 0
    assert snapshot(layers) == before  # nothing written into the image's layers
    uppers = [os.path.join(store, "pods/run", u, "apps/busybox/upper") for u in
              pods_in(store, "run")]
    assert sum(os.path.exists(os.path.join(u, "only-a")) for u in uppers) == 1


def test_uuid_file_and_pod_manifest(podkit, busybox, stage1, store, tmp_path):
    f = tmp_path / "uuid"
    r = run(podkit, stage1, f"--uuid-file-save={f}", "busybox", "--", "true")
    assert r.returncode == 0, r.stderr
    uuid = f.read_text().strip()
    doc = json.load(open(os.path.join(store, "pods/run", uuid, "pod")))
    assert doc["acKind"] == "PodManifest" and doc["apps"][0]["image"]["id"] == busybox
    assert doc["apps"][0]["app"]["exec"] == ["true"]


def _man_page_stage1(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """Set up the stage1 of podkit-stage1(7)'s EXAMPLES in tmp; its podkit-run line."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    page = open(os.path.join(root, "man/podkit-stage1.7")).read()
    example = page.split(".SH EXAMPLES", 1)[1].split(".EX\n", 1)[1].split("\n.EE", 1)[0]
    script = example.replace("\\-", "-").replace("\\e", "\\")
    script = script.replace("/opt/s1", str(tmp_path / "s1"))
    lines = script.splitlines()
    setup, last = "\n".join(lines[:-1]), lines[-1]
    subprocess.run(["sh", "-ec", setup], check=True)
    assert last.startswith("podkit-run --stage1=")
    return last


def test_stage1_written_from_the_man_page(podkit, busybox, tmp_path):
    """The EXAMPLES of podkit-stage1(7), run as written (with /opt/s1 moved to tmp)."""
    last = _man_page_stage1(tmp_path)
    r = podkit("run", *last.split()[1:])
    assert (r.returncode, r.stdout, r.stderr) == (0, "hello\n", "")


def test_operator_swaps_the_default_stage1_in_stage1_d(podkit, busybox, tmp_path, monkeypatch,
                                                        store):
    _man_page_stage1(tmp_path)
    conf = tmp_path / "etc"
    (conf / "stage1.d").mkdir(parents=True)
    (conf / "stage1.d" / "50-chroot.json").write_text(json.dumps(
        {"podkitKind": "stage1", "name": "chroot", "location": str(tmp_path / "s1"),
         "default": True}))
    monkeypatch.setenv("PODKIT_CONFIG_DIR", str(conf))
    r = podkit("run", "busybox", "--", "echo", "via the default")
    assert (r.returncode, r.stdout) == (0, "via the default\n"), r.stderr
    (uuid,) = pods_in(store, "run")
    manifest = json.load(open(os.path.join(store, "pods/run", uuid, "stage1/manifest")))
    assert manifest["name"] == "example.com/chroot"
    r = podkit("run", "--stage1=chroot", "busybox", "--", "echo", "by name")
    assert r.stdout == "by name\n"
    (conf / "stage1.d" / "60-bad.json").write_text("{not json")
    podkit.fail("run", "busybox", "--", "true", status=2, match="60-bad.json")


@pytest.mark.parametrize(("args", "status", "match"), [
    (["--pull-policy=never", "nosuch:image"], 4, "not in the store"),
    (["--memory=lots", "busybox"], 2, "is not a size"),
    (["--stage1=nosuch", "busybox"], 4, "no stage1 named"),
    (["--stage1=/nonexistent", "busybox"], 4, "is not a stage1"),
    (["--user=nobody", "busybox"], 4, "not in the image's /etc/passwd"),
    (["--volume=/nonexistent:/x", "busybox"], 2, "does not exist"),
    (["--mount=volume=v,target=/x", "busybox"], 2, "no --volume named"),
    (["--caps-retain=CAP_BOGUS", "busybox"], 2, "unknown capability"),
    (["--working-dir=rel", "busybox"], 2, "not an absolute path"),
])
def test_bad_input_leaves_no_pod(podkit, busybox, store, args, status, match):
    podkit.fail("run", *args, status=status, match=match)
    for where in ("embryo", "prepare", "run", "garbage"):
        assert pods_in(store, where) == []


def test_run_of_a_stored_image_stays_lean(podkit, busybox, store):
    """No requests, jsonschema, cryptography or zstandard on podkit-run's path."""
    import sys

    code = ("import sys, stage0.stage1 as s1\n"
            "def stop(ep, args, pod_dir, env=None):\n"
            "    heavy = {m.split('.')[0] for m in sys.modules} & {'jsonschema', 'requests', "
            "'cryptography', 'zstandard', 'referencing', 'urllib3'}\n"
            "    print(sorted(heavy)); sys.exit(0)\n"
            "s1.exec_entrypoint = stop\n"
            f"sys.argv = ['podkit-run', '--store', {store!r}, 'busybox', '--', 'true']\n"
            "from stage0.cli.run import main\n"
            "sys.exit(main())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_network_none_has_only_loopback_and_host_shares_the_callers(podkit, busybox, stage1):
    out = _inside(podkit, stage1, "ls /sys/class/net", "--net=none")
    assert out.split() == ["lo"]
    host = sorted(os.listdir("/sys/class/net"))
    assert sorted(_inside(podkit, stage1, "ls /sys/class/net").split()) == host


def test_limits_are_written_to_the_pods_own_cgroup(podkit, busybox, stage1, store, tmp_path):
    """While the pod runs, its cgroup (named in $POD/cgroup) has the CFS quota of --cpu."""
    f = tmp_path / "uuid"
    p = subprocess.Popen([os.path.join(TOOLS, "podkit-run"), "--store", store,
                          f"--stage1={stage1}", "--cpu=250m", "--memory=64m",
                          f"--uuid-file-save={f}", "busybox", "--", "sleep", "3"])
    try:
        deadline = time.monotonic() + 10
        while not f.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        pod = os.path.join(store, "pods/run", f.read_text().strip())
        while not os.path.exists(os.path.join(pod, "cgroup")) and time.monotonic() < deadline:
            time.sleep(0.05)
        dirs = open(os.path.join(pod, "cgroup")).read().split()
        quota = [open(os.path.join(d, "cpu.cfs_quota_us")).read().strip() for d in dirs
                 if os.path.exists(os.path.join(d, "cpu.cfs_quota_us"))]
        mem = [open(os.path.join(d, "memory.limit_in_bytes")).read().strip() for d in dirs
               if os.path.exists(os.path.join(d, "memory.limit_in_bytes"))]
        assert quota == ["25000"] and mem == [str(64 << 20)]
        assert all(os.path.basename(d) == "podkit-" + os.path.basename(pod) for d in dirs)
    finally:
        assert p.wait(timeout=30) == 0
    assert not any(os.path.exists(d) for d in dirs)  # removed with the pod
