"""Extracting an image's layers into the store, in parallel.

Each layer is decompressed, hashed (its diff ID is checked against the image
config) and extracted into its own directory keyed by chain ID, in overlay
form.  Layers extract concurrently in threads (zlib, zstd and file I/O drop
the GIL); a layer waits for the layers below it only if it holds a hardlink
into them, through :class:`_Lowers`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from libaci.compress import open_decompressed
from libaci.digest import CHUNK, Digest, Hasher, verify
from libaci.layer import Limits, extract_layer


class HashingReader:
    """A read-only stream that hashes and counts what passes through it."""

    def __init__(self, stream: BinaryIO, algorithm: str = "sha256") -> None:
        self._s = stream
        self.hasher = Hasher(algorithm)

    def read(self, n: int = -1) -> bytes:
        data = self._s.read(n)
        self.hasher.update(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


class _Lowers(Sequence[str]):
    """Lower layer dirs (top first), waiting for each until it is extracted."""

    def __init__(self, dirs: list[str], events: list[threading.Event]) -> None:
        self._dirs, self._events = dirs, events

    def __len__(self) -> int:
        return len(self._dirs)

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        self._events[i].wait()
        return self._dirs[i]


def extract_one(blob: str, dest: str, diff_id: Digest | None, lowers: Sequence[str] = (),
                prefix: str = "", limits: Limits | None = None) -> tuple[Digest, int, int]:
    """Extract one (possibly compressed) layer blob into ``dest``/rootfs.

    Returns (diff ID, uncompressed size, entries); raises DigestMismatchError
    when ``diff_id`` is given and differs.
    """
    root = os.path.join(dest, "rootfs")
    os.makedirs(root, mode=0o755)
    with open(blob, "rb") as f:
        tee = HashingReader(open_decompressed(f))
        stats = extract_layer(tee, root, lower_dirs=lowers, member_prefix=prefix,
                              whiteouts=not prefix, limits=limits or Limits())
        tee.drain()
    got = tee.hasher.digest()
    if diff_id is not None:
        what = f"layer {os.path.basename(blob)[:19]} diff ID"
        verify(diff_id, None, got, tee.hasher.size, what)
    info = {"diff_id": str(diff_id or got), "size": tee.hasher.size, "entries": stats.entries,
            "whiteouts": stats.whiteouts, "warnings": stats.warnings}
    with open(os.path.join(dest, "layer.json"), "w") as out:
        json.dump(info, out)
    return got, tee.hasher.size, stats.entries


def extract_all(jobs: list[tuple[Callable[[], str], str, Digest | None]], *,
                existing: Callable[[int], str | None], workers: int | None = None) -> list[str]:
    """Fetch and extract ``jobs`` = [(blob getter, dest dir, diff ID)], bottom first.

    Each job first calls its getter, which returns the blob's path once it is
    in hand (a download, for a registry), then extracts it unless
    ``existing(i)`` gives the rootfs of layer i already in the store.  Jobs run
    in parallel, so one layer extracts while the next ones still download.
    Returns the rootfs dir of each layer.
    """
    n = len(jobs)
    dirs: list[str] = []
    events = [threading.Event() for _ in range(n)]
    have = [existing(i) for i in range(n)]
    for i, (_, dest, _) in enumerate(jobs):
        if have[i] is not None:
            dirs.append(have[i])  # type: ignore[arg-type]
            events[i].set()
        else:
            dirs.append(os.path.join(dest, "rootfs"))

    def run(i: int) -> None:
        get_blob, dest, diff_id = jobs[i]
        try:
            blob = get_blob()
            if have[i] is None:
                extract_one(blob, dest, diff_id, _Lowers(dirs[:i][::-1], events[:i][::-1]))
        finally:
            events[i].set()

    if n <= 1:
        for i in range(n):
            run(i)
        return dirs
    with ThreadPoolExecutor(max_workers=workers or min(n, (os.cpu_count() or 2) + 2)) as ex:
        futures = [ex.submit(run, i) for i in range(n)]
        for fut in futures:
            fut.result()
    return dirs
