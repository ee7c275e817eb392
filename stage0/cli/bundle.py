"""The module bundle: the compiled code of the modules podkit's commands import, in
one file that the launchers read at start-up.

Why: from a cold page cache a command spends most of its start finding and reading
module files (a directory listing per ``sys.path`` entry, a stat and a ``.pyc`` read
per module; ~200 modules, 0.3-1 ms each on a virtio disk) before podkit's first line
of work.  ``podkit-fetch`` starts its layer downloads ~15 ms sooner from one
sequential read of this file (bench/README.md).

It never serves stale code.  The whole bundle is used only by the interpreter that
built it (``sys.version``) with the ``sys.path`` it was built for (a ``PYTHONPATH``
pointing at another checkout or a bench snapshot switches it off), and a module is
taken from it only while its source file has the size and mtime it had then (one
stat, as the ``.pyc`` check does).  Anything else goes to the normal import system,
so editing, adding or deleting a module needs no rebuild.  The one thing a rebuild
(``install.sh``) is needed for: a module file *added* in front of a bundled one on
``sys.path`` (shadowing it) is not seen meanwhile.

The file is not held open or in memory: each module's code is read when it is
imported (after asking the kernel, at start, to read the whole file ahead), and not
at all if the file was replaced meanwhile.  Modules keep their real ``__file__``,
``__path__`` and loader (a ``SourceFileLoader`` that only takes its code from the
bundle), so tracebacks, ``linecache`` and ``importlib.resources`` behave as without it.

``PODKIT_BUNDLE=`` (empty) switches it off; ``PODKIT_BUNDLE=FILE`` uses another one.

Format: ``MAGIC``, the header's length (4 bytes, little endian), the marshalled header
``(sys.version, sys.path, {name: (origin, mtime_ns, size, offset, length)})``, then
the marshalled code objects (``offset`` counts from the end of the header).
"""

from __future__ import annotations

import importlib
import marshal
import os
import pkgutil
import sys

MAGIC = b"PODKITB1"
PACKAGES = ("libaci", "stage0", "schemas")


def install(path: str) -> bool:
    """Serve modules from the bundle at ``path``, first on ``sys.meta_path``; False
    (and nothing changed) when there is no usable bundle there.

    The launchers carry this function's source and call it before anything else is
    imported: it uses only what the interpreter has loaded at start-up, and names
    nothing outside itself.
    """
    import marshal
    import posix
    import sys
    from _frozen_importlib_external import SourceFileLoader, spec_from_file_location

    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except (OSError, ValueError):
        return False
    try:
        st = posix.fstat(fd)
        # the modules are read one by one, in import order, not in file order: ask
        # for the whole file now, in the background (one large read from a cold cache)
        posix.posix_fadvise(fd, 0, 0, posix.POSIX_FADV_WILLNEED)
        head = posix.read(fd, 12)
        if head[:8] != b"PODKITB1":
            return False
        base = 12 + int.from_bytes(head[8:12], "little")
        version, paths, modules = marshal.loads(posix.pread(fd, base - 12, 12))
    except (OSError, EOFError, ValueError, TypeError):
        return False
    finally:
        posix.close(fd)
    if version != sys.version or paths != sys.path[1:]:
        return False
    identity = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def read_code(offset: int, length: int):  # type: ignore[no-untyped-def]
        """The code object at ``offset``, or None if the file is no longer that bundle
        (a re-install replaced it while this process ran)."""
        try:
            fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError:
            return None
        try:
            now = posix.fstat(fd)
            if (now.st_dev, now.st_ino, now.st_mtime_ns, now.st_size) != identity:
                return None
            return marshal.loads(posix.pread(fd, length, base + offset))
        except (OSError, EOFError, ValueError, TypeError):
            return None
        finally:
            posix.close(fd)

    class BundledLoader(SourceFileLoader):
        """The module's file loader, with the code compiled from that file at build time."""

        def __init__(self, fullname: str, origin: str, span: tuple[int, int]) -> None:
            super().__init__(fullname, origin)
            self.span = span

        def get_code(self, fullname):  # type: ignore[no-untyped-def]
            code = read_code(*self.span) if fullname == self.name else None
            return super().get_code(fullname) if code is None else code

    class BundleFinder:
        """Specs for the bundled modules whose source is unchanged."""

        @staticmethod
        def find_spec(fullname, path=None, target=None):  # type: ignore[no-untyped-def]
            entry = modules.get(fullname)
            if entry is None:
                return None
            origin, mtime_ns, size, offset, length = entry
            try:
                st = posix.stat(origin)
            except OSError:
                return None
            if st.st_mtime_ns != mtime_ns or st.st_size != size:
                return None
            return spec_from_file_location(
                fullname, origin, loader=BundledLoader(fullname, origin, (offset, length)))

    sys.meta_path.insert(0, BundleFinder)
    return True


def collect(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Import every module of ``packages``; the names of all modules then loaded from
    ``.py`` files (theirs, and what they import: the stdlib, attrs), in import order."""
    for name in packages:
        pkg = importlib.import_module(name)
        for info in pkgutil.walk_packages(pkg.__path__, name + "."):
            importlib.import_module(info.name)
    names = []
    for name, mod in list(sys.modules.items()):
        spec = getattr(mod, "__spec__", None)
        origin = getattr(spec, "origin", None)
        if (name != "__main__" and spec is not None and spec.has_location
                and isinstance(origin, str) and origin.endswith(".py")):
            names.append(name)
    return names


def build(out: str, names: list[str]) -> int:
    """Write the bundle of the modules ``names`` (loaded from ``.py`` files) to ``out``
    for this interpreter and ``sys.path``; returns how many it holds."""
    index: dict[str, tuple[str, int, int, int, int]] = {}
    blobs: list[bytes] = []
    offset = 0
    for name in names:
        origin = sys.modules[name].__spec__.origin
        with open(origin, "rb") as f:
            st = os.fstat(f.fileno())
            source = f.read()
            now = os.fstat(f.fileno())
        if (now.st_mtime_ns, now.st_size) != (st.st_mtime_ns, len(source)):
            continue  # being edited: left to the normal import
        blob = marshal.dumps(compile(source, origin, "exec", dont_inherit=True))
        index[name] = (origin, st.st_mtime_ns, st.st_size, offset, len(blob))
        blobs.append(blob)
        offset += len(blob)
    header = marshal.dumps((sys.version, list(sys.path), index))
    tmp = f"{out}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(MAGIC + len(header).to_bytes(4, "little") + header)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, out)
    return len(index)
