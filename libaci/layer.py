"""Extracting one layer tar into its own directory, in overlayfs form, safely.

Why this exists: Debian 12's Python (3.11.2) has no tarfile extraction
filters, and the ``data`` filter of later versions refuses the absolute
symlinks real images need (busybox applets point to ``/bin/busybox``).  So
containment is done here: every path is resolved inside the layer directory,
a symlink is never followed while extracting, and nothing outside ``dest`` is
ever created, changed or linked to.

How: the archive is read as a stream (``tarfile`` mode ``r|``), file data is
copied in chunks.  The directories this extraction made are kept in a tree
(plus a cache of parent paths); a parent that is not in the tree is made
with ``mkdir``, and when something is already there it is checked with
``lstat`` (a symlink or file there refuses the entry).  So no path ever
crosses a symlink, and the common case costs one dict lookup.  This trusts
that nobody else writes into ``dest`` meanwhile (a fresh directory inside
the store).  Files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW``; an
existing entry of the same name (a duplicate: the last one wins) is removed
first, a directory with its subtree.  Directory modes and times are applied
at the very end, deepest first.

Whiteouts become overlayfs whiteouts (``.wh.NAME`` -> character device 0/0
``NAME``; ``.wh..wh..opq`` -> ``trusted.overlay.opaque=y`` on the directory)
so that a pod's rootfs is one overlay mount of the layer directories.  A
hardlink to a file in a lower layer becomes a copy of that file (copy-up).

Modes are kept as they are, setuid/setgid included (``/usr/bin/passwd``
needs them).  Containing those binaries is the store's job: layer
directories live under a 0700 directory, so no unprivileged user of the host
can reach them.  Device nodes are created only when asked for.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import errno
import os
import re
import shutil
import stat
import tarfile
import urllib.parse
from collections.abc import Callable, Sequence
from typing import BinaryIO, TypeVar

import attrs

from libaci.errors import LayerError, StoreError
from libaci.targuard import GuardedTarInfo

CHUNK = 1 << 20
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
AUFS_META_PREFIX = ".wh..wh."
OPAQUE_XATTR = "trusted.overlay.opaque"
MAX_WARNINGS = 200
READ_SIZE = 256 << 10  # tarfile's stream reads (its default, 10 KiB, costs a call per header)

_T = TypeVar("_T")
_IS_ROOT = os.geteuid() == 0
_WFLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_RFLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_ID = (1 << 32) - 2  # (uid_t)-1 means "leave unchanged" to chown(2)
_NS = 1_000_000_000
_INT64 = 1 << 63
_PAX_TIME = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,30})?")
_STORE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
_XATTR_SOFT_ERRNOS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES,
                                errno.EINVAL, errno.E2BIG, errno.ERANGE})
_KEEP_XATTRS = frozenset({"security.capability", "system.posix_acl_access",
                          "system.posix_acl_default"})
_COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh", "bzip2"),
               (b"\xfd7zXZ", "xz"))


@attrs.frozen
class Limits:
    """Bounds on what one layer may make; exceeding one raises LayerError."""

    max_bytes: int = 1 << 40  # total bytes of file content written (apparent size)
    max_entries: int = 5_000_000
    max_name: int = 4096  # longest path or link target, in bytes
    max_xattr_bytes: int = 1 << 20  # xattr names + values of one entry


@attrs.define
class LayerStats:
    """What an extraction did; ``warnings`` are one line each, for stderr."""

    entries: int = 0
    bytes: int = 0
    warnings: list[str] = attrs.Factory(list)
    # how whiteouts ended up on disk: "overlay" (0/0 devices, opaque xattrs),
    # "marker" (.wh. files, when not root) or "none" (appc: no whiteouts exist)
    whiteouts: str = "overlay"


_DEFAULT_LIMITS = Limits()


def xattr_allowed(name: str) -> bool:
    """Whether an xattr from a layer may be set on disk.

    ``user.*`` (but not ``user.overlay.*``), file capabilities and POSIX ACLs
    are kept; ``trusted.*`` (``trusted.overlay.*`` could fake whiteouts and
    opaque directories), ``security.selinux`` and the like are dropped.
    """
    if name.startswith("user."):
        return not name.startswith("user.overlay.")
    return name in _KEEP_XATTRS


def is_whiteout(st: os.stat_result) -> bool:
    """Whether ``st`` (from lstat) is an overlayfs whiteout, a 0/0 char device."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def extract_layer(stream: BinaryIO, dest: str, *, lower_dirs: Sequence[str] = (),
                  member_prefix: str = "", overlay_whiteouts: bool = True,
                  allow_devices: bool = False, same_owner: bool = _IS_ROOT,
                  limits: Limits = _DEFAULT_LIMITS, whiteouts: bool = True) -> LayerStats:
    """Extract the uncompressed layer tar ``stream`` into the empty directory ``dest``.

    ``lower_dirs`` are the extracted layers below this one, top-most first,
    only read to copy up hardlink targets (and indexed lazily, so that a
    sequence may wait for a lower layer still being extracted).
    ``member_prefix`` (``"rootfs/"`` for ACIs) selects and strips entries.
    Whiteouts are stored in overlayfs form when ``overlay_whiteouts`` and
    running as root, else kept as ``.wh.`` marker files; with
    ``whiteouts=False`` (appc images, which have none) ``.wh.`` names are
    ordinary entries.  Reading stops at
    the end-of-archive marker: a caller hashing the stream drains the rest.
    Raises LayerError for a malformed or hostile layer, StoreError when the
    disk fails (full, read-only).
    """
    ex = _Extractor(dest, lower_dirs, member_prefix, overlay_whiteouts, allow_devices,
                    same_owner, limits, whiteouts)
    stats = ex.run(stream)
    stats.whiteouts = "none" if not whiteouts else "overlay" if ex.overlay else "marker"
    return stats


def _q(text: str) -> str:
    """Quote a name for a one-line message (control bytes escaped, long names cut)."""
    s = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if len(s) > 200:
        s = s[:100] + "..." + s[-60:]
    if not s.isprintable() or '"' in s or "\\" in s:
        s = "".join(c if c.isprintable() and c not in '"\\' else
                    c.encode("unicode_escape").decode("ascii") if c != '"' else '\\"' for c in s)
    return f'"{s}"'


class _Dir:
    """A directory this extraction made; ``meta`` None means implicit (0755)."""

    __slots__ = ("children", "meta")

    def __init__(self) -> None:
        self.children: dict[str, _Dir] = {}
        self.meta: tuple[int, int, int, int | None, list[tuple[str, bytes]]] | None = None


class _PeekReader:
    """Remembers the first bytes of the stream, to say "compressed" on failure."""

    def __init__(self, stream: BinaryIO) -> None:
        self._s = stream
        self.head = b""

    def read(self, n: int = -1) -> bytes:
        data = self._s.read(n)
        if len(self.head) < 8 and data:
            self.head += data[:8]
        return data


class _Extractor:
    def __init__(self, dest: str, lower_dirs: Sequence[str], member_prefix: str,
                 overlay_whiteouts: bool, allow_devices: bool, same_owner: bool,
                 limits: Limits, whiteouts: bool = True) -> None:
        dest = os.path.abspath(dest)
        try:
            st = os.lstat(dest)
            if not stat.S_ISDIR(st.st_mode):
                raise StoreError(f"layer directory {dest} is not a directory")
            with os.scandir(dest) as it:
                if next(it, None) is not None:
                    raise StoreError(f"layer directory {dest} is not empty")
        except OSError as e:
            raise StoreError(f"layer directory {dest}: {e.strerror}") from e
        self.dest = dest
        self.base = dest + "/"
        self.lowers = lower_dirs
        prefix = "/".join(p for p in member_prefix.split("/") if p and p != ".")
        if ".." in prefix.split("/") or "\x00" in prefix:
            raise ValueError(f"bad member_prefix {member_prefix!r}")
        self.prefix_root = prefix
        self.prefix = prefix + "/" if prefix else ""
        self.overlay = overlay_whiteouts and os.geteuid() == 0
        self.whiteouts = whiteouts
        self.allow_devices = allow_devices
        self.same_owner = same_owner
        self.limits = limits
        self.stats = LayerStats()
        self.dropped_warnings = 0
        self.root = _Dir()
        self.cache: dict[str, _Dir] = {}
        self.current = ""
        self.phase = "at"

    # ------------------------------------------------------------------ driver

    def run(self, stream: BinaryIO) -> LayerStats:
        reader = _PeekReader(stream)
        tinfo = type("_TarInfo", (GuardedTarInfo,), {
            "__slots__": (),
            "max_header": 2 * self.limits.max_name + 2 * self.limits.max_xattr_bytes + (1 << 16),
        })
        max_entries = self.limits.max_entries
        stats = self.stats
        try:
            with self._parse(reader, lambda: tarfile.open(
                    fileobj=reader, mode="r|", tarinfo=tinfo, encoding="utf-8",
                    errors="surrogateescape", bufsize=READ_SIZE)) as tf:
                while True:
                    member = self._parse(reader, lambda: self._next(tf, reader))
                    if member is None:
                        break
                    tf.members.clear()  # tarfile keeps every member otherwise
                    stats.entries += 1
                    if stats.entries > max_entries:
                        raise LayerError(f"layer has more than {max_entries} entries")
                    self.current, self.phase = member.name, "at"
                    self._member(tf, member)
                    self.phase = "after"
            self.current = ""
            self._finish()
        except tarfile.ReadError as e:  # file data cut short
            raise self._read_error(str(e), reader.head) from None
        except tarfile.TarError as e:
            raise LayerError(f"corrupt layer: {e}{self._where()}") from None
        if self.dropped_warnings:
            stats.warnings.append(f"... and {self.dropped_warnings} more warnings")
        return stats

    def _next(self, tf: tarfile.TarFile, reader: _PeekReader) -> tarfile.TarInfo | None:
        """The next member, or None at the end, including an end inside the padding.

        umoci 0.4.7's ``insert`` ends its layers right after the last file's data,
        with neither padding nor end-of-archive marker (umoci#436); Go's tar
        reader, and so umoci and Docker, accept that.  The layer's digest still
        covers every byte, so nothing can go missing unnoticed.
        """
        try:
            return tf.next()
        except tarfile.ReadError as e:
            fileobj = tf.fileobj
            if (str(e) != "unexpected end of data" or self.phase != "after"
                    or fileobj is None
                    or not 0 < tf.offset - fileobj.tell() < tarfile.BLOCKSIZE
                    or reader.read(1)):
                raise
            self.warn("layer ends inside the padding of its last entry (no end-of-archive "
                      "marker); accepted, as Go's tar reader does")
            return None

    def _parse(self, reader: _PeekReader, step: Callable[[], _T]) -> _T:
        """Run a tarfile header-parsing step; whatever it raises becomes LayerError."""
        try:
            return step()
        except (LayerError, StoreError):
            raise
        except tarfile.ReadError as e:
            raise self._read_error(str(e), reader.head) from None
        except RecursionError:
            raise LayerError(f"corrupt layer: too many chained extended headers"
                             f"{self._where()}") from None
        except Exception as e:  # hostile headers make tarfile raise many kinds
            raise LayerError(f"corrupt layer: {e}{self._where()}") from None

    def _where(self) -> str:
        return f" ({self.phase} entry {_q(self.current)})" if self.current else ""

    def _read_error(self, msg: str, head: bytes) -> LayerError:
        if self.stats.entries == 0 and "unexpected end" not in msg:
            for magic, kind in _COMPRESSED:
                if head.startswith(magic):
                    return LayerError(f"not a tar archive (the layer is {kind}-compressed; "
                                      f"decompress it first)")
            if msg == "empty file":
                return LayerError("not a tar archive (empty stream)")
            return LayerError(f"not a tar archive ({msg})")
        if "unexpected end" in msg or "truncated" in msg:
            return LayerError(f"truncated layer{self._where()}")
        return LayerError(f"corrupt layer: {msg}{self._where()}")

    def warn(self, msg: str) -> None:
        if len(self.stats.warnings) < MAX_WARNINGS:
            self.stats.warnings.append(msg)
        else:
            self.dropped_warnings += 1

    def _fail(self, name: str, what: str) -> LayerError:
        return LayerError(f"layer entry {_q(name)}: {what}")

    # ------------------------------------------------------------------ names

    def _norm(self, name: str, raw: str, what: str = "path") -> str | None:
        """Archive path -> path relative to dest ("" = dest), None = not ours."""
        if "\x00" in name:
            raise self._fail(raw, f"NUL byte in {what}")
        limit = self.limits.max_name
        if len(name) > limit or (len(name) * 4 > limit
                                 and len(name.encode("utf-8", "surrogateescape")) > limit):
            raise self._fail(raw, f"{what} longer than {limit} bytes")
        parts = name.split("/")
        if ".." in parts:
            if what == "path":
                raise self._fail(raw, "path escapes the layer")
            raise self._fail(raw, f"hardlink target {_q(name)} escapes the layer")
        rel = "/".join([p for p in parts if p and p != "."])
        if self.prefix:
            if rel.startswith(self.prefix):
                return rel[len(self.prefix):]
            if rel == self.prefix_root:
                return ""
            return None
        return rel

    # ------------------------------------------------------------------ entries

    def _member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        name = m.name
        rel = self._norm(name, name)
        if rel is None:
            return
        slash = rel.rfind("/")
        base = rel[slash + 1:]
        try:
            if self.whiteouts and base.startswith(WHITEOUT_PREFIX):
                self._whiteout(name, rel, slash, base)
                return
            t = m.type
            if t in tarfile.REGULAR_TYPES:
                kind = "file"
            elif t == tarfile.DIRTYPE:
                kind = "dir"
            elif t == tarfile.SYMTYPE:
                kind = "symlink"
            elif t == tarfile.LNKTYPE:
                kind = "hardlink"
            elif t in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                kind = "device"
            elif t == tarfile.FIFOTYPE:
                kind = "fifo"
            else:
                self.warn(f"skipped {_q(name)}: unsupported tar entry type {t!r}")
                return
            if rel == "" and kind != "dir":
                raise self._fail(name, "the layer root must be a directory")
            if kind == "hardlink":
                self._hardlink(name, rel, m.linkname)
                return
            if kind == "device" and not self.allow_devices:
                self.warn(f"skipped device node {rel} (pass allow_devices)")
                return
            mode = m.mode & 0o7777
            uid, gid = m.uid, m.gid
            if self.same_owner and not (0 <= uid <= _MAX_ID and 0 <= gid <= _MAX_ID):
                raise self._fail(name, f"owner {uid}:{gid} out of range")
            pax = m.pax_headers
            ns = self._mtime_ns(name, pax.get("mtime") if pax else None, m.mtime)
            xattrs = self._xattrs(name, pax) if pax else []
            if kind == "file":
                self._file(tf, m, name, rel, mode, uid, gid, ns, xattrs)
            elif kind == "dir":
                meta = (mode, uid, gid, ns, xattrs)
                if rel == "":
                    self.root.meta = meta
                else:
                    self._dir(name, rel, base).meta = meta
            elif kind == "symlink":
                self._symlink(name, rel, m.linkname, uid, gid, ns, xattrs)
            else:
                self._special(name, rel, kind, m, mode, uid, gid, ns, xattrs)
        except OSError as e:
            if e.errno in _STORE_ERRNOS:
                raise StoreError(f"cannot write layer entry {_q(name)}: {e.strerror}") from e
            raise self._fail(name, e.strerror or str(e)) from e
        except (ValueError, OverflowError) as e:  # e.g. device numbers out of range
            raise self._fail(name, str(e)) from e

    def _mtime_ns(self, name: str, pax_mtime: str | None, mtime: float) -> int | None:
        try:
            # PAX times are decimal strings with up to 9 fractional digits:
            # parse them exactly instead of going through a float
            if pax_mtime and _PAX_TIME.fullmatch(pax_mtime):
                ns = int(decimal.Decimal(pax_mtime) * _NS)
            else:
                ns = int(mtime * _NS)
        except (OverflowError, ValueError, ArithmeticError):
            ns = _INT64
        if -_INT64 <= ns < _INT64:
            return ns
        self.warn(f"ignored bad mtime {mtime} of {_q(name)}")
        return None

    def _xattrs(self, name: str, pax: dict[str, str]) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        total = 0
        for key, value in pax.items():
            if key.startswith("SCHILY.xattr."):
                xname = key[13:]
                data = value.encode("utf-8", "surrogateescape")
            elif key.startswith("LIBARCHIVE.xattr."):
                xname = urllib.parse.unquote(key[17:], errors="surrogateescape")
                try:
                    data = base64.b64decode(value + "=" * (-len(value) % 4))
                except (binascii.Error, ValueError):
                    self.warn(f"dropped undecodable xattr {xname} on {_q(name)}")
                    continue
            else:
                continue
            total += len(xname) + len(data)
            if total > self.limits.max_xattr_bytes:
                raise self._fail(name, f"xattrs larger than {self.limits.max_xattr_bytes} bytes")
            if not xname or "\x00" in xname or not xattr_allowed(xname):
                self.warn(f"dropped xattr {_q(xname)} on {_q(name)} (not allowed in layers)")
                continue
            out.append((xname, data))
        return out

    def _set_xattrs(self, target: int | str, name: str, xattrs: list[tuple[str, bytes]]) -> None:
        for xname, data in xattrs:
            try:
                if isinstance(target, int):
                    os.setxattr(target, xname, data)
                else:
                    os.setxattr(target, xname, data, follow_symlinks=False)
            except OSError as e:
                if e.errno not in _XATTR_SOFT_ERRNOS:
                    raise
                self.warn(f"could not set xattr {xname} on {_q(name)}: {e.strerror}")

    # ------------------------------------------------------------------ paths

    def _parent(self, rel: str, name: str) -> _Dir:
        """The tree node of rel's parent, creating implicit directories."""
        slash = rel.rfind("/")
        if slash < 0:
            return self.root
        prel = rel[:slash]
        node = self.cache.get(prel)
        if node is not None:
            return node
        node = self.root
        parts = prel.split("/")
        for i, comp in enumerate(parts):
            child = node.children.get(comp)
            if child is None:
                child = self._implicit(node, "/".join(parts[:i + 1]), comp, name)
            node = child
        self.cache[prel] = node
        return node

    def _implicit(self, parent: _Dir, sub: str, comp: str, name: str) -> _Dir:
        path = self.base + sub
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                raise self._fail(name, f"parent {_q(sub)} is a symlink") from None
            if is_whiteout(st):  # deleted earlier in this layer: a fresh dir
                os.unlink(path)
                os.mkdir(path, 0o700)
                child = parent.children[comp] = _Dir()
                self._set_opaque(path, sub)
                return child
            if not stat.S_ISDIR(st.st_mode):
                raise self._fail(name, f"parent {_q(sub)} is not a directory") from None
        child = parent.children[comp] = _Dir()
        return child

    def _remove(self, path: str, parent: _Dir, base: str) -> None:
        """Remove whatever this layer has at ``path`` (the name is reused)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            parent.children.pop(base, None)
            self.cache.clear()
            shutil.rmtree(path)
        else:
            os.unlink(path)

    def _make(self, path: str, parent: _Dir, base: str, create: Callable[[], object]) -> None:
        """Run ``create``; on EEXIST remove the old entry (last one wins) and retry."""
        try:
            create()
            return
        except FileExistsError:
            self._remove(path, parent, base)
        create()

    # ------------------------------------------------------------------ kinds

    def _file(self, tf: tarfile.TarFile, m: tarfile.TarInfo, name: str, rel: str, mode: int,
              uid: int, gid: int, ns: int | None, xattrs: list[tuple[str, bytes]]) -> None:
        size = m.size
        sparse = m.sparse
        if size < 0:
            raise self._fail(name, "negative size")
        if self.stats.bytes + size > self.limits.max_bytes:
            raise LayerError(f"layer exceeds {self.limits.max_bytes} bytes (at entry {_q(name)})")
        if sparse is not None:
            sparse = [(off, n) for off, n in sparse if n]  # old GNU maps end in (x, 0) pairs
            pos = 0
            for off, n in sparse:
                if off < pos or n < 0 or off + n > size:
                    raise self._fail(name, "bad sparse map")
                pos = off + n
        parent = self._parent(rel, name)
        path = self.base + rel
        base = rel[rel.rfind("/") + 1:]
        fd = self._create(path, parent, base)
        try:
            if sparse is not None:
                # the data blocks follow the header back to back: write each
                # at its offset and leave holes between them
                data = tf.fileobj
                assert data is not None
                if data.tell() != m.offset_data:
                    data.seek(m.offset_data)
                for off, n in sparse:
                    os.lseek(fd, off, os.SEEK_SET)
                    _copy(data, fd, n)  # type: ignore[arg-type]
                os.ftruncate(fd, size)
                self.stats.bytes += size
            elif size:
                src = tf.extractfile(m)
                assert src is not None
                _copy(src, fd, size)
                self.stats.bytes += size
            if self.same_owner and (uid or gid):  # root's new files are 0:0 already
                os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            if xattrs:
                self._set_xattrs(fd, name, xattrs)
            if ns is not None:
                os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def _dir(self, name: str, rel: str, base: str) -> _Dir:
        parent = self._parent(rel, name)
        node = parent.children.get(base)
        if node is not None:  # dir over dir: only the metadata changes
            return node
        path = self.base + rel
        replaced = False
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(path)
                os.mkdir(path, 0o700)
                replaced = True
        node = _Dir()
        parent.children[base] = node
        if replaced:
            # a directory that replaces a file of this layer hides the lower
            # layers' directory of that name, as overlayfs itself does
            self._set_opaque(path, rel)
        return node

    def _symlink(self, name: str, rel: str, target: str, uid: int, gid: int, ns: int | None,
                 xattrs: list[tuple[str, bytes]]) -> None:
        if not target:
            raise self._fail(name, "empty symlink target")
        if "\x00" in target:
            raise self._fail(name, "NUL byte in symlink target")
        if len(target.encode("utf-8", "surrogateescape")) > self.limits.max_name:
            raise self._fail(name, f"symlink target longer than {self.limits.max_name} bytes")
        parent = self._parent(rel, name)
        path = self.base + rel
        self._make(path, parent, rel[rel.rfind("/") + 1:], lambda: os.symlink(target, path))
        if self.same_owner:
            os.lchown(path, uid, gid)
        if xattrs:
            self._set_xattrs(path, name, xattrs)
        if ns is not None:
            os.utime(path, ns=(ns, ns), follow_symlinks=False)

    def _special(self, name: str, rel: str, kind: str, m: tarfile.TarInfo, mode: int, uid: int,
                 gid: int, ns: int | None, xattrs: list[tuple[str, bytes]]) -> None:
        parent = self._parent(rel, name)
        path = self.base + rel
        if kind == "fifo":
            def create() -> None:
                os.mkfifo(path, 0o600)
        else:
            dev = os.makedev(m.devmajor, m.devminor)
            fmt = stat.S_IFCHR if m.type == tarfile.CHRTYPE else stat.S_IFBLK
            if fmt == stat.S_IFCHR and dev == 0:
                self.warn(f"character device 0/0 {rel} acts as an overlay whiteout")

            def create() -> None:
                os.mknod(path, fmt | 0o600, dev)
        self._make(path, parent, rel[rel.rfind("/") + 1:], create)
        if self.same_owner:
            os.lchown(path, uid, gid)
        os.chmod(path, mode)
        if xattrs:
            self._set_xattrs(path, name, xattrs)
        if ns is not None:
            os.utime(path, ns=(ns, ns), follow_symlinks=False)

    def _create(self, path: str, parent: _Dir, base: str) -> int:
        """A new file at ``path`` (never through a symlink), replacing what was there."""
        try:
            return os.open(path, _WFLAGS, 0o600)
        except FileExistsError:
            self._remove(path, parent, base)
            return os.open(path, _WFLAGS, 0o600)

    # ------------------------------------------------------------------ whiteouts

    def _whiteout(self, name: str, rel: str, slash: int, base: str) -> None:
        if base == OPAQUE_MARKER:
            if slash < 0:
                self._set_opaque(self.dest, "")
            else:
                self._parent(rel, name)  # the directory, made if needed, never a symlink
                self._set_opaque(self.base + rel[:slash], rel[:slash])
            return
        if base.startswith(AUFS_META_PREFIX):
            self.warn(f"skipped aufs metadata {_q(name)}")
            return
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", ".."):
            raise self._fail(name, "invalid whiteout")
        parent = self._parent(rel, name)
        prefix = self.base + rel[:slash + 1]
        vpath = prefix + victim
        if self.overlay:
            try:
                self._make(vpath, parent, victim, lambda: os.mknod(vpath, stat.S_IFCHR, 0))
                return
            except PermissionError:  # no CAP_MKNOD: markers for the rest of the layer
                self.overlay = False
                self.warn(f"cannot create overlay whiteouts here; keeping .wh. markers "
                          f"(from {_q(name)} on)")
        self._remove(vpath, parent, victim)
        path = prefix + base
        self._make(path, parent, base, lambda: os.close(os.open(path, _WFLAGS, 0o600)))

    def _set_opaque(self, path: str, rel: str) -> None:
        if self.overlay:
            try:
                os.setxattr(path, OPAQUE_XATTR, b"y", follow_symlinks=False)
                return
            except OSError as e:
                if e.errno not in _XATTR_SOFT_ERRNOS:
                    raise
                self.warn(f"cannot mark {_q(rel or '.')} opaque ({e.strerror}); kept marker")
        marker = path + "/" + OPAQUE_MARKER
        parent = self._parent(rel + "/" + OPAQUE_MARKER, rel) if rel else self.root
        self._make(marker, parent, OPAQUE_MARKER,
                   lambda: os.close(os.open(marker, _WFLAGS, 0o600)))

    # ------------------------------------------------------------------ hardlinks

    def _hardlink(self, name: str, rel: str, linkname: str) -> None:
        trel = self._norm(linkname, name, "hardlink target")
        if trel is None:
            raise self._fail(name, f"hardlink target {_q(linkname)} is outside {self.prefix}")
        if trel == "":
            raise self._fail(name, f"hardlink target {_q(linkname)} is a directory")
        if self.whiteouts and trel[trel.rfind("/") + 1:].startswith(WHITEOUT_PREFIX):
            raise self._fail(name, f"hardlink target {_q(linkname)} is a whiteout")
        found = self._lookup(trel, name, linkname)
        if found is None:
            raise self._fail(name, f"hardlink target {_q(linkname)} not found")
        layer, src, st = found
        if layer == 0 and trel == rel:
            return  # a link to itself (tar does that for a file given twice)
        if trel.startswith(rel + "/"):
            raise self._fail(name, f"hardlink target {_q(linkname)} is inside the entry")
        parent = self._parent(rel, name)
        path = self.base + rel
        base = rel[rel.rfind("/") + 1:]
        if layer == 0:
            self._make(path, parent, base, lambda: os.link(src, path, follow_symlinks=False))
        else:
            self._copy_up(name, src, st, path, parent, base)

    def _lookup(self, trel: str, name: str, linkname: str
                ) -> tuple[int, str, os.stat_result] | None:
        """Find a hardlink target the way overlayfs would: this layer, then lowers."""
        parts = trel.split("/")
        layer = 0
        root = self.dest
        while True:
            res = self._lookup_in(root, parts)
            if res == "dir":
                raise self._fail(name, f"hardlink target {_q(linkname)} is a directory")
            if isinstance(res, tuple):
                return (layer, res[0], res[1])
            if res != "absent":  # deleted, or hidden below an opaque dir
                return None
            if layer >= len(self.lowers):
                return None
            root = self.lowers[layer]
            layer += 1

    def _lookup_in(self, root: str, parts: list[str]) -> str | tuple[str, os.stat_result]:
        path = root
        hidden = False
        last = len(parts) - 1
        for i, comp in enumerate(parts):
            child = path + "/" + comp
            try:
                st = os.lstat(child)
            except (FileNotFoundError, NotADirectoryError):
                if _exists(path + "/" + WHITEOUT_PREFIX + comp):
                    return "deleted"
                return "hidden" if hidden else "absent"
            if is_whiteout(st):
                return "deleted"
            if i == last:
                if stat.S_ISDIR(st.st_mode):
                    return "dir"
                return (child, st)
            if not stat.S_ISDIR(st.st_mode):
                return "deleted"  # a non-directory here hides everything below
            if not hidden and _opaque(child):
                hidden = True
            path = child
        return "absent"  # pragma: no cover - parts is never empty

    def _copy_up(self, name: str, src: str, st: os.stat_result, path: str, parent: _Dir,
                 base: str) -> None:
        mode = st.st_mode
        if stat.S_ISREG(mode):
            size = st.st_size
            if self.stats.bytes + size > self.limits.max_bytes:
                raise LayerError(f"layer exceeds {self.limits.max_bytes} bytes "
                                 f"(at entry {_q(name)})")
            sfd = os.open(src, _RFLAGS)
            try:
                fd = self._create(path, parent, base)
                try:
                    left = size
                    while left > 0:
                        n = os.sendfile(fd, sfd, None, min(left, 1 << 30))
                        if n == 0:
                            break
                        left -= n
                    self.stats.bytes += size - left
                    if self.same_owner:
                        os.fchown(fd, st.st_uid, st.st_gid)
                    os.fchmod(fd, stat.S_IMODE(mode))
                    self._set_xattrs(fd, name, _lower_xattrs(sfd))
                    os.utime(fd, ns=(st.st_mtime_ns, st.st_mtime_ns))
                finally:
                    os.close(fd)
            finally:
                os.close(sfd)
            return
        if stat.S_ISLNK(mode):
            target = os.readlink(src)
            self._make(path, parent, base, lambda: os.symlink(target, path))
        elif stat.S_ISFIFO(mode):
            self._make(path, parent, base, lambda: os.mkfifo(path, 0o600))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            if not self.allow_devices:
                self.warn(f"skipped device node {path[len(self.base):]} (pass allow_devices)")
                return
            self._make(path, parent, base,
                       lambda: os.mknod(path, stat.S_IFMT(mode) | 0o600, st.st_rdev))
        else:
            raise self._fail(name, "hardlink target is a socket")
        if self.same_owner:
            os.lchown(path, st.st_uid, st.st_gid)
        if not stat.S_ISLNK(mode):
            os.chmod(path, stat.S_IMODE(mode))
        os.utime(path, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)

    # ------------------------------------------------------------------ end

    def _finish(self) -> None:
        """Apply directory metadata, deepest first (children change mtimes)."""
        order: list[tuple[_Dir, str]] = []
        stack = [(self.root, self.dest)]
        while stack:
            node, path = stack.pop()
            order.append((node, path))
            for comp, child in node.children.items():
                stack.append((child, path + "/" + comp))
        for node, path in reversed(order):
            meta = node.meta
            try:
                if meta is None:
                    os.chmod(path, 0o755)
                    continue
                mode, uid, gid, ns, xattrs = meta
                if self.same_owner:
                    os.lchown(path, uid, gid)
                os.chmod(path, mode)
                if xattrs:
                    self._set_xattrs(path, path[len(self.base):] or ".", xattrs)
                if ns is not None:
                    os.utime(path, ns=(ns, ns), follow_symlinks=False)
            except OSError as e:
                rel = path[len(self.base):] or "."
                if e.errno in _STORE_ERRNOS:
                    raise StoreError(f"cannot write layer directory {_q(rel)}: "
                                     f"{e.strerror}") from e
                raise LayerError(f"layer directory {_q(rel)}: {e.strerror}") from e


def _copy(src: BinaryIO, fd: int, size: int) -> None:
    left = size
    while left > 0:
        buf = src.read(CHUNK if left > CHUNK else left)
        if not buf:
            raise tarfile.ReadError("unexpected end of data")
        view = memoryview(buf)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        left -= len(buf)


def _exists(path: str) -> bool:
    try:
        os.lstat(path)
        return True
    except OSError:
        return False


def _opaque(path: str) -> bool:
    try:
        if os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y":
            return True
    except OSError:
        pass
    return _exists(path + "/" + OPAQUE_MARKER)


def _lower_xattrs(fd: int) -> list[tuple[str, bytes]]:
    try:
        names = os.listxattr(fd)
    except OSError:
        return []
    out = []
    for n in names:
        if xattr_allowed(n):
            try:
                out.append((n, os.getxattr(fd, n)))
            except OSError:
                continue
    return out
