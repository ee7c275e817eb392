"""``RUN --mount``: cache keys and what each mount becomes in the RUN's pod.

* ``secret``: the secret (``--secret``) copied with the mount's mode and
  owner into a private file of the build and bound read-only at its target
  (default ``/run/secrets/ID``), or put into the step's environment
  (``env=``); the key names the secret, never its value.
* ``cache``: a directory under ``STORE/cache/build-mounts`` per ``id``
  (default: the target), bound read-write; ``sharing=locked`` holds a lock
  on it for the step, ``private`` takes a fresh directory when it is busy.
  Its contents are not in the key (as in BuildKit).
* ``bind``: a path of the context, or of another stage or image
  (``from=``), bound read-only, or through a throw-away overlay or copy
  when ``rw``; the key holds a digest of the context path, or the chain ID
  of the stage.
* ``tmpfs``: an empty volume of the pod, gone with it.

Sources reach the pod as the host volumes of podkit-run's ``--volume``
(through a symlink, so that no path character upsets the option syntax).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from libaci.dockerfile.dispatch import RunSpec
from libaci.fsutil import flocked, try_flock
from stage0.build import fsops
from stage0.build.context import file_digest
from stage0.build.errors import BuildError

if TYPE_CHECKING:
    from stage0.build.engine import Builder

SECRETS_DIR = "/run/secrets"
PIPES_DIR = "/dev/pipes"


class RunMounts:
    """The mounts of one build's RUN steps."""

    def __init__(self, builder: Builder) -> None:
        self.b = builder

    def target(self, spec: RunSpec, target: str) -> str:
        if not target:
            raise BuildError("RUN --mount: a target is required")
        path = posixpath.normpath(posixpath.join(spec.workdir or "/", target))
        if "," in path:
            raise BuildError(f"RUN --mount target {target!r}: commas are not supported")
        return path

    def key(self, spec: RunSpec, m: Any) -> list[Any]:
        if m.type == "ssh":
            raise BuildError("RUN --mount=type=ssh is not supported")
        if m.type == "secret":
            sid = secret_id(m)
            return ["secret", sid, m.target, m.env, sid in self.b.req.secrets]
        target = self.target(spec, m.target)
        if m.type == "bind":
            origin = self.b._source_chain(m.from_) if m.from_ else self.context_digest(m.source)
            return ["bind", target, m.source, m.read_only, m.from_, origin]
        if m.type == "cache" and m.from_:
            raise BuildError("RUN --mount=type=cache,from=... is not supported")
        return [m.type, target]

    def context_digest(self, source: str) -> str:
        tree = self.b.ctx.tree()
        rel = posixpath.normpath("/" + source).lstrip("/")
        entry = tree.resolve(rel)
        if entry is None:
            raise BuildError(f"RUN --mount source {source!r}: not found in the build context")
        path = self.b.ctx.path(entry.path)
        if entry.kind != "dir":
            return file_digest(path) if entry.kind == "file" else entry.kind
        h = hashlib.sha256()
        for child in tree.walk(entry.path):
            p = self.b.ctx.path(child.path)
            h.update(json.dumps([child.path, child.kind, child.target,
                                 file_digest(p) if child.kind == "file" else None]).encode())
        return h.hexdigest()

    def setup(self, spec: RunSpec, stack: contextlib.ExitStack
                     ) -> tuple[list[str], list[str], list[tuple[str, str]]]:
        """(--volume specs, --mount specs, extra environment) of a RUN's mounts."""
        volumes: list[str] = []
        targets: list[str] = []
        env: list[tuple[str, str]] = []

        def bind(source: str, target: str, read_only: bool) -> None:
            name = f"m{len(volumes)}"
            link = os.path.join(tempfile.mkdtemp(prefix="mnt-", dir=self.b.work), "src")
            os.symlink(source, link)  # keeps odd characters out of the volume spec
            volumes.append(f"{name},kind=host,source={link},readOnly="
                           f"{'true' if read_only else 'false'}")
            targets.append(f"volume={name},target={target}")

        for m in spec.mounts:
            if m.type == "secret":
                sid = secret_id(m)
                data = self.b.req.secrets.get(sid)
                if data is None:
                    if m.required:
                        raise BuildError(f"secret {sid} is required but was not given "
                                         f"(--secret id={sid},src=FILE)")
                    continue
                d = tempfile.mkdtemp(prefix="secret-", dir=self.b.work)
                path = os.path.join(d, "secret")
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.chown(path, m.uid or 0, m.gid or 0)
                os.chmod(path, m.mode if m.mode is not None else 0o400)
                os.chmod(d, 0o755)
                if m.env:
                    env.append((m.env, data.decode("utf-8", "surrogateescape")))
                if m.target or not m.env:
                    target = m.target or f"{SECRETS_DIR}/{sid}"
                    bind(path, self.target(spec, target), True)
                continue
            target = self.target(spec, m.target)
            if m.type == "bind":
                self._bind(m, target, bind)
            elif m.type == "cache":
                bind(self._cache_dir(m, stack), target, False)
            elif m.type == "tmpfs":
                name = f"m{len(volumes)}"
                volumes.append(f"{name},kind=empty,mode=1777,uid=0,gid=0")
                targets.append(f"volume={name},target={target}")
        if spec.script is not None:
            d = tempfile.mkdtemp(prefix="pipes-", dir=self.b.work)
            os.chmod(d, 0o755)
            path = os.path.join(d, spec.script.name)
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(spec.script.content())
            os.chmod(path, 0o755)
            bind(d, PIPES_DIR, True)
        return volumes, targets, env

    def _bind(self, m: Any, target: str, bind: Callable[[str, str, bool], None]) -> None:
        root = self.b._source_root(m.from_) if m.from_ else self.b.ctx.root
        src = fsops.host(root, fsops.resolve(root, m.source))
        if not os.path.exists(src):
            where = f"stage {m.from_}" if m.from_ else "the build context"
            raise BuildError(f"RUN --mount source {m.source!r}: not found in {where}")
        if m.read_only:
            bind(src, target, True)
            return
        # read-write: the step may write, the writes are thrown away
        if os.path.isdir(src):
            merged, _ = self.b.mounts.overlay([src])
            bind(merged, target, False)
        else:
            copy = os.path.join(tempfile.mkdtemp(prefix="rw-", dir=self.b.work), "file")
            with open(src, "rb") as a, open(copy, "wb") as b:
                while chunk := a.read(1 << 20):
                    b.write(chunk)
            bind(copy, target, False)

    def _cache_dir(self, m: Any, stack: contextlib.ExitStack) -> str:
        cid = m.cache_id or m.target
        base = self.b.store.path("cache", "build-mounts")
        os.makedirs(base, mode=0o700, exist_ok=True)
        d = os.path.join(base, hashlib.sha256(cid.encode()).hexdigest()[:32])
        if not os.path.isdir(d):
            tmp = tempfile.mkdtemp(prefix=".new-", dir=base)
            os.chmod(tmp, m.mode if m.mode is not None else 0o755)
            os.chown(tmp, m.uid or 0, m.gid or 0)
            try:
                os.rename(tmp, d)
            except OSError:
                os.rmdir(tmp)  # another build made it meanwhile
        sharing = m.sharing or "shared"
        if sharing == "locked":
            stack.enter_context(flocked(d + ".lock"))
        elif sharing == "private":
            fd = os.open(d + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            stack.callback(os.close, fd)
            if not try_flock(fd):  # in use: this step gets a fresh one of its own
                return tempfile.mkdtemp(prefix="cache-", dir=self.b.work)
        return d


def secret_id(m: Any) -> str:
    """BuildKit's secret ID: ``id``, else ``source``, else the target's base name."""
    return str(m.cache_id or m.source or posixpath.basename(m.target))
