"""Which files a COPY or ADD takes, and where each one lands.

A pure function over a listing of the source tree (the build context after
``.dockerignore``, or the rootfs of another stage), following what BuildKit
asks of its copy operation: sources are relative to the root and clamped to
it (``/x`` and ``../x`` are ``x``), a trailing ``/`` on a source means
nothing, wildcards (Go ``filepath.Match``: ``*``, ``?``, ``[...]``, ``\\``)
match per path component and may match nothing, a symlink named as the
source is followed but the copy keeps the link's name, a directory copies
its *contents*, symlinks inside a copied directory stay symlinks, and the
destination is a directory when it ends in ``/`` (or already is one),
otherwise the file is written as the destination itself.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence

import attrs

from libaci.dockerfile import _go
from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.ignore import PatternMatcher

_WILDCARD = re.compile(r"[*?\[\\]")
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*)://")
_SCP = re.compile(r"[a-zA-Z0-9_-]+@[a-zA-Z0-9.-]+:.+\Z")
MAX_LINKS = 255


@attrs.frozen
class Entry:
    """One path in a source tree: ``file``, ``dir``, ``symlink`` or ``other``."""

    path: str  # relative, slash-separated, no leading ./ or /
    kind: str
    target: str = ""  # symlink target as stored


@attrs.frozen
class CopyItem:
    """One entry a COPY/ADD writes: where it comes from and where it goes."""

    source: str  # path in the source tree (links named as the source already followed)
    dest: str  # absolute path in the image
    kind: str
    target: str = ""
    top: bool = False  # a source named on the instruction line (not found inside a dir)


class SourceTree:
    """A listing of a directory tree, with ignore patterns applied."""

    def __init__(self, entries: Iterable[Entry], ignore: PatternMatcher | None = None) -> None:
        self.entries: dict[str, Entry] = {}
        for e in entries:
            path = _go.clean_path(e.path).lstrip("/")
            if path in ("", "."):
                continue
            if ignore is not None and ignore.matches(path):
                continue
            self.entries[path] = attrs.evolve(e, path=path)
        for path in list(self.entries):  # parents of kept entries exist
            parent = path.rpartition("/")[0]
            while parent and parent not in self.entries:
                self.entries[parent] = Entry(parent, "dir")
                parent = parent.rpartition("/")[0]
        self.children: dict[str, list[str]] = {}
        for path in sorted(self.entries):
            self.children.setdefault(path.rpartition("/")[0], []).append(path)

    @classmethod
    def from_directory(cls, root: str, ignore: PatternMatcher | None = None) -> SourceTree:
        """List *root* without following symlinks (``.dockerignore`` applied)."""
        entries: list[Entry] = []
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    entries.append(Entry(rel, "symlink", os.readlink(full)))
                elif stat.S_ISDIR(st.st_mode):
                    entries.append(Entry(rel, "dir"))
                elif stat.S_ISREG(st.st_mode):
                    entries.append(Entry(rel, "file"))
                else:
                    entries.append(Entry(rel, "other"))
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        return cls(entries, ignore)

    def get(self, path: str) -> Entry | None:
        if path in ("", "."):
            return Entry("", "dir")
        return self.entries.get(path)

    def resolve(self, path: str) -> Entry | None:
        """*path* with every symlink in it followed, never leaving the root."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/".join([*done, part])
            entry = self.entries.get(candidate)
            if entry is None:
                return None
            if entry.kind == "symlink":
                hops += 1
                if hops > MAX_LINKS:
                    raise DockerfileError(f"too many levels of symbolic links: {path}")
                target = entry.target
                base = [] if target.startswith("/") else done
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                done = list(base)
                continue
            done.append(part)
        return self.get("/".join(done))

    def walk(self, path: str) -> list[Entry]:
        """Everything below directory *path*, parents before children."""
        out: list[Entry] = []
        for child in self.children.get(path, []):
            entry = self.entries[child]
            out.append(entry)
            if entry.kind == "dir":
                out.extend(self.walk(child))
        return out


def source_kind(src: str) -> str:
    """``http``, ``git`` or ``local``: how BuildKit fetches a COPY/ADD source.

    Git refs are ``git://`` and ``ssh://`` URLs, ``user@host:path`` and
    http(s) URLs whose path ends in ``.git`` (``gitutil.ParseGitRef``);
    other http(s) URLs are downloads; everything else is a context path.
    """
    m = _SCHEME.match(src)
    if m is not None:
        scheme = m.group(1).lower()
        if scheme in ("git", "ssh"):
            return "git"
        if scheme in ("http", "https"):
            path = src[m.end():].split("#", 1)[0].split("?", 1)[0]
            return "git" if path.endswith(".git") else "http"
        return "local"
    if _SCP.match(src) and not src.startswith(("./", "../", "/")):
        return "git"
    return "local"


def has_wildcards(path: str) -> bool:
    return bool(_WILDCARD.search(path))


def _component_regex(pattern: str) -> re.Pattern[str]:
    """Go ``filepath.Match`` for one path component."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i >= len(pattern):
                raise DockerfileError(f"syntax error in pattern: {pattern}")
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            j = i
            negate = j < len(pattern) and pattern[j] == "^"
            if negate:
                j += 1
            ranges: list[str] = []
            first = True
            while True:
                if j >= len(pattern):
                    raise DockerfileError(f"syntax error in pattern: {pattern}")
                c = pattern[j]
                if c == "]" and not first:
                    j += 1
                    break
                if c == "\\":
                    j += 1
                    if j >= len(pattern):
                        raise DockerfileError(f"syntax error in pattern: {pattern}")
                    c = pattern[j]
                elif c in "-]":
                    raise DockerfileError(f"syntax error in pattern: {pattern}")
                lo = c
                j += 1
                if j + 1 < len(pattern) and pattern[j] == "-" and pattern[j + 1] != "]":
                    hi = pattern[j + 1]
                    if hi == "\\":
                        j += 1
                        hi = pattern[j + 1] if j + 1 < len(pattern) else ""
                    if not hi or hi < lo:
                        raise DockerfileError(f"syntax error in pattern: {pattern}")
                    ranges.append(re.escape(lo) + "-" + re.escape(hi))
                    j += 2
                else:
                    ranges.append(re.escape(lo))
                first = False
            out.append("[" + ("^" if negate else "") + "".join(ranges) + "]")
            i = j
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _unescape(component: str) -> str:
    return re.sub(r"\\(.)", r"\1", component)


def match_sources(tree: SourceTree, source: str) -> list[str]:
    """The paths *source* names: itself, or its wildcard matches (maybe none)."""
    clean = _go.clean_path("/" + source).lstrip("/")
    if clean == "":
        return [""]
    if not has_wildcards(clean):
        return [clean] if tree.resolve(clean) is not None else []
    current = [""]
    for component in clean.split("/"):
        nxt: list[str] = []
        for base in current:
            try:
                entry = tree.resolve(base) if base else Entry("", "dir")
            except DockerfileError:  # a symlink loop matches nothing below it
                continue
            if entry is None or entry.kind != "dir":
                continue
            real = entry.path
            if has_wildcards(component):
                regex = _component_regex(component)
                for child in tree.children.get(real, []):
                    name = child.rpartition("/")[2]
                    if regex.match(name):
                        nxt.append(f"{base}/{name}" if base else name)
            else:
                name = _unescape(component)
                path = f"{base}/{name}" if base else name
                try:
                    if tree.resolve(path) is not None:
                        nxt.append(path)
                except DockerfileError:
                    continue
        current = nxt
    return sorted(current)


def _join(dest: str, rel: str) -> str:
    if not rel:
        return dest.rstrip("/") or "/"
    return (dest.rstrip("/") or "") + "/" + rel


def select_sources(tree: SourceTree, sources: Sequence[str], dest: str, *,
                   dest_is_dir: Callable[[str], bool] | None = None,
                   excludes: Sequence[str] = (), parents: bool = False) -> list[CopyItem]:
    """The entries COPY/ADD *sources* copy to absolute *dest*, in copy order.

    A source that does not exist (and is not a wildcard) is an error; a
    wildcard matching nothing copies nothing.  *dest_is_dir* tells whether a
    destination path is already a directory in the image.
    """
    is_dir = dest_is_dir or (lambda _p: False)
    exclude = PatternMatcher(excludes) if excludes else None
    items: list[CopyItem] = []
    for source in sources:
        pivot = ""
        pattern_source = source
        if parents:
            head, sep, tail = source.partition("/./")
            if sep:
                pivot = _go.clean_path("/" + head).lstrip("/")
                pattern_source = head + "/" + tail
        matches = match_sources(tree, pattern_source)
        if not matches and not has_wildcards(source):
            raise DockerfileError(f'"{_go.clean_path("/" + source)}": not found')
        for path in matches:
            entry = tree.resolve(path)
            if entry is None:
                raise DockerfileError(f'"/{path}": not found')
            name = path.rpartition("/")[2]
            if parents:
                rel = path[len(pivot):].lstrip("/") if pivot else path
                base_dest = _join(dest, rel.rpartition("/")[0]) if entry.kind != "dir" else \
                    _join(dest, rel)
                into_dir = True
            else:
                base_dest = dest
                into_dir = dest.endswith("/") or is_dir(dest.rstrip("/") or "/")
            if entry.kind == "dir":
                target = base_dest.rstrip("/") or "/"
                items.append(CopyItem(entry.path, target, "dir", top=True))
                for child in tree.walk(entry.path):
                    rel = child.path[len(entry.path):].lstrip("/")
                    if exclude is not None and exclude.matches(rel):
                        continue
                    items.append(CopyItem(child.path, _join(target, rel), child.kind,
                                          child.target))
                continue
            if exclude is not None and exclude.matches(name):
                continue
            out = _join(base_dest, name) if into_dir else base_dest.rstrip("/") or "/"
            items.append(CopyItem(entry.path, out, entry.kind, entry.target, top=True))
    return items


def content_dest(name: str, dest: str, dest_is_dir: Callable[[str], bool] | None = None) -> str:
    """Where a heredoc source (``COPY <<NAME dest``) is written."""
    is_dir = dest_is_dir or (lambda _p: False)
    if dest.endswith("/") or is_dir(dest.rstrip("/") or "/"):
        return _join(dest, name)
    return dest
