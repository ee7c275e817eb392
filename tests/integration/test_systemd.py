"""podkit-run under a service manager: sd_notify readiness and socket activation.

A real NOTIFY_SOCKET listener and systemd-socket-activate drive podkit-run the
way a Type=notify unit and a .socket unit would; the app side is a small
static program (tests/data/sdhelper.c) bound into a busybox pod.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time

import pytest
from helpers import TOOLS

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="session")
def sdhelper(tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    """A directory holding the static sdhelper binary, to bind into pods."""
    d = tmp_path_factory.mktemp("sdhelper")
    subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "sdhelper"),
                    os.path.join(HERE, "..", "data", "sdhelper.c")], check=True)
    return str(d)


@pytest.fixture
def busybox(podkit, images) -> str:  # type: ignore[no-untyped-def]
    return podkit.ok("fetch", f"oci:{images['layout']}:tiny", "--name", "busybox").strip()


@pytest.fixture
def listener(tmp_path):  # type: ignore[no-untyped-def]
    """A NOTIFY_SOCKET as systemd binds it; yields (path, receive(timeout) -> list)."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)

    def receive(timeout: float) -> list[tuple[float, str]]:
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = sock.recv(4096).decode()
                got.append((time.monotonic(), msg))
            except TimeoutError:
                break
            if any("READY=1" in m for _, m in got):
                break
        return got

    try:
        yield path, receive
    finally:
        sock.close()


def _run(store: str, *args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([os.path.join(TOOLS, "podkit-run"), "--store", store, *args],
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_pod_up_sends_ready_with_the_stable_main_pid(podkit, busybox, store, listener):
    path, receive = listener
    p = _run(store, "busybox", "--", "sleep", "1", env={"NOTIFY_SOCKET": path})
    msgs = receive(15)
    assert p.wait(timeout=30) == 0, p.stderr.read()  # type: ignore[union-attr]
    text = "\n".join(m for _, m in msgs)
    assert "READY=1" in text and f"MAINPID={p.pid}" in text  # podkit-run's PID all along


def test_ready_app_waits_for_the_apps_own_ready(podkit, busybox, store, listener, sdhelper):
    path, receive = listener
    start = time.monotonic()
    p = _run(store, "--ready=app", f"--volume={sdhelper}:/h:ro", "busybox", "--",
             "/h/sdhelper", "notify", "1500", "READY=1\nSTATUS=serving",
             env={"NOTIFY_SOCKET": path})
    try:
        msgs = receive(20)
        ready = [t for t, m in msgs if "READY=1" in m]
        assert ready, (msgs, p.stderr)
        assert ready[0] - start >= 1.4, msgs  # not when the pod came up: when the app said so
        assert any("STATUS=serving" in m or "STATUS=app ready" in m for _, m in msgs)
    finally:
        p.terminate()  # SIGTERM, as systemctl stop sends it: the app dies of it
        p.wait(timeout=30)
    assert p.returncode == 143


def test_socket_activation_reaches_the_app_in_the_pod(podkit, busybox, store, sdhelper):
    if not shutil.which("systemd-socket-activate"):
        pytest.fail("systemd-socket-activate (package systemd) is missing")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sa = subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{port}",
                           "--fdname=web", os.path.join(TOOLS, "podkit-run"), "--store", store,
                           f"--volume={sdhelper}:/h:ro", "busybox", "--", "/h/sdhelper",
                           "serve", "hello-from-pod"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=20)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "systemd-socket-activate never listened"
                time.sleep(0.05)
        with conn:
            data = conn.makefile().read()
        assert data == "hello-from-pod fds=1 names=web\n"
    finally:
        sa.terminate()
        sa.wait(timeout=30)


# -- podkit-unit -------------------------------------------------------------------------
def unit(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([os.path.join(TOOLS, "podkit-unit"), *args], capture_output=True,
                          text=True, timeout=60, check=False, cwd=cwd)


def verify(*paths: str) -> None:
    """systemd-analyze verify, offline (no systemd runs here): no error, no warning."""
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *paths], capture_output=True,
                       text=True, timeout=120, check=False)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr


def sections(text: str) -> dict[str, str]:
    """The files of podkit-unit's output: '# ---- NAME ----' lines, then NAME's text."""
    parts = re.split(r"(?m)^# ---- (\S+) ----\n", text)
    assert parts[0] == "", text
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def keys(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]


def test_unit_with_socket_passes_systemd_analyze_verify(tmp_path, store):
    out = tmp_path / "units"
    out.mkdir()
    r = unit("--store", store, "--output-dir", str(out), "--socket", "127.0.0.1:8080",
             "--ready=app", "--memory=64m", "--set-env=GREETING=50% off $HOME", "busybox",
             "--", "httpd", "-f", "-p", "8080")
    assert r.returncode == 0, r.stderr
    paths = r.stdout.split()
    assert [os.path.basename(p) for p in paths] == ["podkit-busybox.service",
                                                    "podkit-busybox.socket"]
    verify(*paths)
    service, socket_ = (open(p).read() for p in paths)
    assert keys(service, "Type") == ["notify"] and keys(service, "KillMode") == ["mixed"]
    (start,) = keys(service, "ExecStart")
    assert start.startswith(os.path.join(TOOLS, "podkit-run") + " --uuid-file-save=%t/podkit/"
                            "%n.uuid ")
    assert f"--store={store}" in start and " --ready=app " in start
    assert '"--set-env=GREETING=50%% off $$HOME"' in start  # systemd: %% -> %, $$ -> $
    assert start.endswith(" busybox -- httpd -f -p 8080")
    assert keys(service, "ExecStopPost")[0] == (f"-{TOOLS}/podkit-rm --store={store} "
                                                "--uuid-file=%t/podkit/%n.uuid")
    assert keys(socket_, "ListenStream") == ["127.0.0.1:8080"]
    # the same units on stdout, as one stream with separators
    r = unit("--store", store, "--socket", "127.0.0.1:8080", "--ready=app", "--memory=64m",
             "--set-env=GREETING=50% off $HOME", "busybox", "--", "httpd", "-f", "-p", "8080")
    body = {name: text.split("\n", 1)[1] for name, text in sections(r.stdout).items()}
    assert body == {"podkit-busybox.service": service.split("\n", 1)[1],
                    "podkit-busybox.socket": socket_.split("\n", 1)[1]}  # but the comment


def test_template_unit_for_instances(tmp_path):
    r = unit("--template", "--unit", "web", "--volume=/srv/web-%i:/data",
             "--set-env=RATIO=100%", "busybox", "--", "sleep", "1d")
    assert r.returncode == 0, r.stderr
    files = sections(r.stdout)
    assert list(files) == ["web@.service"]
    (start,) = keys(files["web@.service"], "ExecStart")
    assert "--volume=/srv/web-%i:/data" in start and "--set-env=RATIO=100%%" in start
    assert "--hostname=web-%i" in start
    inst = tmp_path / "web@3.service"  # verify checks an instance, not a bare template
    inst.write_text(files["web@.service"])
    verify(str(inst))


@pytest.mark.parametrize(("args", "match"), [
    (["-t", "-i", "busybox"], "--interactive is not for a service"),
    (["--uuid-file-save=/x", "busybox"], "--uuid-file-save is not for a service"),
    (["--unit", "a b", "busybox"], "--unit 'a b'"),
    (["--socket", "", "busybox"], "--socket"),
    (["--stop-timeout", "soon", "busybox"], "--stop-timeout"),
    (["--podkit-run", "podkit-run", "busybox"], "absolute path"),
    (["--output-dir", "/nonexistent/dir", "busybox"], "no such directory"),
])
def test_unit_bad_input(podkit, store, args, match):
    from helpers import store_state

    before = store_state(store)
    status = 4 if "no such" in match else 2
    podkit.fail("unit", *args, status=status, match=match)
    assert store_state(store) == before


# -- the acceptance: a generated unit, run as systemd would --------------------------------
def command(line: str, unit_name: str, runtime: str) -> list[str]:
    """An Exec*= line of our units as systemd runs it: specifiers, quotes, $$."""
    expanded = re.sub(r"%(.)", lambda m: {"t": runtime, "n": unit_name, "%": "%"}[m.group(1)],
                      line)
    return [w.replace("$$", "$") for w in shlex.split(expanded.lstrip("-"))]


def connect(port: int) -> socket.socket:
    deadline = time.monotonic() + 10
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=30)
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, "nothing listens"
            time.sleep(0.05)


def test_generated_unit_with_notify_socket_activation_and_stop(podkit, busybox, store, listener,
                                                               sdhelper, tmp_path):
    path, receive = listener
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    r = unit("--store", store, "--unit", "web", "--socket", f"127.0.0.1:{port}", "--ready=app",
             f"--volume={sdhelper}:/h:ro", "busybox", "--", "/h/sdhelper", "daemon", "hello")
    assert r.returncode == 0, r.stderr
    files = sections(r.stdout)
    runtime = tmp_path / "run"
    (runtime / "podkit").mkdir(parents=True)  # RuntimeDirectory=podkit
    (start,) = keys(files["web.service"], "ExecStart")
    (address,) = keys(files["web.socket"], "ListenStream")
    # systemd: the socket unit listens, the service gets it with NOTIFY_SOCKET set
    sa = subprocess.Popen(["systemd-socket-activate", "-l", address, "--fdname=web.socket",
                           "-E", f"NOTIFY_SOCKET={path}",
                           *command(start, "web.service", str(runtime))],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = connect(port)  # the first connection starts the service, as with systemd
        msgs = receive(30)
        assert any("READY=1" in m for _, m in msgs), (msgs, sa.poll())
        assert any(f"MAINPID={sa.pid}" in m for _, m in msgs), msgs  # the unit's main PID
        with first:
            assert first.makefile().read() == "hello 1\n"  # served by the app in the pod
        with connect(port) as second:
            assert second.makefile().read() == "hello 2\n"
        uuid = (runtime / "podkit" / "web.service.uuid").read_text().strip()
        assert podkit.ok("status", uuid).startswith("state=running")
        sa.send_signal(signal.SIGTERM)  # systemctl stop, KillMode=mixed: the main PID only
        out, err = sa.communicate(timeout=60)
    finally:
        if sa.poll() is None:
            sa.kill()
            sa.wait()
    assert sa.returncode == 0, err  # the app handled TERM and exited 0
    assert out == b"listening\nserved 1\nserved 2\n"  # what the journal would get
    want_err = b"conn 1\nconn 2\ngot SIGTERM, exiting\n"
    assert err.endswith(b")\n" + want_err), err  # after systemd-socket-activate's "Execing"
    listed = json.loads(podkit.ok("list", "-a", "--json"))
    assert [(p["uuid"], p["state"], p["exitCode"]) for p in listed] == [(uuid, "exited", 0)]
    assert "exited (0)" in podkit.ok("list", "-a")
    logs = subprocess.run([os.path.join(TOOLS, "podkit-logs"), "--store", store, uuid],
                          capture_output=True, timeout=60, check=False)
    assert (logs.stdout, logs.stderr) == (out, want_err)
    for line in keys(files["web.service"], "ExecStopPost"):  # the pod goes with the unit
        subprocess.run(command(line, "web.service", str(runtime)), check=True, timeout=120,
                       capture_output=True)
    assert podkit.ok("list", "-a", "-q") == ""
    assert not (runtime / "podkit" / "web.service.uuid").exists()
