"""podkit-logs and the stage1's copy of the app's output: real pods, both stage1s.

The app's stdout and stderr must still reach podkit-run's own, byte for byte
and stream for stream, and also land in ``$POD/logs/APP.log`` (docker's
json-file format) for podkit-logs, while the pod runs and after it exited.
"""

from __future__ import annotations

import calendar
import glob
import json
import os
import re
import shlex
import subprocess
import time

import pytest
from helpers import TOOLS, store_state

STAGE1S = ["nspawn", "fly"]
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"


@pytest.fixture(params=STAGE1S)
def stage1(request) -> str:  # type: ignore[no-untyped-def]
    return request.param


@pytest.fixture
def busybox(podkit, images) -> str:  # type: ignore[no-untyped-def]
    return podkit.ok("fetch", f"oci:{images['layout']}:tiny", "--name", "busybox").strip()


def run_pod(store: str, script: str, *opts: str, env: dict[str, str] | None = None,
            **kw) -> tuple[subprocess.CompletedProcess, str]:  # type: ignore[no-untyped-def]
    """podkit-run of ``sh -c script`` with bytes out: (result, pod UUID)."""
    uuid_file = os.path.join(store, f"uuid-{time.monotonic_ns()}")
    os.makedirs(store, exist_ok=True)
    r = subprocess.run([os.path.join(TOOLS, "podkit-run"), "--store", store,
                        "--uuid-file-save", uuid_file, *opts, "busybox", "--", "sh", "-c",
                        script], env={**os.environ, **(env or {})}, timeout=120, check=False,
                       **({"stdout": subprocess.PIPE, "stderr": subprocess.PIPE} | kw))
    with open(uuid_file) as f:
        return r, f.read().strip()


def logs(store: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([os.path.join(TOOLS, "podkit-logs"), "--store", store, *args],
                          capture_output=True, timeout=60, check=False)


def log_files(store: str, uuid: str) -> list[str]:
    (pod_dir,) = glob.glob(os.path.join(store, "pods", "*", uuid))
    return sorted(glob.glob(os.path.join(pod_dir, "logs", "*")))


SCRIPT = (r"printf 'out 1\n'; printf 'err 1\n' >&2; printf 'caf\303\251 \001\377\n';"
          r" printf 'err 2\n' >&2; printf 'no newline'")


def test_output_reaches_the_caller_unchanged_and_the_log(podkit, busybox, stage1, store):
    r, uuid = run_pod(store, SCRIPT + "; exit 3", f"--stage1={stage1}")
    assert r.returncode == 3, r.stderr
    assert r.stdout == b"out 1\ncaf\xc3\xa9 \x01\xff\nno newline"
    assert r.stderr == b"err 1\nerr 2\n"
    (path,) = log_files(store, uuid)
    assert os.path.basename(path) == "busybox.log"
    entries = [json.loads(line) for line in open(path, "rb").read().splitlines()]
    assert all(set(e) == {"log", "stream", "time"} and re.fullmatch(STAMP, e["time"])
               for e in entries), entries
    by_stream = {s: "".join(e["log"] for e in entries if e["stream"] == s)
                 for s in ("stdout", "stderr")}
    assert by_stream == {"stdout": "out 1\ncafé \x01\udcff\nno newline",
                         "stderr": "err 1\nerr 2\n"}
    assert [e["log"] for e in entries if e["stream"] == "stdout"][-1] == "no newline"
    got = logs(store, uuid)
    assert got.returncode == 0, got.stderr
    assert (got.stdout, got.stderr) == (r.stdout, r.stderr)  # the very bytes


def test_tail_and_timestamps(podkit, busybox, store):
    _, uuid = run_pod(store, "for i in 1 2 3 4 5; do echo line $i; done; sleep 0.3; "
                             "echo oops >&2; sleep 0.3; echo last")  # one order across streams
    r = logs(store, "--tail", "2", uuid)
    assert (r.stdout, r.stderr) == (b"last\n", b"oops\n")
    assert logs(store, "--tail", "3", uuid).stdout == b"line 5\nlast\n"
    assert logs(store, "--tail", "0", uuid).stdout == b""
    assert logs(store, "--tail", "all", uuid).stdout.count(b"\n") == 6
    r = logs(store, "--timestamps", "-n", "1", uuid)
    assert re.fullmatch(rf"{STAMP} last\n", r.stdout.decode()), r.stdout
    first = logs(store, "-t", uuid).stdout.decode().splitlines()
    assert [x.split(" ", 1)[1] for x in first] == [f"line {i}" for i in range(1, 6)] + ["last"]
    assert first == sorted(first)  # in time order


def test_follow_a_running_pod_until_it_exits(podkit, busybox, stage1, store):
    uuid_file = os.path.join(store, "uuid")
    pod = subprocess.Popen([os.path.join(TOOLS, "podkit-run"), "--store", store,
                            f"--stage1={stage1}", "--uuid-file-save", uuid_file, "busybox",
                            "--", "sh", "-c", "for i in 1 2 3 4 5; do echo tick $i; "
                            "echo tock $i >&2; sleep 0.5; done"],
                           stdout=open(os.path.join(store, "out"), "wb"),
                           stderr=open(os.path.join(store, "err"), "wb"))
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(uuid_file):
            assert time.monotonic() < deadline and pod.poll() is None
            time.sleep(0.02)
        with open(uuid_file) as f:
            uuid = f.read().strip()
        follower = subprocess.Popen([os.path.join(TOOLS, "podkit-logs"), "--store", store,
                                     "-f", uuid], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        assert follower.stdout is not None
        first = follower.stdout.readline()
        assert first == b"tick 1\n"
        assert pod.poll() is None, "the first line came only after the pod ended"
        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 0, err
        assert pod.wait(timeout=30) == 0
        assert first + out == b"".join(b"tick %d\n" % i for i in range(1, 6))
        assert err == b"".join(b"tock %d\n" % i for i in range(1, 6))
    finally:
        pod.kill()
        pod.wait()


def test_logs_of_a_pod_that_exited_an_hour_ago(podkit, busybox, store):
    _, uuid = run_pod(store, "echo an hour ago; echo on stderr >&2")
    (pod_dir,) = glob.glob(os.path.join(store, "pods", "run", uuid))
    hour = 3600
    (path,) = log_files(store, uuid)
    entries = [json.loads(x) for x in open(path, "rb").read().splitlines()]
    for e in entries:  # as if written an hour ago
        t = calendar.timegm(time.strptime(e["time"][:19], "%Y-%m-%dT%H:%M:%S")) - hour
        e["time"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + e["time"][19:]
    with open(path, "w") as f:
        f.write("".join(json.dumps(e) + "\n" for e in entries))
    for root, dirs, files in os.walk(pod_dir):
        if "/apps/" in root + "/":
            continue
        for name in dirs + files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                st = os.stat(p)
                os.utime(p, (st.st_atime - hour, st.st_mtime - hour))
    assert "exited" in podkit.ok("list", "-a")
    podkit.ok("gc", "--grace-period=2h")  # marks it exited-garbage; keeps it for 2 h
    listed = json.loads(podkit.ok("list", "-a", "--json"))
    assert [(p["uuid"], p["state"], p["exitCode"]) for p in listed] == \
        [(uuid, "exited garbage", 0)]
    r = logs(store, uuid)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"an hour ago\n", b"on stderr\n")
    assert logs(store, "--since", "30m", uuid).stdout == b""
    assert logs(store, "--since", "2h", uuid).stdout == b"an hour ago\n"
    podkit.ok("gc", "--grace-period=0")
    r = logs(store, uuid)
    assert r.returncode == 4 and r.stderr.decode().startswith("podkit-logs: no pod"), r.stderr


def test_rotation_keeps_two_old_files_under_the_cap(podkit, busybox, store):
    cap = 4096
    r, uuid = run_pod(store, "i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo line $i; done",
                      env={"PODKIT_LOG_MAX_SIZE": str(cap)})
    assert r.returncode == 0
    assert r.stdout == b"".join(b"line %d\n" % i for i in range(1, 401))  # all of it
    files = log_files(store, uuid)
    assert [os.path.basename(f) for f in files] == ["busybox.log", "busybox.log.1",
                                                    "busybox.log.2"]
    assert all(os.path.getsize(f) <= cap for f in files)
    kept = b"".join(json.loads(x)["log"].encode() for f in (files[2], files[1], files[0])
                    for x in open(f, "rb").read().splitlines())
    assert r.stdout.endswith(kept) and kept.count(b"\n") > 100  # the newest, in order
    assert logs(store, uuid).stdout == kept
    assert logs(store, "--tail", "2", uuid).stdout == b"line 399\nline 400\n"


def test_stdout_and_stderr_on_one_file_keep_their_order(podkit, busybox, stage1, store):
    script = "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo out $i; echo err $i >&2; done"
    r, uuid = run_pod(store, script, f"--stage1={stage1}", stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT)
    want = b"".join(b"out %d\nerr %d\n" % (i, i) for i in range(1, 201))
    assert r.stdout == want
    assert logs(store, uuid).stdout == want  # one stream, as it was one file


def test_a_gone_reader_still_ends_the_app_with_sigpipe(podkit, busybox, stage1, store):
    cmd = shlex.join([os.path.join(TOOLS, "podkit-run"), "--store", store,
                      f"--stage1={stage1}", "busybox", "--", "sh", "-c",
                      "while :; do echo y; done"])
    r = subprocess.run(["bash", "-c", f"{cmd} | head -1; echo \"${{PIPESTATUS[0]}}\""],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.stdout == "y\n141\n", r.stderr


def test_a_stalled_stdout_does_not_hold_stderr_back(podkit, busybox, store):
    p = subprocess.Popen([os.path.join(TOOLS, "podkit-run"), "--store", store, "busybox",
                          "--", "sh", "-c", "(head -c 1000000 /dev/zero; echo) & sleep 1; "
                          "echo stderr-flows >&2; wait"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stderr is not None and p.stdout is not None
        assert p.stderr.readline() == b"stderr-flows\n"  # nobody reads stdout yet
        out = p.stdout.read()
        assert len(out) == 1000001
        assert p.wait(timeout=60) == 0
    finally:
        p.kill()
        p.wait()


def test_an_interactive_pod_is_not_logged(podkit, busybox, store):
    uuid_file = os.path.join(store, "uuid")
    cmd = shlex.join([os.path.join(TOOLS, "podkit-run"), "--store", store, "--uuid-file-save",
                      uuid_file, "-t", "-i", "busybox", "--", "echo", "hi"])
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0 and "hi" in r.stdout, r.stderr
    with open(uuid_file) as f:
        uuid = f.read().strip()
    podkit.fail("logs", uuid, status=1, match="ran interactively (-t -i)")


@pytest.mark.parametrize(("args", "status", "match"), [
    (["0123abcd"], 4, "no pod 0123abcd"),
    (["not-a-uuid"], 2, "is not a pod UUID"),
    (["--tail", "-3", "0123"], 2, "--tail"),
    (["--since", "yesterday", "0123"], 2, "--since"),
    (["--uuid-file", "/nonexistent/uuid"], 4, "no such file"),
])
def test_bad_input(podkit, busybox, store, args, status, match):
    before = store_state(store)
    podkit.fail("logs", *args, status=status, match=match)
    assert store_state(store) == before


def test_uuid_from_stdin_and_a_prepared_pod_has_nothing_yet(podkit, busybox, store):
    _, uuid = run_pod(store, "echo from stdin")
    r = subprocess.run([os.path.join(TOOLS, "podkit-logs"), "--store", store],
                       input=uuid + "\n", capture_output=True, text=True, timeout=60,
                       check=False)
    assert (r.returncode, r.stdout) == (0, "from stdin\n"), r.stderr
    prepared = podkit.ok("prepare", "busybox", "--", "true").strip()
    assert podkit.ok("logs", "-f", prepared) == ""
