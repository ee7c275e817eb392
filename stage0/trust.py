"""The verification policy in force, and its enforcement by fetch, run and verify.

libaci.trust evaluates policies without doing I/O; this module supplies it:
which policy file is in force, registries.d, the signatures (the store's
copies, the registry's sigstore attachment, lookasides, an ACI's ``.asc``),
gpgv for OpenPGP, and the one-line refusal that names the image, what was
missing and the command that fixes it.

Which policy (containers-policy.json(5) format; see podkit-verify(1)):
``--policy FILE``, else ``$PODKIT_POLICY``, else ``~/.config/podkit/policy.json``,
else ``$PODKIT_CONFIG_DIR/policy.json`` (``/etc/podkit/policy.json``).  When
none of the implicit files exists the built-in default applies
(:data:`libaci.trust.policy.SECURE_DEFAULT`: refuse everything that is not
local), as rkt refused unsigned images.  podkit never reads
``/etc/containers/policy.json`` (Debian's accepts anything).

podkit's additions to the format, which c/image ignores (unknown
transports), so one file serves skopeo too:

* local transports (``oci``, ``oci-archive``, ``docker-archive``, ``dir``)
  are accepted when the policy has no section for them, instead of falling
  to ``default``: files on this machine are as trusted as their owner;
* ``podkit``: images built or committed here (libaci.trust.scope);
* ``appc``: scopes are appc name prefixes; ``insecureAcceptAnything``,
  ``reject`` and ``signedBy`` (GPG keyrings for the ``.asc``) apply.  An
  appc name no scope covers needs a signature by a key of the rkt-style
  trust store for its prefix (stage0.truststore).

Images already in the store were checked when they were fetched; a fetch
that finds an image unchanged checks it again (without network when its
kept signatures suffice).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from libaci.digest import Digest
from libaci.errors import NotFoundError, TrustError
from libaci.trust.errors import InvalidSignatureError
from libaci.trust.policy import (
    SECURE_DEFAULT,
    InsecureAcceptAnything,
    Policy,
    Reject,
    Requirement,
    SignedBy,
    SigstoreSigned,
    find_policy_file,
)
from libaci.trust.scope import DOCKER, PATH_TRANSPORTS, ImageName

if TYPE_CHECKING:
    from libaci.registry.client import Registry
    from libaci.store import ImageRecord, Staging, Store
    from libaci.trust.evaluate import Decision, Evidence
    from libaci.trust.lookaside import RegistriesD
    from libaci.trust.signature import UntrustedSignature

__all__ = [
    "APPC",
    "Enforcer",
    "PolicyInForce",
    "config_dir",
    "image_for_source",
    "load_policy",
    "policy_path",
    "registries_dir",
    "trust_store",
]

CONFIG_DIR = "/etc/podkit"
ENV_CONFIG_DIR = "PODKIT_CONFIG_DIR"
ENV_POLICY = "PODKIT_POLICY"
APPC = "appc"
USER_REGISTRIES_D = ".config/containers/registries.d"
SYSTEM_REGISTRIES_D = "/etc/containers/registries.d"
INSECURE = "or skip the check with --insecure-options=image"


def config_dir() -> str:
    """``$PODKIT_CONFIG_DIR``, else ``/etc/podkit``."""
    return os.environ.get(ENV_CONFIG_DIR) or CONFIG_DIR


def policy_path(explicit: str | None = None) -> str:
    """The policy file in force (it may not exist)."""
    if explicit:
        return explicit
    env = os.environ.get(ENV_POLICY)
    if env:
        return env
    return find_policy_file(os.environ.get("HOME"),
                            system_path=os.path.join(config_dir(), "policy.json"))


def registries_dir(explicit: str | None = None) -> str:
    """registries.d as c/image finds it: the user's if it exists, else the system's."""
    if explicit:
        return explicit
    home = os.environ.get("HOME")
    if home and os.path.isdir(os.path.join(home, USER_REGISTRIES_D)):
        return os.path.join(home, USER_REGISTRIES_D)
    return SYSTEM_REGISTRIES_D


def trust_store():  # type: ignore[no-untyped-def]
    """The appc trust store under the configuration directory."""
    from stage0.truststore import TrustStore

    return TrustStore(os.path.join(config_dir(), "trustedkeys"))


@attrs.frozen
class PolicyInForce:
    """A policy and where it came from (``builtin``: no file, the secure default)."""

    policy: Policy
    path: str
    builtin: bool = False

    def where(self, scope: str) -> str:
        if self.builtin:
            return f"the built-in policy for when {self.path} does not exist"
        return f"policy {self.path} {scope}"


def load_policy(explicit: str | None = None) -> PolicyInForce:
    """The policy in force; the secure default when no implicit file exists."""
    from libaci.trust import policy as libpolicy

    path = policy_path(explicit)
    try:
        return PolicyInForce(libpolicy.load_policy(path), path)
    except NotFoundError:
        if explicit or os.environ.get(ENV_POLICY):
            raise NotFoundError(f"policy file {path} does not exist") from None
        return PolicyInForce(SECURE_DEFAULT, path, builtin=True)


# -- which scope ----------------------------------------------------------------------------

def image_for_source(source: str) -> ImageName | None:
    """How the policy names an image from ``source`` (an io.podkit.image.source value);
    None for sources it has no transport for (ACI files and URLs)."""
    if source.startswith("docker://"):
        return ImageName.docker(source[len("docker://"):])
    for transport in ("oci", "oci-archive", "docker-archive"):
        if source.startswith(transport + ":"):
            path = os.path.realpath(source[len(transport) + 1:].partition(":")[0])
            try:
                return ImageName.path(transport, path)
            except ValueError:  # "/": only the transport's "" scope can name it
                return ImageName(transport=transport, identity=path)
    return None


def requirements(policy: Policy, image: ImageName) -> tuple[str, tuple[Requirement, ...]]:
    """The scope and requirements for ``image``, with podkit's local-transport rule."""
    if image.transport in PATH_TRANSPORTS and image.transport not in policy.transports:
        return (f"built-in {image.transport} scope (no transports.{image.transport}: local "
                "images are accepted)", (InsecureAcceptAnything(),))
    return policy.requirements_for(image)


def appc_image(name: str) -> ImageName:
    parts = name.split("/")
    parents = tuple("/".join(parts[:n]) for n in range(len(parts) - 1, 0, -1))
    return ImageName(transport=APPC, identity=name, namespaces=parents)


def appc_requirements(policy: Policy, name: str
                      ) -> tuple[str, tuple[Requirement, ...]] | None:
    """The ``transports.appc`` scope for ``name``; None: the trust store decides."""
    if APPC not in policy.transports:
        return None
    scope, reqs = policy.requirements_for(appc_image(name))
    return None if scope == "default" else (scope, reqs)


def _accepts_anything(reqs: Sequence[Requirement]) -> bool:
    return all(isinstance(r, InsecureAcceptAnything) for r in reqs)


def _wanted(reqs: Sequence[Requirement]) -> tuple[bool, bool]:
    """(needs sigstore signatures, needs OpenPGP simple signatures)."""
    return (any(isinstance(r, SigstoreSigned) for r in reqs),
            any(isinstance(r, SignedBy) for r in reqs))


# -- refusals ---------------------------------------------------------------------------------

def _fix(image: ImageName, digest: str, requirement: Requirement | None,
         evidence: Evidence | None, policy: PolicyInForce) -> str:
    """The command that would make ``image`` pass (the sentence in parentheses)."""
    from libaci.trust.evaluate import KeySource
    from libaci.trust.signature import SIGSTORE, SIMPLE_SIGNING

    if image.transport != DOCKER or image.docker_reference is None:
        where = "the policy" if policy.builtin else policy.path
        return f"change transports.{image.transport} in {where}, {INSECURE}"
    ref = image.docker_reference
    scope = ref.name
    if not isinstance(requirement, (SigstoreSigned, SignedBy)):
        return (f"to accept images signed by a key: podkit-trust --scope {scope} "
                f"--sigstore-key KEY.pub, or --gpg-key KEY.gpg; {INSECURE}")
    sigstore = isinstance(requirement, SigstoreSigned)
    kind = SIGSTORE if sigstore else SIMPLE_SIGNING
    option = "--sigstore-key SIGNER.pub" if sigstore else "--gpg-key SIGNER.gpg"
    sign = (f"podkit-sign {digest} docker://{ref} --key cosign.key" if sigstore
            else f"podkit-sign {digest} docker://{ref} --gpg-key FINGERPRINT")
    source = KeySource.of(requirement)
    facts = [f for f in (evidence.signatures if evidence else ())
             if f.kind == kind and not f.is_attachment_only]
    if source is not None and evidence is not None and source.id in evidence.key_problems:
        return f"fix the key file, or trust another: podkit-trust --scope {scope} {option}"
    if not facts:
        return f"sign it with: {sign}, {INSECURE}"
    if source is not None and not any(source.id in f.verified_by for f in facts):
        return f"trust its signer with: podkit-trust --scope {scope} {option}, {INSECURE}"
    return f"sign this image for this reference with: {sign}, {INSECURE}"


def refusal(shown: str, decision: Decision, fix: str, policy: PolicyInForce) -> TrustError:
    return TrustError(f"{shown} rejected by {policy.where(decision.scope)}: "
                      f"{decision.reason} ({fix})")


# -- enforcement --------------------------------------------------------------------------------

class Enforcer:
    """The checks of one command: FetchOptions.verify / verify_aci, and stored images."""

    def __init__(self, store: Store, *, policy: str | None = None,
                 registries: str | None = None, tls: Any = None, credentials: Any = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.store = store
        self._policy_arg = policy
        self._policy: PolicyInForce | None = None
        self._registries_dir = registries_dir(registries)
        self._registries_d: RegistriesD | None = None
        self.tls = tls
        self.credentials = credentials
        self.say = say or (lambda _msg: None)
        self._registry_clients: dict[str, Registry] = {}

    @property
    def policy(self) -> PolicyInForce:
        if self._policy is None:
            self._policy = load_policy(self._policy_arg)
        return self._policy

    @property
    def registries_d(self) -> RegistriesD:
        if self._registries_d is None:
            from libaci.trust.lookaside import load_registries_d

            self._registries_d = load_registries_d(self._registries_dir)
        return self._registries_d

    def _registry(self, domain: str) -> Registry:
        from libaci.registry.client import Registry, TLSOptions, api_host

        host = api_host(domain)
        if host not in self._registry_clients:
            self._registry_clients[host] = Registry(host, tls=self.tls or TLSOptions(),
                                                    credentials=self.credentials)
        return self._registry_clients[host]

    def judge(self, image: ImageName, digest: str, signatures: Sequence[UntrustedSignature],
              manifest: bytes | None) -> tuple[Decision, Evidence]:
        """The policy's decision about ``image`` given ``signatures``."""
        from libaci.trust.evaluate import Evidence, decide, key_sources, verify_signatures
        from stage0 import gpg

        scope, reqs = requirements(self.policy.policy, image)
        sources = key_sources(reqs)
        evidence = (verify_signatures(signatures, sources, openpgp=gpg.verify_message)
                    if sources else Evidence())
        return decide(reqs, image, digest, evidence, manifest=manifest, scope=scope), evidence

    # -- OCI / Docker images ----------------------------------------------------------------

    def remote_signatures(self, image: ImageName, digest: str, *, sigstore: bool,
                          lookaside: bool) -> list[UntrustedSignature]:
        """Signatures of ``digest`` from the registry's attachment and the lookaside."""
        from libaci.sources import signatures

        ref = image.docker_reference
        assert ref is not None
        found: list[UntrustedSignature] = []
        try:
            if sigstore:
                found += signatures.sigstore_signatures(self._registry(ref.domain), ref.path,
                                                        digest)
            if lookaside:
                found += self.lookaside_signatures(image, digest, offline=False)
        except InvalidSignatureError as e:
            raise InvalidSignatureError(f"docker://{ref}: {e}") from None
        return found

    def lookaside_signatures(self, image: ImageName, digest: str, *,
                             offline: bool) -> list[UntrustedSignature]:
        from libaci.sources import signatures
        from libaci.trust.lookaside import default_lookaside

        ref = image.docker_reference
        assert ref is not None
        base = (self.registries_d.lookaside_for(ref)
                or default_lookaside(os.geteuid(), os.environ.get("HOME") or "/"))
        if base.startswith("file:"):
            return signatures.lookaside_signatures(base, ref, digest)
        if offline:
            return []
        from libaci.http import HttpClient

        with HttpClient(self.tls, credentials=self.credentials) as client:
            return signatures.lookaside_signatures(base, ref, digest, client=client)

    def verify(self, source: str, digest: Digest, manifest: bytes) -> None:
        """FetchOptions.verify: refuse (TrustError) what the policy does not accept."""
        from libaci.sources import signatures

        image = image_for_source(source)
        if image is None:
            return
        _scope, reqs = requirements(self.policy.policy, image)
        ref = image.docker_reference if image.transport == DOCKER else None
        if _accepts_anything(reqs):
            if ref is not None:  # signatures travel along when registries.d asks for them
                want_sigstore = self.registries_d.use_sigstore_attachments(ref)
                want_simple = self.registries_d.lookaside_for(ref) is not None
                if want_sigstore or want_simple:
                    signatures.keep(self.store, digest, self.remote_signatures(
                        image, str(digest), sigstore=want_sigstore, lookaside=want_simple))
            return
        want_sigstore, want_simple = _wanted(reqs)
        kept = signatures.stored(self.store, digest) if self.store.exists() else []
        decision, evidence = self.judge(image, str(digest), kept, manifest)
        if not decision and ref is not None and (want_sigstore or want_simple):
            found = [s for s in self.remote_signatures(image, str(digest),
                                                       sigstore=want_sigstore,
                                                       lookaside=want_simple)
                     if s not in kept]
            if found:
                decision, evidence = self.judge(image, str(digest), [*kept, *found], manifest)
                if decision:
                    signatures.keep(self.store, digest, found)
        if not decision:
            shown = f"docker://{ref}" if ref is not None else str(image)
            raise refusal(shown, decision,
                          _fix(image, str(digest), decision.requirement, evidence, self.policy),
                          self.policy)
        self.say(f"{image}: {decision.reason}")

    # -- stored images (podkit-verify) -----------------------------------------------------------

    def check_stored(self, rec: ImageRecord) -> str:
        """Why the policy accepts the stored image ``rec``; TrustError if it does not."""
        if rec.is_aci:
            return self._check_stored_aci(rec)
        from libaci.sources import signatures
        from libaci.store import ANN_INDEX, ANN_SOURCE

        digest = rec.descriptor.digest
        raw = self.store.read_blob(digest)
        if Digest.of_bytes(raw, digest.algorithm) != digest:
            raise TrustError(f"{rec.id}: the manifest in the store does not match its digest "
                             "(it was altered; podkit-rmi it and fetch it again)")
        index = rec.descriptor.annotations.get(ANN_INDEX)
        signed = index or str(digest)
        source = rec.descriptor.annotations.get(ANN_SOURCE, "")
        image = image_for_source(source)
        if image is None:  # built or committed here: the podkit transport
            from libaci.errors import InvalidReferenceError

            try:
                image = ImageName.local(rec.names[0] if rec.names else None)
            except InvalidReferenceError:
                image = ImageName.local(None)
        scope, reqs = requirements(self.policy.policy, image)
        if _accepts_anything(reqs):
            return f"{image}: accepted by {self.policy.where(scope)} (insecureAcceptAnything)"
        # the index the image was picked from, or its own manifest, may be signed
        first: tuple[Decision, Evidence] | None = None
        for candidate, manifest in ((signed, None if index else raw),
                                    *(((str(digest), raw),) if index else ())):
            kept = signatures.stored(self.store, candidate)
            decision, evidence = self.judge(image, candidate, kept, manifest)
            if not decision and image.transport == DOCKER and _wanted(reqs)[1]:
                more = [s for s in self.lookaside_signatures(image, candidate, offline=True)
                        if s not in kept]
                if more:
                    decision, evidence = self.judge(image, candidate, [*kept, *more], manifest)
            if decision:
                break
            first = first or (decision, evidence)
        if not decision:
            assert first is not None
            decision, evidence = first
            shown = (f"docker://{image.docker_reference}" if image.transport == DOCKER
                     else str(image))
            raise refusal(shown, decision,
                          _fix(image, signed, decision.requirement, evidence, self.policy),
                          self.policy)
        return f"{image}: {decision.reason}"

    # -- appc ---------------------------------------------------------------------------------

    def _appc_keyrings(self, name: str) -> tuple[str, list[list[bytes]]]:
        """(what the keys are, keyring sets that must each verify) for appc ``name``;
        TrustError when the policy refuses ``name`` outright or no key is trusted."""
        found = appc_requirements(self.policy.policy, name)
        if found is None:
            keys = trust_store().keyrings_for(name)
            if not keys:
                raise TrustError(
                    f"appc image {name}: no key is trusted for it (trust its signer with: "
                    f"podkit-trust --prefix {name} KEYFILE, or podkit-trust --prefix {name} "
                    f"to find its keys by appc discovery; {INSECURE})")
            return f"the keys trusted for {name}", [keys]
        scope, reqs = found
        where = self.policy.where(scope)
        sets = []
        for req in reqs:
            if isinstance(req, Reject):
                raise TrustError(f"appc image {name} rejected by {where}: the policy rejects "
                                 f"every image in this scope ({INSECURE})")
            if isinstance(req, SigstoreSigned) or (
                    isinstance(req, SignedBy) and req.key_type != "GPGKeys"):
                raise TrustError(f"appc image {name} rejected by {where}: {req.type} cannot "
                                 "check appc images (use signedBy with GPGKeys)")
            if isinstance(req, SignedBy):
                from libaci.trust.evaluate import KeySource, read_key_file

                source = KeySource.of(req)
                assert source is not None
                try:
                    sets.append([*(read_key_file(p) for p in source.paths), *source.datas])
                except (OSError, ValueError) as e:
                    raise TrustError(f"appc image {name}: cannot read a key of {where} "
                                     f"({e})") from None
        return where, sets

    def appc_accepts_unsigned(self, name: str | None) -> bool:
        """Whether the policy accepts ``name`` (any name when None) with no signature."""
        appc = self.policy.policy.transports.get(APPC)
        if not appc:
            return False
        if name is None:
            return "" in appc and all(_accepts_anything(r) for r in appc.values())
        found = appc_requirements(self.policy.policy, name)
        return found is not None and _accepts_anything(found[1])

    def verify_aci(self, url: str, sig_url: str, client: Any) -> AciSession | None:
        """FetchOptions.verify_aci: fetch the ``.asc`` first, check the ACI when read."""
        from libaci.sources import signatures

        if self.appc_accepts_unsigned(None):
            return None
        asc = signatures.fetch_asc(client, sig_url)
        appc = self.policy.policy.transports.get(APPC) or {}
        if asc is None and not any(_accepts_anything(r) for r in appc.values()):
            raise TrustError(f"{url}: the image is not signed (no {sig_url}; sign it with "
                             f"gpg --armor --detach-sign, {INSECURE})")
        if asc == signatures.DEFERRED:
            self.say(f"{sig_url}: signature not ready (HTTP 202), asking again after the image")
        return AciSession(self, url, sig_url, client, asc)

    def _check_stored_aci(self, rec: ImageRecord) -> str:
        from libaci.sources import signatures
        from libaci.sources.aciurl import stored_manifest
        from libaci.store import ANN_SOURCE
        from stage0 import gpg

        source = rec.descriptor.annotations.get(ANN_SOURCE, "")
        if not source.startswith(("https://", "http://")):
            return f"{rec.id}: a local ACI file ({source or 'no source'}): accepted"
        name = stored_manifest(self.store, rec).name
        if self.appc_accepts_unsigned(name):
            return f"appc image {name}: accepted by the policy (insecureAcceptAnything)"
        where, sets = self._appc_keyrings(name)
        kept = signatures.stored_asc(self.store, rec.descriptor.digest)
        if kept is None:
            raise TrustError(f"appc image {name} ({rec.id}): no signature kept in the store "
                             f"(fetch it again without --insecure-options=image)")
        asc, info = kept
        digest = str(rec.descriptor.digest)
        fingerprints = []
        for keyrings in sets:
            if info.get("signed") == digest:  # served uncompressed: check it again
                try:
                    fingerprints.append(gpg.verify_detached(
                        asc, self.store.blob_path(rec.descriptor.digest), keyrings))
                except InvalidSignatureError as e:
                    raise TrustError(f"appc image {name} ({rec.id}): {e} ({where}; trust its "
                                     f"signer with: podkit-trust --prefix {name} KEYFILE, "
                                     f"{INSECURE})") from None
                continue
            # served compressed: the signed bytes are gone; the signer must still be trusted
            fpr = str(info.get("fingerprint", "")).upper()
            trusted = {k.fingerprint for keyring in keyrings for k in gpg.show_keys(keyring)}
            if fpr not in trusted:
                raise TrustError(f"appc image {name} ({rec.id}): signed by {fpr or 'no key'}, "
                                 f"which is not among {where} (trust it with: podkit-trust "
                                 f"--prefix {name} KEYFILE)")
            fingerprints.append(fpr)
        return f"appc image {name}: signed by {', '.join(fingerprints)}"


class _Tee:
    """The ACI download as read, also written to a file and hashed (sha512)."""

    def __init__(self, src: Any, out: Any) -> None:
        self._src, self._out = src, out
        self.hash = hashlib.sha512()

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        if data:
            self.hash.update(data)
            if self._out is not None:
                self._out.write(data)
        return data


class AciSession:
    """The check of one ACI download (libaci.sources.AciCheck)."""

    def __init__(self, enforcer: Enforcer, url: str, sig_url: str, client: Any,
                 asc: bytes | None) -> None:
        self.enforcer, self.url, self.sig_url, self.client = enforcer, url, sig_url, client
        self.asc = asc
        self._staging: Staging | None = None
        self._out: Any = None
        self._tee: _Tee | None = None
        self.path = ""
        if asc is not None:  # keep the bytes as served: the signature is over them
            from libaci.store import Staging

            enforcer.store.ensure()
            self._staging = Staging.create(enforcer.store)
            self.path = os.path.join(self._staging.dir, "served.aci")
            self._out = open(self.path, "wb")  # noqa: SIM115 - closed in check/close

    def wrap(self, stream: Any) -> Any:
        self._tee = _Tee(stream, self._out)
        return self._tee

    def check(self, info: Any) -> None:
        from libaci.sources import signatures
        from stage0 import gpg

        assert self._tee is not None
        while self._tee.read(1 << 20):  # what the archive reader left (padding)
            pass
        if self._out is not None:
            self._out.close()
            self._out = None
        name = info.manifest.name
        enforcer = self.enforcer
        if enforcer.appc_accepts_unsigned(name):
            return
        where, sets = enforcer._appc_keyrings(name)
        asc = self.asc
        if asc == signatures.DEFERRED:
            asc = signatures.fetch_asc(self.client, self.sig_url)
            if asc == signatures.DEFERRED:
                raise TrustError(f"{self.url}: the signature {self.sig_url} is still not ready "
                                 f"(HTTP 202); try again later, {INSECURE}")
        if asc is None:
            raise TrustError(f"appc image {name}: not signed (no {self.sig_url}; sign it with "
                             f"gpg --armor --detach-sign, {INSECURE})")
        fingerprints = []
        for keyrings in sets:
            try:
                fingerprints.append(gpg.verify_detached(asc, self.path, keyrings))
            except InvalidSignatureError as e:
                raise TrustError(f"appc image {name} from {self.url}: {e} (checked against "
                                 f"{where}; trust its signer with: podkit-trust --prefix "
                                 f"{name} KEYFILE, {INSECURE})") from None
        digest = Digest.parse("sha512:" + info.image_id.removeprefix("sha512-"))
        signed = f"sha512:{self._tee.hash.hexdigest()}"
        signatures.keep_asc(enforcer.store, digest, asc, {
            "url": self.url, "signatureURL": self.sig_url, "signed": signed,
            "fingerprint": fingerprints[0] if fingerprints else ""})
        enforcer.say(f"signature verified: {name} signed by {', '.join(fingerprints)}")

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._staging is not None:
            self._staging.close()
            self._staging = None
