"""Tests for libaci.dockerfile.ignore: .dockerignore reading and Docker's pattern matcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.ignore import (
    PatternMatcher,
    ignore_file_candidates,
    load_ignore_patterns,
    read_ignore_file,
)

IGNORE = """\ufeff# comment
*.log
!keep.log
   **/*.tmp
/abs
./dot/../rel
build/
!build/keep
docs
! docs/*.md
a/**/z
*/nested.txt
  # not a comment: leading blanks make it a pattern

"""


def test_read_ignore_file() -> None:
    assert read_ignore_file(IGNORE) == [
        "*.log", "!keep.log", "**/*.tmp", "abs", "rel", "build", "!build/keep", "docs",
        "!docs/*.md", "a/**/z", "*/nested.txt", "# not a comment: leading blanks make it a pattern"]
    assert read_ignore_file(b"a\r\nb\r\n/\n!/x\n") == ["a", "b", "/", "!x"]


@pytest.mark.parametrize(("path", "excluded"), [
    ("x.log", True),
    ("keep.log", False),
    ("sub/c.log", False),  # patterns are anchored at the context root
    ("z.tmp", True),
    ("a/b/c.tmp", True),
    ("abs", True),
    ("abs/inner/file", True),
    ("rel", True),
    ("dot/rel", False),
    ("build", True),
    ("build/out.o", True),
    ("build/keep", False),
    ("build/keep/deep", False),
    ("docs", True),
    ("docs/readme.md", False),
    ("docs/img/x.png", True),
    ("docs/sub/x.md", True),
    ("a/z", True),
    ("a/b/c/z", True),
    ("a/z/file", True),
    ("az", False),
    ("x/nested.txt", True),
    ("nested.txt", False),
    ("x/y/nested.txt", False),
    ("Dockerfile", False),
    ("./x.log", True),
    (".", False),
])
def test_matches(path: str, excluded: bool) -> None:
    matcher = PatternMatcher(read_ignore_file(IGNORE))
    assert matcher.matches(path) is excluded
    assert matcher.exclusions


@pytest.mark.parametrize(("patterns", "path", "excluded"), [
    (["**"], "anything/at/all", True),
    (["foo/**"], "foo/x/y", True),
    (["foo/**"], "foobar", False),
    (["**/foo"], "foo", True),
    (["**/foo"], "a/b/foo", True),
    (["**/foo"], "a/bfoo", False),
    (["*"], "top", True),
    (["*"], "dir/file", True),  # via the parent directory
    (["?.txt"], "a.txt", True),
    (["?.txt"], "ab.txt", False),
    (["[a-c].txt"], "b.txt", True),
    (["[^a-c].txt"], "b.txt", False),
    (["[^a-c].txt"], "d.txt", True),
    (["a\\*b"], "a*b", True),
    (["a\\*b"], "axb", False),
    (["file.(x)"], "file.(x)", True),
    (["a+b"], "aab", False),
    (["*", "!keep", "keep/secret"], "keep/other", False),
    (["*", "!keep", "keep/secret"], "keep/secret", True),
    (["!*.txt"], "a.txt", False),
    (["dir", "!dir/*/ok"], "dir/x/ok", False),
    (["dir", "!dir/*/ok"], "dir/x/no", True),
    (["  spaced  "], "spaced", True),
    (["a/../b"], "b", True),
])
def test_pattern_semantics(patterns: list[str], path: str, excluded: bool) -> None:
    assert PatternMatcher(patterns).matches(path) is excluded


@pytest.mark.parametrize("patterns", [["!"], ["[abc"], ["a\\"], ["[]a]"], ["[-a]"]])
def test_bad_patterns(patterns: list[str]) -> None:
    with pytest.raises(DockerfileError):
        PatternMatcher(patterns)


def test_filter_and_no_exclusions() -> None:
    m = PatternMatcher(["*.o", ""])
    assert not m.exclusions
    assert m.filter(["a.o", "b.c", "d/e.o"]) == ["b.c", "d/e.o"]


def test_dockerfile_specific_ignore_file_wins(tmp_path: Path) -> None:
    assert ignore_file_candidates("sub/app.Dockerfile") == (
        "sub/app.Dockerfile.dockerignore", ".dockerignore")
    (tmp_path / ".dockerignore").write_text("root-pattern\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    dockerfile = sub / "app.Dockerfile"
    dockerfile.write_text("FROM scratch\n")
    assert load_ignore_patterns(str(tmp_path), str(dockerfile)) == ["root-pattern"]
    (sub / "app.Dockerfile.dockerignore").write_text("specific\n!x\n")
    assert load_ignore_patterns(str(tmp_path), str(dockerfile)) == ["specific", "!x"]
    assert load_ignore_patterns(str(tmp_path)) == ["root-pattern"]
    (tmp_path / ".dockerignore").unlink()
    assert load_ignore_patterns(str(tmp_path)) == []
