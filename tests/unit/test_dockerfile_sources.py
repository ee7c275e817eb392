"""Tests for libaci.dockerfile.sources: which files COPY/ADD take and where they go."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.ignore import PatternMatcher
from libaci.dockerfile.sources import (
    CopyItem,
    Entry,
    SourceTree,
    content_dest,
    match_sources,
    select_sources,
    source_kind,
)

ENTRIES = [
    Entry("a.txt", "file"), Entry("b.md", "file"), Entry("sp ace.txt", "file"),
    Entry("arr[0].txt", "file"), Entry("dir", "dir"), Entry("dir/x.txt", "file"),
    Entry("dir/sub", "dir"), Entry("dir/sub/y.txt", "file"),
    Entry("dir/link", "symlink", "x.txt"), Entry("dir/dangling", "symlink", "nope"),
    Entry("toplink", "symlink", "dir/x.txt"), Entry("dirlink", "symlink", "dir"),
    Entry("abslink", "symlink", "/dir/sub"), Entry("escape", "symlink", "../../../a.txt"),
    Entry("loop", "symlink", "loop"), Entry(".git/config", "file"), Entry("empty", "dir"),
]
TREE = SourceTree(ENTRIES)


def copy(sources: list[str], dest: str, **kw: object) -> list[tuple[str, str, str]]:
    items = select_sources(TREE, sources, dest, **kw)  # type: ignore[arg-type]
    return [(i.source, i.dest, i.kind) for i in items]


def test_file_into_directory_and_as_file() -> None:
    assert copy(["a.txt"], "/app/") == [("a.txt", "/app/a.txt", "file")]
    assert copy(["a.txt"], "/app") == [("a.txt", "/app", "file")]
    assert copy(["a.txt"], "/app", dest_is_dir=lambda p: p == "/app") == [
        ("a.txt", "/app/a.txt", "file")]
    assert copy(["a.txt"], "/") == [("a.txt", "/a.txt", "file")]


def test_directory_copies_its_contents() -> None:
    expected = [
        ("dir", "/d", "dir"), ("dir/dangling", "/d/dangling", "symlink"),
        ("dir/link", "/d/link", "symlink"), ("dir/sub", "/d/sub", "dir"),
        ("dir/sub/y.txt", "/d/sub/y.txt", "file"), ("dir/x.txt", "/d/x.txt", "file")]
    assert copy(["dir"], "/d/") == expected
    assert copy(["dir/"], "/d") == expected
    assert copy(["./dir/."], "/d") == expected
    items = select_sources(TREE, ["dir"], "/d/")
    assert items[0].top and not items[1].top
    assert [i.target for i in items if i.kind == "symlink"] == ["nope", "x.txt"]
    assert copy(["empty"], "/e") == [("empty", "/e", "dir")]


def test_sources_are_clamped_to_the_root() -> None:
    for src in ("../a.txt", "/a.txt", "./a.txt", "../../x/../a.txt"):
        assert copy([src], "/x/") == [("a.txt", "/x/a.txt", "file")]


def test_top_level_symlinks_are_followed_keeping_the_name() -> None:
    assert copy(["toplink"], "/l") == [("dir/x.txt", "/l", "file")]
    assert copy(["toplink"], "/l/") == [("dir/x.txt", "/l/toplink", "file")]
    assert copy(["dirlink"], "/dl/")[0] == ("dir", "/dl", "dir")
    assert copy(["abslink"], "/s/") == [("dir/sub", "/s", "dir"),
                                        ("dir/sub/y.txt", "/s/y.txt", "file")]
    assert copy(["escape"], "/e") == [("a.txt", "/e", "file")]
    assert copy(["dirlink/x.txt"], "/x/") == [("dir/x.txt", "/x/x.txt", "file")]


def test_wildcards() -> None:
    assert copy(["*.txt"], "/t/") == [
        ("a.txt", "/t/a.txt", "file"), ("arr[0].txt", "/t/arr[0].txt", "file"),
        ("sp ace.txt", "/t/sp ace.txt", "file")]
    assert copy(["?.md"], "/t/") == [("b.md", "/t/b.md", "file")]
    assert copy(["arr[[]0].txt"], "/t/") == [("arr[0].txt", "/t/arr[0].txt", "file")]
    assert copy(["arr\\[0\\].txt"], "/t/") == [("arr[0].txt", "/t/arr[0].txt", "file")]
    assert copy(["[ab].*"], "/t/") == [("a.txt", "/t/a.txt", "file"),
                                       ("b.md", "/t/b.md", "file")]
    assert copy(["[^ab]*.txt"], "/t/") == [("sp ace.txt", "/t/sp ace.txt", "file")]
    assert copy(["di?/*.txt"], "/t/") == [("dir/x.txt", "/t/x.txt", "file")]
    assert copy(["dir*/x.txt"], "/t/") == [("dir/x.txt", "/t/x.txt", "file"),
                                           ("dir/x.txt", "/t/x.txt", "file")]
    assert copy(["nomatch*"], "/t/") == []
    assert match_sources(TREE, "*/sub") == ["dir/sub", "dirlink/sub"]


def test_missing_source() -> None:
    with pytest.raises(DockerfileError, match='"/missing": not found'):
        copy(["missing"], "/x")
    with pytest.raises(DockerfileError, match="not found"):
        copy(["dir/link/nope"], "/x")
    with pytest.raises(DockerfileError, match="too many levels of symbolic links"):
        copy(["loop"], "/x")
    with pytest.raises(DockerfileError):
        copy(["[bad"], "/x/")


def test_dangling_top_level_link_is_not_found() -> None:
    with pytest.raises(DockerfileError, match="not found"):
        copy(["dir/dangling"], "/x")


def test_whole_context_and_ignore() -> None:
    tree = SourceTree(ENTRIES, PatternMatcher([".git", "*.md", "dir/sub", "!dir/sub/y.txt"]))
    dests = [d for _, d, _ in
             [(i.source, i.dest, i.kind) for i in select_sources(tree, ["."], "/all/")]]
    assert "/all/.git/config" not in dests and "/all/b.md" not in dests
    assert "/all/dir/sub/y.txt" in dests and "/all/dir/sub" in dests
    assert dests[0] == "/all"
    with pytest.raises(DockerfileError, match="not found"):
        select_sources(tree, ["b.md"], "/x")


def test_exclude_flag() -> None:
    assert copy(["dir"], "/d/", excludes=["*.txt", "dangling"]) == [
        ("dir", "/d", "dir"), ("dir/link", "/d/link", "symlink"), ("dir/sub", "/d/sub", "dir"),
        ("dir/sub/y.txt", "/d/sub/y.txt", "file")]
    assert copy(["dir"], "/d/", excludes=["sub"]) == [
        ("dir", "/d", "dir"), ("dir/dangling", "/d/dangling", "symlink"),
        ("dir/link", "/d/link", "symlink"), ("dir/x.txt", "/d/x.txt", "file")]
    assert copy(["*.txt"], "/t/", excludes=["a.*", "arr*"]) == [
        ("sp ace.txt", "/t/sp ace.txt", "file")]


def test_parents() -> None:
    assert copy(["dir/sub/y.txt", "a.txt"], "/p/", parents=True) == [
        ("dir/sub/y.txt", "/p/dir/sub/y.txt", "file"), ("a.txt", "/p/a.txt", "file")]
    assert copy(["dir/./sub/y.txt"], "/p/", parents=True) == [
        ("dir/sub/y.txt", "/p/sub/y.txt", "file")]
    assert copy(["dir/./sub"], "/p", parents=True) == [
        ("dir/sub", "/p/sub", "dir"), ("dir/sub/y.txt", "/p/sub/y.txt", "file")]


def test_content_dest() -> None:
    assert content_dest("EOF", "/d/") == "/d/EOF"
    assert content_dest("EOF", "/f") == "/f"
    assert content_dest("EOF", "/d", lambda p: True) == "/d/EOF"


def test_from_directory(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f.txt").write_text("x")
    (tmp_path / "top").write_text("y")
    os.symlink("d", tmp_path / "dl")
    os.symlink("nowhere", tmp_path / "d" / "broken")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "skip.log").write_text("z")
    tree = SourceTree.from_directory(str(tmp_path), PatternMatcher(["*.log"]))
    assert sorted((e.path, e.kind, e.target) for e in tree.entries.values()) == [
        ("d", "dir", ""), ("d/broken", "symlink", "nowhere"), ("d/e", "dir", ""),
        ("d/e/f.txt", "file", ""), ("dl", "symlink", "d"), ("fifo", "other", ""),
        ("top", "file", "")]
    items = select_sources(tree, ["dl"], "/x/")
    assert items[-1] == CopyItem("d/e/f.txt", "/x/e/f.txt", "file")


def test_ignored_parent_with_reincluded_child_keeps_parent() -> None:
    tree = SourceTree([Entry("p/q/r", "file"), Entry("p/s", "file")], PatternMatcher(["p", "!p/q"]))
    assert sorted(tree.entries) == ["p", "p/q", "p/q/r"]


@pytest.mark.parametrize(("src", "kind"), [
    ("https://example.com/f.tar.gz", "http"),
    ("HTTP://example.com/x?y=1#z", "http"),
    ("https://github.com/moby/buildkit.git", "git"),
    ("https://github.com/moby/buildkit.git#v0.13:docs", "git"),
    ("https://github.com/moby/buildkit", "http"),
    ("git://example.com/repo", "git"),
    ("ssh://git@example.com/repo", "git"),
    ("git@github.com:moby/buildkit.git", "git"),
    ("github.com/moby/buildkit", "local"),
    ("a:b", "local"),
    ("./user@host:path", "local"),
    ("dir/file.git", "local"),
    ("ftp://example.com/x", "local"),
])
def test_source_kind(src: str, kind: str) -> None:
    assert source_kind(src) == kind
