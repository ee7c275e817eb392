"""podkit-build against buildah 1.28 as the oracle (../shared/reference/dockerfile.md).

Each context is built by both (buildah: ``bud --isolation chroot --no-cache
--timestamp 0``, pushed to an OCI layout and unpacked by umoci), then the
flattened trees (paths, types, modes, owners, contents, link targets; not
mtimes) and the config fields a Dockerfile sets must be equal, except where
buildah is known to differ from BuildKit, which podkit follows:

* buildah leaves the mount points of its RUN containers in the image: empty
  ``/dev``, ``/proc``, ``/sys`` and empty ``/etc/hosts``, ``/etc/hostname``,
  ``/etc/resolv.conf`` (buildah issues 4242, 3808, 2478); podkit leaves them
  out as BuildKit does.  They are ignored here only while they are empty.
* BuildKit sets ``ArgsEscaped: true`` with CMD; buildah does not.

The contexts avoid what buildah 1.28 does not do (heredocs, colon-less
variable modifiers, ARG inheritance between stages, SHELL and HEALTHCHECK in
OCI images, EXPOSE ranges): test_build.py covers those against BuildKit's
documented behaviour.  Images also travel both ways: podkit's are read by
skopeo and umoci, and buildah's build further FROM in podkit.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess

import pytest
from helpers import TOOLS, diff_trees, snapshot, umoci_rootfs

from integration.test_build import DATA, build_ok, multistage_context, render

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("systemd-nspawn") is None,
    reason="RUN pods (and buildah's chroot isolation) need root")

FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels",
          "Volumes", "StopSignal")
PLACEHOLDER_DIRS = {"dev", "proc", "sys"}
PLACEHOLDER_FILES = {"etc/hosts", "etc/hostname", "etc/resolv.conf"}


class Buildah:
    """buildah with a throw-away store (vfs), the test busybox as docker.io/library/busybox."""

    def __init__(self, work: str, layout: str) -> None:
        self.base = ["buildah", "--root", os.path.join(work, "root"), "--runroot",
                     os.path.join(work, "runroot"), "--storage-driver", "vfs"]
        self.work = work
        image = self.sh("pull", "-q", f"oci:{layout}:tiny").strip()
        self.sh("tag", image, "docker.io/library/busybox:latest")

    def sh(self, *args: str) -> str:
        r = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=300,
                           check=False)
        assert r.returncode == 0, f"buildah {args}: {r.stderr}"
        return r.stdout

    def build(self, ctx: str, tag: str, *args: str) -> str:
        """Build and push to an OCI layout; the layout directory."""
        self.sh("bud", "--isolation", "chroot", "--no-cache", "--timestamp", "0",
                "--identity-label=false", "-q", *args, "-t", f"oracle:{tag}", ctx)
        layout = os.path.join(self.work, "layout")
        self.sh("push", "-q", f"oracle:{tag}", f"oci:{layout}:{tag}")
        return layout


@pytest.fixture(scope="module")
def buildah(images, tmp_path_factory):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("buildah")
    yield Buildah(str(work), images["layout"])
    subprocess.run(["buildah", "--root", str(work / "root"), "--runroot", str(work / "runroot"),
                    "--storage-driver", "vfs", "rm", "--all"], capture_output=True, check=False)


@pytest.fixture
def busybox(podkit, images) -> str:  # type: ignore[no-untyped-def]
    return podkit.ok("fetch", f"oci:{images['layout']}:tiny", "--name", "busybox").strip()


def without_buildah_placeholders(theirs: dict[str, tuple], ours: dict[str, tuple],
                                 root: str) -> dict[str, tuple]:
    out = {}
    for path, entry in theirs.items():
        full = os.path.join(root, path)
        if path not in ours and path in PLACEHOLDER_DIRS and stat.S_ISDIR(entry[0]) \
                and not os.listdir(full):
            continue
        if path not in ours and path in PLACEHOLDER_FILES and stat.S_ISREG(entry[0]) \
                and entry[4] == 0:
            continue
        out[path] = entry
    return out


def compare(podkit, buildah: Buildah, ctx: str, tag: str, tmp_path, *args: str  # type: ignore[no-untyped-def]
            ) -> tuple[str, str]:
    """Build ``ctx`` with both; assert trees and config agree; (our image ID, their layout)."""
    ours = build_ok(podkit.store, "-q", *args, ctx)
    layout = buildah.build(ctx, tag, *args)
    our_root = render(podkit, ours, str(tmp_path / f"ours-{tag}"))
    their_root = umoci_rootfs(layout, tag, str(tmp_path / f"theirs-{tag}"))
    a = snapshot(our_root, mtimes=False)
    b = without_buildah_placeholders(snapshot(their_root, mtimes=False), a, their_root)
    assert diff_trees(a, b) == []
    theirs_cfg = json.loads(subprocess.run(
        ["skopeo", "inspect", "--config", f"oci:{layout}:{tag}"], capture_output=True,
        text=True, check=True).stdout)["config"]
    ours_cfg = json.loads(podkit.ok("inspect", ours))["Config"]["config"]
    for field in FIELDS:
        assert ours_cfg.get(field) == theirs_cfg.get(field), field
    assert ours_cfg.get("ArgsEscaped") in (None, True) and "ArgsEscaped" not in theirs_cfg
    return ours, layout


def test_multistage_agrees_with_buildah(podkit, busybox, buildah, tmp_path):
    ctx = multistage_context(tmp_path)
    compare(podkit, buildah, ctx, "builder", tmp_path, "--target", "builder")
    ours, layout = compare(podkit, buildah, ctx, "final", tmp_path)

    # podkit's image, exported, is read by skopeo and unpacked by umoci as rendered
    out = str(tmp_path / "exported")
    podkit.ok("export", ours, f"oci:{out}:final")
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{out}:final"],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["Digest"] == ours
    unpacked = umoci_rootfs(out, "final", str(tmp_path / "umoci"))
    assert diff_trees(snapshot(str(tmp_path / "ours-final"), mtimes=False),
                      snapshot(unpacked, mtimes=False)) == []

    # buildah's image builds further FROM in podkit
    theirs = podkit.ok("fetch", f"oci:{layout}:final", "--name", "from-buildah:1").strip()
    assert theirs.startswith("sha256:")
    child = tmp_path / "child"
    child.mkdir()
    (child / "Dockerfile").write_text("FROM from-buildah:1\nUSER root\n"
                                      "RUN cat /srv/build.txt /srv/combined.txt > /both\n")
    root = render(podkit, build_ok(podkit.store, str(child)), str(tmp_path / "child-root"))
    with open(os.path.join(root, "both")) as f:
        assert f.read() == "version=1.0 mode=build\nalpha\nbeta\n"


def test_copy_rules_agree_with_buildah(podkit, busybox, buildah, tmp_path):
    ours, _ = compare(podkit, buildah, os.path.join(DATA, "rules"), "rules", tmp_path)
    root = str(tmp_path / "ours-rules")
    expect = {
        "dest-file": "one\n", "dest-dir/f1": "one\n", "other/deep/relative-to-workdir": "one\n",
        "merged/keep/pre": "pre\n", "merged/d.txt": "d\n", "merged/nested/n.txt": "n\n",
        "spaced/with space.txt": "two\n", "tree/a/x.txt": "a\n", "logs/keep.log": "keep\n",
        "data/n.txt": "n\n", "home/user/env.txt": "two words\n",
    }
    for path, text in expect.items():
        with open(os.path.join(root, path)) as f:
            assert f.read() == text, path
    assert os.readlink(os.path.join(root, "tree/dangling")) == "dangling-target"
    assert not os.path.exists(os.path.join(root, "tree/b"))  # .dockerignore
    assert os.listdir(os.path.join(root, "logs")) == ["keep.log"]  # ... with its exception
    assert not os.path.lexists(os.path.join(root, "data/a"))  # a whiteout
    assert os.readlink(os.path.join(root, "data/link")) == "/dest-file"
    assert stat.S_IMODE(os.lstat(os.path.join(root, "chmodded")).st_mode) == 0o600
    cfg = json.loads(podkit.ok("inspect", ours))["Config"]["config"]
    assert cfg["Env"][-3:] == ["A=2", "B=two words", "C=1x"]
    assert cfg["Cmd"] == ["/bin/sh", "-c", 'echo "shell form"']
    assert cfg["WorkingDir"] == "/other/deep"
    r = subprocess.run([os.path.join(TOOLS, "podkit-run"), "--store", podkit.store, ours],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == "shell form\n", r.stderr
