"""podkit-run under a service manager: sd_notify readiness and socket activation.

A real NOTIFY_SOCKET listener and systemd-socket-activate drive podkit-run the
way a Type=notify unit and a .socket unit would; the app side is a small
static program (tests/data/sdhelper.c) bound into a busybox pod.
"""

from __future__ import annotations

import os
import shutil
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
