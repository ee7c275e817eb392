"""Writing OCI layer tars from directory trees: a pod's changes, a build step's diff.

Why this exists: ``podkit-commit`` turns a pod's overlayfs upper directory into
a layer, and the build engine turns each filesystem-changing step into one.
Both need the same writer: deterministic (the same tree and the same
``SOURCE_DATE_EPOCH`` always give the same bytes), streaming (file data is
never held in memory) and hashing in the same pass, so that the blob digest
(of the compressed stream) and the diff ID (of the tar) come out of one read
of the tree.

Two ways to say what the layer holds:

- :func:`write_overlay_layer`: a directory in *overlay form*, an overlayfs
  upper directory, where a whiteout is a 0/0 character device and an opaque
  directory carries ``trusted.overlay.opaque=y``.  They become ``.wh.NAME``
  entries and ``DIR/.wh..wh..opq`` markers.
- :func:`snapshot` + :func:`changes` + :func:`write_changes_layer`: a plain
  directory compared with a listing taken before (Docker's "naive diff"):
  added and changed paths are written from the tree, deleted ones become
  whiteouts.

The tar is PAX, entries in a fixed order (depth first; after a directory
its opaque marker, then its whiteouts, then its other entries, each group
sorted by the bytes of the name), numeric owners without user or group names, mtimes in whole
seconds (clamped to ``epoch`` when one is given), the extended attributes of
each file except ``trusted.overlay.*`` (overlayfs' own bookkeeping), hard
links within the layer as link entries, device nodes and fifos; sockets are
skipped.  gzip output has mtime 0 and no file name.
"""

from __future__ import annotations

import errno
import gzip
import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import BinaryIO, cast

import attrs

from libaci.digest import Digest, Hasher
from libaci.errors import LayerError

CHUNK = 1 << 20
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
XATTR_PREFIX = "SCHILY.xattr."
# xattrs that mean the upper directory is not self-contained: the merged view
# would be needed to write it (overlayfs mounted with redirect_dir or metacopy)
_UNSUPPORTED_XATTRS = ("trusted.overlay.redirect", "trusted.overlay.metacopy",
                       "user.overlay.redirect", "user.overlay.metacopy")
_SKIPPED_XATTRS = ("trusted.overlay.", "user.overlay.")
COMPRESSIONS = ("gzip", "none")

_TYPES = {
    stat.S_IFREG: tarfile.REGTYPE,
    stat.S_IFDIR: tarfile.DIRTYPE,
    stat.S_IFLNK: tarfile.SYMTYPE,
    stat.S_IFCHR: tarfile.CHRTYPE,
    stat.S_IFBLK: tarfile.BLKTYPE,
    stat.S_IFIFO: tarfile.FIFOTYPE,
}

Skip = Callable[[str, os.stat_result], bool]  # (relative path, lstat) -> leave it out


@attrs.frozen
class LayerResult:
    """What was written: the blob's digest and size, and the tar's diff ID and size.

    With ``compression="none"`` the blob is the tar: ``digest == diff_id``.
    """

    digest: Digest
    size: int
    diff_id: Digest
    uncompressed_size: int
    entries: int
    compression: str = "gzip"


# -- the output stream: hash the tar, compress, hash the blob --------------------------


class _HashOut:
    """Writes to ``out`` and hashes what passes (the blob)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.hasher = Hasher("sha256")

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        view = memoryview(data)
        while view:
            n = self._out.write(view)
            if n is None:  # an unbuffered raw stream that wrote nothing yet
                n = 0
            view = view[n:]
        return len(data)

    def flush(self) -> None:
        flush = getattr(self._out, "flush", None)
        if flush is not None:
            flush()


class _TarSink:
    """The stream tarfile writes to: hashes the tar (diff ID), then compresses."""

    def __init__(self, out: BinaryIO, compression: str, level: int) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"unsupported layer compression {compression!r}")
        self.blob = _HashOut(out)
        self.hasher = Hasher("sha256")
        self._gz: gzip.GzipFile | None = None
        if compression == "gzip":
            self._gz = gzip.GzipFile(filename="", mode="wb", compresslevel=level,
                                     fileobj=cast(BinaryIO, self.blob), mtime=0)
        self._pos = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        if self._gz is not None:
            self._gz.write(data)
        else:
            self.blob.write(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()  # writes the trailer; never closes the fileobj
        self.blob.flush()

    def abort(self) -> None:
        """After a failure: write nothing more (no gzip trailer, not even at exit)."""
        if self._gz is not None:
            self._gz.fileobj = None  # type: ignore[assignment]


# -- entries ---------------------------------------------------------------------------


class _PaxBytes(str):
    """A pax value that tarfile writes byte for byte (binary xattr values).

    tarfile marks a whole header ``hdrcharset=BINARY`` when a value is not
    UTF-8; file capabilities and ACLs are binary and need no such mark.
    """

    raw: bytes

    def __new__(cls, raw: bytes) -> _PaxBytes:
        self = super().__new__(cls, raw.decode("utf-8", "surrogateescape"))
        self.raw = raw
        return self

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


def pax_value(raw: bytes) -> str:
    """A PAX header value for ``raw``: text when it is UTF-8, else the exact bytes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _PaxBytes(raw)


def read_xattrs(path: str, name: str | None = None) -> list[tuple[str, bytes]]:
    """The extended attributes of ``path`` (not followed), sorted, overlayfs' own left out.

    Raises LayerError for the ones that mean "read the merged view instead"
    (``trusted.overlay.redirect``, ``trusted.overlay.metacopy``).
    """
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return []
        raise
    out = []
    for key in sorted(keys):
        if key.startswith(_SKIPPED_XATTRS):
            if key in _UNSUPPORTED_XATTRS:
                what = key.rsplit(".", 1)[1]
                raise LayerError(f"{name or path}: overlayfs {what} entries are not supported "
                                 "(mount without redirect_dir and metacopy)")
            continue
        try:
            out.append((key, os.getxattr(path, key, follow_symlinks=False)))
        except OSError as e:
            if e.errno != errno.ENODATA:  # removed meanwhile
                raise
    return out


def is_whiteout(st: os.stat_result) -> bool:
    """An overlayfs whiteout: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


class LayerWriter:
    """One layer tar being written to ``out``, deterministic and hashed as it goes.

    Add entries parents first, in the order they should appear; :meth:`close`
    ends the archive and returns the :class:`LayerResult`.  ``epoch`` clamps
    every mtime (``SOURCE_DATE_EPOCH``); ``compression`` is ``gzip`` or
    ``none``.  The writer never seeks: ``out`` may be a pipe.
    """

    def __init__(self, out: BinaryIO, *, epoch: int | None = None, compression: str = "gzip",
                 level: int = 6) -> None:
        self.epoch = epoch
        self.compression = compression
        self._sink = _TarSink(out, compression, level)
        self._tf = tarfile.TarFile(fileobj=cast(BinaryIO, self._sink), mode="w",
                                   format=tarfile.PAX_FORMAT, encoding="utf-8",
                                   errors="surrogateescape")
        self._tf.copybufsize = CHUNK  # type: ignore[attr-defined]
        self._links: dict[tuple[int, int], str] = {}
        self.entries = 0

    def __enter__(self) -> LayerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self._sink.abort()

    def _mtime(self, seconds: int) -> int:
        return seconds if self.epoch is None or seconds <= self.epoch else self.epoch

    def add(self, name: str, path: str, st: os.stat_result | None = None) -> bool:
        """Write ``path`` (not followed) as entry ``name``; False for a socket (skipped)."""
        if st is None:
            st = os.lstat(path)
        kind = _TYPES.get(stat.S_IFMT(st.st_mode))
        if kind is None:
            return False
        base = name.rsplit("/", 1)[-1]
        if base.startswith(WHITEOUT_PREFIX):
            raise LayerError(f"/{name}: a file named {base!r} cannot be stored in a layer "
                             "(layers use .wh. names for deletions)")
        ti = tarfile.TarInfo(name)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.uname = ti.gname = ""
        ti.mtime = self._mtime(st.st_mtime_ns // 1_000_000_000)
        if kind != tarfile.DIRTYPE and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self._links.get(key)
            if first is not None:  # the inode's data and xattrs came with its first name
                ti.type, ti.linkname = tarfile.LNKTYPE, first
                self._write(ti)
                return True
            self._links[key] = name
        ti.pax_headers = {XATTR_PREFIX + k: pax_value(v)
                          for k, v in read_xattrs(path, "/" + name)}
        ti.type = kind
        if kind == tarfile.SYMTYPE:
            ti.linkname = os.readlink(path)
        elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        if kind != tarfile.REGTYPE:
            self._write(ti)
            return True
        ti.size = st.st_size
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb", buffering=0) as f:
            try:
                self._write(ti, f)
            except OSError as e:
                if "unexpected end of data" in str(e):
                    raise LayerError(f"/{name} shrank while it was being read "
                                     "(stop what writes to it first)") from None
                raise
        return True

    def whiteout(self, name: str, mtime: int = 0) -> None:
        """A deletion: ``DIR/.wh.BASE`` for entry ``name`` (``DIR/BASE``)."""
        head, _, base = name.rpartition("/")
        self._marker(f"{head}/{WHITEOUT_PREFIX}{base}" if head else WHITEOUT_PREFIX + base,
                     mtime)

    def opaque(self, dirname: str, mtime: int = 0) -> None:
        """``DIR/.wh..wh..opq``: the directory hides what lower layers have in it."""
        self._marker(f"{dirname}/{OPAQUE_MARKER}" if dirname else OPAQUE_MARKER, mtime)

    def _marker(self, name: str, mtime: int) -> None:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = tarfile.REGTYPE, 0o600, 0, 0, "", ""
        ti.mtime = self._mtime(mtime)
        self._write(ti)

    def _write(self, ti: tarfile.TarInfo, f: BinaryIO | None = None) -> None:
        self._tf.addfile(ti, f)
        self.entries += 1

    def close(self) -> LayerResult:
        self._tf.close()
        self._sink.close()
        s = self._sink
        return LayerResult(digest=s.blob.hasher.digest(), size=s.blob.hasher.size,
                           diff_id=s.hasher.digest(), uncompressed_size=s.hasher.size,
                           entries=self.entries, compression=self.compression)


def _names(path: str) -> list[tuple[str, os.stat_result]]:
    """(name, lstat) of a directory's entries, sorted by the bytes of the name."""
    with os.scandir(path) as it:
        items = [(e.name, e.stat(follow_symlinks=False)) for e in it]
    items.sort(key=lambda x: os.fsencode(x[0]))
    return items


# -- overlay form ----------------------------------------------------------------------


def write_overlay_layer(out: BinaryIO, upper: str, *, skip: Skip | None = None,
                        root_entry: bool = False, epoch: int | None = None,
                        compression: str = "gzip", level: int = 6) -> LayerResult:
    """Write the overlayfs upper directory ``upper`` as a layer tar to ``out``.

    A 0/0 character device becomes ``.wh.NAME``; a directory with
    ``trusted.overlay.opaque=y`` is written followed by its
    ``.wh..wh..opq``.  ``skip(rel, st)`` leaves out an entry (a directory with
    everything below it).  The root directory itself is an entry (``./``)
    only with ``root_entry``.  Raises LayerError for what a layer cannot
    hold (a ``.wh.`` name, overlayfs redirects or metacopy files).
    """
    try:
        with LayerWriter(out, epoch=epoch, compression=compression, level=level) as w:
            root_st = os.lstat(upper)
            if not stat.S_ISDIR(root_st.st_mode):
                raise LayerError(f"{upper}: not a directory")
            if root_entry:
                w.add("./", upper, root_st)
            if is_opaque(upper):
                w.opaque("", root_st.st_mtime_ns // 1_000_000_000)
            _overlay_dir(w, upper, "", skip)
            return w.close()
    except FileNotFoundError as e:
        raise LayerError(f"{e.filename}: vanished while the layer was written") from None


def _overlay_dir(w: LayerWriter, path: str, rel: str, skip: Skip | None) -> None:
    stack: list[Iterator[tuple[str, str, os.stat_result]]] = [_overlay_level(path, rel)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        child, path, st = item
        if skip is not None and skip(child, st):
            continue
        if is_whiteout(st):
            w.whiteout(child, st.st_mtime_ns // 1_000_000_000)
            continue
        if not w.add(child, path, st):
            continue
        if stat.S_ISDIR(st.st_mode):
            if is_opaque(path):
                w.opaque(child, st.st_mtime_ns // 1_000_000_000)
            stack.append(_overlay_level(path, child))


def _overlay_level(path: str, rel: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """One directory's entries: whiteouts first, then the rest, each sorted."""
    items = _names(path)
    for whiteouts in (True, False):
        for name, st in items:
            if is_whiteout(st) == whiteouts:
                yield (f"{rel}/{name}" if rel else name), os.path.join(path, name), st


# -- plain trees: snapshot before, compare after ---------------------------------------

Signature = tuple[object, ...]


def signature(path: str, st: os.stat_result, *, ctime: bool = True) -> Signature:
    """What :func:`changes` compares for one path.

    Type and mode, owner, size, mtime (ns), device number, symlink target and
    xattrs; with ``ctime`` (the default) also the inode change time, which
    catches content changes that kept size and mtime (``cp -p``, ``touch
    -r``).  Leave ``ctime`` out when the two trees are different copies.
    """
    target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    sig: tuple[object, ...] = (st.st_mode, st.st_uid, st.st_gid, size, st.st_mtime_ns,
                               st.st_rdev, target, tuple(read_xattrs(path)))
    return (*sig, st.st_ctime_ns) if ctime else sig


def snapshot(root: str, *, ctime: bool = True) -> dict[str, Signature]:
    """Every path below ``root`` (relative, no leading slash) with its :func:`signature`."""
    out: dict[str, Signature] = {}
    for rel, path, st in walk(root):
        out[rel] = signature(path, st, ctime=ctime)
    return out


def walk(root: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, path, lstat) below ``root``, depth first, sorted; no symlink followed."""
    stack: list[tuple[str, Iterator[tuple[str, os.stat_result]]]] = [("", iter(_names(root)))]
    while stack:
        rel, it = stack[-1]
        item = next(it, None)
        if item is None:
            stack.pop()
            continue
        name, st = item
        child = f"{rel}/{name}" if rel else name
        path = os.path.join(root, child)
        yield child, path, st
        if stat.S_ISDIR(st.st_mode):
            stack.append((child, iter(_names(path))))


@attrs.frozen
class Change:
    """One difference between two trees: ``A`` added, ``C`` changed, ``D`` deleted."""

    path: str
    kind: str


def changes(before: Mapping[str, Signature], after: str, *, ctime: bool = True) -> list[Change]:
    """What differs between a :func:`snapshot` ``before`` and the tree ``after``, sorted.

    Below a deleted directory only the directory is reported; a path whose
    type changed is ``C`` (the new entry replaces the old one).
    """
    out: list[Change] = []
    seen: set[str] = set()
    dirs = {""}
    for rel, path, st in walk(after):
        seen.add(rel)
        if stat.S_ISDIR(st.st_mode):
            dirs.add(rel)
        old = before.get(rel)
        if old is None:
            out.append(Change(rel, "A"))
        elif old != signature(path, st, ctime=ctime):
            out.append(Change(rel, "C"))
    for rel in before:
        # below a deleted directory, or one replaced by a file, the parent's own
        # whiteout or new entry already hides it
        if rel not in seen and rel.rpartition("/")[0] in dirs:
            out.append(Change(rel, "D"))
    out.sort(key=lambda c: os.fsencode(c.path))
    return out


def write_changes_layer(out: BinaryIO, root: str, diff: Iterable[Change], *,
                        epoch: int | None = None, compression: str = "gzip",
                        level: int = 6) -> LayerResult:
    """Write ``diff`` (from :func:`changes`) as a layer tar, files read from ``root``.

    Added and changed paths are written as they are in ``root`` (an added or
    replaced directory with everything below it), deleted ones as
    whiteouts, and every parent directory of an entry as it is in ``root``,
    so that an extractor never invents one with default metadata.
    """
    whiteouts: dict[str, list[str]] = {}  # parent dir -> deleted paths in it
    wanted: set[str] = set()
    whole: set[str] = set()  # added: with everything below
    for c in diff:
        if c.kind == "D":
            whiteouts.setdefault(c.path.rpartition("/")[0], []).append(c.path)
        elif c.kind in ("A", "C"):
            wanted.add(c.path)
            if c.kind == "A":
                whole.add(c.path)
        else:
            raise ValueError(f"unknown change kind {c.kind!r}")
        parts = c.path.split("/")
        for i in range(1, len(parts)):
            wanted.add("/".join(parts[:i]))
    try:
        with LayerWriter(out, epoch=epoch, compression=compression, level=level) as w:
            _changes_dir(w, root, "", os.lstat(root), wanted, whiteouts, whole)
            return w.close()
    except FileNotFoundError as e:
        raise LayerError(f"{e.filename}: vanished while the layer was written") from None


def _changes_dir(w: LayerWriter, root: str, rel: str, dir_st: os.stat_result, wanted: set[str],
                 whiteouts: dict[str, list[str]], whole: set[str]) -> None:
    path = os.path.join(root, rel) if rel else root
    for p in sorted(whiteouts.get(rel, ()), key=os.fsencode):
        w.whiteout(p, dir_st.st_mtime_ns // 1_000_000_000)
    prefix = f"{rel}/" if rel else ""
    for name, st in _names(path):
        child = prefix + name
        if child in whole:
            _whole(w, os.path.join(path, name), child, st)
        elif (child in wanted and w.add(child, os.path.join(path, name), st)
              and stat.S_ISDIR(st.st_mode)):
            _changes_dir(w, root, child, st, wanted, whiteouts, whole)


def _whole(w: LayerWriter, path: str, rel: str, st: os.stat_result) -> None:
    if w.add(rel, path, st) and stat.S_ISDIR(st.st_mode):
        for sub, subpath, subst in walk(path):
            w.add(f"{rel}/{sub}", subpath, subst)
