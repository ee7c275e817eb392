"""Removing images and collecting what no image (or pod) uses any more.

Mark and sweep: everything reachable from index.json (manifests, configs,
layer blobs, extracted layers, ACI blobs) and from pods under ``pods/`` is
kept; the rest of ``blobs/`` and ``layers/`` goes.  The sweep holds the store's
gc lock exclusively, and writers hold it shared while they stage, so a fetch
in flight never loses a blob it has not published yet.  Layer directories are
renamed out of ``layers/`` before they are deleted, so a crash mid-delete
never leaves a half-removed layer that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import re

import attrs

from libaci import mediatypes as mt
from libaci.digest import Digest, chain_ids
from libaci.errors import ConflictError, PodkitError
from libaci.fsutil import flocked, rmtree
from libaci.oci import Descriptor
from libaci.store import ANN_ACI_MANIFEST, ANN_INDEX, ImageRecord, Store, image_id_to_digest

_HEXNAME = re.compile(r"^[0-9a-f]{64,128}\Z")


@attrs.define
class GcResult:
    blobs: list[str] = attrs.field(factory=list)
    layers: list[str] = attrs.field(factory=list)
    bytes: int = 0
    staging: list[str] = attrs.field(factory=list)
    signatures: list[str] = attrs.field(factory=list)


def pod_images(store: Store) -> set[str]:
    """Image IDs named by pod manifests under pods/ (any state)."""
    ids: set[str] = set()
    pods = store.path("pods")
    try:
        states = os.listdir(pods)
    except FileNotFoundError:
        return ids
    for state in states:
        try:
            uuids = os.listdir(os.path.join(pods, state))
        except OSError:
            continue
        for uuid in uuids:
            try:
                with open(os.path.join(pods, state, uuid, "pod"), "rb") as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                continue
            for app in doc.get("apps") or ():
                image = (app or {}).get("image") or {}
                if isinstance(image.get("id"), str):
                    ids.add(image["id"])
    return ids


def mounted_paths() -> str:
    """The mount table, to keep layers that are lower dirs of live overlays."""
    try:
        with open("/proc/self/mountinfo") as f:
            return f.read()
    except OSError:
        return ""


def _image_refs(store: Store, rec: ImageRecord) -> tuple[set[Digest], set[Digest]]:
    blobs: set[Digest] = {rec.descriptor.digest}
    layers: set[Digest] = set()
    if rec.is_aci:
        layers.add(rec.descriptor.digest)
        m = rec.descriptor.annotations.get(ANN_ACI_MANIFEST)
        if m:
            blobs.add(Digest.parse(m))
        return blobs, layers
    try:
        manifest = store.manifest(rec.descriptor.digest)
    except PodkitError:
        return blobs, layers
    blobs.add(manifest.config.digest)
    blobs.update(x.digest for x in manifest.layers)
    with contextlib.suppress(PodkitError):
        layers.update(chain_ids(store.config(manifest).diff_ids))
    return blobs, layers


def _descriptor_of(store: Store, image_id: str) -> Descriptor:
    """A descriptor for an image that index.json no longer names."""
    digest = image_id_to_digest(image_id)
    if image_id.startswith("sha512-"):
        return Descriptor(mt.APPC_ACI, digest, store.blob_size(digest))
    manifest = store.manifest(digest)
    return Descriptor(manifest.effective_media_type, digest, store.blob_size(digest))


def in_use_by_pods(store: Store, rec: ImageRecord) -> bool:
    ids = pod_images(store)
    return rec.id in ids or str(rec.descriptor.digest) in ids


def collect(store: Store, *, dry_run: bool = False) -> GcResult:
    result = GcResult()
    if not store.exists():
        return result
    with flocked(store.lock_path("gc.lock"), exclusive=True, blocking=False,
                 what="the store (a fetch is running)"):
        result.staging = store.clean_stale()
        if not dry_run:  # blobs verified by fetches that never finished
            rmtree(store.path("tmp", "verified"))
        # downloads that were interrupted (kept for a resume): no writer runs, none is locked
        for name in _listdir(store.path("tmp", "partial")):
            result.staging.append(store.path("tmp", "partial", name))
        if not dry_run:
            rmtree(store.path("tmp", "partial"))
        keep_blobs: set[Digest] = set()
        keep_layers: set[Digest] = set()
        records = store.images()
        known = {r.id for r in records}
        for image_id in pod_images(store) - known:  # removed by rmi --force, still in a pod
            try:
                desc = _descriptor_of(store, image_id)
            except PodkitError:
                continue
            records.append(ImageRecord(desc, ()))
        for rec in records:
            b, layer = _image_refs(store, rec)
            keep_blobs |= b
            keep_layers |= layer
        mounts = mounted_paths()
        for alg in _listdir(store.path("blobs")):
            for hexname in _listdir(store.path("blobs", alg)):
                if not _HEXNAME.match(hexname):
                    continue
                d = Digest(alg, hexname)
                if d in keep_blobs:
                    continue
                p = store.blob_path(d)
                result.bytes += _size(p)
                result.blobs.append(str(d))
                if not dry_run:
                    os.unlink(p)
        for alg in _listdir(store.path("layers")):
            for hexname in _listdir(store.path("layers", alg)):
                d = Digest(alg, hexname)
                p = store.layer_dir(d)
                if d in keep_layers or p in mounts:
                    continue
                result.layers.append(str(d))
                if not dry_run:
                    trash = store.path("tmp", f"w-gc-{hexname[:16]}-{os.urandom(3).hex()}")
                    os.rename(p, trash)
                    rmtree(trash)
        # kept signatures (libaci.sources.signatures) go with the last image that names
        # their digest: its manifest's, or that of the index it was picked from
        signed = {str(r.descriptor.digest) for r in records}
        signed |= {r.descriptor.annotations.get(ANN_INDEX, "") for r in records}
        for alg in _listdir(store.path("signatures")):
            for hexname in _listdir(store.path("signatures", alg)):
                if f"{alg}:{hexname}" in signed:
                    continue
                result.signatures.append(f"{alg}:{hexname}")
                if not dry_run:
                    rmtree(store.path("signatures", alg, hexname))
    return result


def remove_image(store: Store, ref: str, *, force: bool = False) -> tuple[ImageRecord, list[str]]:
    """Untag ``ref`` (a name) or delete the image (an ID); returns what was removed."""
    from libaci import names as naming

    store.require()
    rec = store.resolve(ref)
    by_name = [n for n in naming.lookup_keys(ref) if n in rec.names]
    if by_name and len(rec.names) > 1:
        return rec, store.remove_names(rec, by_name[:1])
    if not force and in_use_by_pods(store, rec):
        raise ConflictError(f"image {rec.id} is used by a pod (remove the pod first, "
                            "or use --force)")
    return rec, store.remove_names(rec, None)


def _listdir(p: str) -> list[str]:
    try:
        return sorted(os.listdir(p))
    except FileNotFoundError:
        return []


def _size(p: str) -> int:
    try:
        return os.lstat(p).st_size
    except OSError:
        return 0
