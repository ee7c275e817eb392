"""What podkit-images and podkit-inspect show about images in the store."""

from __future__ import annotations

import json
from typing import Any

from libaci import mediatypes as mt
from libaci.digest import Digest, chain_ids
from libaci.errors import PodkitError
from libaci.reference import parse_docker_reference
from libaci.store import ANN_ACI_MANIFEST, ANN_CREATED, ANN_INDEX, ANN_SOURCE, ImageRecord, Store


def split_name(name: str, aci: bool) -> tuple[str, str]:
    """(repository, tag) for a stored name; tag '<none>' for digest-only names."""
    if aci:
        repo, _, version = name.partition(":")
        return repo, version or "<none>"
    try:
        ref = parse_docker_reference(name, default_tag=None)
    except PodkitError:
        return name, "<none>"
    return ref.name, ref.tag or "<none>"


def aci_manifest(store: Store, rec: ImageRecord) -> dict[str, Any]:
    d = rec.descriptor.annotations.get(ANN_ACI_MANIFEST)
    if not d:
        return {}
    return json.loads(store.read_blob(Digest.parse(d)))


def created(store: Store, rec: ImageRecord) -> str | None:
    try:
        if rec.is_aci:
            for a in aci_manifest(store, rec).get("annotations") or ():
                if a.get("name") == "created":
                    return str(a.get("value"))
        else:
            return store.config(store.manifest(rec.descriptor.digest)).created
    except PodkitError:
        pass
    return rec.descriptor.annotations.get(ANN_CREATED)


def summary(store: Store, rec: ImageRecord) -> dict[str, Any]:
    """One image as podkit-images --json prints it."""
    return {
        "id": rec.id,
        "names": list(rec.names),
        "mediaType": rec.descriptor.media_type,
        "created": created(store, rec),
        "imported": rec.descriptor.annotations.get(ANN_CREATED),
        "size": store.image_size(rec),
    }


def inspect(store: Store, rec: ImageRecord) -> dict[str, Any]:
    """The full story of one image: descriptor, manifest, config, layers."""
    out: dict[str, Any] = {
        "Id": rec.id,
        "Names": list(rec.names),
        "MediaType": rec.descriptor.media_type,
        "Digest": str(rec.descriptor.digest),
        "Size": rec.descriptor.size,
        "Source": rec.descriptor.annotations.get(ANN_SOURCE),
        "Imported": rec.descriptor.annotations.get(ANN_CREATED),
    }
    if rec.is_aci:
        out["Manifest"] = aci_manifest(store, rec)
        layers = store.image_layers(rec)
        out["Layers"] = [{"Id": rec.id, "Size": layers[0].size, "Entries": layers[0].entries}]
        return out
    manifest = store.manifest(rec.descriptor.digest)
    config = store.config(manifest)
    if rec.descriptor.annotations.get(ANN_INDEX):
        out["Index"] = rec.descriptor.annotations[ANN_INDEX]
    out["Manifest"] = json.loads(manifest.raw)
    out["Config"] = config.doc
    out["ConfigDigest"] = str(manifest.config.digest)
    out["Platform"] = {"os": config.os, "architecture": config.architecture,
                       **({"variant": config.variant} if config.variant else {})}
    out["Created"] = config.created
    layers = []
    for desc, diff, chain in zip(manifest.layers, config.diff_ids, chain_ids(config.diff_ids),
                                 strict=False):
        info = store.layer_info(chain)
        layers.append({
            "Digest": str(desc.digest), "MediaType": desc.media_type, "Size": desc.size,
            "DiffID": str(diff), "ChainID": str(chain),
            "UncompressedSize": info.size if info else None,
            "Extracted": info is not None,
        })
    out["Layers"] = layers
    return out


def is_image(rec: ImageRecord) -> bool:
    return rec.descriptor.media_type in (mt.MANIFEST_TYPES | {mt.APPC_ACI})
