"""Signatures that travel with images: from registries, lookasides and ``.asc`` files
into the store, and from podkit-sign into registries.

Where signatures come from (the formats are :mod:`libaci.trust`'s):

* sigstore (cosign) attachments: the OCI image tagged ``sha256-<hex>.sig`` in
  the image's repository, read and written with a
  :class:`~libaci.registry.client.Registry`;
* OpenPGP simple signatures in a lookaside location
  (``<base>/<repo>@sha256=<hex>/signature-N``, ``file://`` or ``http(s)://``),
  configured by registries.d;
* appc: the detached ``.aci.asc`` next to an ACI's URL, which a server may
  answer with ``202 Accepted`` ("not ready yet, ask again after the image"),
  as rkt handled it.

Where they are kept: ``STORE/signatures/<alg>/<hex>/`` for the manifest
digest they sign (the image's manifest, or the index it was picked from):
``signature-1``, ``signature-2``, ... in c/image's ``signature-N`` blob format
(:func:`libaci.trust.signature.encode_signature_blob`), so that podkit-verify
works offline; an ACI's detached signature is ``aci.asc`` there with
``aci.json`` (what it signed, which key).  Files appear atomically (written
aside, fsync, hard link), a signature already kept is not kept twice, and gc
removes the directory with the last image that names its digest.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from libaci import mediatypes as mt
from libaci.digest import Digest
from libaci.errors import NotFoundError
from libaci.oci import Descriptor
from libaci.reference import DockerReference
from libaci.store import Store
from libaci.trust.errors import InvalidSignatureError, LookasideError
from libaci.trust.signature import (
    UntrustedSignature,
    decode_signature_blob,
    encode_signature_blob,
)

if TYPE_CHECKING:
    from libaci.http import HttpClient
    from libaci.registry.client import Registry

__all__ = [
    "ACI_SIGNATURE",
    "DEFERRED",
    "SIGNATURES_DIR",
    "fetch_asc",
    "keep",
    "keep_asc",
    "lookaside_signatures",
    "push_sigstore",
    "read_attachment",
    "signature_dir",
    "sigstore_signatures",
    "stored",
    "stored_asc",
]

SIGNATURES_DIR = "signatures"
ACI_SIGNATURE = "aci.asc"
ACI_SIGNATURE_INFO = "aci.json"
MAX_SIGNATURE = 4 * 1024 * 1024
MAX_KEPT = 128
#: what :func:`fetch_asc` returns for a ``202 Accepted`` signature
DEFERRED = b""


# -- the store's copies -----------------------------------------------------------------

def signature_dir(store: Store, digest: Digest | str) -> str:
    """``STORE/signatures/<alg>/<hex>``: where the signatures of ``digest`` are kept."""
    d = digest if isinstance(digest, Digest) else Digest.parse(digest)
    return store.path(SIGNATURES_DIR, d.algorithm, d.encoded)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SIGNATURE + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if len(data) > MAX_SIGNATURE:
        raise InvalidSignatureError(f"{path} is larger than {MAX_SIGNATURE} bytes")
    return data


def stored(store: Store, digest: Digest | str) -> list[UntrustedSignature]:
    """The signatures kept for ``digest``, in order (none when there are none)."""
    base = signature_dir(store, digest)
    out = []
    for index in range(1, MAX_KEPT + 1):
        path = os.path.join(base, f"signature-{index}")
        data = _read(path)
        if data is None:
            break
        out.append(decode_signature_blob(data, origin=f"stored signature-{index}"))
    return out


def _link_new(directory: str, name: str, data: bytes) -> bool:
    """Create ``directory/name`` with ``data`` atomically; False if it exists."""
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, os.path.join(directory, name))
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def keep(store: Store, digest: Digest | str,
         signatures: Sequence[UntrustedSignature]) -> int:
    """Add ``signatures`` to those kept for ``digest``; how many were new."""
    base = signature_dir(store, digest)
    have = [encode_signature_blob(s) for s in stored(store, digest)]
    added = 0
    for signature in signatures:
        blob = encode_signature_blob(signature)
        if blob in have:
            continue
        os.makedirs(base, mode=0o755, exist_ok=True)
        for index in range(len(have) + 1, MAX_KEPT + 1):
            if _link_new(base, f"signature-{index}", blob):
                break
            other = _read(os.path.join(base, f"signature-{index}"))
            if other == blob:  # another fetch kept the same one just now
                break
        else:
            raise LookasideError(f"already {MAX_KEPT} signatures kept in {base}")
        have.append(blob)
        added += 1
    return added


def keep_asc(store: Store, digest: Digest | str, asc: bytes, info: dict[str, Any]) -> None:
    """Keep an ACI's detached signature and what it was checked as (``aci.json``)."""
    base = signature_dir(store, digest)
    os.makedirs(base, mode=0o755, exist_ok=True)
    from libaci.fsutil import atomic_write

    atomic_write(os.path.join(base, ACI_SIGNATURE), asc)
    atomic_write(os.path.join(base, ACI_SIGNATURE_INFO),
                 json.dumps(info, sort_keys=True).encode() + b"\n")


def stored_asc(store: Store, digest: Digest | str) -> tuple[bytes, dict[str, Any]] | None:
    """(``aci.asc``, ``aci.json`` content) kept for an ACI, or None."""
    base = signature_dir(store, digest)
    asc = _read(os.path.join(base, ACI_SIGNATURE))
    if asc is None:
        return None
    try:
        info = json.loads(_read(os.path.join(base, ACI_SIGNATURE_INFO)) or b"{}")
    except ValueError:
        info = {}
    return asc, info if isinstance(info, dict) else {}


# -- registries: sigstore attachments ------------------------------------------------------

def _attachment_tag(digest: Digest | str) -> str:
    from libaci.trust.sigstore import attachment_tag

    return attachment_tag(str(digest))


def read_attachment(registry: Registry, repo: str, digest: Digest | str
                    ) -> tuple[bytes, bytes, str] | None:
    """(manifest, config, content type) of ``repo:sha256-<hex>.sig``, None if absent."""
    from libaci.trust.jsonutil import load_strict
    from libaci.trust.sigstore import parse_attachment

    try:
        desc, raw = registry.get_manifest(repo, _attachment_tag(digest))
    except NotFoundError:
        return None
    parse_attachment(raw, content_type=desc.media_type)
    doc = load_strict(raw, "invalid signature attachment", InvalidSignatureError)
    config = Descriptor.from_dict(doc["config"])
    return raw, _read_blob(registry, repo, config), desc.media_type


def _read_blob(registry: Registry, repo: str, desc: Descriptor) -> bytes:
    if desc.size > MAX_SIGNATURE:
        raise InvalidSignatureError(f"signature attachment blob {desc.digest} is "
                                    f"{desc.size} bytes (limit {MAX_SIGNATURE})")
    with contextlib.closing(registry.open_blob(repo, desc)) as f:
        data = f.read(desc.size + 1)
    if len(data) != desc.size or Digest.of_bytes(data, desc.digest.algorithm) != desc.digest:
        raise InvalidSignatureError(f"signature attachment blob {desc.digest} does not "
                                    "match its descriptor")
    return data


def sigstore_signatures(registry: Registry, repo: str,
                        digest: Digest | str) -> list[UntrustedSignature]:
    """The sigstore signatures attached to ``digest`` in ``repo`` (none if no ``.sig``)."""
    from libaci.trust.sigstore import parse_attachment

    tag = _attachment_tag(digest)
    try:
        desc, raw = registry.get_manifest(repo, tag)
    except NotFoundError:
        return []
    out = []
    for number, layer in enumerate(parse_attachment(raw, content_type=desc.media_type), 1):
        origin = f"{tag} layer {number}"
        blob = _read_blob(registry, repo, Descriptor(layer.media_type, Digest.parse(layer.digest),
                                                     layer.size))
        out.append(layer.to_signature(blob, origin=origin))
    return out


def push_sigstore(registry: Registry, repo: str, digest: Digest | str,
                  signatures: Sequence[UntrustedSignature]) -> tuple[str, Digest, int]:
    """Add ``signatures`` to ``repo:sha256-<hex>.sig`` (merging with what is there).

    Returns (tag, digest of the new ``.sig`` manifest, number of signatures added).
    Blobs the registry has are not uploaded again; the manifest goes last,
    with the OCI manifest content type that distribution needs.
    """
    import io

    from libaci.trust.sigstore import add_signatures

    tag = _attachment_tag(digest)
    current = read_attachment(registry, repo, digest)
    attachment = add_signatures(signatures, manifest=current[0] if current else None,
                                config=current[1] if current else None)
    scope = f"repository:{repo}:pull,push"
    for blob_digest, data in attachment.blobs.items():
        d = Digest.parse(blob_digest)
        if not registry.blob_exists(repo, d, scope=scope):
            registry.upload(repo, io.BytesIO(data), d, len(data))
    pushed = registry.put_manifest(repo, tag, attachment.manifest, mt.OCI_MANIFEST)
    return tag, pushed, attachment.added


# -- lookasides ---------------------------------------------------------------------------

def lookaside_signatures(base: str, ref: DockerReference, digest: Digest | str, *,
                         client: HttpClient | None = None) -> list[UntrustedSignature]:
    """The simple signatures stored for ``digest`` under the lookaside ``base`` URL.

    ``file://`` is read directly; ``http(s)://`` with ``client`` (without one,
    such a lookaside is skipped).
    """
    from libaci.trust import lookaside

    fetch: Callable[[str], bytes | None]
    if base.startswith("file:"):
        fetch = lookaside.read_file_url
    elif client is not None:
        def fetch(url: str) -> bytes | None:
            from libaci.http import read_capped

            with client.get(url, ok=(200, 404), what=url) as resp:
                if resp.status_code == 404:
                    return None
                return read_capped(resp, MAX_SIGNATURE, url)
    else:
        return []
    blobs = lookaside.read_signatures(base, ref, str(digest), fetch=fetch)
    return [decode_signature_blob(b, origin=lookaside.signature_url(base, ref, str(digest), i))
            for i, b in enumerate(blobs, 1)]


# -- appc ----------------------------------------------------------------------------------

def fetch_asc(client: HttpClient, url: str) -> bytes | None:
    """An ACI's ``.asc``: its bytes, :data:`DEFERRED` (HTTP 202), or None (404/410)."""
    from libaci.http import read_capped

    with client.get(url, ok=(200, 202, 404, 410), what=url) as resp:
        if resp.status_code in (404, 410):
            return None
        if resp.status_code == 202:
            return DEFERRED
        data = read_capped(resp, MAX_SIGNATURE, url)
    if not data:
        raise InvalidSignatureError(f"{url}: the signature is empty")
    return data
