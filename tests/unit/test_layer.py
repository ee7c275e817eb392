"""Unit tests for libaci.layer: normal layers, built here with tarfile."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from tarkit import E, Stream, tar

from libaci.errors import LayerError
from libaci.layer import OPAQUE_XATTR, LayerStats, Limits, extract_layer

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (chown, mknod, trusted xattrs)")


def extract(raw: bytes, dest: Path, **kw: object) -> LayerStats:
    dest.mkdir(exist_ok=True)
    return extract_layer(Stream(raw), str(dest), **kw)  # type: ignore[arg-type]


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    return tmp_path / "layer"


def test_files_dirs_symlinks(layer: Path) -> None:
    stats = extract(tar(
        E("etc", "dir"),
        E("etc/hostname", data=b"box\n"),
        E("bin", "dir"),
        E("bin/busybox", data=b"\x7fELF", mode=0o755),
        E("bin/sh", "symlink", link="/bin/busybox"),
        E("bin/ls", "symlink", link="busybox"),
        E("bin/dangling", "symlink", link="../nowhere/at/all"),
    ), layer)
    assert (layer / "etc/hostname").read_bytes() == b"box\n"
    assert stat.S_IMODE((layer / "etc/hostname").stat().st_mode) == 0o644
    assert stat.S_IMODE((layer / "bin/busybox").stat().st_mode) == 0o755
    assert os.readlink(layer / "bin/sh") == "/bin/busybox"
    assert os.readlink(layer / "bin/ls") == "busybox"
    assert os.readlink(layer / "bin/dangling") == "../nowhere/at/all"
    assert stats.entries == 7
    assert stats.bytes == 8
    assert stats.warnings == []


def test_file_mtimes_and_symlink_mtime(layer: Path) -> None:
    extract(tar(E("f", data=b"x", mtime=1234567890), E("l", "symlink", link="/f", mtime=987654321)),
            layer)
    assert (layer / "f").stat().st_mtime == 1234567890
    assert os.lstat(layer / "l").st_mtime == 987654321


def test_dir_mtimes_kept_although_children_come_later(layer: Path) -> None:
    extract(tar(
        E("a", "dir", mtime=1000),
        E("a/b", "dir", mtime=2000),
        E("a/b/c", data=b"1"),
        E("a/b/d", "dir", mtime=3000),
        E("a/new", data=b"2"),
    ), layer)
    assert (layer / "a").stat().st_mtime == 1000
    assert (layer / "a/b").stat().st_mtime == 2000
    assert (layer / "a/b/d").stat().st_mtime == 3000


def test_implicit_parents_are_0755(layer: Path) -> None:
    extract(tar(E("x/y/z/file", data=b"1")), layer)
    for d in ("x", "x/y", "x/y/z"):
        st = (layer / d).stat()
        assert stat.S_ISDIR(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o755
    assert stat.S_IMODE(layer.stat().st_mode) == 0o755


def test_hardlink_same_layer(layer: Path) -> None:
    extract(tar(
        E("usr/bin/perl5.36", data=b"perl", mode=0o755),
        E("usr/bin/perl", "hardlink", link="usr/bin/perl5.36"),
        E("usr/bin/abs", "hardlink", link="/usr/bin/perl5.36"),
        E("usr/bin/dot", "hardlink", link="./usr/bin/perl5.36"),
    ), layer)
    ino = (layer / "usr/bin/perl5.36").stat().st_ino
    for n in ("perl", "abs", "dot"):
        assert (layer / "usr/bin" / n).stat().st_ino == ino
    assert (layer / "usr/bin/perl5.36").stat().st_nlink == 4


def test_hardlink_to_symlink_stays_a_symlink(layer: Path) -> None:
    extract(tar(E("s", "symlink", link="/etc/passwd"), E("h", "hardlink", link="s")), layer)
    assert os.readlink(layer / "h") == "/etc/passwd"


def test_hardlink_to_itself_after_the_file_is_kept(layer: Path) -> None:
    # GNU tar writes "a" then "a link to a" when a file is given twice
    extract(tar(E("a", data=b"data"), E("a", "hardlink", link="a")), layer)
    assert (layer / "a").read_bytes() == b"data"


@needs_root
def test_hardlink_into_lower_layer_is_copied_up(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    extract(tar(
        E("usr/bin/tool", data=b"lower data", mode=0o4755, uid=12, gid=34, mtime=4242,
          pax={"SCHILY.xattr.user.note": "hi"}),
        E("usr/bin/link", "symlink", link="/usr/bin/tool"),
    ), lower)
    upper = tmp_path / "upper"
    stats = extract(tar(
        E("usr/bin/tool2", "hardlink", link="usr/bin/tool"),
        E("usr/bin/link2", "hardlink", link="usr/bin/link"),
    ), upper, lower_dirs=[str(lower)])
    st = (upper / "usr/bin/tool2").stat()
    assert (upper / "usr/bin/tool2").read_bytes() == b"lower data"
    assert st.st_ino != (lower / "usr/bin/tool").stat().st_ino
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert (st.st_uid, st.st_gid, st.st_mtime) == (12, 34, 4242)
    assert os.getxattr(upper / "usr/bin/tool2", "user.note") == b"hi"
    assert os.readlink(upper / "usr/bin/link2") == "/usr/bin/tool"
    assert stats.bytes == len(b"lower data")
    assert (upper / "usr/bin/tool").exists() is False


@needs_root
def test_hardlink_into_lower_respects_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    l1 = tmp_path / "l1"
    extract(tar(E("a/f", data=b"1"), E("b/g", data=b"2"), E("c/h", data=b"3")), l1)
    l2 = tmp_path / "l2"
    extract(tar(E("a/.wh.f"), E("b/.wh..wh..opq"), E("c/other", data=b"x")), l2)
    lowers = [str(l2), str(l1)]
    for target in ("a/f", "b/g"):
        with pytest.raises(LayerError, match=f'hardlink target "{target}" not found'):
            extract(tar(E("x", "hardlink", link=target)), tmp_path / target.replace("/", "_"),
                    lower_dirs=lowers)
    ok = tmp_path / "ok"
    extract(tar(E("x", "hardlink", link="c/h")), ok, lower_dirs=lowers)
    assert (ok / "x").read_bytes() == b"3"


def test_lower_dirs_are_read_lazily(tmp_path: Path) -> None:
    class Exploding(list):  # a lower layer still being extracted must not be waited for
        def __getitem__(self, i):  # type: ignore[no-untyped-def]
            raise AssertionError("lower dirs read without a hardlink")

        def __iter__(self):  # type: ignore[no-untyped-def]
            raise AssertionError("lower dirs iterated without a hardlink")

    extract(tar(E("a", data=b"1"), E("b", "hardlink", link="a")), tmp_path / "l",
            lower_dirs=Exploding(["/nonexistent"]))


def test_fifo(layer: Path) -> None:
    extract(tar(E("run/initctl", "fifo", mode=0o600)), layer)
    st = os.lstat(layer / "run/initctl")
    assert stat.S_ISFIFO(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_long_names(layer: Path, fmt: int) -> None:
    deep = "/".join(["directory-with-a-long-name"] * 8) + "/file-" + "x" * 150
    target = "../" + "t" * 200
    extract(tar(E(deep, data=b"deep"), E("l", "symlink", link=target),
                E("h", "hardlink", link=deep), fmt=fmt), layer)
    assert (layer / deep).read_bytes() == b"deep"
    assert os.readlink(layer / "l") == target
    assert (layer / "h").stat().st_ino == (layer / deep).stat().st_ino


def test_ustar_prefix_field(layer: Path) -> None:
    name = "p" * 90 + "/" + "n" * 90
    extract(tar(E(name, data=b"u"), fmt=tarfile.USTAR_FORMAT), layer)
    assert (layer / name).read_bytes() == b"u"


def test_non_utf8_names(layer: Path) -> None:
    raw = tar(E("caf\udce9", data=b"latin1"), fmt=tarfile.GNU_FORMAT)
    extract(raw, layer)
    assert os.listdir(os.fsencode(layer)) == [b"caf\xe9"]


def test_pax_xattrs(layer: Path) -> None:
    cap = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_bind_service
    stats = extract(tar(
        E("bin/ping", data=b"ping", mode=0o755, pax={
            "SCHILY.xattr.user.comment": "h\u00e9llo",
            "SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape"),
        }),
        E("d", "dir", pax={"SCHILY.xattr.user.dir": "yes"}),
    ), layer)
    assert os.getxattr(layer / "bin/ping", "user.comment") == "h\u00e9llo".encode()
    if ROOT:
        assert os.getxattr(layer / "bin/ping", "security.capability") == cap
    assert os.getxattr(layer / "d", "user.dir") == b"yes"
    assert not [w for w in stats.warnings if "user." in w]


def test_libarchive_xattrs(layer: Path) -> None:
    extract(tar(E("f", data=b"1", pax={"LIBARCHIVE.xattr.user.a%3Db": "dmFsdWU="})), layer)
    assert os.getxattr(layer / "f", "user.a=b") == b"value"


def test_overlay_xattrs_from_the_tar_are_dropped(layer: Path) -> None:
    stats = extract(tar(
        E("d", "dir", pax={"SCHILY.xattr.trusted.overlay.opaque": "y"}),
        E("f", data=b"", pax={"SCHILY.xattr.user.overlay.whiteout": "y",
                              "SCHILY.xattr.security.selinux": "system_u:object_r:etc_t:s0"}),
    ), layer)
    for p in ("d", "f"):
        names = os.listxattr(layer / p)
        assert not {OPAQUE_XATTR, "user.overlay.whiteout", "security.selinux"} & set(names)
    assert any("trusted.overlay.opaque" in w for w in stats.warnings)
    assert any("user.overlay.whiteout" in w for w in stats.warnings)


def test_setuid_setgid_sticky_kept(layer: Path) -> None:
    extract(tar(
        E("usr/bin/passwd", data=b"x", mode=0o4755),
        E("usr/bin/wall", data=b"x", mode=0o2755),
        E("tmp", "dir", mode=0o1777),
    ), layer)
    assert stat.S_IMODE((layer / "usr/bin/passwd").stat().st_mode) == 0o4755
    assert stat.S_IMODE((layer / "usr/bin/wall").stat().st_mode) == 0o2755
    assert stat.S_IMODE((layer / "tmp").stat().st_mode) == 0o1777


@needs_root
def test_setuid_kept_with_foreign_owner(layer: Path) -> None:
    # chown(2) clears setuid: the mode must be applied after the owner
    extract(tar(E("bin/su", data=b"x", mode=0o4750, uid=0, gid=42),
                E("bin/x", data=b"x", mode=0o6755, uid=7, gid=8)), layer)
    st = (layer / "bin/su").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o4750, 42)
    assert stat.S_IMODE((layer / "bin/x").stat().st_mode) == 0o6755


@needs_root
def test_owners(layer: Path) -> None:
    extract(tar(
        E("home/u", "dir", mode=0o700, uid=1000, gid=1000),
        E("home/u/f", data=b"1", uid=1000, gid=100, mode=0o640),
        E("home/u/l", "symlink", link="f", uid=1001, gid=1002),
        E("home/u/p", "fifo", uid=5, gid=6),
        E("big", data=b"", uid=4_000_000_000, gid=65534),
    ), layer)
    assert (os.lstat(layer / "home/u").st_uid, os.lstat(layer / "home/u").st_gid) == (1000, 1000)
    assert stat.S_IMODE(os.lstat(layer / "home/u").st_mode) == 0o700
    def owner(rel: str) -> tuple[int, int]:
        st = os.lstat(layer / rel)
        return st.st_uid, st.st_gid

    assert owner("home/u/f") == (1000, 100)
    assert owner("home/u/l") == (1001, 1002)
    assert os.lstat(layer / "home/u/p").st_uid == 5
    assert os.lstat(layer / "big").st_uid == 4_000_000_000


def test_same_owner_false_keeps_our_owner(layer: Path) -> None:
    extract(tar(E("f", data=b"1", uid=1234, gid=1234)), layer, same_owner=False)
    assert (layer / "f").stat().st_uid == os.geteuid()


@needs_root
def test_whiteouts_become_char_devices(layer: Path) -> None:
    stats = extract(tar(E("bin", "dir"), E("bin/.wh.sh", mode=0), E(".wh.hello.txt", mode=0),
                        E("deep/er/.wh.gone")), layer)
    for p in ("bin/sh", "hello.txt", "deep/er/gone"):
        st = os.lstat(layer / p)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, p
    assert not list(layer.rglob(".wh.*"))
    assert stats.warnings == []


@needs_root
def test_opaque_becomes_xattr(layer: Path) -> None:
    extract(tar(E("etc", "dir"), E("etc/keep", data=b"k"), E("etc/.wh..wh..opq"),
                E("new/sub/.wh..wh..opq"), E(".wh..wh..opq")), layer)
    assert os.getxattr(layer / "etc", OPAQUE_XATTR) == b"y"
    assert os.getxattr(layer / "new/sub", OPAQUE_XATTR) == b"y"
    assert os.getxattr(layer, OPAQUE_XATTR) == b"y"
    assert (layer / "etc/keep").read_bytes() == b"k"
    assert not list(layer.rglob(".wh.*"))


def test_whiteouts_as_marker_files_without_overlay(layer: Path) -> None:
    extract(tar(E("a", data=b"1"), E(".wh.a", mode=0), E("d/.wh..wh..opq"), E("d/x", data=b"")),
            layer, overlay_whiteouts=False)
    assert (layer / ".wh.a").is_file()
    assert not (layer / "a").exists()
    assert (layer / "d/.wh..wh..opq").is_file()
    with pytest.raises(OSError):
        os.getxattr(layer / "d", OPAQUE_XATTR)


@needs_root
def test_whiteout_replaces_earlier_entry_and_dir_over_whiteout_is_opaque(layer: Path) -> None:
    extract(tar(E("a/x", data=b"1"), E(".wh.a"), E("b", data=b"2"), E(".wh.b"),
                E("c"), E(".wh.c"), E("c", "dir"), E("c/new", data=b"n")), layer)
    assert os.lstat(layer / "a").st_rdev == 0 and stat.S_ISCHR(os.lstat(layer / "a").st_mode)
    assert stat.S_ISCHR(os.lstat(layer / "b").st_mode)
    assert (layer / "c/new").read_bytes() == b"n"
    assert os.getxattr(layer / "c", OPAQUE_XATTR) == b"y"


def test_whiteouts_fall_back_to_markers_without_mknod(layer: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def no_mknod(*args: object, **kw: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "mknod", no_mknod)
    stats = extract(tar(E("a", data=b"1"), E(".wh.a"), E(".wh.b")), layer)
    if ROOT:
        assert any("keeping .wh. markers" in w for w in stats.warnings)
    assert sorted(os.listdir(layer)) == [".wh.a", ".wh.b"]


def test_aufs_metadata_skipped(layer: Path) -> None:
    stats = extract(tar(E(".wh..wh.plnk", "dir"), E(".wh..wh.aufs")), layer)
    assert os.listdir(layer) == []
    assert len(stats.warnings) == 2


def test_member_prefix_for_aci(layer: Path) -> None:
    stats = extract(tar(
        E("manifest", data=b'{"acKind": "ImageManifest"}'),
        E("rootfs", "dir", mode=0o750, mtime=777),
        E("rootfs/etc", "dir"),
        E("rootfs/etc/os-release", data=b"ID=x\n"),
        E("rootfs/etc/link", "hardlink", link="rootfs/etc/os-release"),
        E("rootfsx/other", data=b"no"),
        E("other/.wh.x"),
    ), layer, member_prefix="rootfs/")
    assert sorted(os.listdir(layer)) == ["etc"]
    assert (layer / "etc/os-release").read_bytes() == b"ID=x\n"
    assert (layer / "etc/link").stat().st_ino == (layer / "etc/os-release").stat().st_ino
    assert stat.S_IMODE(layer.stat().st_mode) == 0o750
    assert layer.stat().st_mtime == 777
    assert stats.entries == 7


def test_member_prefix_hardlink_outside_refused(layer: Path) -> None:
    with pytest.raises(LayerError, match=r'layer entry "rootfs/x": hardlink target "manifest"'):
        extract(tar(E("manifest", data=b"m"), E("rootfs/x", "hardlink", link="manifest")), layer,
                member_prefix="rootfs/")


def test_duplicates_last_one_wins(layer: Path) -> None:
    extract(tar(
        E("f", data=b"first"), E("f", data=b"second", mode=0o600),
        E("d", "dir"), E("d/child", data=b"c"), E("d", data=b"now a file"),
        E("g", data=b"file"), E("g", "dir", mode=0o711), E("g/inner", data=b"i"),
        E("s", "symlink", link="/a"), E("s", "symlink", link="/b"),
        E("m", "dir", mode=0o700, mtime=1), E("m/x", data=b"x"), E("m", "dir", mode=0o750, mtime=2),
    ), layer)
    assert (layer / "f").read_bytes() == b"second"
    assert stat.S_IMODE((layer / "f").stat().st_mode) == 0o600
    assert (layer / "d").read_bytes() == b"now a file"
    assert (layer / "g/inner").read_bytes() == b"i"
    assert stat.S_IMODE((layer / "g").stat().st_mode) == 0o711
    assert os.readlink(layer / "s") == "/b"
    assert (layer / "m/x").exists()
    assert stat.S_IMODE((layer / "m").stat().st_mode) == 0o750
    assert (layer / "m").stat().st_mtime == 2


def test_umoci_style_leading_slash(layer: Path) -> None:
    extract(tar(
        E("/", "dir", mode=0o755, mtime=5555),
        E("/etc", "dir", mtime=6666),
        E("/etc/new", data=b"n"),
        E("./", "dir", mode=0o755, mtime=5555),
        E(".//usr///bin/./x", data=b"x"),
    ), layer)
    assert (layer / "etc/new").read_bytes() == b"n"
    assert (layer / "usr/bin/x").read_bytes() == b"x"
    assert layer.stat().st_mtime == 5555
    assert (layer / "etc").stat().st_mtime == 6666


def test_umoci_repack_shape(layer: Path) -> None:
    stats = extract(tar(
        E("./", "dir"), E("bin/", "dir"), E("bin/.wh.sh", mode=0, mtime=0), E("etc/", "dir"),
        E("etc/new", data=b"new"), E(".wh.hello.txt", mode=0, mtime=0),
    ), layer, overlay_whiteouts=ROOT)
    assert (layer / "etc/new").read_bytes() == b"new"
    assert stats.entries == 6


def test_devices_only_when_allowed(layer: Path) -> None:
    raw = tar(E("dev/null", "chr", mode=0o666, dev=(1, 3)), E("dev/sda", "blk", dev=(8, 0)))
    stats = extract(raw, layer)
    assert not (layer / "dev/null").exists()
    assert "skipped device node dev/null (pass allow_devices)" in stats.warnings
    assert "skipped device node dev/sda (pass allow_devices)" in stats.warnings
    if ROOT:
        other = layer.parent / "dev"
        extract(raw, other, allow_devices=True)
        st = os.lstat(other / "dev/null")
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
        assert stat.S_IMODE(st.st_mode) == 0o666
        assert stat.S_ISBLK(os.lstat(other / "dev/sda").st_mode)


def test_directory_mode_0000_applied_at_the_end(layer: Path) -> None:
    extract(tar(E("locked", "dir", mode=0), E("locked/f", data=b"in"),
                E("locked/sub/g", data=b"g")), layer)
    assert stat.S_IMODE((layer / "locked").stat().st_mode) == 0
    os.chmod(layer / "locked", 0o755)
    assert (layer / "locked/f").read_bytes() == b"in"


def test_root_entry_sets_dest_metadata(layer: Path) -> None:
    extract(tar(E(".", "dir", mode=0o711, mtime=99)), layer)
    assert stat.S_IMODE(layer.stat().st_mode) == 0o711
    assert layer.stat().st_mtime == 99


def test_empty_layer(layer: Path) -> None:
    stats = extract(tar(), layer)
    assert (stats.entries, stats.bytes, os.listdir(layer)) == (0, 0, [])


def test_big_file_streams_in_chunks(layer: Path) -> None:
    data = os.urandom(3 << 20) + b"tail"
    stats = extract(tar(E("big", data=data)), layer)
    assert (layer / "big").read_bytes() == data
    assert stats.bytes == len(data)


@pytest.mark.parametrize("fmt", ["gnu", "posix:0.0", "posix:0.1", "posix:1.0"])
@pytest.mark.parametrize("regions", [2, 30])
def test_sparse_files(tmp_path: Path, fmt: str, regions: int) -> None:
    # GNU tar writes the sparse formats; old GNU with 30 regions needs extended headers
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        for i in range(regions):
            f.seek(i << 20)
            f.write(b"region %d" % i)
        f.truncate((regions + 1) << 20)
    fmt, _, version = fmt.partition(":")
    cmd = ["tar", "-C", str(src), "-S", f"--format={fmt}", "-cf", str(tmp_path / "s.tar")]
    if version:
        cmd.append(f"--sparse-version={version}")
    subprocess.run([*cmd, "sparse"], check=True)
    layer = tmp_path / "layer"
    stats = extract((tmp_path / "s.tar").read_bytes(), layer)
    assert os.listdir(layer) == ["sparse"]
    got = (layer / "sparse").read_bytes()
    assert got == (src / "sparse").read_bytes()
    assert stats.bytes == len(got)
    assert (layer / "sparse").stat().st_blocks * 512 < len(got) // 4  # holes kept


def test_pax_mtime_nanoseconds(layer: Path) -> None:
    extract(tar(E("f", data=b"1", pax={"mtime": "1700000000.123456789"}),
                E("d", "dir", pax={"mtime": "-1.5"})), layer)
    assert (layer / "f").stat().st_mtime_ns == 1700000000_123456789
    assert (layer / "d").stat().st_mtime_ns == -1_500_000_000


def test_limits(layer: Path) -> None:
    with pytest.raises(LayerError, match=r"layer exceeds 10 bytes"):
        extract(tar(E("a", data=b"123456"), E("b", data=b"123456")), layer,
                limits=Limits(max_bytes=10))


def test_compressed_stream_is_named(layer: Path) -> None:
    with pytest.raises(LayerError, match=r"not a tar archive .*gzip"):
        extract(gzip.compress(tar(E("a", data=b"1"))), layer)


def test_dest_must_be_empty(layer: Path) -> None:
    layer.mkdir()
    (layer / "junk").write_text("x")
    from libaci.errors import StoreError
    with pytest.raises(StoreError, match="not empty"):
        extract(tar(E("a")), layer)


def test_warnings_are_capped(layer: Path) -> None:
    entries = [E(f"dev/n{i}", "chr", dev=(1, 3)) for i in range(500)]
    stats = extract(tar(*entries), layer)
    assert len(stats.warnings) <= 201
    assert stats.warnings[-1].startswith("... and 300 more warnings")


@needs_root
@pytest.mark.integration
def test_overlay_mount_of_extracted_layers(tmp_path: Path) -> None:
    l1, l2, mnt = tmp_path / "l1", tmp_path / "l2", tmp_path / "mnt"
    extract(tar(E("bin/sh", data=b"sh"), E("bin/ls", data=b"ls"), E("etc/a", data=b"a"),
                E("etc/b", data=b"b"), E("hello.txt", data=b"hi")), l1)
    extract(tar(E("bin/.wh.sh"), E(".wh.hello.txt"), E("etc/.wh..wh..opq"),
                E("etc/c", data=b"c")), l2)
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={l2}:{l1}", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"overlayfs cannot be mounted here: {r.stderr.strip()}")
    try:
        assert sorted(os.listdir(mnt)) == ["bin", "etc"]
        assert sorted(os.listdir(mnt / "bin")) == ["ls"]
        assert sorted(os.listdir(mnt / "etc")) == ["c"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    shutil.rmtree(mnt)


def test_layer_ending_in_the_padding_is_accepted_like_go(layer: Path) -> None:
    """umoci 0.4.7's insert writes no padding after the last file and no footer."""
    raw = tar(E("a/", "dir"), E("a/f", "file", b"hello"), end=False)
    stats = extract(raw[:-(512 - 5)], layer)
    assert (layer / "a/f").read_bytes() == b"hello"
    assert any("padding" in w for w in stats.warnings)
    with pytest.raises(LayerError, match="truncated"):
        extract(raw[:-(512 - 3)], layer.parent / "cut")  # cut inside the data: refused
