"""The simple-signing payload: what a container signature actually signs.

Both signature kinds sign the same JSON document (containers-signature(5)):
``critical.identity.docker-reference`` (the image name the signer vouches
for), ``critical.image.docker-manifest-digest`` (the manifest it vouches for),
``critical.type`` (``atomic container signature`` for OpenPGP simple signing,
``cosign container image signature`` for sigstore) and free ``optional``
fields (``creator``, integer ``timestamp``).

:func:`build_payload` writes the exact bytes skopeo writes (a Go map:
sorted keys, compact, no newline), so podkit's signatures are
indistinguishable from skopeo's.  :func:`parse_payload` is as strict as
c/image (signature/internal): exactly ``critical`` and ``optional`` at the
top, exactly ``type``/``image``/``identity`` in ``critical``, an integer
timestamp, unknown ``optional`` keys ignored, ``"optional": null`` accepted
only for cosign's own sigstore payloads.  Parse only bytes whose signature
has already verified: the content is untrusted until then.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from libaci.reference import DockerReference
from libaci.trust.errors import InvalidSignatureError
from libaci.trust.jsonutil import go_marshal, load_strict, shown

__all__ = [
    "ATOMIC_SIGNATURE_TYPE",
    "COSIGN_SIGNATURE_TYPE",
    "SignaturePayload",
    "build_payload",
    "check_digest",
    "parse_payload",
]

ATOMIC_SIGNATURE_TYPE = "atomic container signature"
COSIGN_SIGNATURE_TYPE = "cosign container image signature"
SIGNATURE_TYPES = frozenset({ATOMIC_SIGNATURE_TYPE, COSIGN_SIGNATURE_TYPE})
#: c/image's iolimits.MaxSignatureBodySize
MAX_PAYLOAD = 4 * 1024 * 1024
_INT64 = (-(2**63), 2**63 - 1)

# go-digest: an algorithm podkit can compute, with its exact encoding.
_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_RE = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)", re.ASCII)
_HEX_RE = re.compile(r"[a-f0-9]+", re.ASCII)


def check_digest(text: object) -> str | None:
    """Why ``text`` is not a digest go-digest's ``Parse`` accepts, or None."""
    if not isinstance(text, str):
        return "the digest is not a string"
    match = _DIGEST_RE.fullmatch(text)
    if match is None:
        return f"{shown(text)} is not algorithm:encoded"
    algorithm, encoded = match.groups()
    width = _DIGEST_HEX.get(algorithm)
    if width is None:
        return f"unsupported digest algorithm {shown(algorithm)}"
    if len(encoded) != width or not _HEX_RE.fullmatch(encoded):
        return f"{algorithm} digest must be {width} lowercase hex digits"
    return None


@attrs.frozen
class SignaturePayload:
    """A parsed payload.  ``to_bytes()`` gives back the bytes it was parsed from.

    ``optional_null`` records cosign's ``"optional": null``;
    ``optional_extra`` keeps unknown ``optional`` members (cosign ``-a``
    annotations) so that the document round-trips.
    """

    signature_type: str
    docker_reference: str
    manifest_digest: str
    creator: str | None = None
    timestamp: int | None = None
    optional_null: bool = False
    optional_extra: Mapping[str, Any] = attrs.field(factory=dict, eq=False)

    @property
    def is_sigstore(self) -> bool:
        return self.signature_type == COSIGN_SIGNATURE_TYPE

    def to_dict(self) -> dict[str, Any]:
        optional: dict[str, Any] | None = None
        if not self.optional_null:
            optional = dict(self.optional_extra)
            if self.creator is not None:
                optional["creator"] = self.creator
            if self.timestamp is not None:
                optional["timestamp"] = self.timestamp
        return {
            "critical": {
                "identity": {"docker-reference": self.docker_reference},
                "image": {"docker-manifest-digest": self.manifest_digest},
                "type": self.signature_type,
            },
            "optional": optional,
        }

    def to_bytes(self) -> bytes:
        """The payload as Go's ``json.Marshal`` writes it (what skopeo signs)."""
        return go_marshal(self.to_dict())


def build_payload(docker_reference: DockerReference | str, manifest_digest: object, *,
                  signature_type: str = COSIGN_SIGNATURE_TYPE, creator: str | None = None,
                  timestamp: int | None = None) -> bytes:
    """The payload bytes to sign for ``docker_reference`` at ``manifest_digest``.

    Pass the fully-qualified reference the signature should vouch for (as
    skopeo: ``host[:port]/repo:tag``), the manifest digest (a str or a
    :class:`libaci.digest.Digest`), ``ATOMIC_SIGNATURE_TYPE`` for OpenPGP
    simple signing, and, like skopeo, a ``creator`` (``"podkit 0.1.0"``) and
    ``timestamp=int(time.time())``; both are left out when None.
    """
    reference = str(docker_reference)
    digest = str(manifest_digest)
    if not reference:
        raise ValueError("the docker reference of a signature must not be empty")
    problem = check_digest(digest)
    if problem is not None:
        raise ValueError(f"invalid manifest digest: {problem}")
    if signature_type not in SIGNATURE_TYPES:
        raise ValueError(f"unknown signature type {signature_type!r}")
    if timestamp is not None and (type(timestamp) is not int
                                  or not _INT64[0] <= timestamp <= _INT64[1]):
        raise ValueError("the timestamp must be a 64-bit integer (seconds since the epoch)")
    return SignaturePayload(signature_type=signature_type, docker_reference=reference,
                            manifest_digest=digest, creator=creator,
                            timestamp=timestamp).to_bytes()


def _bad(why: str) -> InvalidSignatureError:
    return InvalidSignatureError(f"invalid signature payload: {why}")


def _exact(value: Any, name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{name} is not a JSON object")
    for key in value:
        if key not in keys:
            raise _bad(f"unknown key {shown(key)} in {name}")
    for key in keys:
        if key not in value:
            raise _bad(f"key {key!r} missing in {name}")
    return value


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _bad(f"{name} is not a string")
    return value


def _timestamp(value: Any) -> int:
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        raise _bad("optional.timestamp is not an integer")
    if not _INT64[0] <= value < 2**63:
        raise _bad("optional.timestamp is out of range")
    return value


def parse_payload(data: bytes, *, signature_type: str | None = None) -> SignaturePayload:
    """Parse a payload as c/image does; raise :class:`InvalidSignatureError`.

    ``signature_type`` is the ``critical.type`` the caller expects
    (``COSIGN_SIGNATURE_TYPE`` for a sigstore attachment,
    ``ATOMIC_SIGNATURE_TYPE`` for an OpenPGP signature); None accepts either.
    """
    if signature_type is not None and signature_type not in SIGNATURE_TYPES:
        raise ValueError(f"unknown signature type {signature_type!r}")
    if len(data) > MAX_PAYLOAD:
        raise _bad(f"larger than {MAX_PAYLOAD} bytes")
    # Numbers as Go's decoder reads them (float64): the timestamp check and the
    # bytes of unknown optional fields written back are then Go's.
    doc = _exact(load_strict(data, "invalid signature payload", InvalidSignatureError,
                             go_numbers=True), "the payload", ("critical", "optional"))
    critical = _exact(doc["critical"], "critical", ("type", "image", "identity"))
    found_type = _string(critical["type"], "critical.type")
    if found_type not in SIGNATURE_TYPES or (signature_type is not None
                                             and found_type != signature_type):
        expected = signature_type or " or ".join(sorted(SIGNATURE_TYPES))
        raise _bad(f"unrecognized signature type {shown(found_type)} (expected {expected})")

    optional = doc["optional"]
    optional_null = optional is None
    if optional_null and found_type != COSIGN_SIGNATURE_TYPE:
        raise _bad("optional is null (only cosign's own sigstore payloads may do that)")
    if not optional_null and not isinstance(optional, dict):
        raise _bad("optional is not a JSON object")
    extra = dict(optional or {})
    creator = None
    if "creator" in extra:
        creator = _string(extra.pop("creator"), "optional.creator")
    timestamp = None
    if "timestamp" in extra:
        timestamp = _timestamp(extra.pop("timestamp"))

    image = _exact(critical["image"], "critical.image", ("docker-manifest-digest",))
    digest = _string(image["docker-manifest-digest"], "critical.image.docker-manifest-digest")
    problem = check_digest(digest)
    if problem is not None:
        raise _bad(f"invalid docker-manifest-digest: {problem}")
    identity = _exact(critical["identity"], "critical.identity", ("docker-reference",))
    reference = _string(identity["docker-reference"], "critical.identity.docker-reference")
    return SignaturePayload(signature_type=found_type, docker_reference=reference,
                            manifest_digest=digest, creator=creator, timestamp=timestamp,
                            optional_null=optional_null, optional_extra=extra)
