"""Live progress on a terminal, the way ``docker pull`` shows it.

One line per item (a layer), redrawn in place as its state and byte count
change (``a1b2c3d4e5f6: Downloading  12.6MB/42.0MB``), and free-form
messages printed above the item lines.  Library code reports through the
two methods of :class:`libaci.sources.FetchOptions`' progress sink; this
module only draws.  :class:`TerminalProgress` is for a terminal;
:class:`PlainProgress` (``--progress=plain``, as BuildKit names it) prints a
line per state change and no byte counts, for logs; piped or redirected
stderr gets nothing by default, so logs never fill with control codes.

Redraws are throttled (an item's line at most every ``interval`` seconds,
except for state changes) and serialized with a lock, since several
download threads report at once.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

UP = "\x1b[{}A"
CLEAR = "\x1b[2K"


def human(n: int) -> str:
    """Sizes as docker prints them: 1000-based, one decimal (``12.6MB``)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1000
    return f"{n}B"


class TerminalProgress:
    """Item lines redrawn in place on a terminal, messages above them."""

    def __init__(self, out: TextIO, interval: float = 0.1) -> None:
        self._out = out
        self._interval = interval
        self._lock = threading.Lock()
        self._keys: list[str] = []
        self._lines: dict[str, str] = {}
        self._drawn: dict[str, float] = {}
        self._states: dict[str, str] = {}

    def message(self, text: str) -> None:
        with self._lock:
            n = len(self._keys)
            if n:  # print above the item lines, then draw them again below
                self._out.write(UP.format(n))
            self._out.write(f"\r{CLEAR}{text}\n")
            for key in self._keys:
                self._out.write(f"{CLEAR}{self._lines[key]}\n")
            self._out.flush()

    def item(self, key: str, state: str, done: int | None = None,
             total: int | None = None) -> None:
        line = f"{key}: {state}"
        if done is not None and total:
            line += f" {human(done):>8}/{human(total)}"
        elif done is not None:
            line += f" {human(done):>8}"
        now = time.monotonic()
        with self._lock:
            if key not in self._lines:
                self._keys.append(key)
                self._lines[key] = line
                self._out.write(f"{CLEAR}{line}\n")
            else:
                if self._states.get(key) == state and now - self._drawn.get(key, 0) < \
                        self._interval:
                    return  # same state, redrawn a moment ago
                self._lines[key] = line
                up = len(self._keys) - self._keys.index(key)
                self._out.write(f"{UP.format(up)}\r{CLEAR}{line}\n")
                if up > 1:
                    self._out.write(f"\x1b[{up - 1}B")
            self._states[key] = state
            self._drawn[key] = now
            self._out.flush()


class PlainProgress:
    """One line per message and per change of an item's state; no byte counts."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._states: dict[str, str] = {}

    def message(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    def item(self, key: str, state: str, done: int | None = None,
             total: int | None = None) -> None:
        with self._lock:
            if self._states.get(key) == state:
                return
            self._states[key] = state
            self._out.write(f"{key}: {state}\n")
            self._out.flush()
