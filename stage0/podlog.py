"""Reading a pod's log: what podkit-logs prints, while the pod runs and after.

podkit's stage1s copy the app's standard output and error to the caller and
to ``$POD/logs/APP.log`` (stage1/common/podkit_s1.py, ``PodLog``): JSON
lines as docker's json-file driver writes them, ``{"log": "...", "stream":
"stdout"|"stderr", "time": RFC3339Nano}``, rotated to ``APP.log.1``,
``APP.log.2``.  A ``log`` without its final newline is part of a line (a
line longer than 16 KiB, or one whose end had not come within 0.25 s); the
next entry of the same stream continues it.  Bytes that are not UTF-8 are
stored as lone surrogates (``\\udcXX``) and come back exactly.  No journald,
no daemon: this module reads the files, and follows the current one until
the pod's lock is released.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, NamedTuple

POLL = 0.1  # seconds between looks at a followed log
_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
                   r"(?:[Zz]|([+-])(\d\d):(\d\d))$")


class Entry(NamedTuple):
    stream: str  # "stdout" or "stderr"
    data: bytes
    ns: int  # nanoseconds since the epoch


def parse_time(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time, or None."""
    m = _TIME.match(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    try:
        sec = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if m.group(8):
        off = int(m.group(9)) * 3600 + int(m.group(10)) * 60
        sec -= off if m.group(8) == "+" else -off
    return sec * 1_000_000_000 + int((m.group(7) or "0").ljust(9, "0"))


def format_time(ns: int) -> str:
    """RFC 3339, UTC, nanoseconds: ``2026-11-28T18:50:21.272000000Z``."""
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


def parse_line(raw: bytes) -> Entry | None:
    """One JSON line of the log; None for a line that is not an entry (skipped)."""
    try:
        doc = json.loads(raw)
        text, stream, stamp = doc["log"], doc["stream"], doc["time"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(text, str) or stream not in ("stdout", "stderr") \
            or not isinstance(stamp, str):
        return None
    ns = parse_time(stamp)
    if ns is None:
        return None
    return Entry(stream, text.encode("utf-8", "surrogateescape"), ns)


def log_path(pod_dir: str, app: str) -> str:
    return os.path.join(pod_dir, "logs", f"{app}.log")


def rotated(path: str) -> list[str]:
    """``APP.log.N`` files, oldest (highest N) first."""
    d, base = os.path.split(path)
    try:
        names = os.listdir(d)
    except OSError:
        return []
    found = []
    for n in names:
        suffix = n[len(base) + 1:]
        if n.startswith(base + ".") and suffix.isdigit():
            found.append((int(suffix), os.path.join(d, n)))
    return [p for _, p in sorted(found, reverse=True)]


def entries_of(data: bytes) -> tuple[list[Entry], bytes]:
    """The entries of complete lines in ``data``, and the incomplete rest."""
    lines = data.split(b"\n")
    rest = lines.pop()
    out = []
    for line in lines:
        e = parse_line(line)
        if e is not None:
            out.append(e)
    return out, rest


def read_file(path: str) -> list[Entry]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    entries, rest = entries_of(data)
    if rest:
        e = parse_line(rest)
        if e is not None:
            entries.append(e)
    return entries


def select(entries: list[Entry], *, tail: int | None = None,
           since: int | None = None) -> list[Entry]:
    """Entries at or after ``since`` (ns), then those of the last ``tail`` lines.

    A line is an entry ending with a newline, together with the entries of
    its stream without one just before it (the pieces of a long line).
    """
    if since is not None:
        entries = [e for e in entries if e.ns >= since]
    if tail is None:
        return entries
    if tail <= 0:
        return []
    line_of: list[int] = []  # the line number of each entry
    open_line: dict[str, int] = {}
    count = 0
    for e in entries:
        n = open_line.get(e.stream)
        if n is None:
            n = open_line[e.stream] = count
            count += 1
        line_of.append(n)
        if e.data.endswith(b"\n"):
            del open_line[e.stream]
    first = count - tail
    return [e for e, n in zip(entries, line_of, strict=True) if n >= first]


class Printer:
    """Entries to two binary streams; ``timestamps`` puts the time before each line."""

    def __init__(self, out: BinaryIO, err: BinaryIO, *, timestamps: bool = False) -> None:
        self.files = {"stdout": out, "stderr": err}
        self.timestamps = timestamps
        self.at_start = {"stdout": True, "stderr": True}

    def write(self, entries: Iterable[Entry]) -> None:
        used = set()
        for e in entries:
            f = self.files[e.stream]
            if self.timestamps and self.at_start[e.stream]:
                f.write(format_time(e.ns).encode() + b" ")
            f.write(e.data)
            self.at_start[e.stream] = e.data.endswith(b"\n")
            used.add(e.stream)
        for stream in sorted(used):
            self.files[stream].flush()


class _Current:
    """The open current log file of a followed pod, and what is read of it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.f: BinaryIO | None = None
        self.ino = 0
        self.rest = b""

    def open(self) -> bool:
        try:
            self.f = open(self.path, "rb")  # noqa: SIM115  (closed by close())
        except FileNotFoundError:
            return False
        self.ino = os.fstat(self.f.fileno()).st_ino
        self.rest = b""
        return True

    def read(self) -> list[Entry]:
        if self.f is None:
            return []
        out: list[Entry] = []
        while chunk := self.f.read(1 << 20):
            entries, self.rest = entries_of(self.rest + chunk)
            out.extend(entries)
        return out

    def rotated_away(self) -> bool:
        """The path names another file now (the writer rotated it)."""
        try:
            return os.stat(self.path).st_ino != self.ino
        except FileNotFoundError:
            return False  # between two renames of a rotation, or not created yet

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


def show(path: str, printer: Printer, *, tail: int | None = None, since: int | None = None,
         follow: bool = False, running: Callable[[], bool] = lambda: False) -> None:
    """Print the log at ``path`` (its rotated files first); with ``follow``, go on
    printing what is appended until ``running()`` is false and all is read."""
    cur = _Current(path)
    cur.open()  # first, so that a rotation while the old files are read is noticed
    entries: list[Entry] = []
    for old in rotated(path):
        entries.extend(read_file(old))
    entries.extend(cur.read())
    printer.write(select(entries, tail=tail, since=since))
    if not follow:
        cur.close()
        return
    for batch in _follow(cur, running):
        printer.write(e for e in batch if since is None or e.ns >= since)


def _follow(cur: _Current, running: Callable[[], bool]) -> Iterator[list[Entry]]:
    ended = False
    try:
        while True:
            if cur.f is None and not cur.open():
                if ended:
                    return
                ended = not running()
                time.sleep(POLL)
                continue
            got = cur.read()
            if got:
                yield got
                continue
            if cur.rotated_away():
                old_ino = cur.ino
                yield cur.read()  # the writer may have written more before it rotated
                cur.close()
                missed = f"{cur.path}.1"
                try:
                    if os.stat(missed).st_ino != old_ino:  # rotated twice since: .1 is new
                        yield read_file(missed)
                except FileNotFoundError:
                    pass
                continue
            if ended:
                return
            ended = not running()  # then read once more: the writer is gone for good
            if not ended:
                time.sleep(POLL)
    finally:
        cur.close()
