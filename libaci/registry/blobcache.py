"""Where blobs were last seen on registries, so that push can mount them.

A small JSON file in the store (``cache/blob-locations.json``) maps a blob
digest to the ``host/repository`` names it was fetched from or pushed to,
newest first, a few per blob.  It is only a hint: a mount that fails falls back
to an upload.  containers/image keeps the same kind of "blob info cache".
"""

from __future__ import annotations

from libaci.store import Store

MAX_PER_BLOB = 4
MAX_BLOBS = 20000

CACHE = "blob-locations.json"


def load(store: Store) -> dict[str, list[str]]:
    return store.read_cache(CACHE)


def record(store: Store, digests: list[str], location: str) -> None:
    """Note that ``digests`` exist at ``location`` (host/repository)."""
    def change(doc: dict[str, list[str]]) -> None:
        for d in digests:
            places = [location] + [x for x in doc.pop(d, []) if x != location]
            doc[d] = places[:MAX_PER_BLOB]  # re-inserted: most recent at the end
        while len(doc) > MAX_BLOBS:
            doc.pop(next(iter(doc)))

    store.update_cache(CACHE, change)


def candidates(store: Store, digest: str, host: str) -> list[str]:
    """Repositories on ``host`` known to hold ``digest``."""
    prefix = host + "/"
    return [x[len(prefix):] for x in load(store).get(digest, []) if x.startswith(prefix)]
