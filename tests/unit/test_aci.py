"""libaci.aci and libaci.compress: scanning and writing ACI archives."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from libaci.aci import AciInfo, scan_aci, write_aci
from libaci.appc import ImageManifest, NameValue
from libaci.compress import CompressionError, detect, open_decompressed
from libaci.errors import ImageError, ManifestError

MANIFEST = ImageManifest(
    name="example.com/hello",
    labels=(NameValue("version", "1.0"), NameValue("os", "linux"), NameValue("arch", "amd64")),
).to_json()

Entry = tuple[str, str, bytes]  # (name, "file" | "dir" | "symlink:<target>", data)


def make_tar(entries: list[Entry], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_700_000_000
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            elif kind.startswith("symlink:"):
                ti.type, ti.linkname = tarfile.SYMTYPE, kind.split(":", 1)[1]
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def good_entries() -> list[Entry]:
    return [
        ("manifest", "file", MANIFEST),
        ("rootfs", "dir", b""),
        ("rootfs/etc", "dir", b""),
        ("rootfs/etc/hostname", "file", b"hello\n"),
        ("rootfs/bin", "dir", b""),
        ("rootfs/bin/sh", "symlink:/bin/busybox", b""),
        ("rootfs/big", "file", os.urandom(300_000)),
    ]


def zstd_frames(data: bytes) -> bytes:
    """Two zstd frames back to back, as parallel compressors write them."""
    c = zstandard.ZstdCompressor()
    half = len(data) // 2
    return c.compress(data[:half]) + c.compress(data[half:])


def gzip_members(data: bytes) -> bytes:
    half = len(data) // 2
    return gzip.compress(data[:half]) + gzip.compress(data[half:])


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda b: b,
    "gzip": gzip.compress,
    "gzip-multimember": gzip_members,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "zstd-multiframe": zstd_frames,
}


class PipeReader:
    """Only ``read``, returning short reads, like a pipe or an HTTP body."""

    def __init__(self, data: bytes, step: int = 4097) -> None:
        self._data, self._pos, self._step = data, 0, step

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = len(self._data)
        size = min(size, self._step)
        out = self._data[self._pos:self._pos + size]
        self._pos += len(out)
        return out


def image_id(plain: bytes) -> str:
    return "sha512-" + hashlib.sha512(plain).hexdigest()


def members_of(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: m for m in tf}


def scan(data: bytes, **kw: object) -> AciInfo:
    return scan_aci(PipeReader(data), **kw)  # type: ignore[arg-type]


# -------------------------------------------------------------------- compress


@pytest.mark.parametrize(("prefix", "kind"), [
    (b"\x1f\x8b\x08\x00", "gzip"),
    (b"BZh91AY", "bzip2"),
    (b"\xfd7zXZ\x00\x00", "xz"),
    (b"\x28\xb5\x2f\xfd\x00", "zstd"),
    (b"manifest\x00\x00", "none"),
    (b"", "none"),
    (b"\x1f", "none"),
])
def test_detect(prefix: bytes, kind: str) -> None:
    assert detect(prefix) == kind


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_open_decompressed_streams(name: str) -> None:
    plain = os.urandom(100_000) + b"tail"
    reader = open_decompressed(PipeReader(COMPRESSORS[name](plain)))  # type: ignore[arg-type]
    out = b""
    while chunk := reader.read(7919):
        out += chunk
    assert out == plain


def test_open_decompressed_short_and_empty_input() -> None:
    assert open_decompressed(io.BytesIO(b"ab")).read() == b"ab"
    assert open_decompressed(io.BytesIO(b"")).read() == b""


@pytest.mark.parametrize("name", ["gzip", "bzip2", "xz", "zstd"])
def test_corrupt_compressed_data_is_image_error(name: str) -> None:
    compress = COMPRESSORS[name]
    if name == "zstd":  # zstd detects corruption only through its optional checksum
        compress = zstandard.ZstdCompressor(write_checksum=True).compress
    packed = bytearray(compress(os.urandom(50_000)))
    packed[len(packed) // 2:] = b"\x00" * (len(packed) - len(packed) // 2)
    reader = open_decompressed(io.BytesIO(bytes(packed)))
    with pytest.raises(CompressionError) as exc:
        while reader.read(65536):
            pass
    assert name in str(exc.value)
    assert "\n" not in str(exc.value)


# ------------------------------------------------------------------------ scan


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_scan_image_id_is_sha512_of_plain_tar(name: str) -> None:
    plain = make_tar(good_entries())
    copy = io.BytesIO()
    info = scan(COMPRESSORS[name](plain), copy_to=copy)
    assert info.image_id == image_id(plain)
    assert len(info.image_id) == len("sha512-") + 128
    assert info.size == len(plain)
    assert copy.getvalue() == plain
    assert info.manifest_raw == MANIFEST
    assert info.manifest.name == "example.com/hello"
    assert info.manifest.version == "1.0"


def test_scan_hashes_trailing_padding() -> None:
    plain = make_tar(good_entries()) + b"\x00" * 20480  # e.g. tar -b 40 blocking
    info = scan(gzip.compress(plain))
    assert info.image_id == image_id(plain)
    assert info.size == len(plain)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_scan_tar_formats(fmt: int) -> None:
    plain = make_tar(good_entries(), fmt=fmt)
    assert scan(plain).image_id == image_id(plain)


def test_scan_accepts_dot_slash_names_as_tar_c_dot_writes_them() -> None:
    entries = [("./", "dir", b"")] + [("./" + n, k, d) for n, k, d in good_entries()]
    plain = make_tar(entries)
    assert scan(plain).image_id == image_id(plain)


def test_scan_manifest_after_rootfs() -> None:
    entries = good_entries()
    plain = make_tar(entries[1:] + entries[:1])
    assert scan(plain).manifest_raw == MANIFEST


@pytest.mark.parametrize(("entries", "message"), [
    ([e for e in good_entries() if e[0] != "manifest"], "ACI has no manifest"),
    ([e for e in good_entries() if e[0] != "rootfs"], "ACI has no rootfs/"),
    ([("manifest", "file", MANIFEST)], "ACI has no rootfs/"),
    ([*good_entries(), ("x", "file", b"")], 'ACI: unexpected top-level entry "x"'),
    ([*good_entries(), ("etc/passwd", "file", b"")], 'ACI: unexpected top-level entry "etc"'),
    ([*good_entries(), ("rootfs/../evil", "file", b"")],
     'ACI: unexpected top-level entry "evil"'),
    ([*good_entries(), ("rootfsx/a", "file", b"")], 'ACI: unexpected top-level entry "rootfsx"'),
    ([*good_entries(), ("rootfs/etc/hostname", "file", b"again")],
     'ACI: duplicate entry "rootfs/etc/hostname"'),
    ([*good_entries(), ("rootfs/etc/", "dir", b"")], 'ACI: duplicate entry "rootfs/etc"'),
    ([*good_entries(), ("manifest", "file", MANIFEST)], 'ACI: duplicate entry "manifest"'),
    ([("manifest", "dir", b""), ("rootfs", "dir", b"")], "ACI: manifest is not a regular file"),
    ([("manifest", "file", MANIFEST), ("rootfs", "file", b"")],
     "ACI: rootfs is not a directory"),
])
def test_scan_layout_errors(entries: list[Entry], message: str) -> None:
    with pytest.raises(ImageError) as exc:
        scan(gzip.compress(make_tar(entries)))
    assert str(exc.value) == message
    assert not isinstance(exc.value, ManifestError)


def test_scan_manifest_too_big() -> None:
    big = b'{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a","x":"' + \
        b"a" * (1 << 20) + b'"}'
    with pytest.raises(ManifestError, match="1 MiB"):
        scan(make_tar([("manifest", "file", big), ("rootfs", "dir", b"")]))


@pytest.mark.parametrize(("manifest", "needle"), [
    (b"{", "invalid JSON"),
    (b'{"acKind":"ImageManifest","acVersion":"0.8.11"}', "name"),
    (json.dumps({"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "a",
                 "labels": [{"name": "os", "value": "linux"},
                            {"name": "arch", "value": "sparc"}]}).encode(), 'bad arch "sparc"'),
])
def test_scan_bad_manifest(manifest: bytes, needle: str) -> None:
    with pytest.raises(ManifestError) as exc:
        scan(make_tar([("manifest", "file", manifest), ("rootfs", "dir", b"")]))
    assert needle in str(exc.value)
    assert str(exc.value).startswith("ACI manifest: ")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("data", [b"", b"this is not a tar archive" * 100,
                                  gzip.compress(b"not a tar either" * 100)])
def test_scan_not_a_tar(data: bytes) -> None:
    with pytest.raises(ImageError, match="ACI"):
        scan(data)


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_scan_truncated_archive(name: str) -> None:
    packed = COMPRESSORS[name](make_tar(good_entries()))
    with pytest.raises(ImageError) as exc:
        scan(packed[:len(packed) // 2])
    assert "\n" not in str(exc.value)


def test_scan_corrupt_gzip() -> None:
    packed = bytearray(gzip.compress(make_tar(good_entries())))
    packed[-8:] = b"\x00" * 8  # CRC and size trailer
    with pytest.raises(CompressionError, match=r"^ACI: corrupt gzip data: "):
        scan(bytes(packed))


# ----------------------------------------------------------------------- write


def build_tree(root: Path) -> None:
    root.mkdir()
    os.chmod(root, 0o755)
    (root / "etc").mkdir()
    (root / "etc" / "hostname").write_bytes(b"hello\n")
    (root / "bin").mkdir()
    (root / "bin" / "busybox").write_bytes(os.urandom(200_000))
    os.chmod(root / "bin" / "busybox", 0o4755)  # setuid
    os.symlink("/bin/busybox", root / "bin" / "sh")
    os.link(root / "bin" / "busybox", root / "bin" / "ls")
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "empty").write_bytes(b"")
    os.chown(root / "etc" / "hostname", 1234, 5678)
    os.mkfifo(root / "fifo")
    (root / "caps").write_bytes(b"x")
    os.setxattr(root / "caps", "user.comment", b"plain text")
    os.setxattr(root / "caps", "user.binary", b"\x01\x00\xff\xfe")
    (root / "b\xe4d-name".encode("latin-1").decode("utf-8", "surrogateescape")).write_bytes(b"x")
    (root / ("z-long-" + "n" * 150)).mkdir()
    os.utime(root / "etc" / "hostname", ns=(1, 1_600_000_000_123_456_789))


def test_write_then_scan_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    build_tree(root)
    out = io.BytesIO()
    write_aci(out, MANIFEST, str(root))
    data = out.getvalue()
    assert len(data) % 10240 == 0

    info = scan(data)
    assert info.image_id == image_id(data)
    assert info.manifest_raw == MANIFEST

    members = members_of(data)
    names = list(members)
    assert names[:2] == ["manifest", "rootfs"]
    assert names[2:] == sorted(names[2:], key=lambda n: n.split("/"))  # depth first, sorted
    bb = members["rootfs/bin/busybox"]
    assert bb.isreg() and bb.mode == 0o4755 and bb.size == 200_000
    ls = members["rootfs/bin/ls"]
    assert ls.islnk() and ls.linkname == "rootfs/bin/busybox"
    sh = members["rootfs/bin/sh"]
    assert sh.issym() and sh.linkname == "/bin/busybox"
    assert members["rootfs/tmp"].mode == 0o1777
    assert members["rootfs/fifo"].isfifo()
    hn = members["rootfs/etc/hostname"]
    assert (hn.uid, hn.gid, hn.uname, hn.gname) == (1234, 5678, "", "")
    assert hn.mtime == 1_600_000_000
    caps = members["rootfs/caps"]
    xattrs = {k: v.encode("utf-8", "surrogateescape") for k, v in caps.pax_headers.items()}
    assert xattrs["SCHILY.xattr.user.comment"] == b"plain text"
    assert xattrs["SCHILY.xattr.user.binary"] == b"\x01\x00\xff\xfe"
    assert b"hdrcharset" not in data.split(b"rootfs/caps")[0][-2048:]  # GNU tar warns on it
    assert any(n.startswith("rootfs/b") and n.endswith("d-name") for n in names)
    assert "rootfs/z-long-" + "n" * 150 in names
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        f = tf.extractfile("rootfs/bin/busybox")
        assert f is not None and f.read() == (root / "bin" / "busybox").read_bytes()


def test_write_is_deterministic(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    build_tree(root)
    first, second = io.BytesIO(), io.BytesIO()
    write_aci(first, MANIFEST, str(root))
    write_aci(second, MANIFEST, str(root))
    assert first.getvalue() == second.getvalue()


def test_write_to_pipe_like_output(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    (root / "f").write_bytes(b"data")

    class Sink:
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def write(self, b: bytes) -> int:
            self.chunks.append(bytes(b))
            return len(b)

    sink = Sink()
    write_aci(sink, MANIFEST, str(root))  # type: ignore[arg-type]
    data = b"".join(sink.chunks)
    assert scan(data).image_id == image_id(data)


def test_write_device_nodes(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    try:
        os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(root / "loop0", 0o660 | stat.S_IFBLK, os.makedev(7, 0))
    except PermissionError:
        pytest.skip("creating device nodes needs CAP_MKNOD")
    os.chmod(root / "null", 0o666)  # mknod's mode is filtered by the umask
    out = io.BytesIO()
    write_aci(out, MANIFEST, str(root))
    members = members_of(out.getvalue())
    null = members["rootfs/null"]
    assert null.ischr() and (null.devmajor, null.devminor) == (1, 3) and null.mode == 0o666
    loop = members["rootfs/loop0"]
    assert loop.isblk() and (loop.devmajor, loop.devminor) == (7, 0)


def test_write_refuses_non_directory(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_bytes(b"")
    with pytest.raises(ImageError, match="not a directory"):
        write_aci(io.BytesIO(), MANIFEST, str(f))
