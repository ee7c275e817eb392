"""Hostile layer corpus: every tar here is written by the test itself.

Each layer is extracted into ``tmp_path/"layer"`` next to a canary directory
``tmp_path/"outside"``.  The outcome is either a LayerError whose one-line
message names the offending entry, or a contained extraction; in every case
nothing outside the layer directory may be created or modified (the whole
``tmp_path`` tree minus the layer is compared before and after, owners,
modes, times, link counts, xattrs and contents included), ``/tmp/podkit-pwned*``
must never exist, and ``/etc/passwd`` / ``/etc/shadow`` keep their link count.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import random
import re
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from tarkit import E, Stream, tar

import libaci.layer
from libaci.errors import LayerError
from libaci.layer import OPAQUE_XATTR, LayerStats, Limits, extract_layer

ROOT = os.geteuid() == 0
PWNED = "/tmp/podkit-pwned"


# ---------------------------------------------------------------- tar helpers

class Endless:
    """An endless stream: ``prefix``, then ``unit`` (a multiple of 512 bytes) forever."""

    def __init__(self, unit: bytes, prefix: bytes = b"") -> None:
        self.unit, self.prefix, self.pos, self.served = unit, prefix, 0, 0

    def read(self, n: int = -1) -> bytes:
        assert n > 0
        self.served += n
        if self.served > 512 << 20:
            raise AssertionError("the extractor kept reading an endless stream")
        head, self.prefix = self.prefix[:n], self.prefix[n:]
        n -= len(head)
        reps = (self.pos + n) // len(self.unit) + 2
        data = (self.unit * reps)[self.pos:self.pos + n]
        self.pos = (self.pos + n) % len(self.unit)
        return head + data


def with_checksum(block: bytearray) -> bytes:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)



def pax_header(records: dict[str, str]) -> bytes:
    return tarfile.TarInfo._create_pax_generic_header(  # type: ignore[attr-defined]
        records, tarfile.XHDTYPE, "utf-8")


# ---------------------------------------------------------------- the corpus

Build = Callable[[Path], Any]
Check = Callable[[Path, LayerStats], None]


@attrs.frozen
class Case:
    id: str
    build: Build
    error: str | None = None  # regex the LayerError must match; None: must succeed
    entry: str | None = None  # text the message must contain (the entry's name)
    either: bool = False  # refusing or extracting are both fine
    check: Check | None = None
    limits: Limits | None = None
    kw: dict[str, Any] = attrs.field(factory=dict)


def t(*entries: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> Build:
    raw = tar(*entries, fmt=fmt)
    return lambda tmp: raw


def is_dir(rel: str) -> Check:
    def check(layer: Path, stats: LayerStats) -> None:
        assert stat.S_ISDIR(os.lstat(layer / rel).st_mode)
    return check


def is_file(rel: str, data: bytes) -> Check:
    def check(layer: Path, stats: LayerStats) -> None:
        assert stat.S_ISREG(os.lstat(layer / rel).st_mode)
        assert (layer / rel).read_bytes() == data
    return check


def lower_with(*entries: tuple[tarfile.TarInfo, bytes], top: bytes) -> Build:
    lower_raw = tar(*entries)

    def build(tmp: Path) -> bytes:
        (tmp / "lower").mkdir()
        extract_layer(Stream(lower_raw), str(tmp / "lower"))  # type: ignore[arg-type]
        return top
    return build


def outside_symlink_then(*entries: tuple[tarfile.TarInfo, bytes]) -> Build:
    """A symlink "out" -> the canary directory (absolute), then ``entries``."""
    def build(tmp: Path) -> bytes:
        return tar(E("out", "symlink", link=str(tmp / "outside")), *entries)
    return build


def huge_truncated(tmp: Path) -> bytes:
    ti, _ = E("huge", size=10 << 30)
    return ti.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape") + b"x" * 4096


def truncated_header(tmp: Path) -> bytes:
    return tar(E("a", data=b"1"), E("b", data=b"2"))[:1024 + 300]


def garbage(tmp: Path) -> bytes:
    return random.Random(1).randbytes(64 << 10)


def trailing_garbage(tmp: Path) -> bytes:
    return tar(E("a", data=b"1"), end=False) + random.Random(2).randbytes(4096)


def endless_empty_entries(tmp: Path) -> Endless:
    ti, _ = E("again")
    return Endless(ti.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"))


def endless_pax_chain(tmp: Path) -> Endless:
    return Endless(pax_header({"comment": "more"}))


def gnu_longname_bomb(tmp: Path) -> bytes:
    ti = tarfile.TarInfo("././@LongLink")
    ti.type = tarfile.GNUTYPE_LONGNAME
    ti.size = 8 << 20
    return ti.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape") + b"a" * (8 << 20)


def old_gnu_sparse_endless_map(tmp: Path) -> Endless:
    ti, _ = E("s", size=512)
    ti.type = tarfile.GNUTYPE_SPARSE
    hdr = bytearray(ti.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
    hdr[482] = 1  # isextended: a sparse map block follows, and so on
    ext = bytearray(512)
    for i in range(21):
        ext[i * 24:i * 24 + 24] = b"%011o\0%011o\0" % (i * 1024 + 1, 1)
    ext[504] = 1
    return Endless(bytes(ext), prefix=with_checksum(hdr))


def sparse_10_map_bomb(tmp: Path) -> bytes:
    data = b"99999999999\n" + b"0\n" * 250
    return tar(E("GNUSparseFile.0/s", data=data, pax={
        "GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "s",
        "GNU.sparse.realsize": "100"}))


def global_pax_pileup(tmp: Path) -> bytes:
    out = b""
    for i in range(40):
        out += tarfile.TarInfo._create_pax_generic_header(  # type: ignore[attr-defined]
            {f"comment{i}": "c" * 100_000}, tarfile.XGLTYPE, "utf-8")
        out += tar(E(f"f{i}", data=b"x"), end=False)
    return out + b"\0" * 1024


def mode_is(rel: str, mode: int) -> Check:
    def check(layer: Path, stats: LayerStats) -> None:
        assert stat.S_IMODE(os.lstat(layer / rel).st_mode) == mode
    return check


def no_entries(layer: Path, stats: LayerStats) -> None:
    assert os.listdir(layer) == []


def devices_skipped(layer: Path, stats: LayerStats) -> None:
    assert not (layer / "dev/mem").exists() and not (layer / "dev/sda").exists()
    assert "skipped device node dev/mem (pass allow_devices)" in stats.warnings
    assert "skipped device node dev/sda (pass allow_devices)" in stats.warnings


def setuid_kept(layer: Path, stats: LayerStats) -> None:
    # kept on purpose: the store keeps layer dirs under a 0700 directory
    assert stat.S_IMODE((layer / "usr/bin/su").stat().st_mode) == 0o4755
    assert "0700" in (libaci.layer.__doc__ or "")


def overlay_xattr_dropped(layer: Path, stats: LayerStats) -> None:
    with pytest.raises(OSError):
        os.getxattr(layer / "fake", OPAQUE_XATTR)
    assert any("trusted.overlay.opaque" in w for w in stats.warnings)


def root_mode_0777(layer: Path, stats: LayerStats) -> None:
    assert stat.S_IMODE(layer.stat().st_mode) == 0o777
    assert (layer / "f").read_bytes() == b"in"


def locked_dir(layer: Path, stats: LayerStats) -> None:
    assert stat.S_IMODE((layer / "locked").stat().st_mode) == 0
    assert (layer / "locked/a/b").read_bytes() == b"b"


def fifo_then_file(layer: Path, stats: LayerStats) -> None:
    assert stat.S_ISFIFO(os.lstat(layer / "p").st_mode)
    assert (layer / "q").read_bytes() == b"data"


def whiteout_of_symlink(layer: Path, stats: LayerStats) -> None:
    st = os.lstat(layer / "out")
    if ROOT:
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    else:
        assert (layer / ".wh.out").is_file()


def bad_mtime_ignored(layer: Path, stats: LayerStats) -> None:
    assert (layer / "f").read_bytes() == b"t"
    assert any("mtime" in w for w in stats.warnings)


CASES = [
    # -- names
    Case("dotdot", t(E("../x", data=b"pwn")), r"path escapes the layer", '"../x"'),
    Case("nested-dotdot", t(E("a/../../x", data=b"pwn")), r"path escapes", '"a/../../x"'),
    Case("abs-dotdot", t(E("/abs/../../x", data=b"pwn")), r"path escapes", '"/abs/../../x"'),
    Case("dotdot-dir", t(E("../outside", "dir", mode=0o777)), r"path escapes", '"../outside"'),
    Case("absolute-contained", t(E("/etc/passwd", data=b"root::0:0::/:/bin/sh\n")),
         check=is_file("etc/passwd", b"root::0:0::/:/bin/sh\n")),
    Case("absolute-pwned-contained", t(E(PWNED + "-0", data=b"x")),
         check=is_file("tmp/podkit-pwned-0", b"x")),
    Case("nul-in-name", t(E("ok", data=b"x", pax={"path": "evil\x00/../../x"})),
         r"NUL byte in path", r'"evil\x00'),
    Case("name-longer-than-max", t(E("n" * 150, data=b"x")), r"path longer than 100 bytes",
         '"nnnn', limits=Limits(max_name=100)),
    Case("name-longer-than-default", t(E("/".join(["d" * 200] * 25), data=b"x")),
         r"path longer than 4096 bytes", '"dddd'),
    Case("gnu-longname-dotdot", t(E("x/" * 60 + "../" * 62 + "tmp/podkit-pwned-4", data=b"x"),
                                  fmt=tarfile.GNU_FORMAT), r"path escapes", '"x/x/x/x/'),
    Case("pax-path-override", t(E("innocent", data=b"pwn", pax={"path": "../x"})),
         r"path escapes", '"../x"'),
    Case("pax-path-override-abs", t(E("innocent", data=b"pwn", pax={"path": PWNED + "-5"})),
         check=is_file("tmp/podkit-pwned-5", b"pwn")),
    Case("backslash-is-a-name", t(E("..\\..\\x", data=b"w")), check=is_file("..\\..\\x", b"w")),
    Case("three-dots-is-a-name", t(E(".../x", data=b"w")), check=is_file(".../x", b"w")),
    Case("very-deep-path", t(E("d/" * 600 + "f", data=b"deep")), either=True),
    # -- symlinks
    Case("symlink-root-then-through", t(E("root", "symlink", link="/"),
                                        E("root/tmp/podkit-pwned-1", data=b"pwn")),
         r'parent "root" is a symlink', '"root/tmp/podkit-pwned-1"'),
    Case("symlink-dotdot-then-through", t(E("up", "symlink", link=".."),
                                          E("up/outside/canary.txt", data=b"pwn")),
         r'parent "up" is a symlink', '"up/outside/canary.txt"'),
    Case("symlink-chain", t(E("a", "symlink", link="b"), E("b", "symlink", link="../outside"),
                            E("a/pwn", data=b"pwn")),
         r'parent "a" is a symlink', '"a/pwn"'),
    Case("relative-symlink-out-then-through",
         t(E("x/out", "symlink", link="../../outside"), E("x/out/canary.txt", data=b"pwn")),
         r'parent "x/out" is a symlink', '"x/out/canary.txt"'),
    Case("absolute-symlink-out-then-through", outside_symlink_then(E("out/new", data=b"pwn")),
         r'parent "out" is a symlink', '"out/new"'),
    Case("deep-symlink-then-implicit-dirs", t(E("a/b", "dir"), E("a/b/c", "symlink", link="/"),
                                              E("a/b/c/tmp/podkit-pwned-6/x", data=b"pwn")),
         r'parent "a/b/c" is a symlink', '"a/b/c/tmp/podkit-pwned-6/x"'),
    Case("dir-replaced-by-symlink-then-below",
         t(E("d", "dir"), E("d/f", data=b"1"), E("d", "symlink", link="../outside"),
           E("d/pwn", data=b"pwn")),
         r'parent "d" is a symlink', '"d/pwn"'),
    Case("symlink-replaced-by-file", t(E("c", "symlink", link="../outside/canary.txt"),
                                       E("c", data=b"pwned")), check=is_file("c", b"pwned")),
    Case("abs-symlink-replaced-by-file", t(E("q", "symlink", link=PWNED + "-2"),
                                           E("q", data=b"pwned")), check=is_file("q", b"pwned")),
    Case("dir-entry-over-symlink", outside_symlink_then(E("out", "dir", mode=0o777, mtime=1)),
         check=is_dir("out")),
    Case("file-then-same-name-dir", t(E("x", data=b"file"), E("x", "dir"), E("x/y", data=b"y")),
         check=is_file("x/y", b"y")),
    Case("file-as-parent", t(E("f", data=b"1"), E("f/g", data=b"2")),
         r'parent "f" is not a directory', '"f/g"'),
    Case("symlink-as-root-entry", t(E(".", "symlink", link="/")),
         r"layer root must be a directory", '"."'),
    Case("nul-in-symlink-target", t(E("l", "symlink", pax={"linkpath": "/etc\x00x"})),
         r"NUL byte in symlink target", '"l"'),
    # -- hardlinks
    Case("hardlink-dotdot", t(E("h", "hardlink", link="../../etc/passwd")),
         r'hardlink target "../../etc/passwd" escapes the layer', '"h"'),
    Case("hardlink-absolute-absent", t(E("h", "hardlink", link="/etc/passwd")),
         r'hardlink target "/etc/passwd" not found', '"h"'),
    Case("hardlink-through-symlink", t(E("etc", "symlink", link="/etc"),
                                       E("h", "hardlink", link="etc/passwd")),
         r'hardlink target "etc/passwd" not found', '"h"'),
    Case("hardlink-through-outside-symlink",
         outside_symlink_then(E("h", "hardlink", link="out/canary.txt")),
         r"not found", '"h"'),
    Case("hardlink-to-symlink-then-write",
         t(E("s", "symlink", link=PWNED + "-3"), E("h", "hardlink", link="s"),
           E("h", data=b"pwned")), check=is_file("h", b"pwned")),
    Case("hardlink-to-outside-symlink-then-write",
         t(E("s", "symlink", link="../outside/canary.txt"), E("h", "hardlink", link="s"),
           E("h", data=b"pwned"), E("s", data=b"pwned too")), check=is_file("s", b"pwned too")),
    Case("hardlink-self", t(E("a", "hardlink", link="a")), r'hardlink target "a" not found',
         '"a"'),
    Case("hardlink-loop", t(E("a", "hardlink", link="b"), E("b", "hardlink", link="a")),
         r'hardlink target "b" not found', '"a"'),
    Case("hardlink-to-dir", t(E("d", "dir"), E("h", "hardlink", link="d")),
         r'hardlink target "d" is a directory', '"h"'),
    Case("hardlink-to-root", t(E("h", "hardlink", link="./")), r"is a directory", '"h"'),
    Case("gnu-longlink-dotdot",
         t(E("h", "hardlink", link="a/" * 60 + "../" * 61 + "etc/passwd"),
           fmt=tarfile.GNU_FORMAT), r"escapes the layer", '"h"'),
    Case("pax-linkpath-dotdot",
         t(E("h", "hardlink", link="harmless", pax={"linkpath": "../../etc/shadow"})),
         r'hardlink target "../../etc/shadow" escapes', '"h"'),
    Case("hardlink-into-lower-through-symlink",
         lower_with(E("x", "symlink", link="/etc"),
                    top=tar(E("h", "hardlink", link="x/passwd"))),
         r"not found", '"h"', kw={"lower_dirs": "lower"}),
    Case("hardlink-into-lower-symlink-copied-not-followed",
         lower_with(E("s", "symlink", link="/etc/passwd"),
                    top=tar(E("h", "hardlink", link="s"), E("h", data=b"over"))),
         check=is_file("h", b"over"), kw={"lower_dirs": "lower"}),
    # -- whiteouts
    Case("whiteout-dot", t(E(".wh..")), r"invalid whiteout", '".wh.."'),
    Case("whiteout-dotdot", t(E(".wh...")), r"invalid whiteout", '".wh..."'),
    Case("whiteout-empty", t(E("a/.wh.")), r"invalid whiteout", '"a/.wh."'),
    Case("whiteout-escape", t(E("../.wh.x")), r"path escapes", '"../.wh.x"'),
    Case("whiteout-through-symlink", t(E("l", "symlink", link="../outside"),
                                       E("l/.wh.canary.txt")),
         r'parent "l" is a symlink', '"l/.wh.canary.txt"'),
    Case("whiteout-replaces-outside-symlink", outside_symlink_then(E(".wh.out")),
         check=whiteout_of_symlink),
    Case("opaque-escape", t(E("a/../../.wh..wh..opq")), r"path escapes",
         '"a/../../.wh..wh..opq"'),
    Case("opaque-through-symlink", t(E("l", "symlink", link="../outside"),
                                     E("l/.wh..wh..opq")),
         r'parent "l" is a symlink', '"l/.wh..wh..opq"'),
    Case("opaque-through-abs-symlink", outside_symlink_then(E("out/sub/.wh..wh..opq")),
         r'parent "out" is a symlink', '"out/sub/.wh..wh..opq"'),
    # -- special files, modes, owners, xattrs
    Case("device-nodes-skipped",
         t(E("dev/mem", "chr", dev=(1, 1)), E("dev/sda", "blk", dev=(8, 0))),
         check=devices_skipped),
    Case("setuid-kept", t(E("usr/bin/su", data=b"elf", mode=0o4755)), check=setuid_kept),
    Case("fifo", t(E("p", "fifo"), E("q", "fifo"), E("q", data=b"data")), check=fifo_then_file),
    Case("root-entry-mode-0777", t(E(".", "dir", mode=0o777), E("f", data=b"in")),
         check=root_mode_0777),
    Case("dir-mode-0000-then-files", t(E("locked", "dir", mode=0), E("locked/a", "dir", mode=0),
                                       E("locked/a/b", data=b"b")), check=locked_dir),
    Case("trusted-overlay-xattr-dropped",
         t(E("fake", "dir", pax={"SCHILY.xattr.trusted.overlay.opaque": "y"})),
         check=overlay_xattr_dropped),
    Case("xattr-bomb", t(E("x", data=b"", pax={"SCHILY.xattr.user.big": "v" * 5000})),
         r"xattrs larger than 4096 bytes", '"x"', limits=Limits(max_xattr_bytes=4096)),
    Case("negative-uid", t(E("u", data=b"1", uid=-1), fmt=tarfile.GNU_FORMAT),
         r"owner -1:0 out of range", '"u"', either=not ROOT),
    Case("mtime-inf", t(E("f", data=b"t", pax={"mtime": "inf"})), check=bad_mtime_ignored),
    # -- sizes and limits
    Case("huge-declared-size-truncated", huge_truncated, r"truncated layer", '"huge"'),
    Case("bomb-over-max-bytes", t(*[E(f"f{i}", data=b"z" * 4000) for i in range(5)]),
         r"layer exceeds 10000 bytes", '"f2"', limits=Limits(max_bytes=10000)),
    Case("sparse-bomb", t(E("s", data=b"x", pax={"GNU.sparse.map": "0,1",
                                                 "GNU.sparse.size": str(2 << 40)})),
         r"layer exceeds \d+ bytes", '"s"'),
    Case("sparse-map-backwards", t(E("s", data=b"x" * 20, pax={"GNU.sparse.map": "100,10,0,10",
                                                               "GNU.sparse.size": "200"})),
         r"bad sparse map", '"s"'),
    Case("sparse-old-gnu-endless-map", old_gnu_sparse_endless_map,
         r"sparse map of more than \d+ regions"),
    Case("sparse-1.0-map-bomb", sparse_10_map_bomb, r"sparse map of 99999999999 regions"),
    Case("global-pax-pileup", global_pax_pileup, r"extended tar header of \d+ bytes"),
    Case("endless-empty-entries", endless_empty_entries, r"more than 1000 entries",
         limits=Limits(max_entries=1000)),
    Case("endless-pax-chain", endless_pax_chain, r"corrupt layer|extended"),
    Case("gnu-longname-bomb", gnu_longname_bomb, r"extended tar header of \d+ bytes"),
    # -- broken archives
    Case("garbage", garbage, r"not a tar archive"),
    Case("empty-stream", lambda tmp: b"", r"not a tar archive"),
    Case("gzip-compressed", lambda tmp: gzip.compress(tar(E("a", data=b"1"))),
         r"not a tar archive \(the layer is gzip-compressed"),
    Case("truncated-header", truncated_header, r"truncated layer"),
    Case("trailing-garbage", trailing_garbage, r"corrupt layer|truncated layer"),
    Case("member-prefix-escape", t(E("rootfs/../x", data=b"p")), r"path escapes",
         '"rootfs/../x"', kw={"member_prefix": "rootfs/"}),
]


# ---------------------------------------------------------------- the test

def _tree(root: Path, skip: Path) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if Path(p) == skip:
                continue
            st = os.lstat(p)
            content: Any = None
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(p)
            try:
                xattrs = sorted(os.listxattr(p, follow_symlinks=False))
            except OSError:
                xattrs = []
            out[p] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ino,
                      st.st_nlink, content, tuple(xattrs))
    st = os.lstat(root)
    out[str(root)] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_nlink)
    return out


def _system() -> dict[str, tuple[int, int, int]]:
    out = {}
    for p in ("/etc/passwd", "/etc/shadow", "/tmp"):
        try:
            st = os.lstat(p)
        except OSError:
            continue
        out[p] = (st.st_nlink, st.st_size, st.st_mode)
    return out


@pytest.fixture(autouse=True)
def _no_pwned() -> Any:
    assert not glob.glob(PWNED + "*"), "left over from an earlier run"
    yield
    assert not glob.glob(PWNED + "*")


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_layer(tmp_path: Path, case: Case) -> None:
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "canary.txt").write_bytes(b"canary")
    layer = tmp_path / "layer"
    layer.mkdir()
    src = case.build(tmp_path)
    stream = Stream(src) if isinstance(src, bytes) else src
    kw = dict(case.kw)
    if kw.get("lower_dirs") == "lower":
        kw["lower_dirs"] = [str(tmp_path / "lower")]
    if case.limits is not None:
        kw["limits"] = case.limits
    before, system = _tree(tmp_path, layer), _system()

    error: LayerError | None = None
    stats: LayerStats | None = None
    try:
        stats = extract_layer(stream, str(layer), **kw)
    except LayerError as e:
        error = e

    assert _tree(tmp_path, layer) == before, "something outside the layer changed"
    assert _system() == system
    assert not glob.glob(PWNED + "*")
    assert (outside / "canary.txt").read_bytes() == b"canary"

    if error is not None:
        msg = str(error)
        assert "\n" not in msg
        if case.either:
            return
        assert case.error is not None, f"unexpected refusal: {msg}"
        assert re.search(case.error, msg), msg
        if case.entry is not None:
            assert case.entry in msg, msg
        return
    assert case.error is None or case.either, f"extracted, expected /{case.error}/"
    assert stats is not None
    if case.check is not None:
        case.check(layer, stats)
