"""Untrusted signatures as they arrive, and their on-disk blob format.

A signature reaches podkit from a registry attachment (sigstore), from a
lookaside location or a ``dir:`` copy (``signature-N`` files).  Whatever its
origin it becomes an :class:`UntrustedSignature`, which is what policy
evaluation takes.  ``signature-N`` files use c/image's blob format
(internal/signature): a raw OpenPGP message for simple signing (recognised by
its first byte), or ``\\x00<format>\\n<body>`` where ``<format>`` is
``simple-signing`` or ``sigstore-json`` and the sigstore body is
``{"mimeType":...,"payload":<base64>,"annotations":{...}}``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Literal

import attrs

from libaci.trust.errors import InvalidSignatureError
from libaci.trust.jsonutil import Struct, b64decode, go_marshal, load_strict

__all__ = [
    "SIGNATURE_ANNOTATION",
    "SIGSTORE",
    "SIGSTORE_PAYLOAD_MEDIA_TYPE",
    "SIMPLE_SIGNING",
    "UntrustedSignature",
    "decode_signature_blob",
    "encode_signature_blob",
    "looks_like_openpgp",
]

SIMPLE_SIGNING: Literal["simple-signing"] = "simple-signing"
SIGSTORE: Literal["sigstore"] = "sigstore"
SignatureKind = Literal["simple-signing", "sigstore"]

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGSTORE_PAYLOAD_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
_SIGSTORE_FORMAT = b"sigstore-json"
_SIMPLE_FORMAT = b"simple-signing"

# First bytes of an OpenPGP message as gpg writes it: compressed data,
# one-pass signature, or a signature packet (old and new packet formats).
_OPENPGP_FIRST_BYTES = frozenset(
    {0xA0, 0xA1, 0xA2, 0xA3, 0xC8, 0x90, 0x91, 0x92, 0xC4, 0x88, 0x89, 0x8A, 0x8B, 0xC2})


def looks_like_openpgp(blob: bytes) -> bool:
    """Whether ``blob`` starts like an OpenPGP signed message (c/image's sniffing)."""
    return bool(blob) and blob[0] in _OPENPGP_FIRST_BYTES


@attrs.frozen
class UntrustedSignature:
    """One signature, not yet verified.

    ``kind`` is :data:`SIGSTORE` or :data:`SIMPLE_SIGNING`.  For sigstore,
    ``blob`` is the payload (the attachment layer) and ``signature`` the
    base64 value of its ``dev.cosignproject.cosign/signature`` annotation;
    for simple signing ``blob`` is the binary OpenPGP message that contains
    the payload, and ``signature`` is None.  ``origin`` says where it came
    from, for messages (``"sha256-....sig layer 1"``, a lookaside URL).
    """

    kind: SignatureKind
    blob: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    signature: str | None = None
    annotations: Mapping[str, str] = attrs.field(factory=dict)
    media_type: str = SIGSTORE_PAYLOAD_MEDIA_TYPE
    origin: str = attrs.field(default="", eq=False)

    @classmethod
    def sigstore(cls, payload: bytes, annotations: Mapping[str, str], *,
                 media_type: str = SIGSTORE_PAYLOAD_MEDIA_TYPE,
                 origin: str = "") -> UntrustedSignature:
        """A sigstore signature from an attachment layer's blob and annotations."""
        return cls(kind=SIGSTORE, blob=payload,
                   signature=annotations.get(SIGNATURE_ANNOTATION),
                   annotations=dict(annotations), media_type=media_type, origin=origin)

    @classmethod
    def simple(cls, message: bytes, *, origin: str = "") -> UntrustedSignature:
        """An OpenPGP simple-signing signature (the signed message bytes)."""
        return cls(kind=SIMPLE_SIGNING, blob=message, origin=origin)


def encode_signature_blob(signature: UntrustedSignature) -> bytes:
    """The ``signature-N`` file content for ``signature`` (c/image ``signature.Blob``)."""
    if signature.kind == SIMPLE_SIGNING:
        return signature.blob
    body = Struct(mimeType=signature.media_type,
                  payload=base64.b64encode(signature.blob).decode(),
                  annotations=dict(signature.annotations))
    return b"\x00" + _SIGSTORE_FORMAT + b"\n" + go_marshal(body)


def _sigstore_body(body: bytes, origin: str) -> UntrustedSignature:
    doc = load_strict(body, "invalid sigstore signature blob", InvalidSignatureError)
    if not isinstance(doc, dict) or set(doc) != {"mimeType", "payload", "annotations"}:
        raise InvalidSignatureError(
            "invalid sigstore signature blob: expected exactly mimeType, payload and annotations")
    media_type, payload, annotations = doc["mimeType"], doc["payload"], doc["annotations"]
    if not isinstance(media_type, str) or not isinstance(payload, str):
        raise InvalidSignatureError("invalid sigstore signature blob: mimeType and payload "
                                    "must be strings")
    if annotations is None:
        annotations = {}
    if not isinstance(annotations, dict) or not all(
            isinstance(v, str) for v in annotations.values()):
        raise InvalidSignatureError("invalid sigstore signature blob: annotations must map "
                                    "strings to strings")
    try:
        raw = b64decode(payload)
    except ValueError:
        raise InvalidSignatureError(
            "invalid sigstore signature blob: payload is not base64") from None
    return UntrustedSignature.sigstore(raw, annotations, media_type=media_type, origin=origin)


def decode_signature_blob(blob: bytes, *, origin: str = "") -> UntrustedSignature:
    """Parse a ``signature-N`` file (c/image ``signature.FromBlob``)."""
    if not blob:
        raise InvalidSignatureError(f"{origin or 'signature'}: empty signature blob")
    if looks_like_openpgp(blob):
        return UntrustedSignature.simple(blob, origin=origin)
    if blob[0] != 0:
        raise InvalidSignatureError(
            f"{origin or 'signature'}: unrecognized signature format, starting with "
            f"byte 0x{blob[0]:02x}")
    fmt, newline, rest = blob[1:].partition(b"\n")
    if not newline or any(b < 32 or b >= 0x7F for b in fmt):
        raise InvalidSignatureError(f"{origin or 'signature'}: invalid signature format header")
    if fmt == _SIMPLE_FORMAT:
        return UntrustedSignature.simple(rest, origin=origin)
    if fmt == _SIGSTORE_FORMAT:
        return _sigstore_body(rest, origin)
    raise InvalidSignatureError(
        f"{origin or 'signature'}: unrecognized signature format {fmt.decode('ascii')!r}")
