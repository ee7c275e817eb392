"""What library code reports while it works, and to whom.

Long operations (fetching, pushing) report free-form messages and the state
of each item (a layer: ``Downloading`` with bytes done out of a total,
``Download complete``, ``Already exists``...) to a :class:`Sink`.  The library
never decides how, or whether, this is shown: podkit's commands draw it on a
terminal (``stage0.progress``) and pass :data:`QUIET` otherwise.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol


class Sink(Protocol):
    def message(self, text: str) -> None: ...

    def item(self, key: str, state: str, done: int | None = None,
             total: int | None = None) -> None: ...


class _Quiet:
    def message(self, text: str) -> None:
        pass

    def item(self, key: str, state: str, done: int | None = None,
             total: int | None = None) -> None:
        pass


QUIET: Sink = _Quiet()


class CountingReader:
    """A stream that reports the bytes read through it as ``key``'s progress."""

    def __init__(self, stream: BinaryIO, sink: Sink, key: str, state: str,
                 total: int | None) -> None:
        self._s, self._sink, self._key, self._state, self._total = stream, sink, key, state, total
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._s.read(n)
        self.count += len(data)
        self._sink.item(self._key, self._state, self.count, self._total)
        return data
