"""Importing an OCI image (manifest or index) from any blob provider.

Shared by the oci:, oci-archive: and docker-archive: sources (and later the
registry): the provider opens blobs; this module verifies every byte against
its descriptor, picks the platform from an index, stages config and layers
(several at once) and publishes the image only when all of it checked out.
Layers are extracted later, on first use (:meth:`Store.extract_layers`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from libaci import mediatypes as mt
from libaci.digest import Digest, verify
from libaci.errors import ImageError, ManifestError
from libaci.oci import Descriptor, Index, Manifest, parse_config, parse_document
from libaci.platform import select
from libaci.progress import CountingReader
from libaci.sources import Fetched, FetchOptions
from libaci.store import ANN_CREATED, ANN_INDEX, ANN_SOURCE, Staging

MAX_MANIFEST = 4 << 20
MAX_CONFIG = 32 << 20
DOWNLOADS = 4  # layers fetched at once, as skopeo and docker pull do
Opener = Callable[[Descriptor], BinaryIO]


def read_verified(opener: Opener, desc: Descriptor, limit: int, what: str) -> bytes:
    if desc.size > limit:
        raise ManifestError(f"{what} {desc.digest} is {desc.size} bytes (limit {limit})")
    with opener(desc) as f:
        data = f.read(desc.size + 1)
    verify(desc.digest, desc.size, Digest.of_bytes(data, desc.digest.algorithm), len(data),
           f"{what} {desc.digest}")
    return data


def resolve_manifest(opener: Opener, desc: Descriptor, options: FetchOptions,
                     depth: int = 0) -> tuple[Descriptor, Manifest, Descriptor | None]:
    """Follow indexes down to one image manifest for the wanted platform."""
    if depth > 4:
        raise ManifestError("image indexes nested too deeply")
    raw = read_verified(opener, desc, MAX_MANIFEST, "manifest")
    doc = parse_document(raw, media_type=desc.media_type if desc.media_type in
                         (mt.INDEX_TYPES | mt.MANIFEST_TYPES) else None)
    if isinstance(doc, Index):
        chosen = select(doc, options.platform)
        options.say(f"Selected {chosen.platform} manifest {chosen.digest}")
        d, m, _ = resolve_manifest(opener, chosen, options, depth + 1)
        return d, m, desc
    return desc, doc, None


def copy_layer(staging: Staging, opener: Opener, layer: Descriptor,
               options: FetchOptions) -> None:
    """Stream one layer into staging, verifying its size and digest as it goes."""
    key = layer.digest.encoded[:12]
    options.progress.item(key, "Downloading", 0, layer.size)
    with opener(layer) as f:
        staging.put_stream(CountingReader(f, options.progress, key, "Downloading", layer.size),
                           expected=layer.digest, size=layer.size, what=f"layer {layer.digest}")
    options.progress.item(key, "Download complete")


def import_manifest(staging: Staging, opener: Opener, desc: Descriptor, names: list[str],
                    options: FetchOptions, source: str) -> Fetched:
    """Stage, verify and publish the image that ``desc`` points to."""
    remote = opener

    def opener(d: Descriptor) -> BinaryIO:  # what the store has is not asked for again
        if staging.has_blob(d.digest):
            return open(staging.blob_path(d.digest), "rb")
        return remote(d)

    mdesc, manifest, index_desc = resolve_manifest(opener, desc, options)
    config_raw = read_verified(opener, manifest.config, MAX_CONFIG, "config")
    if manifest.config.media_type not in mt.CONFIG_TYPES:
        raise ImageError(f"not a container image: config media type "
                         f"{manifest.config.media_type!r}")
    config = parse_config(config_raw)
    diff_ids = config.diff_ids
    if len(diff_ids) != len(manifest.layers):
        raise ManifestError(f"image config lists {len(diff_ids)} diff IDs for "
                            f"{len(manifest.layers)} layers")
    for layer in manifest.layers:
        if layer.media_type not in mt.LAYER_COMPRESSION:
            raise ImageError(f"layer {layer.digest}: unsupported media type {layer.media_type!r}")
    staging.put_bytes(config_raw, expected=manifest.config.digest, what="config")
    staging.put_bytes(manifest.raw, expected=mdesc.digest, what="manifest")

    fetching: dict[Digest, threading.Lock] = {d.digest: threading.Lock() for d in manifest.layers}

    def get(layer: Descriptor) -> None:
        with fetching[layer.digest]:  # an image may list one blob twice
            if staging.has_blob(layer.digest):
                options.progress.item(layer.digest.encoded[:12], "Already exists")
            else:
                copy_layer(staging, opener, layer, options)

    for layer in manifest.layers:
        options.progress.item(layer.digest.encoded[:12], "Waiting")
    parallel(get, manifest.layers, DOWNLOADS)
    if options.extract:  # before the commit: a layer that fails leaves no image behind
        staging.extract(manifest, diff_ids)
    annotations = {ANN_CREATED: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   ANN_SOURCE: source}
    if index_desc is not None:
        annotations[ANN_INDEX] = str(index_desc.digest)
    top = Descriptor(media_type=manifest.effective_media_type, digest=mdesc.digest,
                     size=mdesc.size, annotations=annotations)
    staging.commit(top, names)
    return Fetched(str(mdesc.digest), tuple(names))


def parallel(func: Callable[[Descriptor], None], items: list[Descriptor], workers: int) -> None:
    """``func`` on every item, ``workers`` at a time; the first error is raised."""
    if len(items) <= 1:
        for item in items:
            func(item)
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as ex:
        for fut in [ex.submit(func, item) for item in items]:
            fut.result()
