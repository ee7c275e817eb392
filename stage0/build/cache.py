"""The build step cache: which layer a step made last time, kept in the store.

A step's key is the sha256 of a canonical JSON document holding the key of
its parent (the chain ID of the layers so far and the image config so far),
the instruction as it was expanded (for RUN: argv, environment including the
ARGs in scope, user, working directory, network, mounts; proxy variables left
out as BuildKit leaves them out) and, for COPY and ADD, a digest of every
source entry they take (path, type, mode, size, content, link target; never
mtimes).  So an unchanged step over an unchanged parent hits, and a changed
source file misses from its step on, while the steps before it still hit.

Entries are files ``STORE/cache/build/<key>.json`` written atomically (a crash
leaves the old entry or the new one), each naming the layer the step made
(diff ID, blob digest and size) or ``null`` for a step that changed nothing,
and when it was made.  A hit counts only while the store still has the blob
and the extracted layer: ``podkit-gc`` removes layers no image uses, and the
step runs again after that.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import attrs

from libaci import mediatypes as mt
from libaci.digest import Digest, chain_ids
from libaci.errors import PodkitError
from libaci.fsutil import atomic_write
from libaci.store import Store

VERSION = 1


@attrs.frozen
class Layer:
    """One layer of an image being built: blob, diff ID, chain ID, extracted path."""

    diff_id: Digest
    digest: Digest
    size: int
    media_type: str
    chain_id: Digest
    path: str

    def descriptor(self) -> dict[str, Any]:
        media = {mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP,
                 mt.DOCKER_LAYER: mt.OCI_LAYER}.get(self.media_type, self.media_type)
        return {"mediaType": media, "digest": str(self.digest), "size": self.size}


@attrs.frozen
class Hit:
    """A cached step: its layer (None: the step changed nothing) and creation time."""

    layer: Layer | None
    created: str


def key(doc: dict[str, Any]) -> str:
    """The hex sha256 of ``doc`` as canonical JSON."""
    raw = json.dumps({"v": VERSION, **doc}, sort_keys=True, separators=(",", ":"),
                     ensure_ascii=False).encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()


def parent_key(layers: list[Layer], config: dict[str, Any], platform: str) -> str:
    """What a step builds on: its layers and the config (env, user, workdir, shell...)."""
    return key({"chain": str(layers[-1].chain_id) if layers else "", "config": config,
                "platform": platform})


class BuildCache:
    """The step cache of one store."""

    def __init__(self, store: Store, *, read: bool = True) -> None:
        self.store = store
        self.read = read
        self.dir = store.path("cache", "build")

    def _path(self, k: str) -> str:
        return os.path.join(self.dir, k + ".json")

    def get(self, k: str, parents: list[Layer]) -> Hit | None:
        """The cached result of step ``k`` over ``parents``, if still usable."""
        if not self.read:
            return None
        try:
            with open(self._path(k), "rb") as f:
                doc = json.load(f)
            created = str(doc["created"])
            entry = doc["layer"]
            if entry is None:
                return Hit(None, created)
            diff_id = Digest.parse(entry["diffID"])
            digest = Digest.parse(entry["digest"])
            size = int(entry["size"])
            media = str(entry["mediaType"])
        except (OSError, ValueError, KeyError, TypeError, PodkitError):
            return None
        chain = chain_ids([*(x.diff_id for x in parents), diff_id])[-1]
        info = self.store.layer_info(chain)
        if info is None or not self.store.has_blob(digest):
            return None
        return Hit(Layer(diff_id, digest, size, media, chain, info.path), created)

    def put(self, k: str, layer: Layer | None, created: str) -> None:
        entry = None
        if layer is not None:
            entry = {"diffID": str(layer.diff_id), "digest": str(layer.digest),
                     "size": layer.size, "mediaType": layer.media_type}
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        atomic_write(self._path(k), json.dumps({"layer": entry, "created": created}).encode(),
                     mode=0o600)
