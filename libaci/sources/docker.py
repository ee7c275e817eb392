"""``docker://[REGISTRY/]REPO[:TAG|@DIGEST]``: an image from an OCI distribution registry.

The manifest is fetched with every manifest type in Accept (never letting
the registry fall back to schema1), checked against the requested digest,
and handed with a blob opener to the shared OCI import, which picks the
platform, streams the layers (several at once, resumable with ``Range`` within
the process and across a killed one) and verifies them.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from libaci import mediatypes as mt
from libaci import names as naming
from libaci.errors import NotFoundError, UsageError
from libaci.oci import Descriptor
from libaci.reference import parse_docker_reference
from libaci.registry.client import Registry, TLSOptions, api_host
from libaci.sources import Fetched, FetchOptions
from libaci.store import Store
from libaci.store import image_id_to_digest as image_digest


def fetch(store: Store, rest: str, options: FetchOptions) -> Fetched:
    ref = parse_docker_reference(rest.removeprefix("//"))
    name = str(ref)
    names = [naming.normalize(options.name)] if options.name else [name]
    if options.pull_policy not in ("never", "new", "update"):
        raise UsageError(f"--pull-policy: {options.pull_policy!r} is not never, new or update")
    if options.pull_policy in ("never", "new") and store.exists():
        try:
            rec = store.resolve(name)
            return Fetched(rec.id, rec.names)
        except NotFoundError:
            if options.pull_policy == "never":
                raise NotFoundError(f"{name} is not in the store and --pull-policy=never "
                                    "forbids fetching it") from None
    elif options.pull_policy == "never":
        raise NotFoundError(f"{name} is not in the store (--pull-policy=never)")
    repo = ref.path
    reg = Registry(api_host(ref.domain), tls=options.tls or TLSOptions(),
                   credentials=options.credentials)
    top, raw = reg.get_manifest(repo, ref.digest or ref.tag or "latest")
    options.say(f"{name}: manifest {top.digest}")
    if top.media_type in mt.MANIFEST_TYPES and store.exists():
        have = next((r for r in store.images() if r.descriptor.digest == top.digest), None)
        if have is not None:  # unchanged since the last fetch: nothing to download
            if options.verify is not None:  # the trust policy, as for a new image
                options.verify(f"docker://{name}", top.digest, raw)
            if not set(names) <= set(have.names):
                store.add_image(have.descriptor, names)
            options.say(f"{name}: image is up to date")
            return Fetched(have.id, tuple(dict.fromkeys((*have.names, *names))))
    cache = {top.digest: raw}

    def opener(desc: Descriptor) -> BinaryIO:
        if desc.digest in cache:
            return io.BytesIO(cache[desc.digest])
        if desc.media_type in (mt.MANIFEST_TYPES | mt.INDEX_TYPES):
            _, data = reg.get_manifest(repo, str(desc.digest))
            return io.BytesIO(data)
        return reg.open_blob(repo, desc)

    def ranged(desc: Descriptor, offset: int) -> BinaryIO:
        return reg.open_blob(repo, desc, offset)

    # only a fetch that downloads needs these (a warm re-fetch stops above)
    from libaci.registry import blobcache
    from libaci.sources.oci_import import import_manifest

    with store.writing() as staging:
        result = import_manifest(staging, opener, top, names, options, f"docker://{name}",
                                 ranged=ranged)
    manifest = store.manifest(image_digest(result.image_id))
    blobcache.record(store, [str(d.digest) for d in (manifest.config, *manifest.layers)],
                     f"{reg.host}/{repo}")
    return result
