"""Helpers shared by the tests: running podkit, comparing trees."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _tool_dir() -> str:
    venv_bin = os.path.dirname(sys.executable)
    if os.path.exists(os.path.join(venv_bin, "podkit-fetch")):
        return venv_bin
    return os.path.join(ROOT, "bin")


TOOLS = _tool_dir()


class Podkit:
    """Runs podkit commands against one store, as a user would."""

    def __init__(self, store: str) -> None:
        self.store = store

    def __call__(self, verb: str, *args: str, input: str | None = None,
                 store: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
        cmd = [os.path.join(TOOLS, f"podkit-{verb}")]
        if store:
            cmd += ["--store", self.store]
        cmd += list(args)
        return subprocess.run(cmd, input=input, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def ok(self, verb: str, *args: str, **kw) -> str:  # type: ignore[no-untyped-def]
        r = self(verb, *args, **kw)
        assert r.returncode == 0, f"podkit-{verb} {args} -> {r.returncode}: {r.stderr}"
        return r.stdout

    def fail(self, verb: str, *args: str, status: int, match: str = "", **kw):  # type: ignore[no-untyped-def]
        r = self(verb, *args, **kw)
        assert r.returncode == status, f"expected {status}, got {r.returncode}: {r.stderr}"
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, f"error is not one line: {r.stderr!r}"
        assert lines[0].startswith(f"podkit-{verb}: "), lines[0]
        assert "Traceback" not in r.stderr
        if match:
            assert match in lines[0], lines[0]
        return r


def snapshot(root: str, *, content: bool = True, mtimes: bool = True) -> dict[str, tuple]:
    """Everything comparable about a tree: types, modes, owners, data, links."""
    out: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            extra: object = None
            if stat.S_ISREG(kind):
                if content:
                    with open(p, "rb") as f:
                        extra = hashlib.sha256(f.read()).hexdigest()
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1:
                    extra = (extra, "link-group:" + inodes.setdefault(key, rel))
            elif stat.S_ISLNK(kind):
                extra = os.readlink(p)
            elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
                extra = st.st_rdev
            mtime = st.st_mtime_ns // 10**9 if mtimes and not stat.S_ISDIR(kind) \
                and not stat.S_ISLNK(kind) else None
            out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        st.st_size if stat.S_ISREG(kind) else None, extra, mtime)
    return out


def diff_trees(a: dict[str, tuple], b: dict[str, tuple]) -> list[str]:
    problems = []
    for k in sorted(set(a) | set(b)):
        if k not in a:
            problems.append(f"only in second: {k}")
        elif k not in b:
            problems.append(f"only in first: {k}")
        elif a[k] != b[k]:
            problems.append(f"differs: {k}: {a[k]} != {b[k]}")
    return problems


def umoci_rootfs(layout: str, tag: str, dest: str) -> str:
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", dest], check=True,
                   capture_output=True)
    return os.path.join(dest, "rootfs")


def store_state(store: str) -> dict[str, tuple]:
    """The visible state of a store (what must not change on failure)."""
    if not os.path.exists(store):
        return {}
    snap = snapshot(store, mtimes=False)
    return {k: v for k, v in snap.items()
            if not k.startswith(("tmp/", "locks/")) and k not in ("tmp", "locks")}
