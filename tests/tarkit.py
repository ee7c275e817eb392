"""Building layer tars entry by entry for the extraction tests."""

from __future__ import annotations

import io
import tarfile

MTIME = 1_600_000_000


class Stream:
    """A non-seekable binary stream: only read()."""

    def __init__(self, data: bytes) -> None:
        self._b = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._b.read(n)


def E(name: str, kind: str = "file", data: bytes = b"", *, mode: int | None = None,
      uid: int = 0, gid: int = 0, mtime: float = MTIME, link: str = "",
      pax: dict[str, str] | None = None, dev: tuple[int, int] = (0, 0), size: int | None = None
      ) -> tuple[tarfile.TarInfo, bytes]:
    """One entry: kind is file, dir, symlink, hardlink, fifo, chr or blk."""
    ti = tarfile.TarInfo(name)
    ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
               "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE,
               "blk": tarfile.BLKTYPE}[kind]
    ti.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    ti.uid, ti.gid, ti.mtime = uid, gid, mtime
    ti.linkname = link
    ti.devmajor, ti.devminor = dev
    if pax:
        ti.pax_headers = dict(pax)
    if kind == "file":
        ti.size = len(data) if size is None else size
    return ti, data


def tar(*entries: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT,
        end: bool = True) -> bytes:
    """Raw tar bytes, written header by header so that hostile entries stay as given."""
    out = io.BytesIO()
    for ti, data in entries:
        out.write(ti.tobuf(fmt, "utf-8", "surrogateescape"))
        if ti.isreg() and data:
            out.write(data)
            out.write(b"\0" * (-len(data) % 512))
    if end:
        out.write(b"\0" * 1024)
    return out.getvalue()
