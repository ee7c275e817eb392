"""Progress of podkit-fetch and podkit-push: docker-like on a terminal, plain, or none."""

from __future__ import annotations

import json
import os
import select
import subprocess

from helpers import TOOLS


def _layers(registry, repo: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [x["digest"][7:19] for x in registry.manifest(repo, "1").json()["layers"]]


def test_plain_progress_has_a_line_per_layer_state(podkit, registry, registry_images, repo):
    ref = registry_images["multi"]["ref"]
    r = podkit("fetch", "--progress=plain", f"docker://{ref}")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert "\x1b" not in r.stderr
    for key in _layers(registry, "test/multi"):
        mine = [x.split(": ", 1)[1] for x in lines if x.startswith(key + ": ")]
        assert mine == ["Waiting", "Downloading", "Download complete"], (key, lines)
    # the same layers under another name: already there
    r = podkit("fetch", "--progress=plain", f"docker://{registry_images['multi-docker']['ref']}")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(": Already exists") >= 1
    # push: uploaded once, then skipped as docker push says
    image_id = r.stdout.strip()
    r = podkit("push", "--progress=plain", image_id, f"docker://{registry.addr}/{repo}:1")
    assert r.returncode == 0, r.stderr
    r = podkit("push", "--progress=plain", image_id, f"docker://{registry.addr}/{repo}:2")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(": Layer already exists, skipping") == 4, r.stderr  # 3 layers+config
    assert f"2: digest: {image_id} size: " in r.stderr


def test_piped_stderr_gets_no_progress_by_default(podkit, registry_images):
    r = podkit("fetch", f"docker://{registry_images['tiny']['ref']}")
    assert r.returncode == 0 and r.stderr == ""
    r = podkit("fetch", "--progress=plain", "-q",
               f"docker://{registry_images['multi']['ref']}")
    assert r.returncode == 0 and r.stderr == ""  # -q after --progress wins


def _on_a_terminal(cmd: list[str]) -> tuple[int, str, str]:
    """Run ``cmd`` with stderr on a pseudo-terminal; (status, stdout, terminal output)."""
    master, slave = os.openpty()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        assert ready, "no output from the terminal within 60 s"
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not data:
            break
        seen += data
    os.close(master)
    out = p.stdout.read().decode()  # type: ignore[union-attr]
    return p.wait(timeout=60), out, seen.decode()


def test_terminal_progress_redraws_layer_lines(podkit, registry, registry_images):
    ref = registry_images["multi"]["ref"]
    status, out, tty = _on_a_terminal([os.path.join(TOOLS, "podkit-fetch"), "--store",
                                       podkit.store, f"docker://{ref}"])
    assert status == 0 and out.strip() == registry_images["multi"]["digest"]
    assert "\x1b[2K" in tty and "\x1b[" in tty.replace("\x1b[2K", "")  # redrawn in place
    for key in _layers(registry, "test/multi"):
        assert f"{key}: Download complete" in tty
        assert f"{key}: Downloading" in tty
    assert "/" in tty.split("Downloading", 1)[1].splitlines()[0]  # bytes done / total
    json.loads(podkit.ok("inspect", out.strip()))
