"""Content digests as OCI defines them (``algorithm:encoded``).

Digests are always computed over the exact bytes; :class:`Hasher` hashes data
while it streams, so a layer is never held in memory.  Only sha256 and sha512
are computed; other well-formed algorithms parse but cannot be verified.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import BinaryIO

import attrs

from libaci.errors import DigestMismatchError, ImageError

_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)\Z")
_ENCODED = {"sha256": re.compile(r"^[a-f0-9]{64}\Z"), "sha512": re.compile(r"^[a-f0-9]{128}\Z")}
CHUNK = 1 << 20


class DigestError(ImageError):
    """A digest string is malformed or uses an unsupported algorithm."""


@attrs.frozen(order=True)
class Digest:
    """A parsed digest; ``str()`` gives the canonical ``alg:hex`` form."""

    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        m = _DIGEST_RE.match(text)
        if not m:
            raise DigestError(f"invalid digest {text!r}")
        alg, enc = m.groups()
        pat = _ENCODED.get(alg)
        if pat is not None and not pat.match(enc):
            raise DigestError(f"invalid {alg} digest {text!r}")
        return cls(alg, enc)

    @classmethod
    def of_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    @classmethod
    def of_stream(cls, stream: BinaryIO, algorithm: str = "sha256") -> tuple[Digest, int]:
        h = Hasher(algorithm)
        while chunk := stream.read(CHUNK):
            h.update(chunk)
        return h.digest(), h.size

    @property
    def computable(self) -> bool:
        return self.algorithm in _ENCODED

    @property
    def short(self) -> str:
        return self.encoded[:12]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


class Hasher:
    """Hash (and count) bytes as they pass; use it while writing or reading."""

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in _ENCODED:
            raise DigestError(f"unsupported digest algorithm {algorithm!r}")
        self.algorithm = algorithm
        self._h = hashlib.new(algorithm)
        self.size = 0

    def update(self, data: bytes) -> None:
        self._h.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._h.hexdigest())


def verify(expected: Digest, expected_size: int | None, actual: Digest, actual_size: int,
           what: str) -> None:
    """Raise :class:`DigestMismatchError` unless size and digest agree (size first)."""
    if expected_size is not None and expected_size != actual_size:
        raise DigestMismatchError(
            f"{what}: size mismatch: expected {expected_size} bytes, got {actual_size}")
    if expected != actual:
        raise DigestMismatchError(f"{what}: digest mismatch: expected {expected}, got {actual}")


def chain_ids(diff_ids: Iterable[Digest]) -> list[Digest]:
    """ChainID(L0)=DiffID(L0); ChainID(L0..n)=sha256(ChainID(L0..n-1) + " " + DiffID(Ln))."""
    out: list[Digest] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append(Digest.of_bytes(f"{out[-1]} {d}".encode()))
    return out
