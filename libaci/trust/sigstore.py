"""sigstore (cosign) signatures: signing, verifying, registry attachments.

cosign and skopeo store an image's signatures next to it in the same
repository, as an OCI image tagged ``sha256-<hex>.sig`` (the signed manifest's
digest with ``:`` replaced): each layer is one payload
(``application/vnd.dev.cosign.simplesigning.v1+json``) whose base64 signature
is the layer annotation ``dev.cosignproject.cosign/signature``, and the
config lists the layer digests as ``diff_ids``.  This module writes those
documents with the exact bytes c/image 5.23 writes (so that skopeo and cosign
read podkit's signatures and podkit reads theirs) and parses them back; the
registry traffic itself belongs to the caller.

Signatures are over the payload bytes: ECDSA with SHA-256 (DER ``r,s``),
RSA PKCS#1 v1.5 with SHA-256, Ed25519 pure; base64 standard with padding.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from libaci import mediatypes as mt
from libaci.reference import DockerReference
from libaci.trust.cosignkey import PrivateKey, PublicKey
from libaci.trust.errors import InvalidSignatureError
from libaci.trust.jsonutil import Struct, b64decode, go_marshal, load_strict
from libaci.trust.payload import COSIGN_SIGNATURE_TYPE, build_payload, check_digest
from libaci.trust.signature import (
    SIGNATURE_ANNOTATION,
    SIGSTORE,
    SIGSTORE_PAYLOAD_MEDIA_TYPE,
    UntrustedSignature,
)

__all__ = [
    "Attachment",
    "AttachmentLayer",
    "add_signatures",
    "attachment_tag",
    "make_signature",
    "parse_attachment",
    "sign_payload",
    "verify_payload",
]

#: c/image's iolimits.MaxSignatureBodySize, also for attachment payload layers
MAX_PAYLOAD = 4 * 1024 * 1024


def attachment_tag(manifest_digest: object) -> str:
    """The tag of the signatures of ``manifest_digest``: ``sha256-<hex>.sig``."""
    digest = str(manifest_digest)
    problem = check_digest(digest)
    if problem is not None:
        raise ValueError(f"invalid manifest digest: {problem}")
    return digest.replace(":", "-", 1) + ".sig"


def sign_payload(key: PrivateKey, payload: bytes) -> str:
    """The base64 signature of ``payload`` with ``key`` (the annotation value)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        raw = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.sign(payload)
    else:
        raise TypeError(f"cannot sign with a {type(key).__name__}")
    return base64.b64encode(raw).decode("ascii")


def _verify_one(key: PublicKey, payload: bytes, raw: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(raw, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, payload, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(raw, payload)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_payload(keys: Sequence[PublicKey], payload: bytes, signature: str | None
                   ) -> PublicKey:
    """The key of ``keys`` whose signature ``signature`` (base64) is over ``payload``.

    Raises :class:`InvalidSignatureError` when the annotation is missing or
    not base64, or no key verifies it.  Check the payload's content (with
    :func:`libaci.trust.payload.parse_payload`) only after this succeeded.
    """
    if signature is None:
        raise InvalidSignatureError(f"missing {SIGNATURE_ANNOTATION} annotation")
    if not isinstance(signature, str):
        raise InvalidSignatureError(f"{SIGNATURE_ANNOTATION} annotation is not a string")
    try:
        raw = b64decode(signature)
    except ValueError:
        raise InvalidSignatureError("signature annotation is not valid base64") from None
    for key in keys:
        if _verify_one(key, payload, raw):
            return key
    raise InvalidSignatureError("cryptographic signature verification failed")


def make_signature(key: PrivateKey, docker_reference: DockerReference | str,
                   manifest_digest: object, *, creator: str | None = None,
                   timestamp: int | None = None) -> UntrustedSignature:
    """A new sigstore signature: payload (as skopeo writes it) signed with ``key``."""
    payload = build_payload(docker_reference, manifest_digest,
                            signature_type=COSIGN_SIGNATURE_TYPE, creator=creator,
                            timestamp=timestamp)
    return UntrustedSignature.sigstore(payload, {SIGNATURE_ANNOTATION: sign_payload(key, payload)},
                                       origin="new signature")


def _digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


@attrs.frozen
class AttachmentLayer:
    """One layer of a ``.sig`` manifest: a payload descriptor and its annotations."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = attrs.field(factory=dict)
    extra: Mapping[str, Any] = attrs.field(factory=dict, eq=False)

    @property
    def signature(self) -> str | None:
        """The base64 signature annotation, if any."""
        return self.annotations.get(SIGNATURE_ANNOTATION)

    @property
    def is_signature(self) -> bool:
        return self.media_type == SIGSTORE_PAYLOAD_MEDIA_TYPE

    def to_signature(self, payload: bytes, *, origin: str = "") -> UntrustedSignature:
        """The signature this layer describes, given its blob (size and digest checked)."""
        if len(payload) != self.size:
            raise InvalidSignatureError(f"{origin or 'attachment layer'}: payload is "
                                        f"{len(payload)} bytes, the descriptor says {self.size}")
        algorithm = self.digest.partition(":")[0]
        if _digest_of(payload, algorithm) != self.digest:
            raise InvalidSignatureError(
                f"{origin or 'attachment layer'}: payload does not match digest {self.digest}")
        return UntrustedSignature.sigstore(payload, self.annotations,
                                           media_type=self.media_type, origin=origin)

    def to_go(self) -> Struct:
        """The descriptor in imgspecv1.Descriptor field order (omitempty as Go)."""
        out = Struct(mediaType=self.media_type, digest=self.digest, size=self.size)
        if self.extra.get("urls"):
            out["urls"] = self.extra["urls"]
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        for key in ("data", "platform", "artifactType"):
            if self.extra.get(key):
                out[key] = self.extra[key]
        return out


@attrs.frozen
class Attachment:
    """A ``.sig`` image to push: upload ``blobs`` (digest -> bytes), then the manifest.

    ``manifest`` goes to tag :func:`attachment_tag` of the signed digest with
    ``Content-Type: application/vnd.oci.image.manifest.v1+json``.  ``added``
    counts the signatures that were not already there.
    """

    manifest: bytes
    config: bytes
    blobs: Mapping[str, bytes]
    layers: tuple[AttachmentLayer, ...]
    added: int
    media_type: str = mt.OCI_MANIFEST

    @property
    def manifest_digest(self) -> str:
        return _digest_of(self.manifest)


def _bad(why: str) -> InvalidSignatureError:
    return InvalidSignatureError(f"invalid signature attachment: {why}")


def _descriptor(value: Any, where: str) -> tuple[str, str, int, dict[str, str], dict[str, Any]]:
    if not isinstance(value, dict):
        raise _bad(f"{where} is not a JSON object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str):
        raise _bad(f"{where}.mediaType is not a string")
    problem = check_digest(digest)
    if problem is not None:
        raise _bad(f"{where}.digest: {problem}")
    if type(size) is not int or size < 0:
        raise _bad(f"{where}.size is not a non-negative integer")
    annotations = value.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
            isinstance(v, str) for v in annotations.values()):
        raise _bad(f"{where}.annotations must map strings to strings")
    extra = {k: v for k, v in value.items()
             if k in ("urls", "data", "platform", "artifactType")}
    return media_type, str(digest), size, annotations, extra


def parse_attachment(manifest: bytes, *, content_type: str | None = None
                     ) -> list[AttachmentLayer]:
    """The layers of a ``.sig`` manifest, in order (c/image reads them all).

    ``content_type`` is the registry's ``Content-Type``; like c/image, anything
    but an OCI image manifest is refused.  Layers whose media type is not the
    simple-signing payload are returned too (``is_signature`` is False):
    c/image counts them as "non-signature attachments".
    """
    if content_type is not None and content_type.split(";")[0].strip() != mt.OCI_MANIFEST:
        raise _bad(f"unexpected media type {content_type!r} (expected {mt.OCI_MANIFEST})")
    doc = load_strict(manifest, "invalid signature attachment", InvalidSignatureError)
    if not isinstance(doc, dict):
        raise _bad("the manifest is not a JSON object")
    if doc.get("schemaVersion") != 2 or type(doc.get("schemaVersion")) is not int:
        raise _bad("schemaVersion is not 2")
    if "mediaType" in doc and doc["mediaType"] != mt.OCI_MANIFEST:
        raise _bad(f"mediaType {doc['mediaType']!r} is not {mt.OCI_MANIFEST}")
    _descriptor(doc.get("config"), "config")
    layers = doc.get("layers")
    if layers is None:
        layers = []
    if not isinstance(layers, list):
        raise _bad("layers is not a list")
    result = []
    for i, layer in enumerate(layers):
        media_type, digest, size, annotations, extra = _descriptor(layer, f"layers[{i}]")
        result.append(AttachmentLayer(media_type=media_type, digest=digest, size=size,
                                      annotations=annotations, extra=extra))
    return result


def _config_doc(config: bytes | None) -> tuple[str, str, list[str]]:
    if config is None:
        return "", "", []
    doc = load_strict(config, "invalid signature attachment config", InvalidSignatureError)
    if not isinstance(doc, dict):
        raise _bad("the config is not a JSON object")
    rootfs = doc.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if diff_ids is None:
        diff_ids = []
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise _bad("config rootfs.diff_ids is not a list of strings")
    architecture = doc.get("architecture") if isinstance(doc.get("architecture"), str) else ""
    os_name = doc.get("os") if isinstance(doc.get("os"), str) else ""
    return architecture, os_name, list(diff_ids)


def add_signatures(signatures: Iterable[UntrustedSignature], *, manifest: bytes | None = None,
                   config: bytes | None = None) -> Attachment:
    """The ``.sig`` image with ``signatures`` added, as c/image's ``PutSignatures`` makes it.

    Give the current ``.sig`` manifest and its config blob when the tag
    exists (a signature already present, same media type, digest, size and
    annotations, is not added twice), or neither for a new one.  Only the
    blobs that are new are returned for upload, with the config.
    """
    if (manifest is None) != (config is None):
        raise ValueError("give both the existing manifest and its config, or neither")
    layers = parse_attachment(manifest) if manifest is not None else []
    kept: dict[str, Any] = {}
    if manifest is not None:  # fields Go's imgspecv1.Manifest keeps when re-serialising
        old = load_strict(manifest, "invalid signature attachment", InvalidSignatureError)
        kept = {k: old[k] for k in ("subject", "annotations")
                if isinstance(old.get(k), dict) and old[k]}
    architecture, os_name, diff_ids = _config_doc(config)
    blobs: dict[str, bytes] = {}
    added = 0
    for signature in signatures:
        if signature.kind != SIGSTORE:
            raise ValueError("only sigstore signatures go into a .sig attachment")
        if len(signature.blob) > MAX_PAYLOAD:
            raise ValueError(f"a signature payload must not exceed {MAX_PAYLOAD} bytes")
        layer = AttachmentLayer(media_type=signature.media_type,
                                digest=_digest_of(signature.blob), size=len(signature.blob),
                                annotations=dict(signature.annotations))
        if any(old.media_type == layer.media_type and old.digest == layer.digest
               and old.size == layer.size and dict(old.annotations) == dict(layer.annotations)
               for old in layers):
            continue
        layers.append(layer)
        diff_ids.append(layer.digest)
        blobs[layer.digest] = signature.blob
        added += 1
    config_bytes = go_marshal(Struct(
        architecture=architecture, os=os_name, config={},
        rootfs=Struct(type="layers", diff_ids=diff_ids)))
    config_digest = _digest_of(config_bytes)
    blobs[config_digest] = config_bytes
    manifest_bytes = go_marshal(Struct(
        schemaVersion=2,
        mediaType=mt.OCI_MANIFEST,
        config=Struct(mediaType=mt.OCI_CONFIG, digest=config_digest, size=len(config_bytes)),
        layers=[layer.to_go() for layer in layers],
        **kept,
    ))
    return Attachment(manifest=manifest_bytes, config=config_bytes, blobs=blobs,
                      layers=tuple(layers), added=added)
