"""COPY and ADD: what a step takes, its cache key material, and doing it.

:func:`plan_copy` works out, before anything is written, every entry the
step will write and where: heredoc sources, context or stage files chosen by
:func:`libaci.dockerfile.sources.select_sources` (wildcards, trailing
slashes, ``--parents``, ``--exclude``, symlinks named as sources followed),
local archives ADD extracts, and URLs ADD downloads (checked against
``--checksum``).  The result carries the digest material of the cache key
(destination, type, mode, size, content digest, link target of each entry;
owners where they are kept), so a changed file misses and an unchanged
one, however new its mtime, hits.  :func:`run_copy` then writes it all into
the merged overlay view through :class:`~stage0.build.fsops.Copier`.

Owners: files from the context become 0:0, files from another stage or
image keep theirs (BuildKit and the classic builder do so since 2019), and
archives keep what their tar says; ``--chown`` overrides all of them.
``--link`` is accepted and copies as a plain COPY does (the result is the
same layer; only BuildKit's rebasing differs).
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import os
import posixpath
import stat
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import attrs

from libaci.digest import Digest
from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.instructions import Add, Copy, _Copying
from libaci.dockerfile.sources import (
    SourceTree,
    content_dest,
    has_wildcards,
    select_sources,
    source_kind,
)
from libaci.errors import DigestMismatchError, UsageError
from libaci.layerwrite import walk
from stage0.build import fsops
from stage0.build.context import file_digest
from stage0.build.errors import BuildError


@attrs.define
class CopyJob:
    """Everything one COPY/ADD writes, worked out before the cache is asked."""

    files: list[tuple[str, bytes, int]] = attrs.Factory(list)  # dest, data, mode
    # source, destination, kind, link target, named on the instruction line
    puts: list[tuple[str, str, str, str, bool]] = attrs.Factory(list)
    archives: list[tuple[str, str]] = attrs.Factory(list)  # archive, destination directory
    keep_owner: bool = False  # sources from a stage or image keep their owners
    key: list[Any] = attrs.Factory(list)


def _entry_key(path: str, item_dest: str, kind: str, keep_owner: bool) -> list[Any]:
    st = os.lstat(path)
    out: list[Any] = [item_dest, kind, stat.S_IMODE(st.st_mode)]
    if keep_owner:
        out += [st.st_uid, st.st_gid]
    if kind == "file" and stat.S_ISREG(st.st_mode):
        out += [st.st_size, file_digest(path, st)]
    elif kind == "symlink":
        out.append(os.readlink(path))
    elif kind not in ("dir", "symlink"):
        out.append(st.st_rdev)
    return out


def plan_copy(c: _Copying, dest: str, merged: str, *, context: Callable[[], tuple[str, SourceTree]],
              stage_root: Callable[[str], str],
              download: Callable[[str, str], tuple[str, str, int]]) -> CopyJob:
    """The :class:`CopyJob` of COPY/ADD ``c`` (expanded) to absolute ``dest``.

    ``context()`` gives the context directory and its listing, ``stage_root(name)``
    the root of a ``--from`` stage or image, ``download(url, checksum)`` a
    downloaded file (path, name from the URL, mtime in ns).
    """
    is_add = isinstance(c, Add)
    name = "ADD" if is_add else "COPY"

    def dest_is_dir(p: str) -> bool:
        return fsops.is_dir(merged, p)

    def named(path: str) -> str:
        """Where a file whose destination is ``dest`` itself (not a file inside it) goes:
        BuildKit resolves the destination path, a final symlink included, inside the
        image (fsutil's ``fs.RootPath``), so the file is written where an existing
        link points, dangling or not, and the link stays.  ``--link`` copies onto an
        empty layer, where there is no link to follow."""
        if c.link or path != (dest.rstrip("/") or "/"):
            return path
        return fsops.resolve(merged, path)

    count = len(c.sources) + len(c.contents)
    if count > 1 and not dest.endswith("/"):
        if not dest_is_dir(dest):
            raise BuildError(f"When using {name} with more than one source file, the "
                             "destination must be a directory and end with a /")
        dest += "/"
    job = CopyJob()
    for content in c.contents:
        path = named(content_dest(content.path, dest, dest_is_dir))
        data = content.data.encode("utf-8", "surrogateescape")
        job.files.append((path, data, 0o644))
        job.key.append(["content", path, hashlib.sha256(data).hexdigest()])
    local: list[str] = []
    for src in c.sources:
        kind = source_kind(src)
        if kind == "git":
            raise BuildError(f"{name} {src}: git sources are not supported (clone the "
                             "repository into the context instead)")
        if kind != "http":
            local.append(src)
            continue
        assert isinstance(c, Add)
        path, filename, _mtime = download(src, c.checksum)
        if dest.endswith("/") or dest_is_dir(dest):
            if not filename:
                raise BuildError(f"ADD {src}: the URL names no file; give a destination "
                                 "file name")
            target = posixpath.join(dest, filename)
        else:
            target = named(dest)
        digest = file_digest(path)
        if c.unpack and fsops.is_archive(path):
            job.archives.append((path, dest.rstrip("/") or "/"))
            job.key.append(["url-archive", src, digest, dest])
        else:
            job.puts.append((path, target, "file", "", False))
            job.key.append(["url", src, digest, target])
    if not local:
        return job
    copy_from = c.from_ if isinstance(c, Copy) else ""
    if copy_from:
        root = stage_root(copy_from)
        tree = SourceTree.from_directory(root)
        job.keep_owner = True
    else:
        root, tree = context()
    try:
        items = select_sources(tree, local, dest, dest_is_dir=dest_is_dir,
                               excludes=c.excludes,
                               parents=isinstance(c, Copy) and c.parents)
    except DockerfileError as e:
        where = f"stage {copy_from}" if copy_from else "the build context"
        raise DockerfileError(f"{name} failed: {e.message} in {where}") from None
    tops = sum(1 for i in items if i.top)
    if tops > 1 and not dest.endswith("/") and any(has_wildcards(s) for s in local):
        raise BuildError(f"When using {name} with more than one source file, the "
                         "destination must be a directory and end with a /")
    for item in items:
        path = os.path.join(root, item.source) if item.source else root
        if (is_add and item.top and item.kind == "file" and c.unpack is not False  # type: ignore[attr-defined]
                and fsops.is_archive(path)):
            target_dir = dest.rstrip("/") or "/"
            job.archives.append((path, target_dir))
            job.key.append(["archive", target_dir, file_digest(path)])
            continue
        item_dest = named(item.dest) if item.top and item.kind != "dir" else item.dest
        job.puts.append((path, item_dest, item.kind, item.target, item.top))
        job.key.append([*_entry_key(path, item_dest, item.kind, job.keep_owner), item.top])
    return job


def run_copy(job: CopyJob, merged: str, *, owner: tuple[int, int] | None, c: _Copying,
             work: str, mtime_ns: int) -> None:
    """Write ``job`` into ``merged``; ``owner`` is ``--chown`` as numbers (None: not given)."""
    chmod = c.chmod_mode()
    keep = owner if owner is not None else (None if job.keep_owner else (0, 0))
    copier = fsops.Copier(merged, owner=keep, chmod=chmod)
    for path, data, mode in job.files:
        copier.write(path, data, mode, mtime_ns)
    for src, dest, kind, target, top in job.puts:
        copier.put(src, dest, kind, target, top=top)
    copier.finish()
    for archive, target_dir in job.archives:
        tmp = tempfile.mkdtemp(prefix="x-", dir=work)
        try:
            dirs = fsops.extract_archive(archive, tmp)
            fsops.ensure_dir(merged, target_dir, owner or (0, 0))
            ac = fsops.Copier(merged, owner=owner, chmod=chmod)
            for rel, path, st in walk(tmp):
                kind = "dir" if stat.S_ISDIR(st.st_mode) else \
                    "symlink" if stat.S_ISLNK(st.st_mode) else "file"
                ac.put(path, posixpath.join(target_dir, rel), kind, tar_dir=rel in dirs)
            ac.finish()
        finally:
            fsops.remove_tree(tmp)


# -- ADD <url> -------------------------------------------------------------------------------------

def download(url: str, checksum: str, work: str, *, tls: Any, credentials: Any,
             allow_http: bool) -> tuple[str, str, int]:
    """Fetch ``url`` into ``work``: (path, file name from the URL, mtime in ns).

    Plain HTTP is allowed for loopback hosts, with ``--checksum`` (the content
    is verified anyway) or ``--insecure-options=http``; the file's mtime is
    the answer's Last-Modified when it has one.
    """
    from libaci.http import Body, HttpClient
    from libaci.registry.client import TLSOptions, is_loopback

    parts = urllib.parse.urlsplit(url)
    base = tls or TLSOptions()
    if parts.scheme == "http" and (allow_http or bool(checksum) or
                                   is_loopback(parts.netloc.rpartition("@")[2])):
        base = attrs.evolve(base, allow_http=True)
    want = Digest.parse(checksum) if checksum else None
    if want is not None and want.algorithm not in ("sha256", "sha384", "sha512"):
        raise UsageError(f"ADD --checksum={checksum}: unsupported algorithm")
    fd, path = tempfile.mkstemp(prefix="dl-", dir=work)
    h = hashlib.new(want.algorithm if want is not None else "sha256")
    with HttpClient(base, credentials=credentials) as client:
        resp = client.get(url, what=url)
        try:
            body = Body(resp, url)
            with os.fdopen(fd, "wb") as out:
                while chunk := body.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
            modified = resp.headers.get("Last-Modified")
        finally:
            resp.close()
    if want is not None and h.hexdigest() != want.encoded:
        raise DigestMismatchError(f"ADD {url}: checksum mismatch: expected {want}, got "
                                  f"{want.algorithm}:{h.hexdigest()}")
    mtime = time.time_ns()
    if modified:
        with contextlib.suppress(TypeError, ValueError):
            mtime = int(email.utils.parsedate_to_datetime(modified).timestamp()) * 10**9
    os.chmod(path, 0o600)
    os.utime(path, ns=(mtime, mtime))
    name = posixpath.basename(urllib.parse.unquote(parts.path))
    return path, name, mtime
