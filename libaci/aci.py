"""App Container Images (appc spec ``aci.md``): scan one, or write one.

An ACI is a tar, optionally gzip/bzip2/xz/zstd compressed (recognised by
magic bytes), holding exactly two top-level entries: ``manifest`` (a regular
file) and ``rootfs`` (a directory) with the image's files below it.  Its image
ID is ``sha512-<hex>`` of the *uncompressed* tar.

:func:`scan_aci` checks the layout and reads the manifest in one forward pass
while hashing (and optionally copying) the uncompressed bytes; file data is
never held in memory.  :func:`write_aci` writes a deterministic, uncompressed
PAX tar of a rendered rootfs.
"""

from __future__ import annotations

import errno
import io
import json
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from typing import BinaryIO, cast

import attrs

from libaci.appc import ImageManifest, parse_image_manifest
from libaci.compress import CompressionError, open_decompressed
from libaci.digest import Hasher
from libaci.errors import ImageError, ManifestError
from libaci.layerwrite import XATTR_PREFIX, pax_value

CHUNK = 1 << 20
MANIFEST_MAX = 1 << 20


@attrs.frozen
class AciInfo:
    manifest: ImageManifest
    manifest_raw: bytes = attrs.field(repr=False)
    image_id: str  # sha512-<128 hex> of the uncompressed tar
    size: int  # bytes of the uncompressed tar


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


class _Tee:
    """Hashes (and copies) every byte read through it."""

    def __init__(self, src: BinaryIO, hasher: Hasher, copy_to: BinaryIO | None) -> None:
        self._src = src
        self._hasher = hasher
        self._copy_to = copy_to

    def read(self, size: int = -1) -> bytes:
        data = self._src.read(size)
        if data:
            self._hasher.update(data)
            if self._copy_to is not None:
                self._copy_to.write(data)
        return data


def _entry_name(name: str) -> str:
    """The member name as the layout rules see it ("./rootfs/" -> "rootfs")."""
    return posixpath.normpath(name) if name else "."


def scan_aci(stream: BinaryIO, *, copy_to: BinaryIO | None = None) -> AciInfo:
    """Validate an ACI read from ``stream`` and compute its image ID.

    One streaming pass: the decompressed tar is hashed with sha512 (and written
    to ``copy_to`` if given) up to the end of the stream, padding included.
    Raises :class:`ImageError` for a bad layout or archive and
    :class:`ManifestError` for a bad or oversized manifest.
    """
    hasher = Hasher("sha512")
    tee = _Tee(open_decompressed(stream), hasher, copy_to)
    manifest_raw: bytes | None = None
    has_rootfs = False
    seen: set[str] = set()
    try:
        with tarfile.open(fileobj=cast(BinaryIO, tee), mode="r|") as tf:
            for member in tf:
                name = _entry_name(member.name)
                if name == ".":
                    continue
                if name in seen:
                    raise ImageError(f"ACI: duplicate entry {_q(name)}")
                seen.add(name)
                if name == "manifest":
                    if not member.isreg():
                        raise ImageError("ACI: manifest is not a regular file")
                    if member.size > MANIFEST_MAX:
                        raise ManifestError(
                            f"ACI: manifest is {member.size} bytes, more than the 1 MiB allowed")
                    f = tf.extractfile(member)
                    manifest_raw = f.read() if f is not None else b""
                elif name == "rootfs":
                    if not member.isdir():
                        raise ImageError("ACI: rootfs is not a directory")
                    has_rootfs = True
                elif not name.startswith("rootfs/"):
                    top = name.split("/", 1)[0] or name
                    raise ImageError(f"ACI: unexpected top-level entry {_q(top)}")
        while tee.read(CHUNK):  # end-of-archive blocks and record padding
            pass
    except tarfile.TarError as e:
        raise ImageError(f"ACI: not a valid tar archive: {e}") from None
    except CompressionError as e:
        raise CompressionError(f"ACI: {e}") from None
    if manifest_raw is None:
        raise ImageError("ACI has no manifest")
    if not has_rootfs:
        raise ImageError("ACI has no rootfs/")
    try:
        manifest = parse_image_manifest(manifest_raw)
    except ManifestError as e:
        raise ManifestError(f"ACI manifest: {e}") from None
    return AciInfo(manifest=manifest, manifest_raw=manifest_raw,
                   image_id=f"sha512-{hasher.digest().encoded}", size=hasher.size)


# --------------------------------------------------------------------- write


class _Writer:
    """A write-only file object with ``tell`` (tarfile wants one), for pipes too."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._pos = 0

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos


def _walk(top: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, path, lstat) below ``top``, depth first, names sorted."""

    def names(rel: str) -> Iterator[str]:
        with os.scandir(os.path.join(top, rel) if rel else top) as it:
            return iter(sorted(e.name for e in it))

    stack: list[tuple[str, Iterator[str]]] = [("", names(""))]
    while stack:
        rel, it = stack[-1]
        name = next(it, None)
        if name is None:
            stack.pop()
            continue
        child = f"{rel}/{name}" if rel else name
        path = os.path.join(top, child)
        st = os.lstat(path)
        yield child, path, st
        if stat.S_ISDIR(st.st_mode):
            stack.append((child, names(child)))


def _xattrs(path: str) -> dict[str, str]:
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return {}
        raise
    out: dict[str, str] = {}
    for key in sorted(keys):
        try:
            value = os.getxattr(path, key, follow_symlinks=False)
        except OSError as e:
            if e.errno == errno.ENODATA:  # removed meanwhile
                continue
            raise
        out[XATTR_PREFIX + key] = pax_value(value)
    return out


_TYPES = {
    stat.S_IFREG: tarfile.REGTYPE,
    stat.S_IFDIR: tarfile.DIRTYPE,
    stat.S_IFLNK: tarfile.SYMTYPE,
    stat.S_IFCHR: tarfile.CHRTYPE,
    stat.S_IFBLK: tarfile.BLKTYPE,
    stat.S_IFIFO: tarfile.FIFOTYPE,
}


def _tarinfo(arcname: str, path: str, st: os.stat_result,
             links: dict[tuple[int, int], str]) -> tarfile.TarInfo | None:
    kind = _TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None:  # sockets cannot be archived
        return None
    ti = tarfile.TarInfo(arcname)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    ti.mtime = st.st_mtime_ns // 1_000_000_000
    ti.pax_headers = _xattrs(path)
    if kind != tarfile.DIRTYPE and st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        first = links.get(key)
        if first is not None:
            ti.type, ti.linkname = tarfile.LNKTYPE, first
            return ti
        links[key] = arcname
    ti.type = kind
    if kind == tarfile.REGTYPE:
        ti.size = st.st_size
    elif kind == tarfile.SYMTYPE:
        ti.linkname = os.readlink(path)
    elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return ti


def write_aci(out: BinaryIO, manifest_raw: bytes, rootfs_dir: str) -> None:
    """Write an uncompressed ACI of ``manifest_raw`` and the tree at ``rootfs_dir``.

    Entries: ``manifest``, ``rootfs``, then the tree depth first in sorted
    order, PAX format, keeping type, mode (setuid/setgid/sticky too), numeric
    uid/gid, mtime (seconds), symlink targets, hard links (later names of an
    inode become link entries), xattrs (``SCHILY.xattr.*``), device nodes and
    fifos; sockets are skipped.  The same tree always gives the same bytes.
    File data streams from disk.
    """
    root_st = os.lstat(rootfs_dir)
    if not stat.S_ISDIR(root_st.st_mode):
        raise ImageError(f"{rootfs_dir}: not a directory")
    writer = _Writer(out)
    with tarfile.TarFile(fileobj=cast(BinaryIO, writer), mode="w", format=tarfile.PAX_FORMAT,
                         encoding="utf-8", errors="surrogateescape") as tf:
        tf.copybufsize = CHUNK  # type: ignore[attr-defined]
        mi = tarfile.TarInfo("manifest")
        mi.size, mi.mode, mi.mtime, mi.uname, mi.gname = len(manifest_raw), 0o644, 0, "", ""
        tf.addfile(mi, io.BytesIO(manifest_raw))
        links: dict[tuple[int, int], str] = {}
        root = _tarinfo("rootfs", rootfs_dir, root_st, links)
        assert root is not None
        tf.addfile(root)
        for rel, path, st in _walk(rootfs_dir):
            ti = _tarinfo(f"rootfs/{rel}", path, st, links)
            if ti is None:
                continue
            if ti.type != tarfile.REGTYPE:
                tf.addfile(ti)
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb", buffering=0) as f:
                tf.addfile(ti, f)
