"""The build context: its directory, the Dockerfile, .dockerignore, content digests.

The Dockerfile is ``-f PATH`` (relative to the current directory, ``-`` for
stdin), else ``CONTEXT/Dockerfile``, else ``CONTEXT/Containerfile``.  The
ignore patterns come from ``<Dockerfile>.dockerignore`` beside the Dockerfile,
else ``CONTEXT/.dockerignore``, else ``CONTEXT/.containerignore`` (buildah's
name).  COPY and ADD see the context through them, and so does ``--watch``.

Digests of context files feed the step cache (content and metadata, never
mtimes, as BuildKit and the classic builder key COPY); they are remembered
per (inode, size, mtime, ctime) within the process, so ``--watch`` rebuilds
hash only what changed.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator

from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.ignore import PatternMatcher, load_ignore_patterns, read_ignore_file
from libaci.dockerfile.sources import SourceTree
from libaci.errors import NotFoundError, UsageError

CHUNK = 1 << 20
DOCKERFILES = ("Dockerfile", "Containerfile")
CONTAINERIGNORE = ".containerignore"

_digests: dict[tuple[str, int, int, int, int, int], str] = {}


def file_digest(path: str, st: os.stat_result | None = None) -> str:
    """sha256 of a regular file's content (hex), remembered while it is unchanged."""
    st = st or os.stat(path)
    key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    hit = _digests.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    if len(_digests) > 100_000:
        _digests.clear()
    _digests[key] = digest
    return digest


class Context:
    """One build context: where it is, its Dockerfile and its ignore rules."""

    def __init__(self, root: str, dockerfile_path: str | None, text: bytes, display: str,
                 ignore: PatternMatcher) -> None:
        self.root = root
        self.dockerfile_path = dockerfile_path
        self.text = text
        self.display = display
        self.ignore = ignore
        self._tree: SourceTree | None = None

    @classmethod
    def open(cls, context: str, dockerfile: str | None = None,
             stdin_text: bytes | None = None) -> Context:
        root = os.path.abspath(context)
        if not os.path.isdir(root):
            if os.path.exists(root):
                raise UsageError(f"{context}: the build context must be a directory")
            raise NotFoundError(f"{context}: no such build context directory")
        if dockerfile == "-":
            if stdin_text is None:
                raise UsageError("-f -: no Dockerfile on stdin")
            text, path, display = stdin_text, None, "Dockerfile"
        else:
            path = _find_dockerfile(root, context, dockerfile)
            try:
                with open(path, "rb") as f:
                    text = f.read()
            except IsADirectoryError:
                raise UsageError(f"{path} is a directory, not a Dockerfile") from None
            except OSError as e:
                raise NotFoundError(f"cannot read {path}: {e.strerror}") from None
            rel = os.path.relpath(path, root)
            display = rel if not rel.startswith("..") else (dockerfile or path)
        patterns = load_ignore_patterns(root, path or os.path.join(root, "Dockerfile"))
        if not patterns:
            patterns = _containerignore(root)
        try:
            ignore = PatternMatcher(patterns)
        except DockerfileError as e:
            raise DockerfileError(e.message, filename=".dockerignore") from None
        return cls(root, path, text, display, ignore)

    def tree(self) -> SourceTree:
        """The context as COPY sees it (ignored paths left out), listed once."""
        if self._tree is None:
            self._tree = SourceTree.from_directory(self.root, self.ignore)
        return self._tree

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def fingerprint(self) -> tuple[object, ...]:
        """What --watch compares: every visible path's metadata, plus the
        Dockerfile and the ignore files, so an edit anywhere that a build
        could see changes it."""
        items: list[object] = []
        for rel, st, target in self._walk():
            items.append((rel, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, target))
        extra = [self.dockerfile_path] if self.dockerfile_path else []
        extra += [os.path.join(self.root, n) for n in (".dockerignore", CONTAINERIGNORE)]
        if self.dockerfile_path:
            extra.append(self.dockerfile_path + ".dockerignore")
        for p in extra:
            try:
                st = os.stat(p)
                items.append((p, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
            except OSError:
                items.append((p, None))
        return tuple(items)

    def _walk(self) -> Iterator[tuple[str, os.stat_result, str | None]]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel_dir = os.path.relpath(dirpath, self.root)
            keep: list[str] = []
            for name in sorted(dirnames + filenames):
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                full = os.path.join(dirpath, name)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                # below an ignored directory an exception may re-include paths
                if stat.S_ISDIR(st.st_mode) and (not self.ignore.matches(rel)
                                                 or self.ignore.exclusions):
                    keep.append(name)
                if self.ignore.matches(rel):
                    continue
                target = os.readlink(full) if stat.S_ISLNK(st.st_mode) else None
                yield rel, st, target
            dirnames[:] = [d for d in dirnames if d in keep]


def _find_dockerfile(root: str, context: str, dockerfile: str | None) -> str:
    if dockerfile:
        path = os.path.abspath(dockerfile)
        if not os.path.exists(path):
            raise NotFoundError(f"{dockerfile}: no such Dockerfile")
        return path
    for name in DOCKERFILES:
        path = os.path.join(root, name)
        if os.path.exists(path):
            return path
    raise NotFoundError(f"no Dockerfile or Containerfile in {context} (give one with -f)")


def _containerignore(root: str) -> list[str]:
    try:
        with open(os.path.join(root, CONTAINERIGNORE), "rb") as f:
            return read_ignore_file(f.read())
    except FileNotFoundError:
        return []
    except OSError as e:
        raise DockerfileError(f"cannot read {CONTAINERIGNORE}: {e.strerror}",
                              filename=CONTAINERIGNORE) from None
