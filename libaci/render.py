"""Flattening extracted layers into one plain directory tree.

The layers in the store are in overlayfs form (whiteouts are 0/0 character
devices, opaque directories carry ``trusted.overlay.opaque=y``).  Rendering
walks them top-down the way overlayfs resolves a lookup: the top-most entry
for a name wins, a whiteout hides the name, a non-directory or an opaque
directory hides everything below it.  So every file is copied exactly once,
nothing is copied and then deleted, and whiteouts are never materialised.
File data moves with ``copy_file_range`` (in the kernel); hardlinks within
a layer stay hardlinks; owners, modes, times and xattrs are kept.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence

import attrs

from libaci.errors import StoreError

OPAQUE = "trusted.overlay.opaque"
WH = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_SKIP_XATTR = ("trusted.overlay.",)


@attrs.define
class RenderStats:
    files: int = 0
    dirs: int = 0
    bytes: int = 0


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str, marker: bool = False) -> bool:
    try:
        if os.getxattr(path, OPAQUE, follow_symlinks=False) == b"y":
            return True
    except OSError:
        pass
    return marker and os.path.lexists(os.path.join(path, OPAQUE_MARKER))


def union_lookup(layers: Sequence[str], rel: str) -> tuple[str, os.stat_result] | None:
    """Where ``rel`` is in the union of extracted ``layers`` (bottom first), and its
    lstat; None when absent.

    Resolved as overlayfs does: the top-most entry wins, a whiteout or a
    non-directory hides what is below, an opaque directory hides the lower
    layers' entries below it; symbolic links are never followed.
    """
    parts = [p for p in rel.split("/") if p]
    if not parts:
        return (layers[-1], os.lstat(layers[-1])) if layers else None
    for root in reversed(layers):
        path, hidden = root, False
        for i, comp in enumerate(parts):
            path = os.path.join(path, comp)
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                break  # absent here: look below, unless an opaque directory hid it
            if is_whiteout(st):
                return None
            if i == len(parts) - 1:
                return path, st
            if not stat.S_ISDIR(st.st_mode):
                return None
            if is_opaque(path):
                hidden = True
        if hidden:
            return None
    return None


def copy_xattrs(src: str, dst: str, skip: tuple[str, ...] = _SKIP_XATTR) -> None:
    """Copy the extended attributes of ``src`` to ``dst`` (links not followed), except
    those whose names start with ``skip``; attributes the target refuses are dropped."""
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for n in names:
        if n.startswith(skip):
            continue
        with contextlib.suppress(OSError):
            os.setxattr(dst, n, os.getxattr(src, n, follow_symlinks=False),
                        follow_symlinks=False)


def _set_meta(dst: str, st: os.stat_result, same_owner: bool, link: bool = False) -> None:
    if same_owner:
        os.lchown(dst, st.st_uid, st.st_gid)
    if not link:
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_file(src: str, dst: str, size: int) -> None:
    fin = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600)
        try:
            left = size
            while left > 0:
                try:
                    n = os.copy_file_range(fin, fout, left)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    n = os.sendfile(fout, fin, None, left)
                if n == 0:
                    break
                left -= n
        finally:
            os.close(fout)
    finally:
        os.close(fin)


Src = tuple[str, bool]  # (directory, whiteouts are .wh. marker files)


def _scan(srcs: list[Src]) -> tuple[list[str], dict[str, tuple[str, os.stat_result]],
                                   dict[str, list[Src]]]:
    """Resolve one directory over its layers (top first), as overlayfs does.

    Returns the names in order, the non-directories (path, stat) and, for each
    directory, the layer directories that contribute to it (top first).
    """
    order: list[str] = []
    files: dict[str, tuple[str, os.stat_result]] = {}
    dirs: dict[str, list[Src]] = {}
    closed: set[str] = set()
    for src, marker in srcs:
        with os.scandir(src) as it:
            for e in it:
                name = e.name
                whiteout = False
                if marker and name.startswith(WH):
                    if name == OPAQUE_MARKER:
                        continue
                    name, whiteout = name[len(WH):], True
                if name in closed:
                    continue
                st = e.stat(follow_symlinks=False)
                whiteout = whiteout or is_whiteout(st)
                if name in dirs:  # an upper layer has a directory here
                    if not whiteout and stat.S_ISDIR(st.st_mode):
                        dirs[name].append((e.path, marker))
                        if is_opaque(e.path, marker):
                            closed.add(name)
                    else:
                        closed.add(name)
                    continue
                order.append(name)
                if whiteout:
                    closed.add(name)
                elif stat.S_ISDIR(st.st_mode):
                    dirs[name] = [(e.path, marker)]
                    if is_opaque(e.path, marker):
                        closed.add(name)
                else:
                    files[name] = (e.path, st)
                    closed.add(name)
    return order, files, dirs


class _Renderer:
    def __init__(self, same_owner: bool) -> None:
        self.same_owner = same_owner
        self.links: dict[tuple[int, int], str] = {}
        self.stats = RenderStats()
        self.dirs: list[tuple[str, str, os.stat_result]] = []

    def entry(self, src: str, dst: str, st: os.stat_result) -> None:
        mode = st.st_mode
        if st.st_nlink > 1 and not stat.S_ISDIR(mode):
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is not None:
                os.link(first, dst, follow_symlinks=False)
                return
            self.links[key] = dst
        if stat.S_ISREG(mode):
            _copy_file(src, dst, st.st_size)
            self.stats.bytes += st.st_size
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
            _set_meta(dst, st, self.same_owner, link=True)
            self.stats.files += 1
            return
        elif stat.S_ISFIFO(mode):
            os.mkfifo(dst, 0o600)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(dst, stat.S_IFMT(mode) | 0o600, st.st_rdev)
        elif stat.S_ISSOCK(mode):
            return
        copy_xattrs(src, dst)
        _set_meta(dst, st, self.same_owner)
        self.stats.files += 1

    def level(self, srcs: list[Src], dst: str) -> list[tuple[list[Src], str]]:
        """Write one directory's non-directories and make its subdirectories."""
        order, files, dirs = _scan(srcs)
        subdirs = []
        for name in order:
            target = os.path.join(dst, name)
            if name in files:
                src, st = files[name]
                self.entry(src, target, st)
            elif name in dirs:
                top = dirs[name][0][0]
                os.mkdir(target, 0o700)
                self.stats.dirs += 1
                self.dirs.append((top, target, os.lstat(top)))
                subdirs.append((dirs[name], target))
        return subdirs

    def merge(self, srcs: list[Src], dst: str) -> None:
        """Merge directory ``srcs`` (top first) into the existing ``dst``."""
        for sub, target in self.level(srcs, dst):
            self.merge(sub, target)

    def finish(self) -> None:
        for src, dst, st in reversed(self.dirs):
            copy_xattrs(src, dst)
            _set_meta(dst, st, self.same_owner)


def layer_stack(layers: list[str], markers: frozenset[str] = frozenset()) -> list[Src]:
    """Top-first layer roots that contribute to ``/`` (an opaque root stops it)."""
    out = []
    for root in reversed(layers):
        marker = root in markers
        out.append((root, marker))
        if is_opaque(root, marker):
            break
    return out


def render(layers: list[str], dest: str, *, markers: frozenset[str] = frozenset(),
           workers: int | None = None) -> RenderStats:
    """Write the union of ``layers`` (bottom first) into the empty directory ``dest``.

    ``markers`` names the layers whose whiteouts are ``.wh.`` files (extracted
    without root).  Top-level directories are rendered in parallel threads.
    """
    same_owner = os.geteuid() == 0
    stack = layer_stack(layers, markers)
    if not stack:
        return RenderStats()
    try:
        top = _Renderer(same_owner)
        subs = top.level(stack, dest)
        renderers = [_Renderer(same_owner) for _ in subs]
        from concurrent.futures import ThreadPoolExecutor  # only here: podkit-run needs the
        # whiteout helpers of this module, not a thread pool

        with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 2) * 2)) as ex:
            futures = [ex.submit(r.merge, s, t) for r, (s, t) in zip(renderers, subs, strict=True)]
            for f in futures:
                f.result()
        for r in renderers:
            r.finish()
            top.stats.files += r.stats.files
            top.stats.dirs += r.stats.dirs
            top.stats.bytes += r.stats.bytes
        top.finish()
        copy_xattrs(stack[0][0], dest)
        _set_meta(dest, os.lstat(stack[0][0]), same_owner)
        return top.stats
    except OSError as e:
        raise StoreError(f"render failed at {e.filename or dest}: {e.strerror}") from None
