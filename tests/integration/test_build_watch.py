"""podkit-build --watch: a rebuild per change of what the build can see, until SIGINT."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import time

import pytest
from helpers import TOOLS

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("systemd-nspawn") is None,
    reason="RUN pods need root and systemd-nspawn")


def next_line(proc: subprocess.Popen, timeout: float) -> str | None:  # type: ignore[type-arg]
    """The next line on the watcher's stdout, or None when none comes in time."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        return None
    return proc.stdout.readline().strip()


def test_watch_rebuilds_on_changes_and_ends_on_sigint(podkit, images, tmp_path):
    podkit.ok("fetch", f"oci:{images['layout']}:tiny", "--name", "busybox")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / ".dockerignore").write_text("*.tmp\n")
    (ctx / "a.txt").write_text("one\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b\n")
    proc = subprocess.Popen([os.path.join(TOOLS, "podkit-build"), "--store", podkit.store,
                             "-q", "--watch", str(ctx)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = next_line(proc, 60)
        assert first is not None and first.startswith("sha256:")
        (ctx / "scratch.tmp").write_text("ignored: no rebuild\n")
        assert next_line(proc, 2.0) is None
        (ctx / "a.txt").write_text("two\n")
        second = next_line(proc, 60)
        assert second is not None and second.startswith("sha256:") and second != first
        (ctx / "Dockerfile").write_text("FROM busybox\nBOGUS\n")  # an error: it goes on
        time.sleep(2.0)
        assert proc.poll() is None
        (ctx / "Dockerfile").write_text("FROM busybox\nCOPY a.txt /a.txt\n")
        third = next_line(proc, 60)
        assert third is not None and third not in (first, second)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Dockerfile:2: unknown instruction: BOGUS" in err
    root = str(tmp_path / "r")
    podkit.ok("render", second, root)
    with open(os.path.join(root, "b")) as f:
        assert f.read() == "two\n"
