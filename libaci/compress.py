"""Sniff and undo the compression of a tar stream (ACIs and OCI layers).

The format is recognised by its magic bytes, never by a file name or a media
type, and the stream is read strictly forwards: the sniffed bytes are kept and
replayed, so pipes and HTTP bodies work.  Decompression streams too; nothing
is held in memory beyond a read buffer.  Corrupt compressed data surfaces as
:class:`CompressionError` (an :class:`~libaci.errors.ImageError`) with a
one-line message.

zstd frames carry a checksum only optionally, and python-zstandard's stream
reader ends quietly at a truncated final frame; the tar framing above (and
digests) catch what the zstd layer cannot.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from typing import BinaryIO, cast

from libaci.errors import ImageError

CHUNK = 1 << 20


class CompressionError(ImageError):
    """Compressed data is corrupt or truncated."""


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
PEEK = max(len(m) for m, _ in _MAGIC)
KINDS = ("gzip", "bzip2", "xz", "zstd", "none")


def detect(prefix: bytes) -> str:
    """The compression of a stream starting with ``prefix``: gzip, bzip2, xz, zstd or none."""
    for magic, kind in _MAGIC:
        if prefix.startswith(magic):
            return kind
    return "none"


class _Prefixed(io.RawIOBase):
    """Replays ``prefix`` and then reads on from ``stream``."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size is None or size < 0:
                head, self._prefix = self._prefix, b""
                return head + self._stream.read()
            head, self._prefix = self._prefix[:size], self._prefix[size:]
            return head
        return self._stream.read(size)

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        n = len(data)
        b[:n] = data
        return n


_CORRUPT: tuple[type[BaseException], ...] = (
    EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile,
)


class _Checked(io.RawIOBase):
    """A decompressor whose data errors become one-line ImageErrors."""

    def __init__(self, inner: BinaryIO, kind: str) -> None:
        self._inner = inner
        self.kind = kind
        self._corrupt = _CORRUPT
        if kind == "zstd":  # imported only when a zstd stream shows up
            import zstandard

            self._corrupt = (*_CORRUPT, zstandard.ZstdError)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._inner.read(size)
        except self._corrupt as e:
            raise CompressionError(f"corrupt {self.kind} data: {e or type(e).__name__}") from e
        except OSError as e:
            # bz2 reports bad data as a bare OSError; real I/O errors carry an errno.
            if e.errno is None:
                raise CompressionError(f"corrupt {self.kind} data: {e}") from e
            raise

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


def _peek(stream: BinaryIO) -> bytes:
    prefix = b""
    while len(prefix) < PEEK:
        chunk = stream.read(PEEK - len(prefix))
        if not chunk:
            break
        prefix += chunk
    return prefix


def open_decompressed(stream: BinaryIO) -> BinaryIO:
    """A forward-only reader of ``stream``'s decompressed bytes.

    The compression is detected from the first bytes (see :func:`detect`);
    ``stream`` needs only ``read`` and is never closed by the returned reader.
    Uncompressed input comes back as a buffered reader replaying the sniffed
    bytes.  Reading corrupt data raises :class:`CompressionError`.
    """
    prefix = _peek(stream)
    kind = detect(prefix)
    raw = cast(BinaryIO, _Prefixed(prefix, stream))
    if kind == "none":
        return cast(BinaryIO, io.BufferedReader(cast(io.RawIOBase, raw), CHUNK))
    inner: BinaryIO
    if kind == "gzip":
        inner = cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
    elif kind == "bzip2":
        inner = cast(BinaryIO, bz2.BZ2File(raw, "rb"))
    elif kind == "xz":
        inner = cast(BinaryIO, lzma.LZMAFile(raw, "rb"))  # noqa: SIM115
    else:
        import zstandard

        inner = cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(
            raw, read_size=CHUNK, read_across_frames=True, closefd=False))
    return cast(BinaryIO, _Checked(inner, kind))
