"""libaci.fsutil.rmtree and mkdir_shared: the cases the store relies on."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from libaci.fsutil import mkdir_shared, rmtree


def test_rmtree_removes_an_empty_directory_without_shutil(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "empty"
    d.mkdir()
    monkeypatch.setitem(sys.modules, "shutil", None)  # importing it would raise
    rmtree(str(d))
    assert not d.exists()
    rmtree(str(tmp_path / "missing"))  # nothing there: nothing to do


def test_rmtree_removes_a_tree_with_read_only_dirs_and_keeps_symlink_targets(
        tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f").write_text("y")
    (tree / "link").symlink_to(outside)
    os.chmod(tree / "a" / "b", 0o555)
    os.chmod(tree / "a", 0o555)
    rmtree(str(tree))
    assert not tree.exists()
    assert (outside / "keep").read_text() == "x"


def test_mkdir_shared_tolerates_an_existing_directory(tmp_path: Path) -> None:
    d = tmp_path / "partial"
    mkdir_shared(str(d))
    assert oct(d.stat().st_mode & 0o777) == "0o700"
    mkdir_shared(str(d))  # there already: fine
    assert d.is_dir()
