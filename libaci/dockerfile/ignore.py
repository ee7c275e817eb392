""".dockerignore files and Docker's pattern matcher.

Which context files a build may see is decided by ``.dockerignore`` (or
``<Dockerfile>.dockerignore`` next to the Dockerfile, which wins), read as
``moby/patternmatcher/ignorefile`` reads it and matched as
``patternmatcher.MatchesOrParentMatches`` does: Go ``filepath.Match``
syntax plus ``**``, ``!`` exceptions, the last matching line wins, and a
pattern matching a directory excludes everything below it.  The same matcher
serves ``COPY --exclude``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Sequence

import attrs

from libaci.dockerfile import _go
from libaci.dockerfile.errors import DockerfileError

IGNORE_FILE = ".dockerignore"
_ESCAPE = frozenset(".+()|{}$")


def read_ignore_file(text: str | bytes) -> list[str]:
    """``ignorefile.ReadAll``: the patterns of a .dockerignore, normalised."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    patterns: list[str] = []
    for number, line in enumerate(text.split("\n")):
        if line.endswith("\r"):
            line = line[:-1]
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = _go.trim_space(line)
        if pattern == "":
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = _go.trim_space(pattern[1:])
        if pattern:
            pattern = _go.clean_path(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def ignore_file_candidates(dockerfile: str = "Dockerfile") -> tuple[str, ...]:
    """Where BuildKit looks for ignore patterns, first found wins.

    *dockerfile* is the Dockerfile path relative to the context (as given to
    ``-f``); the first candidate sits next to it, the second at the root.
    """
    return (dockerfile + IGNORE_FILE, IGNORE_FILE)


def load_ignore_patterns(context_dir: str, dockerfile_path: str | None = None) -> list[str]:
    """The ignore patterns for a build: ``<Dockerfile>.dockerignore`` beside the
    Dockerfile, else ``.dockerignore`` in the context root, else none."""
    dockerfile_path = dockerfile_path or os.path.join(context_dir, "Dockerfile")
    for candidate in (dockerfile_path + IGNORE_FILE, os.path.join(context_dir, IGNORE_FILE)):
        try:
            with open(candidate, "rb") as f:
                return read_ignore_file(f.read())
        except FileNotFoundError:
            continue
        except OSError as e:
            raise DockerfileError(f"cannot read {candidate}: {e.strerror}",
                                  filename=candidate) from None
    return []


def _check_go_pattern(pattern: str) -> None:
    """``filepath.Match(p, ".")`` only to find syntax errors (``ErrBadPattern``)."""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= len(pattern):
                raise DockerfileError(f"syntax error in pattern: {pattern}")
            i += 2
            continue
        if ch == "[":
            i += 1
            if i < len(pattern) and pattern[i] == "^":
                i += 1
            first = True
            while True:
                if i >= len(pattern):
                    raise DockerfileError(f"syntax error in pattern: {pattern}")
                if pattern[i] == "]" and not first:
                    break
                if pattern[i] == "\\":
                    i += 1
                    if i >= len(pattern):
                        raise DockerfileError(f"syntax error in pattern: {pattern}")
                elif pattern[i] in "-]" and first:
                    raise DockerfileError(f"syntax error in pattern: {pattern}")
                first = False
                i += 1
        elif ch == "]":
            # a lone ']' is literal in Go's Match
            pass
        i += 1


@attrs.frozen
class Pattern:
    """One compiled pattern of a :class:`PatternMatcher`."""

    text: str
    exclusion: bool
    kind: str  # exact, prefix, suffix or regexp
    regex: re.Pattern[str] | None = None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None


def _compile(text: str, exclusion: bool) -> Pattern:
    out = "^"
    kind = "exact"
    i = 0
    n = len(text)
    index = 0
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out += ".*"
                        kind = "regexp"
                else:
                    out += "(.*/)?"
                    kind = "regexp"
                if index == 0:
                    kind = "suffix"
            else:
                out += "[^/]*"
                kind = "regexp"
        elif ch == "?":
            out += "[^/]"
            kind = "regexp"
        elif ch in _ESCAPE:
            out += "\\" + ch
        elif ch == "\\":
            if i < n:
                out += "\\" + text[i]
                i += 1
                kind = "regexp"
            else:
                out += "\\\\"
        elif ch in "[]":
            out += ch
            kind = "regexp"
        else:
            out += ch
        index += 1
    regex = None
    if kind == "regexp":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                regex = re.compile(out + r"\Z")
        except re.error:
            raise DockerfileError(f"syntax error in pattern: {text}") from None
    return Pattern(text=text, exclusion=exclusion, kind=kind, regex=regex)


class PatternMatcher:
    """``patternmatcher.PatternMatcher``: ``.dockerignore`` semantics for paths."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            p = _go.trim_space(raw)
            if p == "":
                continue
            p = _go.clean_path(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise DockerfileError('illegal exclusion pattern: "!"')
                p = p[1:]
            _check_go_pattern(p)
            self.patterns.append(_compile(p, exclusion))

    @property
    def exclusions(self) -> bool:
        """Whether any pattern is an ``!`` exception."""
        return any(p.exclusion for p in self.patterns)

    def matches(self, path: str) -> bool:
        """``MatchesOrParentMatches``: is *path* (slash-separated, relative) excluded?"""
        path = _go.clean_path(path)
        if path in (".", ""):
            return False
        parent = path.rsplit("/", 1)[0] if "/" in path else "."
        parent_dirs = parent.split("/")
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit and parent != ".":
                for i in range(len(parent_dirs)):
                    if pattern.match("/".join(parent_dirs[: i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pattern.exclusion
        return matched

    def filter(self, paths: Sequence[str]) -> list[str]:
        """The paths that are not excluded, in their order."""
        return [p for p in paths if not self.matches(p)]
