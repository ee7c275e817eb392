"""``FILE.aci`` (or ``file://PATH``): an appc image archive.

The archive is decompressed once into a staged blob (the uncompressed tar,
whose sha512 is the appc image ID), its layout and manifest are checked, and
its rootfs is extracted as the image's single layer, keyed by that ID.
:func:`import_aci` does this for any forward-only stream, so ACIs fetched by
URL (:mod:`libaci.sources.aciurl`) stream through the same code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import BinaryIO

from libaci import mediatypes as mt
from libaci.aci import AciInfo, scan_aci
from libaci.digest import Digest
from libaci.errors import NotFoundError
from libaci.names import appc_store_name
from libaci.oci import Descriptor
from libaci.reference import parse_appc_name
from libaci.sources import Fetched, FetchOptions
from libaci.store import ANN_ACI_MANIFEST, ANN_CREATED, ANN_SOURCE, Store
from libaci.unpack import extract_one

ANN_SIGNATURE_URL = "io.podkit.aci.signature-url"  # where its .aci.asc is, for verify


def fetch(store: Store, path: str, options: FetchOptions) -> Fetched:
    try:
        src = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise NotFoundError(f"ACI {path} does not exist") from None
    except IsADirectoryError:
        raise NotFoundError(f"ACI {path} is a directory") from None
    with src:
        return import_aci(store, src, options, source=os.path.abspath(path))


def import_aci(store: Store, src: BinaryIO, options: FetchOptions, *, source: str,
               annotations: Mapping[str, str] | None = None,
               check: Callable[[AciInfo], None] | None = None) -> Fetched:
    """Import the ACI read (forwards, once) from ``src``: a file, a pipe, an HTTP body.

    ``source`` becomes the image's source annotation and ``annotations`` are
    added to its descriptor; ``check`` sees the scanned ACI before anything
    is extracted or published and refuses it by raising.
    """
    with store.writing() as staging:
        blob, fd = staging.tmpfile("aci")
        with os.fdopen(fd, "wb") as out:
            info = scan_aci(src, copy_to=out)
            out.flush()
            os.fsync(out.fileno())
        if check is not None:
            check(info)
        digest = Digest.parse("sha512:" + info.image_id.removeprefix("sha512-"))
        staging.blobs[digest] = blob
        manifest_digest = staging.put_bytes(info.manifest_raw)
        if store.layer_info(digest) is None:
            dest = os.path.join(staging.dir, f"layer-{digest.encoded[:32]}")
            options.say(f"Extracting {info.manifest.name}")
            extract_one(blob, dest, None, prefix="rootfs/")
            staging.layers[digest] = dest
        if options.name:
            app = parse_appc_name(options.name)
            names = [appc_store_name(app.name, app.version)]
        else:
            names = [appc_store_name(info.manifest.name, info.manifest.version)]
        desc = Descriptor(mt.APPC_ACI, digest, info.size, annotations={
            ANN_ACI_MANIFEST: str(manifest_digest),
            ANN_CREATED: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            ANN_SOURCE: source,
            **(annotations or {}),
        })
        staging.commit(desc, names)
        return Fetched(info.image_id, tuple(names))
