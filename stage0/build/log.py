"""What podkit-build tells people on stderr, in BuildKit's plain progress format.

One numbered entry per step (``#3 [build 2/4] RUN make``), the RUN's output
under it with the seconds since the step started (``#3 0.215 compiling``),
then ``#3 CACHED`` or ``#3 DONE 1.2s``.  Quiet (``--progress=none``) prints
nothing but warnings; the output of a failing RUN is kept all the same (its
last lines) so that the error can show it.
"""

from __future__ import annotations

import collections
import sys
import time
from typing import TextIO

TAIL = 30  # lines of a RUN's output kept for the error report when quiet


class BuildLog:
    """Step lines and RUN output for one podkit-build process."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True,
                 prog: str = "podkit-build") -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.prog = prog
        self._n = 0
        self._start: dict[int, float] = {}
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL)

    def _print(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass

    def warn(self, message: str) -> None:
        """A warning: shown even when quiet."""
        self._print(f"{self.prog}: warning: {message}")

    def step(self, label: str) -> int:
        """Start a numbered entry; its number."""
        self._n += 1
        self._start[self._n] = time.monotonic()
        self.tail.clear()
        if self.enabled:
            self._print(f"#{self._n} {label}")
        return self._n

    def output(self, n: int, line: str) -> None:
        """One line a RUN printed."""
        self.tail.append(line)
        if self.enabled:
            elapsed = time.monotonic() - self._start.get(n, time.monotonic())
            self._print(f"#{n} {elapsed:.3f} {line}")

    def cached(self, n: int) -> None:
        if self.enabled:
            self._print(f"#{n} CACHED")

    def done(self, n: int) -> None:
        if self.enabled:
            elapsed = time.monotonic() - self._start.get(n, time.monotonic())
            self._print(f"#{n} DONE {elapsed:.1f}s")

    def note(self, n: int, text: str) -> None:
        if self.enabled:
            self._print(f"#{n} {text}")

    def failed_output(self) -> None:
        """After a failing RUN in quiet mode: its last lines, so the error has context."""
        if self.enabled:
            return  # they were shown as they came
        for line in self.tail:
            self._print(f"  | {line}")
