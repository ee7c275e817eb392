"""The filesystem side of COPY, ADD and WORKDIR: done in an overlay of the image so far.

Each such step mounts the stage's layers as the lower directories of an
overlay with a fresh upper directory (in podkit-build's own mount namespace,
so nothing is left mounted on the host whatever happens), writes into the
merged view, unmounts, and the upper directory is the step's layer, exactly
as the upper directory of a RUN pod is.  So a destination's existing
symlinks, directories and owners are seen as the image has them: paths are
resolved inside the view as the container would (``/bin -> usr/bin`` is
followed, an absolute link target is relative to the image's root, and
nothing outside it is ever reached).

Copies follow BuildKit: modes (setuid included), mtimes and extended
attributes come from the source, owners are 0:0 unless ``--chown`` (names
resolved in the image's /etc/passwd and /etc/group), ``--chmod`` takes
octal or symbolic modes, directories that exist already are merged into and
keep their metadata, missing parents are created 0755 (owned as
``--chown`` says), hardlinks within one copy stay hardlinks.  ADD extracts
local tar archives (plain, gzip, bzip2, xz, zstd, recognised by content)
with their owners and modes, through the same contained extractor that
layers use.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile

import attrs

from libaci.dockerfile.instructions import Chmod
from libaci.layer import extract_layer
from libaci.render import copy_xattrs
from stage0 import linux
from stage0.build.errors import BuildError
from stage0.userdb import image_file

MAX_LINKS = 255
_SKIP_XATTRS = ("trusted.overlay.", "user.overlay.", "security.selinux")
_CLASS = {"u": (0o4000, 6), "g": (0o2000, 3), "o": (0, 0)}


# -- paths inside a tree --------------------------------------------------------------------

def components(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def host(root: str, ipath: str) -> str:
    """The host path of image path ``ipath`` (already resolved) in tree ``root``."""
    rel = ipath.strip("/")
    return os.path.join(root, rel) if rel else root


def resolve(root: str, path: str, *, follow_last: bool = True) -> str:
    """``path`` in the tree ``root`` with its symlinks resolved inside the tree.

    Returns an absolute image path free of symlinks (but for a final one when
    not ``follow_last``); components that do not exist are kept as they are.
    """
    parts = components(path)
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        try:
            st = os.lstat(os.path.join(root, *done, part))
        except (FileNotFoundError, NotADirectoryError):
            done.append(part)
            continue
        if stat.S_ISLNK(st.st_mode) and (parts or follow_last):
            hops += 1
            if hops > MAX_LINKS:
                raise BuildError(f"{path}: too many levels of symbolic links")
            target = os.readlink(os.path.join(root, *done, part))
            if target.startswith("/"):
                done = []
            parts = components(target) + parts
            continue
        done.append(part)
    return "/" + "/".join(done)


def is_dir(root: str, path: str) -> bool:
    """Whether ``path`` (symlinks followed inside the tree) is a directory."""
    try:
        return stat.S_ISDIR(os.lstat(host(root, resolve(root, path))).st_mode)
    except OSError:
        return False


def ensure_dir(root: str, path: str, owner: tuple[int, int] = (0, 0)) -> str:
    """mkdir -p ``path`` in the tree (new directories 0755, owned by ``owner``);
    the resolved image path."""
    cur = "/"
    for part in components(path):
        nxt = resolve(root, posixpath.join(cur, part))
        hp = host(root, nxt)
        try:
            st = os.lstat(hp)
        except FileNotFoundError:
            os.mkdir(hp, 0o755)
            os.chmod(hp, 0o755)
            os.lchown(hp, *owner)
            cur = nxt
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise BuildError(f"cannot create {path}: {nxt} is not a directory in the image")
        cur = nxt
    return cur


# -- owners and modes ------------------------------------------------------------------------

def _table(layers: list[str], rel: str) -> list[list[str]]:
    data = image_file(layers, rel)
    if not data:
        return []
    return [line.split(":") for line in data.decode("utf-8", "replace").splitlines()
            if line and not line.startswith("#")]


def chown_ids(text: str, layers: list[str]) -> tuple[int, int]:
    """``--chown=USER[:GROUP]`` as numbers: names from the image's passwd and group
    files; a name alone takes its primary group, a number alone the same number."""
    user, _, group = text.partition(":")
    uid: int | None = int(user) if user.isdigit() else None
    gid: int | None = None
    if uid is None:
        for row in _table(layers, "etc/passwd"):
            if len(row) >= 4 and row[0] == user and row[2].isdigit():
                uid = int(row[2])
                gid = int(row[3]) if row[3].isdigit() else uid
                break
        else:
            raise BuildError(f"unable to find user {user}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            for row in _table(layers, "etc/group"):
                if len(row) >= 3 and row[0] == group and row[2].isdigit():
                    gid = int(row[2])
                    break
            else:
                raise BuildError(f"unable to find group {group}: no matching entries in "
                                 "group file")
    if gid is None:
        gid = uid
    if uid > 0xFFFFFFFE or gid > 0xFFFFFFFE:
        raise BuildError(f"--chown={text}: ID out of range")
    return uid, gid


def apply_chmod(mode: int, chmod: Chmod, is_directory: bool) -> int:
    """``--chmod``: an octal mode, or a symbolic one (``u+x,go=r``, ``a+X``)."""
    if chmod.mode is not None:
        return chmod.mode
    for clause in (chmod.symbolic or "").split(","):
        m = re.match(r"([ugoa]*)(.*)\Z", clause)
        assert m is not None
        who = m.group(1).replace("a", "ugo") or "ugo"
        for op, perms in re.findall(r"([-+=])([ugo]|[rwxXst]*)", m.group(2)):
            bits = 0
            if perms and perms in "ugo":
                special, shift = _CLASS[perms]
                value = (mode >> shift) & 0o7
                for c in who:
                    bits |= value << _CLASS[c][1]
            else:
                rwx = 0
                for p in perms:
                    rwx |= {"r": 4, "w": 2, "x": 1, "X": 1 if is_directory or mode & 0o111 else 0,
                            "s": 0, "t": 0}[p]
                for c in who:
                    special, shift = _CLASS[c]
                    bits |= rwx << shift
                    if "s" in perms:
                        bits |= special
                if "t" in perms:
                    bits |= 0o1000
            if op == "+":
                mode |= bits
            elif op == "-":
                mode &= ~bits
            else:
                clear = 0
                for c in who:
                    special, shift = _CLASS[c]
                    clear |= (0o7 << shift) | special
                mode = (mode & ~clear) | bits
    return mode & 0o7777


# -- copying -----------------------------------------------------------------------------------

def _copy_xattrs(src: str, dst: str) -> None:
    copy_xattrs(src, dst, _SKIP_XATTRS)


def _copy_data(src: str, fd_out: int) -> None:
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            while os.copy_file_range(fd_in, fd_out, 1 << 30):
                pass
            return
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            os.lseek(fd_in, 0, os.SEEK_SET)
            os.lseek(fd_out, 0, os.SEEK_SET)
            os.ftruncate(fd_out, 0)
        while chunk := os.read(fd_in, 1 << 20):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd_out, view):]
    finally:
        os.close(fd_in)


@attrs.define
class Copier:
    """Puts files into the tree ``root`` (a merged overlay view) as COPY/ADD do.

    ``owner``: (uid, gid) for every entry, or None to keep the source's (ADD
    of an archive without --chown).  Call :meth:`finish` at the end: it sets
    the directories' mtimes, deepest first.
    """

    root: str
    owner: tuple[int, int] | None = (0, 0)
    chmod: Chmod | None = None
    links: dict[tuple[int, int], str] = attrs.Factory(dict)
    dirs: list[tuple[str, int]] = attrs.Factory(list)

    def put(self, src: str, dest: str, kind: str, target: str = "", *, top: bool = False,
            tar_dir: bool = False) -> None:
        """Copy ``src`` (a host path, not followed) to image path ``dest``.

        A directory named on the instruction line (``top``) is not copied
        itself, only its contents: a missing destination is created as a
        parent is (0755, root or ``--chown``), as BuildKit does.  An existing
        directory keeps its metadata, unless ``tar_dir``: a directory entry of
        an archive ADD extracts gives it its mode, owner and mtime, as ``tar -x``
        (and BuildKit's unpacking) does.
        """
        if kind == "dir" and top:
            ensure_dir(self.root, dest, self.owner or (0, 0))
            return
        st = os.lstat(src)
        uid, gid = self.owner if self.owner is not None else (st.st_uid, st.st_gid)
        parent_path, name = posixpath.split(posixpath.normpath("/" + dest))
        if not name:  # the root itself: merged into, never replaced
            return
        parent = ensure_dir(self.root, parent_path, self.owner or (0, 0))
        ipath = posixpath.join(parent, name)
        hp = host(self.root, ipath)
        try:
            old: os.stat_result | None = os.lstat(hp)
        except FileNotFoundError:
            old = None
        mode = stat.S_IMODE(st.st_mode)
        if kind == "dir":
            if old is not None and stat.S_ISLNK(old.st_mode) and is_dir(self.root, ipath):
                return  # a symlink to a directory: copy into where it points
            if old is not None and stat.S_ISDIR(old.st_mode):
                if tar_dir:
                    if self.chmod is not None:
                        mode = apply_chmod(mode, self.chmod, True)
                    os.lchown(hp, uid, gid)
                    os.chmod(hp, mode)
                    self.dirs.append((hp, st.st_mtime_ns))
                return  # merge into the existing directory
            if old is not None:
                raise BuildError(f"cannot copy directory to {dest}: it is not a directory "
                                 "in the image")
            if self.chmod is not None:
                mode = apply_chmod(mode, self.chmod, True)
            os.mkdir(hp, 0o700)
            os.lchown(hp, uid, gid)
            os.chmod(hp, mode)
            _copy_xattrs(src, hp)
            self.dirs.append((hp, st.st_mtime_ns))
            return
        if old is not None:
            if stat.S_ISDIR(old.st_mode):
                raise BuildError(f"cannot replace directory {dest} with a file")
            os.unlink(hp)
        if kind == "symlink":
            os.symlink(target or os.readlink(src), hp)
            os.lchown(hp, uid, gid)
            os.utime(hp, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)
            return
        if self.chmod is not None:
            mode = apply_chmod(mode, self.chmod, False)
        if stat.S_ISREG(st.st_mode):
            ino = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and ino in self.links:
                os.link(self.links[ino], hp)
                return
            fd = os.open(hp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
            try:
                _copy_data(src, fd)
                os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)  # after chown, which clears setuid bits
            finally:
                os.close(fd)
            if st.st_nlink > 1:
                self.links[ino] = hp
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(hp, 0o600)
            os.lchown(hp, uid, gid)
            os.chmod(hp, mode)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            os.mknod(hp, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev)
            os.lchown(hp, uid, gid)
            os.chmod(hp, mode)
        else:
            return  # sockets have no place in a layer
        _copy_xattrs(src, hp)
        os.utime(hp, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)

    def write(self, dest: str, data: bytes, mode: int, mtime_ns: int) -> None:
        """A file with ``data`` at ``dest`` (heredoc sources)."""
        owner = self.owner or (0, 0)
        parent_path, name = posixpath.split(posixpath.normpath("/" + dest))
        parent = ensure_dir(self.root, parent_path, owner)
        hp = host(self.root, posixpath.join(parent, name))
        if os.path.lexists(hp):
            if os.path.isdir(hp) and not os.path.islink(hp):
                raise BuildError(f"cannot replace directory {dest} with a file")
            os.unlink(hp)
        if self.chmod is not None:
            mode = apply_chmod(mode, self.chmod, False)
        fd = os.open(hp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchown(fd, *owner)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.utime(hp, ns=(mtime_ns, mtime_ns), follow_symlinks=False)

    def finish(self) -> None:
        for hp, ns in reversed(self.dirs):
            os.utime(hp, ns=(ns, ns), follow_symlinks=False)
        self.dirs.clear()


def mkdir_workdir(root: str, path: str, owner: tuple[int, int]) -> None:
    """WORKDIR: ``mkdir -p`` as the current user (BuildKit's ownership)."""
    ensure_dir(root, path, owner)


# -- archives ----------------------------------------------------------------------------------

def is_archive(path: str) -> bool:
    """Whether ADD extracts ``path``: a tar archive, compressed or not (by content)."""
    from libaci.compress import open_decompressed

    try:
        with open(path, "rb") as f:
            head = b""
            stream = open_decompressed(f)
            while len(head) < 512:
                chunk = stream.read(512 - len(head))
                if not chunk:
                    break
                head += chunk
    except Exception:  # not a compressed stream we can read: an ordinary file
        return False
    if len(head) < 512:
        return False
    if head == bytes(512):
        return True  # an empty archive
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def extract_archive(path: str, dest: str) -> set[str]:
    """Extract archive ``path`` into the empty directory ``dest``, contained in it; the
    directories the archive has entries for (relative paths; the others in ``dest``
    were made as parents)."""
    from libaci.compress import open_decompressed

    with open(path, "rb") as f:
        extract_layer(open_decompressed(f), dest, overlay_whiteouts=False, whiteouts=False)
    with open(path, "rb") as f, tarfile.open(fileobj=open_decompressed(f), mode="r|") as tf:
        return {posixpath.normpath("/" + m.name).strip("/") for m in tf if m.isdir()} - {""}


# -- overlay mounts of this process ------------------------------------------------------------

class Mounts:
    """Overlays mounted in podkit-build's private mount namespace, under ``base``."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.mounted: list[str] = []

    def overlay(self, lowers: list[str], *, writable: bool = True) -> tuple[str, str]:
        """Mount ``lowers`` (bottom first) with a fresh upper directory (``writable``)
        or read-only; (merged view, upper directory or "")."""
        d = tempfile.mkdtemp(prefix="ov-", dir=self.base)
        os.chmod(d, 0o700)
        empties = [os.path.join(d, "e0"), os.path.join(d, "e1")]
        for e in empties:
            os.mkdir(e, 0o755)
        dirs = list(lowers) or empties[:1]
        if not writable and len(dirs) < 2:
            dirs = [empties[1], *dirs]  # a read-only overlay needs two lower directories
        os.mkdir(os.path.join(d, "l"), 0o700)
        for i, path in enumerate(dirs):
            os.symlink(path, os.path.join(d, "l", str(i)))
        opts = "lowerdir=" + ":".join(f"l/{i}" for i in reversed(range(len(dirs))))
        upper = ""
        if writable:
            for sub in ("u", "w"):
                os.mkdir(os.path.join(d, sub), 0o755)
            if lowers:  # the merged root shows the upper's metadata: make it the image's
                st = os.stat(lowers[-1])
                os.chown(os.path.join(d, "u"), st.st_uid, st.st_gid)
                os.chmod(os.path.join(d, "u"), stat.S_IMODE(st.st_mode))
            opts += ",upperdir=u,workdir=w"
            upper = os.path.join(d, "u")
        os.mkdir(os.path.join(d, "m"), 0o755)
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.chdir(d)  # relative paths keep the options under a page for many layers
            linux.mount("overlay", "m", "overlay", 0 if writable else linux.MS_RDONLY, opts)
        except OSError as e:
            raise BuildError(f"cannot mount an overlay of the image: {e.strerror}") from None
        finally:
            os.fchdir(cwd)
            os.close(cwd)
        merged = os.path.join(d, "m")
        self.mounted.append(merged)
        return merged, upper

    def release(self, merged: str) -> None:
        """Unmount ``merged`` (its upper directory stays until the build ends)."""
        if merged in self.mounted:
            self.mounted.remove(merged)
            linux.umount(merged, linux.MNT_DETACH)

    def close(self) -> None:
        while self.mounted:
            with contextlib.suppress(OSError):
                linux.umount(self.mounted.pop(), linux.MNT_DETACH)


def remove_tree(path: str) -> None:
    """rm -rf, whatever the modes (overlay work directories are 0000)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
