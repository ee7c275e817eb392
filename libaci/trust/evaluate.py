"""Policy evaluation: may this image be used, and if not, why not.

Two steps, so that the decision itself is a pure function:

1. :func:`verify_signatures` does the cryptography.  For every key source
   the requirements name (:class:`KeySource`: a ``keyPath``, ``keyPaths``
   or ``keyData`` of one requirement) it checks every
   :class:`~libaci.trust.signature.UntrustedSignature`: sigstore ones here
   with ``cryptography``, OpenPGP ones through the ``openpgp`` parameter
   (gpgv in stage0, see :mod:`libaci.trust.openpgp`).  Signatures that
   verify have their payload parsed.  The result, :class:`Evidence`, is a
   list of facts (:class:`VerifiedSignature`: kind, which key sources
   verified it and with which key, the identity and digest it claims) plus
   the key sources that could not be read.
2. :func:`decide` takes the requirements, the image (:class:`~libaci.trust.
   scope.ImageName`), its manifest digest and the evidence, and returns a
   :class:`Decision`: accepted, or refused with a one-line reason (no
   signature, not signed by a trusted key, identity mismatch, digest
   mismatch, invalid signature).  No I/O.

:func:`evaluate` runs both for a :class:`~libaci.trust.policy.Policy`.
As in c/image every requirement of the scope must pass, and a signature
requirement passes when one signature is made by its keys, is for this
manifest and names an acceptable identity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

import attrs

from libaci.trust import identity as idn
from libaci.trust.errors import InvalidSignatureError, KeyFormatError
from libaci.trust.openpgp import OpenPGPVerifier
from libaci.trust.payload import ATOMIC_SIGNATURE_TYPE, COSIGN_SIGNATURE_TYPE, parse_payload
from libaci.trust.policy import (
    GPG_KEYS,
    InsecureAcceptAnything,
    Policy,
    Reject,
    Requirement,
    SignedBaseLayer,
    SignedBy,
    SigstoreSigned,
)
from libaci.trust.scope import ImageName
from libaci.trust.signature import (
    SIGSTORE,
    SIGSTORE_PAYLOAD_MEDIA_TYPE,
    SIMPLE_SIGNING,
    SignatureKind,
    UntrustedSignature,
)

__all__ = [
    "Decision",
    "Evidence",
    "KeySource",
    "VerifiedSignature",
    "decide",
    "evaluate",
    "key_sources",
    "read_key_file",
    "verify_signatures",
]

MAX_KEY_FILE = 16 * 1024 * 1024
_COMPUTABLE = ("sha256", "sha384", "sha512")


def read_key_file(path: str) -> bytes:
    """Read a key or keyring file named by a policy (raises OSError or ValueError)."""
    with open(path, "rb") as f:
        data = f.read(MAX_KEY_FILE + 1)
    if len(data) > MAX_KEY_FILE:
        raise ValueError(f"larger than {MAX_KEY_FILE} bytes")
    return data


@attrs.frozen
class KeySource:
    """The trusted keys of one requirement: ``gpg`` keyrings or ``sigstore`` public keys."""

    kind: Literal["gpg", "sigstore"]
    paths: tuple[str, ...] = ()
    datas: tuple[bytes, ...] = attrs.field(default=(), repr=False)

    @property
    def id(self) -> str:
        """A stable name, the same for the same keys in two requirements."""
        digests = [hashlib.sha256(d).hexdigest()[:16] for d in self.datas]
        return f"{self.kind}:{json.dumps(list(self.paths))}:{','.join(digests)}"

    def __str__(self) -> str:
        if len(self.paths) == 1:
            return f"the key in {self.paths[0]}"
        if self.paths:
            return "the keys in " + ", ".join(self.paths)
        return "the key in keyData" if len(self.datas) == 1 else "the keys in keyDatas"

    @classmethod
    def of(cls, requirement: Requirement) -> KeySource | None:
        """The key source of ``requirement``, None if it has none podkit can use."""
        if isinstance(requirement, SignedBy):
            kind: Literal["gpg", "sigstore"] = "gpg"
            datas = () if requirement.key_data is None else (requirement.key_data,)
        elif isinstance(requirement, SigstoreSigned) and requirement.unsupported() is None:
            kind = "sigstore"
            datas = requirement.key_datas or (
                () if requirement.key_data is None else (requirement.key_data,))
        else:
            return None
        paths = requirement.key_paths or (
            () if requirement.key_path is None else (requirement.key_path,))
        return cls(kind=kind, paths=tuple(paths), datas=tuple(datas))


def key_sources(requirements: Iterable[Requirement]) -> list[KeySource]:
    """The distinct key sources of ``requirements``, in order."""
    seen: dict[str, KeySource] = {}
    for requirement in requirements:
        source = KeySource.of(requirement)
        if source is not None:
            seen.setdefault(source.id, source)
    return list(seen.values())


@attrs.frozen
class VerifiedSignature:
    """What verification established about one signature.

    ``verified_by`` holds the :attr:`KeySource.id` of every key source that
    verified it and ``key`` the fingerprint of the key that did (OpenPGP
    primary-key fingerprint, or ``sha256:`` of a sigstore public key);
    ``failures`` says, per key source, why it did not verify.  The claimed
    ``docker_reference`` and ``manifest_digest`` are set only for a
    verified signature with a valid payload; ``problem`` says why a
    verified signature is still unusable.
    """

    kind: SignatureKind
    origin: str
    verified_by: frozenset[str] = frozenset()
    key: str | None = None
    docker_reference: str | None = None
    manifest_digest: str | None = None
    problem: str | None = None
    failures: Mapping[str, str] = attrs.field(factory=dict)
    is_attachment_only: bool = False


@attrs.frozen
class Evidence:
    """The facts :func:`decide` needs: the signatures, and key sources that failed to load."""

    signatures: tuple[VerifiedSignature, ...] = ()
    key_problems: Mapping[str, str] = attrs.field(factory=dict)


def _load_source(source: KeySource, read_file: Callable[[str], bytes]) -> list[bytes]:
    blobs = []
    for path in source.paths:
        try:
            blobs.append(read_file(path))
        except FileNotFoundError:
            raise KeyFormatError(f"key file {path} does not exist") from None
        except OSError as e:
            raise KeyFormatError(f"cannot read key file {path}: {e.strerror}") from None
        except ValueError as e:
            raise KeyFormatError(f"cannot read key file {path}: {e}") from None
    blobs.extend(source.datas)
    if not blobs:
        raise KeyFormatError("the requirement lists no keys")
    return blobs


def _sigstore_facts(signature: UntrustedSignature, origin: str,
                    keys: Mapping[str, Sequence[object]]) -> VerifiedSignature:
    if signature.media_type != SIGSTORE_PAYLOAD_MEDIA_TYPE:
        return VerifiedSignature(kind=SIGSTORE, origin=origin, is_attachment_only=True,
                                 problem=f"not a signature (media type {signature.media_type})")
    from libaci.trust.cosignkey import key_fingerprint
    from libaci.trust.sigstore import verify_payload

    verified: set[str] = set()
    failures: dict[str, str] = {}
    fingerprint = None
    for source_id, public_keys in keys.items():
        try:
            key = verify_payload(public_keys, signature.blob, signature.signature)
        except InvalidSignatureError as e:
            failures[source_id] = str(e)
            continue
        verified.add(source_id)
        fingerprint = fingerprint or key_fingerprint(key)
    return _with_payload(SIGSTORE, origin, verified, fingerprint, failures, signature.blob
                         if verified else None, COSIGN_SIGNATURE_TYPE)


def _with_payload(kind: SignatureKind, origin: str, verified: set[str], key: str | None,
                  failures: dict[str, str], content: bytes | None,
                  signature_type: str) -> VerifiedSignature:
    reference = digest = problem = None
    if content is not None:
        try:
            payload = parse_payload(content, signature_type=signature_type)
        except InvalidSignatureError as e:
            problem = str(e)
        else:
            reference, digest = payload.docker_reference, payload.manifest_digest
    return VerifiedSignature(kind=kind, origin=origin, verified_by=frozenset(verified), key=key,
                             docker_reference=reference, manifest_digest=digest,
                             problem=problem, failures=failures)


def _openpgp_facts(signature: UntrustedSignature, origin: str,
                   keyrings: Mapping[str, list[bytes]],
                   openpgp: OpenPGPVerifier) -> VerifiedSignature:
    verified: set[str] = set()
    failures: dict[str, str] = {}
    fingerprint = content = None
    for source_id, rings in keyrings.items():
        try:
            result = openpgp(signature.blob, rings)
        except InvalidSignatureError as e:
            failures[source_id] = str(e)
            continue
        verified.add(source_id)
        if content is None:
            fingerprint, content = result.fingerprint, result.content
    return _with_payload(SIMPLE_SIGNING, origin, verified, fingerprint, failures, content,
                         ATOMIC_SIGNATURE_TYPE)


def verify_signatures(signatures: Sequence[UntrustedSignature], sources: Sequence[KeySource],
                      *, openpgp: OpenPGPVerifier | None = None,
                      read_file: Callable[[str], bytes] = read_key_file) -> Evidence:
    """Check every signature against every key source (the crypto half of evaluation).

    ``read_file`` reads ``keyPath`` files (a parameter so that tests and
    callers control all I/O).  ``openpgp`` verifies OpenPGP messages; without
    it, ``signedBy`` requirements cannot be satisfied and say so.
    """
    problems: dict[str, str] = {}
    sigstore_keys: dict[str, list[object]] = {}
    keyrings: dict[str, list[bytes]] = {}
    for source in sources:
        try:
            blobs = _load_source(source, read_file)
            if source.kind == "sigstore":
                from libaci.trust.cosignkey import load_public_keys

                labels = [*source.paths, *(["keyData"] * len(source.datas))]
                sigstore_keys[source.id] = [
                    key for label, blob in zip(labels, blobs, strict=True)
                    for key in load_public_keys(blob, source=label)]
            elif openpgp is None:
                problems[source.id] = "no OpenPGP verifier (gpgv) is available to check it"
            else:
                keyrings[source.id] = blobs
        except KeyFormatError as e:
            problems[source.id] = str(e)
    facts = []
    for number, signature in enumerate(signatures, 1):
        origin = f"signature {number}" + (f" ({signature.origin})" if signature.origin else "")
        if signature.kind == SIGSTORE:
            facts.append(_sigstore_facts(signature, origin, sigstore_keys))
        elif openpgp is not None:
            facts.append(_openpgp_facts(signature, origin, keyrings, openpgp))
        else:
            facts.append(VerifiedSignature(kind=SIMPLE_SIGNING, origin=origin))
    return Evidence(signatures=tuple(facts), key_problems=problems)


@attrs.frozen
class Decision:
    """The verdict.  ``bool(decision)`` is ``accepted``.

    ``reason`` is one line: what was accepted, or why not.  ``scope`` names
    the policy entry that applied and ``requirement`` the one that refused,
    so that a command can say which key or entry is missing and how to fix it.
    """

    accepted: bool
    reason: str
    image: str
    scope: str
    requirement: Requirement | None = None

    def __bool__(self) -> bool:
        return self.accepted

    @property
    def message(self) -> str:
        verdict = "accepted" if self.accepted else "rejected"
        return f"{self.image} {verdict} by policy {self.scope}: {self.reason}"

    def check(self) -> None:
        """Raise :class:`~libaci.errors.TrustError` with :attr:`message` unless accepted."""
        if not self.accepted:
            from libaci.errors import TrustError

            raise TrustError(self.message)


def _digest_matches(claimed: str, digest: str, manifest: bytes | None) -> bool:
    if claimed == digest:
        return True
    algorithm = claimed.partition(":")[0]
    if manifest is None or algorithm not in _COMPUTABLE:
        return False
    return claimed == f"{algorithm}:{hashlib.new(algorithm, manifest).hexdigest()}"


def _signature_check(requirement: SignedBy | SigstoreSigned, image: ImageName,
                     manifest_digest: str, evidence: Evidence,
                     manifest: bytes | None) -> tuple[str | None, str]:
    """(None, what was accepted) or (reason, "") for one signature requirement."""
    source = KeySource.of(requirement)
    assert source is not None
    if source.id in evidence.key_problems:
        return f"{requirement.type} {source}: {evidence.key_problems[source.id]}", ""
    kind = SIGSTORE if isinstance(requirement, SigstoreSigned) else SIMPLE_SIGNING
    rule = requirement.identity
    relevant = [f for f in evidence.signatures if f.kind == kind and not f.is_attachment_only]
    if not relevant:
        others = len(evidence.signatures) - len(relevant)
        what = "sigstore" if kind == SIGSTORE else "OpenPGP simple-signing"
        note = f" ({others} other signature{'s' if others != 1 else ''} ignored)" if others else ""
        return f"a {what} signature is required, but the image has none{note}", ""
    reasons = []
    for fact in relevant:
        if source.id not in fact.verified_by:
            why = fact.failures.get(source.id, "not checked")
            reasons.append(f"{fact.origin}: not verified by {source} ({why})")
        elif fact.problem is not None or fact.manifest_digest is None:
            reasons.append(f"{fact.origin}: {fact.problem or 'no payload'}")
        elif not _digest_matches(fact.manifest_digest, manifest_digest, manifest):
            reasons.append(f"{fact.origin}: signed for manifest {fact.manifest_digest}, "
                           f"not this image's {manifest_digest}")
        elif (rule.type in idn.NEEDS_IMAGE_REFERENCE and image.docker_reference is None):
            reasons.append(f"{fact.origin}: signedIdentity {rule} needs the image's Docker "
                           "reference, which it has none of (use exactReference or "
                           "exactRepository)")
        elif not idn.identity_matches(rule, image.docker_reference,
                                      fact.docker_reference or ""):
            shown = image.docker_reference or image.identity
            reasons.append(f"{fact.origin}: signed for identity {fact.docker_reference}, "
                           f"which signedIdentity {rule} does not accept for {shown}")
        else:
            return None, f"{kind} signature by {fact.key} for {fact.docker_reference}"
    if len(reasons) == 1:
        return reasons[0], ""
    return f"none of the {len(reasons)} signatures is accepted: " + "; ".join(reasons), ""


def _check(requirement: Requirement, image: ImageName, manifest_digest: str,
           evidence: Evidence, manifest: bytes | None) -> tuple[str | None, str]:
    if isinstance(requirement, InsecureAcceptAnything):
        return None, "insecureAcceptAnything"
    if isinstance(requirement, Reject):
        return "the policy rejects every image in this scope (type reject)", ""
    if isinstance(requirement, SignedBaseLayer):
        return "signedBaseLayer is not implemented (neither podkit nor c/image can check it)", ""
    if isinstance(requirement, SignedBy) and requirement.key_type != GPG_KEYS:
        return f"signedBy keyType {requirement.key_type} is not implemented (use GPGKeys)", ""
    if isinstance(requirement, SigstoreSigned) and requirement.unsupported() is not None:
        return requirement.unsupported(), ""
    return _signature_check(requirement, image, manifest_digest, evidence, manifest)


def decide(requirements: Sequence[Requirement], image: ImageName, manifest_digest: str,
           evidence: Evidence, *, manifest: bytes | None = None,
           scope: str = "") -> Decision:
    """Whether ``requirements`` accept ``image`` given ``evidence`` (pure; no I/O).

    ``manifest_digest`` is the digest of the manifest that will be used;
    ``manifest`` (its bytes), when given, lets a signature that names the
    manifest by another algorithm (sha512) match too.
    """
    name = str(image)
    if not requirements:
        return Decision(False, "the list of policy requirements is empty", name, scope)
    accepted = []
    for requirement in requirements:
        reason, what = _check(requirement, image, manifest_digest, evidence, manifest)
        if reason is not None:
            return Decision(False, reason, name, scope, requirement)
        accepted.append(what)
    return Decision(True, "; ".join(accepted), name, scope)


def evaluate(policy: Policy, image: ImageName, manifest_digest: str,
             signatures: Sequence[UntrustedSignature], *,
             openpgp: OpenPGPVerifier | None = None,
             read_file: Callable[[str], bytes] = read_key_file,
             manifest: bytes | None = None) -> Decision:
    """Look up ``image``'s scope in ``policy``, verify ``signatures``, decide."""
    scope, requirements = policy.requirements_for(image)
    sources = key_sources(requirements)
    evidence = (verify_signatures(signatures, sources, openpgp=openpgp, read_file=read_file)
                if sources else Evidence(signatures=tuple(
                    VerifiedSignature(kind=s.kind, origin=s.origin) for s in signatures)))
    return decide(requirements, image, manifest_digest, evidence, manifest=manifest, scope=scope)
