"""Unit tests for libaci.layerwrite: layer tars from overlay upper dirs and tree diffs."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import stat
import tarfile
from pathlib import Path

import pytest
from helpers import diff_trees, snapshot

from libaci.errors import LayerError
from libaci.layer import extract_layer
from libaci.layerwrite import (
    OPAQUE_XATTR,
    Change,
    LayerWriter,
    changes,
    write_changes_layer,
    write_overlay_layer,
)
from libaci.layerwrite import snapshot as tree_snapshot
from libaci.render import render

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (mknod, chown, trusted xattrs)")
OLD = 946684800  # 2000-01-01
CAP = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_bind_service+ep


def write(path: Path, data: str | bytes = b"", mode: int = 0o644, mtime: int = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    os.utime(path, (mtime, mtime))
    return path


def whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR, 0)  # mode 0, as overlayfs makes them


def members(blob: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tf:
        return tf.getmembers()


def layer_of(upper: Path, **kw: object) -> tuple[bytes, object]:
    out = io.BytesIO()
    res = write_overlay_layer(out, str(upper), **kw)  # type: ignore[arg-type]
    return out.getvalue(), res


def extract(blob: bytes, dest: Path, lowers: list[str] | None = None) -> None:
    dest.mkdir()
    extract_layer(io.BytesIO(gzip.decompress(blob)), str(dest), lower_dirs=lowers or [])


@pytest.fixture
def upper(tmp_path: Path) -> Path:
    """An overlay upper dir as a pod leaves it: new files, a changed one, deletions."""
    u = tmp_path / "upper"
    u.mkdir()
    write(u / "newfile", "new\n")
    write(u / "etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644)
    write(u / "bin/tool", b"\x7fELF", 0o4755)
    os.link(u / "bin/tool", u / "bin/tool-link")
    os.symlink("/bin/busybox", u / "bin/sh")
    os.mkfifo(u / "fifo")
    os.chmod(u / "fifo", 0o620)
    if ROOT:
        whiteout(u / "gone")
        (u / "data").mkdir()
        whiteout(u / "data/a")
        (u / "opaque").mkdir()
        os.setxattr(u / "opaque", OPAQUE_XATTR, b"y")
        write(u / "opaque/z", "z")
        os.setxattr(u / "etc", "trusted.overlay.origin", b"\x00\xfb")
        os.chown(u / "etc/passwd", 1000, 1001)
    for d in ("etc", "bin", "data", "opaque"):
        if (u / d).exists():
            os.utime(u / d, (OLD, OLD))
    return u


def test_digest_is_the_blob_and_diff_id_the_tar(upper: Path) -> None:
    blob, res = layer_of(upper)
    assert res.digest.encoded == hashlib.sha256(blob).hexdigest()  # type: ignore[attr-defined]
    assert res.size == len(blob)  # type: ignore[attr-defined]
    tar = gzip.decompress(blob)
    assert res.diff_id.encoded == hashlib.sha256(tar).hexdigest()  # type: ignore[attr-defined]
    assert res.uncompressed_size == len(tar)  # type: ignore[attr-defined]
    assert res.entries == len(members(blob))  # type: ignore[attr-defined]


def test_uncompressed_layer_digest_is_its_diff_id(upper: Path) -> None:
    blob, res = layer_of(upper, compression="none")
    assert blob[257:262] == b"ustar"
    assert res.digest == res.diff_id  # type: ignore[attr-defined]
    assert res.compression == "none"  # type: ignore[attr-defined]


def test_gzip_header_has_no_time_and_no_name(upper: Path) -> None:
    blob, _ = layer_of(upper)
    assert blob[:4] == b"\x1f\x8b\x08\x00"  # magic, deflate, no FNAME flag
    assert blob[4:8] == b"\x00\x00\x00\x00"  # mtime 0


@needs_root
def test_whiteouts_and_opaque_dirs(upper: Path) -> None:
    blob, _ = layer_of(upper)
    names = [m.name for m in members(blob)]
    assert ".wh.gone" in names and "data/.wh.a" in names
    assert "gone" not in names and "data/a" not in names
    # the opaque marker right after its directory, before the directory's entries
    i = names.index("opaque")
    assert names[i + 1:i + 3] == ["opaque/.wh..wh..opq", "opaque/z"]
    for m in members(blob):
        if os.path.basename(m.name).startswith(".wh."):
            assert m.isreg() and m.size == 0


def test_order_is_sorted_whiteouts_first_and_parents_first(tmp_path: Path) -> None:
    u = tmp_path / "u"
    for name in ("b", "a", "C", "-x", "a.b"):
        write(u / "d" / name, name)
    if ROOT:
        whiteout(u / "d" / "zz")
    names = [m.name for m in members(layer_of(u)[0])]
    expect = ["d", *([".wh.zz"] if ROOT else []), "-x", "C", "a", "a.b", "b"]
    assert names == [expect[0]] + [f"d/{n}" for n in expect[1:]]


def test_same_tree_same_bytes_and_epoch_clamps(upper: Path, tmp_path: Path) -> None:
    first, r1 = layer_of(upper)
    again, r2 = layer_of(upper)
    assert first == again and r1 == r2
    # newer files are clamped to the epoch, older ones keep their time
    write(upper / "fresh", "now", mtime=OLD + 10_000)
    epoch = OLD + 500
    blob, _ = layer_of(upper, epoch=epoch)
    times = {m.name: m.mtime for m in members(blob)}
    assert times["fresh"] == epoch and times["newfile"] == OLD
    assert max(times.values()) <= epoch
    # touching the fresh file past the epoch changes nothing
    os.utime(upper / "fresh", (OLD + 20_000, OLD + 20_000))
    assert layer_of(upper, epoch=epoch)[0] == blob


def test_numeric_owners_no_names_modes_kept(upper: Path) -> None:
    by = {m.name: m for m in members(layer_of(upper)[0])}
    for m in by.values():
        assert m.uname == "" and m.gname == ""
    assert by["bin/tool"].mode == 0o4755
    assert by["fifo"].isfifo() and by["fifo"].mode == 0o620
    assert by["bin/sh"].issym() and by["bin/sh"].linkname == "/bin/busybox"
    if ROOT:
        assert (by["etc/passwd"].uid, by["etc/passwd"].gid) == (1000, 1001)


def test_hardlinks_become_link_entries(upper: Path) -> None:
    by = {m.name: m for m in members(layer_of(upper)[0])}
    assert by["bin/tool"].isreg() and by["bin/tool"].size == 4
    assert by["bin/tool-link"].islnk() and by["bin/tool-link"].linkname == "bin/tool"


def test_hardlink_whose_first_name_is_skipped_carries_the_data(upper: Path) -> None:
    blob, _ = layer_of(upper, skip=lambda rel, st: rel == "bin/tool")
    by = {m.name: m for m in members(blob)}
    assert "bin/tool" not in by
    assert by["bin/tool-link"].isreg() and by["bin/tool-link"].size == 4


def test_skip_a_directory_skips_its_tree(upper: Path) -> None:
    names = [m.name for m in members(layer_of(upper, skip=lambda rel, st: rel == "bin")[0])]
    assert not [n for n in names if n == "bin" or n.startswith("bin/")]


def test_xattrs_kept_except_overlayfs_own(upper: Path) -> None:
    os.setxattr(upper / "newfile", "user.comment", b"hello")
    os.setxattr(upper / "bin/tool", "user.bin", b"\xff\x00\x01")
    if ROOT:
        os.setxattr(upper / "bin/tool", "security.capability", CAP)
    by = {m.name: m for m in members(layer_of(upper)[0])}
    assert by["newfile"].pax_headers["SCHILY.xattr.user.comment"] == "hello"
    raw = by["bin/tool"].pax_headers["SCHILY.xattr.user.bin"]
    assert raw.encode("utf-8", "surrogateescape") == b"\xff\x00\x01"
    assert "hdrcharset" not in by["bin/tool"].pax_headers
    if ROOT:
        cap = by["bin/tool"].pax_headers["SCHILY.xattr.security.capability"]
        assert cap.encode("utf-8", "surrogateescape") == CAP
        assert not any(k.startswith("SCHILY.xattr.trusted.overlay")
                       for m in by.values() for k in m.pax_headers)


def test_sockets_are_skipped(tmp_path: Path) -> None:
    u = tmp_path / "u"
    u.mkdir()
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(u / "sock"))
        write(u / "file", "x")
        assert [m.name for m in members(layer_of(u)[0])] == ["file"]
    finally:
        s.close()


def test_root_entry_only_when_asked(upper: Path) -> None:
    assert members(layer_of(upper)[0])[0].name != "."
    first = members(layer_of(upper, root_entry=True)[0])[0]
    assert first.name in (".", "./") and first.isdir()


def test_wh_names_and_overlay_redirects_are_refused(tmp_path: Path) -> None:
    u = tmp_path / "u"
    write(u / "d/.wh.trick", "")
    with pytest.raises(LayerError, match=r"\.wh\.trick"):
        layer_of(u)
    if ROOT:
        v = tmp_path / "v"
        (v / "moved").mkdir(parents=True)
        os.setxattr(v / "moved", "trusted.overlay.redirect", b"/elsewhere")
        with pytest.raises(LayerError, match="redirect"):
            layer_of(v)


def test_writes_to_a_stream_that_cannot_seek(upper: Path) -> None:
    class Sink:
        def __init__(self) -> None:
            self.parts: list[bytes] = []

        def write(self, data: bytes) -> int:
            self.parts.append(bytes(data))
            return len(data)

    sink = Sink()
    res = write_overlay_layer(sink, str(upper))  # type: ignore[arg-type]
    assert b"".join(sink.parts) == layer_of(upper)[0]
    assert res.size == sum(map(len, sink.parts))


def test_large_file_streams(tmp_path: Path) -> None:
    u = tmp_path / "u"
    u.mkdir()
    with open(u / "big", "wb") as f:
        f.truncate(64 << 20)  # sparse: 64 MiB read in chunks
    blob, res = layer_of(u, compression="none")
    assert res.uncompressed_size > 64 << 20  # type: ignore[attr-defined]
    assert members(blob)[0].size == 64 << 20


@needs_root
def test_extracting_the_layer_gives_back_the_upper_dir(upper: Path, tmp_path: Path) -> None:
    blob, _ = layer_of(upper)
    dest = tmp_path / "extracted"
    extract(blob, dest)
    # whiteouts as 0/0 devices, the opaque xattr, owners, modes, links: all as in upper
    assert diff_trees(snapshot(str(upper)), snapshot(str(dest))) == []
    assert os.getxattr(dest / "opaque", OPAQUE_XATTR) == b"y"
    assert (dest / "bin/tool").stat().st_ino == (dest / "bin/tool-link").stat().st_ino


@needs_root
def test_overlay_layer_over_lower_renders_as_the_merged_view(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    write(lower / "data/a", "a")
    write(lower / "data/b", "b")
    write(lower / "opaque/old", "old")
    write(lower / "gone/deep/f", "f")
    u = tmp_path / "u"
    (u / "data").mkdir(parents=True)
    whiteout(u / "data/a")
    whiteout(u / "gone")
    (u / "opaque").mkdir()
    os.setxattr(u / "opaque", OPAQUE_XATTR, b"y")
    write(u / "opaque/new", "new")
    layer = tmp_path / "layer"
    extract(layer_of(u)[0], layer, [str(lower)])
    out = tmp_path / "out"
    out.mkdir()
    render([str(lower), str(layer)], str(out))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "data", "data/b", "opaque", "opaque/new"]


# -- plain trees ---------------------------------------------------------------------------


def _tree(root: Path) -> None:
    write(root / "keep", "same")
    write(root / "edit", "before")
    write(root / "gone", "bye")
    write(root / "dir/deep/f", "f")
    write(root / "swap/inner", "i")
    write(root / "perm", "p", 0o644)
    (root / "empty").mkdir()


def test_changes_and_layer_from_a_plain_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    _tree(tree)
    base = tmp_path / "base"
    _tree(base)  # the "lower" layer: the same tree before
    before = tree_snapshot(str(tree))
    write(tree / "edit", "after!")
    (tree / "gone").unlink()
    for p in ("dir/deep/f",):
        (tree / p).unlink()
    (tree / "dir/deep").rmdir()
    (tree / "dir").rmdir()
    (tree / "swap/inner").unlink()
    (tree / "swap").rmdir()
    write(tree / "swap", "now a file")
    (tree / "perm").chmod(0o600)
    write(tree / "added/sub/x", "x")
    diff = changes(before, str(tree))
    kinds = {c.path: c.kind for c in diff}
    assert kinds == {"edit": "C", "gone": "D", "dir": "D", "swap": "C", "perm": "C",
                     "added": "A", "added/sub": "A", "added/sub/x": "A"}
    out = io.BytesIO()
    res = write_changes_layer(out, str(tree), diff)
    names = [m.name for m in members(out.getvalue())]
    assert names == [".wh.dir", ".wh.gone", "added", "added/sub", "added/sub/x", "edit",
                     "perm", "swap"]
    assert res.entries == len(names)
    if not ROOT:
        return
    layer = tmp_path / "layer"
    extract(out.getvalue(), layer, [str(base)])
    merged = tmp_path / "merged"
    merged.mkdir()
    render([str(base), str(layer)], str(merged))
    assert diff_trees(snapshot(str(tree)), snapshot(str(merged))) == []


def test_changes_include_parents_with_their_metadata(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    write(tree / "home/user/file", "x")
    os.chmod(tree / "home/user", 0o700)
    before = tree_snapshot(str(tree), ctime=False)
    write(tree / "home/user/file", "y", mtime=OLD + 1)  # rewritten in place: parents unchanged
    diff = changes(before, str(tree), ctime=False)
    assert [c.path for c in diff] == ["home/user/file"]
    out = io.BytesIO()
    write_changes_layer(out, str(tree), diff)
    by = {m.name: m for m in members(out.getvalue())}
    assert list(by) == ["home", "home/user", "home/user/file"]
    assert by["home/user"].mode == 0o700


def test_changes_see_a_rewrite_that_kept_size_and_mtime(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    write(tree / "f", "aaaa")
    before = tree_snapshot(str(tree))
    write(tree / "f", "bbbb")  # same size, mtime set back: only ctime tells
    assert changes(before, str(tree)) == [Change("f", "C")]
    assert changes(tree_snapshot(str(tree), ctime=False), str(tree), ctime=False) == []


def test_changes_below_a_dir_replaced_by_a_file_are_not_whiteouts(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    write(tree / "x/a", "a")
    write(tree / "x/b", "b")
    before = tree_snapshot(str(tree))
    for n in ("a", "b"):
        (tree / "x" / n).unlink()
    (tree / "x").rmdir()
    write(tree / "x", "file")
    diff = changes(before, str(tree))
    assert Change("x", "C") in diff
    assert not [c for c in diff if c.path.startswith("x/")]


def test_layer_writer_markers_by_hand(tmp_path: Path) -> None:
    out = io.BytesIO()
    with LayerWriter(out, epoch=100, compression="none") as w:
        w.whiteout("a/b", mtime=500)
        w.opaque("c", mtime=50)
        res = w.close()
    by = {m.name: m for m in members(out.getvalue())}
    assert by["a/.wh.b"].mtime == 100 and by["c/.wh..wh..opq"].mtime == 50
    assert res.entries == 2
