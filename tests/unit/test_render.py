"""Rendering overlay-form layers top-down, as overlayfs would resolve them."""

from __future__ import annotations

import os
import stat

import pytest

from libaci.render import OPAQUE, render, union_lookup

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts need CAP_MKNOD")


def _layer(root, spec: dict) -> str:  # type: ignore[no-untyped-def]
    """Make a layer dir from {path: content}: str file, None dir, 'WH' whiteout,
    'OPQ' opaque dir, ('->', target) symlink."""
    root.mkdir()
    for path, what in spec.items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        if what is None:
            p.mkdir(exist_ok=True)
        elif what == "WH":
            os.mknod(p, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        elif what == "OPQ":
            p.mkdir(exist_ok=True)
            os.setxattr(p, OPAQUE, b"y")
        elif isinstance(what, tuple):
            os.symlink(what[1], p)
        else:
            p.write_text(what)
    return str(root)


def _tree(root) -> dict:  # type: ignore[no-untyped-def]
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("->", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = None
            else:
                out[rel] = open(p).read()
    return out


def test_top_wins_whiteouts_hide_opaque_stops(tmp_path):
    l0 = _layer(tmp_path / "l0", {"a": "0", "d/x": "0", "d/y": "0", "o/p": "0", "f": "file",
                                   "keep/k": "0", "s": ("->", "/a")})
    l1 = _layer(tmp_path / "l1", {"a": "1", "d/y": "WH", "d/z": "1", "o": "OPQ", "o/q": "1",
                                   "f": None, "f/inner": "1", "s": "WH"})
    l2 = _layer(tmp_path / "l2", {"d/z": "WH", "keep/new": "2", "o/q": "2"})
    dest = tmp_path / "out"
    dest.mkdir()
    stats = render([l0, l1, l2], str(dest))
    assert _tree(dest) == {
        "a": "1", "d": None, "d/x": "0", "o": None, "o/q": "2", "f": None, "f/inner": "1",
        "keep": None, "keep/k": "0", "keep/new": "2",
    }
    assert stats.files == 6
    assert not os.listxattr(dest / "o")  # the opaque marker is not copied out


def test_a_non_directory_hides_lower_directories(tmp_path):
    l0 = _layer(tmp_path / "l0", {"x/deep/file": "0"})
    l1 = _layer(tmp_path / "l1", {"x": ("->", "elsewhere")})
    l2 = _layer(tmp_path / "l2", {"x": None, "x/new": "2"})
    dest = tmp_path / "out"
    dest.mkdir()
    render([l0, l1, l2], str(dest))
    assert _tree(dest) == {"x": None, "x/new": "2"}


def test_opaque_root_hides_all_lower_layers(tmp_path):
    l0 = _layer(tmp_path / "l0", {"old": "0"})
    l1 = _layer(tmp_path / "l1", {"new": "1"})
    os.setxattr(l1, OPAQUE, b"y")
    dest = tmp_path / "out"
    dest.mkdir()
    render([l0, l1], str(dest))
    assert _tree(dest) == {"new": "1"}


def test_metadata_hardlinks_and_special_files(tmp_path):
    l0 = _layer(tmp_path / "l0", {"dir/file": "data"})
    os.link(tmp_path / "l0/dir/file", tmp_path / "l0/dir/link")
    os.chown(tmp_path / "l0/dir/file", 123, 456)
    os.chmod(tmp_path / "l0/dir/file", 0o4750)  # after chown, which clears setuid
    os.chmod(tmp_path / "l0/dir", 0o711)
    os.utime(tmp_path / "l0/dir/file", (1000, 2000))
    os.utime(tmp_path / "l0/dir", (1000, 3000))
    os.mkfifo(tmp_path / "l0/fifo", 0o640)
    os.setxattr(tmp_path / "l0/dir/file", "user.test", b"v")
    dest = tmp_path / "out"
    dest.mkdir()
    render([l0], str(dest))
    st = os.stat(dest / "dir/file")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)) == (0o4750, 123,
                                                                                    456, 2000)
    assert os.stat(dest / "dir/link").st_ino == st.st_ino
    assert stat.S_IMODE(os.stat(dest / "dir").st_mode) == 0o711
    assert int(os.stat(dest / "dir").st_mtime) == 3000
    assert stat.S_ISFIFO(os.lstat(dest / "fifo").st_mode)
    assert os.getxattr(dest / "dir/file", "user.test") == b"v"


def test_render_never_follows_symlinks_out_of_the_destination(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    l0 = _layer(tmp_path / "l0", {"esc": ("->", str(outside))})
    l1 = _layer(tmp_path / "l1", {"esc": None, "esc/file": "x"})
    dest = tmp_path / "out"
    dest.mkdir()
    render([l0, l1], str(dest))
    assert os.listdir(outside) == []
    assert (dest / "esc/file").read_text() == "x" and not os.path.islink(dest / "esc")


def test_marker_whiteouts_from_a_rootless_extraction(tmp_path):
    l0 = _layer(tmp_path / "l0", {"a": "0", "d/x": "0", "o/p": "0"})
    l1 = _layer(tmp_path / "l1", {".wh.a": "", "d/.wh.x": "", "d/y": "1", "o/.wh..wh..opq": "",
                                   "o/q": "1"})
    dest = tmp_path / "out"
    dest.mkdir()
    render([l0, l1], str(dest), markers=frozenset({l1}))
    assert _tree(dest) == {"d": None, "d/y": "1", "o": None, "o/q": "1"}


def test_wh_names_in_a_layer_without_markers_are_ordinary_files(tmp_path):
    l0 = _layer(tmp_path / "l0", {".wh.file": "appc has no whiteouts"})
    dest = tmp_path / "out"
    dest.mkdir()
    render([l0], str(dest))
    assert _tree(dest) == {".wh.file": "appc has no whiteouts"}


def test_union_lookup_agrees_with_render(tmp_path):
    """What union_lookup finds (commit and the image's user database use it) is what a
    rendered rootfs holds, path by path."""
    l0 = _layer(tmp_path / "l0", {"a": "0", "d/x": "0", "d/y": "0", "o/p": "0", "f": "file",
                                   "keep/k": "0", "s": ("->", "/a")})
    l1 = _layer(tmp_path / "l1", {"a": "1", "d/y": "WH", "d/z": "1", "o": "OPQ", "o/q": "1",
                                   "f": None, "f/inner": "1", "s": "WH"})
    l2 = _layer(tmp_path / "l2", {"d/z": "WH", "keep/new": "2", "o/q": "2"})
    layers = [l0, l1, l2]
    dest = tmp_path / "out"
    dest.mkdir()
    render(layers, str(dest))
    rendered = _tree(dest)
    asked = ["a", "d", "d/x", "d/y", "d/z", "o", "o/p", "o/q", "f", "f/inner", "keep/k",
             "keep/new", "s", "missing", "a/below-a-file", "d/x/below-a-file"]
    for rel in asked:
        found = union_lookup(layers, rel)
        assert (found is not None) == (rel in rendered), rel
        if found is not None and rendered[rel] is not None:
            assert open(found[0]).read() == rendered[rel], rel
    assert union_lookup(layers, "/d//x/")[0] == os.path.join(l0, "d", "x")
    assert union_lookup(layers, "")[0] == l2
    assert union_lookup([], "") is None
