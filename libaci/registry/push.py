"""Pushing an image from the store to a registry, as ``docker push`` does.

Each blob is first asked for with HEAD and skipped when the registry has it
("Layer already exists"); a blob known to sit in another repository of the
same registry is mounted instead of uploaded; the rest are uploaded in
chunks (POST, PATCH with Content-Range, PUT ?digest=), several at once.
The manifest goes last, byte for byte, with its own media type, so the
pushed digest is the image ID.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from libaci.digest import Digest
from libaci.errors import UsageError
from libaci.oci import Descriptor
from libaci.progress import QUIET, CountingReader, Sink
from libaci.reference import DockerReference
from libaci.registry import blobcache
from libaci.registry.client import Registry
from libaci.store import ImageRecord, Store

PARALLEL = 4


def push_image(store: Store, rec: ImageRecord, dest: DockerReference, reg: Registry,
               progress: Sink = QUIET) -> Digest:
    if rec.is_aci:
        raise UsageError(f"{rec.id} is an appc image; registries take OCI and Docker images")
    if dest.digest and dest.digest != str(rec.descriptor.digest):
        raise UsageError(f"destination digest {dest.digest} is not the image's "
                         f"{rec.descriptor.digest}")
    manifest = store.manifest(rec.descriptor.digest)
    repo = dest.path
    location = f"{reg.host}/{repo}"

    def push_blob(desc: Descriptor) -> None:
        short = desc.digest.encoded[:12]
        progress.item(short, "Preparing")
        if reg.blob_exists(repo, desc.digest, scope=f"repository:{repo}:pull,push"):
            progress.item(short, "Layer already exists, skipping")
            return
        for source in blobcache.candidates(store, str(desc.digest), reg.host):
            if source != repo and reg.mount(repo, desc.digest, source):
                progress.item(short, f"Mounted from {source}")
                return
        with store.open_blob(desc.digest) as f:
            reg.upload(repo, CountingReader(f, progress, short, "Pushing", desc.size),
                       desc.digest, desc.size)
        progress.item(short, "Pushed")

    blobs = list({d.digest: d for d in [manifest.config, *manifest.layers]}.values())
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(blobs))) as ex:
        for fut in [ex.submit(push_blob, d) for d in blobs]:
            fut.result()
    tag = dest.digest or dest.tag or "latest"
    digest = reg.put_manifest(repo, tag, manifest.raw, manifest.effective_media_type)
    blobcache.record(store, [str(d.digest) for d in blobs], location)
    progress.message(f"{tag}: digest: {digest} size: {len(manifest.raw)}")
    return digest
