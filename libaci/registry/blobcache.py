"""Where blobs were last seen on registries, so that push can mount them.

A small JSON file in the store (``cache/blob-locations.json``) maps a blob
digest to the ``host/repository`` names it was fetched from or pushed to,
newest first, a few per blob.  It is only a hint: a mount that fails falls back
to an upload.  containers/image keeps the same kind of "blob info cache".
"""

from __future__ import annotations

import json
import os

from libaci.fsutil import atomic_write, flocked
from libaci.store import Store

MAX_PER_BLOB = 4
MAX_BLOBS = 20000


def _path(store: Store) -> str:
    return store.path("cache", "blob-locations.json")


def load(store: Store) -> dict[str, list[str]]:
    try:
        with open(_path(store), "rb") as f:
            doc = json.load(f)
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def record(store: Store, digests: list[str], location: str) -> None:
    """Note that ``digests`` exist at ``location`` (host/repository)."""
    os.makedirs(store.path("cache"), mode=0o700, exist_ok=True)
    with flocked(store.lock_path("blob-locations.lock")):
        doc = load(store)
        for d in digests:
            places = [location] + [x for x in doc.pop(d, []) if x != location]
            doc[d] = places[:MAX_PER_BLOB]  # re-inserted: most recent at the end
        while len(doc) > MAX_BLOBS:
            doc.pop(next(iter(doc)))
        atomic_write(_path(store), json.dumps(doc).encode(), mode=0o600)


def candidates(store: Store, digest: str, host: str) -> list[str]:
    """Repositories on ``host`` known to hold ``digest``."""
    prefix = host + "/"
    return [x[len(prefix):] for x in load(store).get(digest, []) if x.startswith(prefix)]
