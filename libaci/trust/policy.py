"""containers-policy.json(5): the verification policy, parsed as c/image parses it.

podkit reads the policy format that skopeo, podman and buildah read, so one
file can serve all of them.  Parsing is c/image's (signature/policy_config*.go):
strict, because a typo in a security policy must not silently weaken it; an
unknown or duplicate key anywhere, a wrong type, an empty requirement list or
an invalid scope refuses the whole file with :class:`PolicyFormatError`.

Requirements: ``insecureAcceptAnything``, ``reject``, ``signedBy``
(``keyType: GPGKeys``; exactly one of ``keyPath``, ``keyPaths``, ``keyData``),
``sigstoreSigned`` (exactly one of ``keyPath``, ``keyPaths``, ``keyData``,
``keyDatas``, ``fulcio``, ``pki``; ``rekorPublicKey*``), ``signedBaseLayer``;
``signedIdentity`` as :mod:`libaci.trust.identity`.  Everything c/image
parses is parsed; what podkit cannot check (Fulcio, PKI, Rekor, X.509
``keyType``, ``signedBaseLayer``) makes evaluation reject with a reason
instead of being ignored.  Scope lookup (:meth:`Policy.requirements_for`) is
:mod:`libaci.trust.scope`'s most-specific-wins.  Evaluation is in
:mod:`libaci.trust.evaluate`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from libaci.errors import InvalidReferenceError
from libaci.reference import parse_docker_reference
from libaci.trust import identity as idn
from libaci.trust.errors import PolicyFormatError
from libaci.trust.identity import IdentityRule
from libaci.trust.jsonutil import b64decode, load_strict, shown
from libaci.trust.scope import (
    LOCAL,
    PATH_TRANSPORTS,
    SCOPELESS_TRANSPORTS,
    ImageName,
    path_scope_problem,
)

__all__ = [
    "SECURE_DEFAULT",
    "SYSTEM_POLICY_PATH",
    "USER_POLICY_PATH",
    "InsecureAcceptAnything",
    "Policy",
    "Reject",
    "Requirement",
    "SignedBaseLayer",
    "SignedBy",
    "SigstoreSigned",
    "dump_policy",
    "find_policy_file",
    "load_policy",
    "parse_policy",
]

#: podkit's system-wide policy, and the per-user override (relative to $HOME)
SYSTEM_POLICY_PATH = "/etc/podkit/policy.json"
USER_POLICY_PATH = ".config/podkit/policy.json"
GPG_KEYS = "GPGKeys"
KEY_TYPES = ("GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs")


@attrs.frozen
class InsecureAcceptAnything:
    """Accept any image, signed or not."""

    type = "insecureAcceptAnything"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type}


@attrs.frozen
class Reject:
    """Refuse every image."""

    type = "reject"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@attrs.frozen
class SignedBy:
    """An OpenPGP simple signing signature by a key in the given keyring(s).

    ``signed_identity`` None means the default (``matchRepoDigestOrExact``)
    and is left out when written back.
    """

    key_type: str = GPG_KEYS
    key_path: str | None = None
    key_paths: tuple[str, ...] | None = None
    key_data: bytes | None = None
    signed_identity: IdentityRule | None = None

    type = "signedBy"

    @property
    def identity(self) -> IdentityRule:
        return self.signed_identity or IdentityRule()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "keyType": self.key_type}
        if self.key_path is not None:
            out["keyPath"] = self.key_path
        if self.key_paths is not None:
            out["keyPaths"] = list(self.key_paths)
        if self.key_data is not None:
            out["keyData"] = _b64(self.key_data)
        if self.signed_identity is not None:
            out["signedIdentity"] = self.signed_identity.to_dict()
        return out


@attrs.frozen
class SigstoreSigned:
    """A sigstore signature verified by one of the given public keys.

    ``fulcio``, ``pki`` and the ``rekor_*`` fields are kept as parsed (and
    written back) but podkit cannot evaluate them: a requirement using them
    rejects every image, saying so.
    """

    key_path: str | None = None
    key_paths: tuple[str, ...] | None = None
    key_data: bytes | None = None
    key_datas: tuple[bytes, ...] | None = None
    fulcio: Mapping[str, Any] | None = None
    pki: Mapping[str, Any] | None = None
    rekor: Mapping[str, Any] = attrs.field(factory=dict)
    signed_identity: IdentityRule | None = None

    type = "sigstoreSigned"

    @property
    def identity(self) -> IdentityRule:
        return self.signed_identity or IdentityRule()

    def unsupported(self) -> str | None:
        """Why podkit cannot evaluate this requirement, or None."""
        if self.fulcio is not None:
            return "sigstoreSigned with fulcio (keyless) signatures is not supported by podkit"
        if self.pki is not None:
            return "sigstoreSigned with pki certificates is not supported by podkit"
        if self.rekor:
            return "sigstoreSigned with a Rekor public key is not supported by podkit"
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.key_path is not None:
            out["keyPath"] = self.key_path
        if self.key_paths is not None:
            out["keyPaths"] = list(self.key_paths)
        if self.key_data is not None:
            out["keyData"] = _b64(self.key_data)
        if self.key_datas is not None:
            out["keyDatas"] = [_b64(d) for d in self.key_datas]
        if self.fulcio is not None:
            out["fulcio"] = dict(self.fulcio)
        if self.pki is not None:
            out["pki"] = dict(self.pki)
        out.update(self.rekor)
        if self.signed_identity is not None:
            out["signedIdentity"] = self.signed_identity.to_dict()
        return out


@attrs.frozen
class SignedBaseLayer:
    """c/image parses it but never implemented it; podkit neither (it rejects)."""

    base_layer_identity: IdentityRule

    type = "signedBaseLayer"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "baseLayerIdentity": self.base_layer_identity.to_dict()}


Requirement = InsecureAcceptAnything | Reject | SignedBy | SigstoreSigned | SignedBaseLayer
Requirements = tuple[Requirement, ...]


@attrs.frozen
class Policy:
    """A parsed policy: ``default`` and ``transports[transport][scope]`` requirements."""

    default: Requirements
    transports: Mapping[str, Mapping[str, Requirements]] = attrs.field(factory=dict)

    def requirements_for(self, image: ImageName) -> tuple[str, Requirements]:
        """The requirements that apply to ``image`` and the scope they come from.

        The scope is named as in the file, for messages: ``transports.docker
        ["quay.io/ns"]``, ``transports.docker[""]`` or ``default``.
        """
        scopes = self.transports.get(image.transport)
        if scopes is not None:
            for name in (image.identity, *image.namespaces, ""):
                if name in scopes:
                    return f"transports.{image.transport}[{json.dumps(name)}]", scopes[name]
        elif image.transport == LOCAL:
            return (f"built-in {LOCAL} scope (no transports.{LOCAL} in the policy)",
                    (InsecureAcceptAnything(),))
        return "default", self.default

    def with_scope(self, transport: str, scope: str,
                   requirements: Sequence[Requirement]) -> Policy:
        """A copy with ``transports[transport][scope]`` = ``requirements`` (podkit-trust)."""
        if not requirements:
            raise ValueError("a scope needs at least one requirement")
        problem = _scope_problem(transport, scope)
        if problem is not None:
            raise ValueError(f"invalid {transport} scope {scope!r}: {problem}")
        transports = {t: dict(s) for t, s in self.transports.items()}
        transports.setdefault(transport, {})[scope] = tuple(requirements)
        return attrs.evolve(self, transports=transports)

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "policy") -> Policy:
        """The policy in an already parsed document (prefer :func:`parse_policy` on
        the file's bytes: only it can refuse duplicate keys)."""
        return _from_document(doc, source)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"default": [r.to_dict() for r in self.default]}
        if self.transports:
            out["transports"] = {
                transport: {scope: [r.to_dict() for r in reqs] for scope, reqs in scopes.items()}
                for transport, scopes in self.transports.items()
            }
        return out


#: A proposal for when no policy file exists (c/image refuses to run then): refuse
#: every image that is not built locally, as rkt did, until a key is trusted or the
#: user says ``--insecure-options=image``.
SECURE_DEFAULT = Policy(default=(Reject(),))


def dump_policy(policy: Policy) -> bytes:
    """The policy as a file (indented JSON, newline-terminated); parses back equal."""
    return (json.dumps(policy.to_dict(), indent=4, ensure_ascii=False) + "\n").encode("utf-8")


# --- parsing --------------------------------------------------------------------------------


class _Bad(Exception):
    """A problem at a JSON path; parse_policy adds the file name."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}" if where else why)


def _object(value: Any, where: str, allowed: Sequence[str] | None = None,
            required: Sequence[str] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(where, "expected a JSON object")
    if allowed is not None:
        for key in value:
            if key not in allowed:
                raise _Bad(where, f"unknown key {shown(key)}")
    for key in required:
        if key not in value:
            raise _Bad(where, f"key {shown(key)} missing")
    return value


def _str(value: Any, where: str, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise _Bad(where, "expected a string")
    if not value and not empty_ok:
        raise _Bad(where, "must not be empty")
    return value


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Bad(where, "expected a list of strings")
    return tuple(_str(v, f"{where}[{i}]") for i, v in enumerate(value))


def _bytes(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise _Bad(where, "expected a base64 string")
    try:
        return b64decode(value)
    except ValueError:
        raise _Bad(where, "is not valid base64") from None


def _bytes_list(value: Any, where: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise _Bad(where, "expected a list of base64 strings")
    return tuple(_bytes(v, f"{where}[{i}]") for i, v in enumerate(value))


def _identity(value: Any, where: str) -> IdentityRule:
    doc = _object(value, where)
    kind = _str(doc.get("type"), f"{where}.type", empty_ok=True)
    if kind not in idn.IDENTITY_TYPES:
        raise _Bad(where, f"unknown policy reference match type {shown(kind)}")
    if kind == idn.EXACT_REFERENCE:
        _object(doc, where, ("type", "dockerReference"), ("dockerReference",))
        text = _str(doc["dockerReference"], f"{where}.dockerReference", empty_ok=True)
        try:
            ref = parse_docker_reference(text, default_tag=None)
        except InvalidReferenceError as e:
            raise _Bad(f"{where}.dockerReference", str(e)) from None
        if ref.tag is None and ref.digest is None:
            raise _Bad(f"{where}.dockerReference",
                       f"{shown(text)} contains neither a tag nor a digest")
        return IdentityRule(type=kind, docker_reference=text)
    if kind == idn.EXACT_REPOSITORY:
        _object(doc, where, ("type", "dockerRepository"), ("dockerRepository",))
        text = _str(doc["dockerRepository"], f"{where}.dockerRepository", empty_ok=True)
        try:
            parse_docker_reference(text, default_tag=None)
        except InvalidReferenceError as e:
            raise _Bad(f"{where}.dockerRepository", str(e)) from None
        return IdentityRule(type=kind, docker_repository=text)
    if kind == idn.REMAP_IDENTITY:
        _object(doc, where, ("type", "prefix", "signedPrefix"), ("prefix", "signedPrefix"))
        prefix = _str(doc["prefix"], f"{where}.prefix", empty_ok=True)
        signed = _str(doc["signedPrefix"], f"{where}.signedPrefix", empty_ok=True)
        for name, text in (("prefix", prefix), ("signedPrefix", signed)):
            if not idn.remap_prefix_ok(text):
                raise _Bad(f"{where}.{name}", f"prefix {shown(text)} is not valid "
                           "(a host[:port] or host[:port]/path)")
        return IdentityRule(type=kind, prefix=prefix, signed_prefix=signed)
    _object(doc, where, ("type",))
    return IdentityRule(type=kind)


def _one_source(doc: dict[str, Any], keys: Sequence[str], where: str) -> None:
    present = [k for k in keys if k in doc]
    if len(present) != 1:
        listed = ", ".join(keys)
        found = "none of them" if not present else " and ".join(present)
        raise _Bad(where, f"exactly one of {listed} must be specified, got {found}")


def _signed_by(doc: dict[str, Any], where: str) -> SignedBy:
    _object(doc, where, ("type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"))
    key_type = _str(doc.get("keyType", ""), f"{where}.keyType", empty_ok=True)
    if key_type not in KEY_TYPES:
        raise _Bad(f"{where}.keyType", f"unrecognized keyType value {shown(key_type)}")
    _one_source(doc, ("keyPath", "keyPaths", "keyData"), where)
    return SignedBy(
        key_type=key_type,
        key_path=_str(doc["keyPath"], f"{where}.keyPath") if "keyPath" in doc else None,
        key_paths=_str_list(doc["keyPaths"], f"{where}.keyPaths") if "keyPaths" in doc else None,
        key_data=_bytes(doc["keyData"], f"{where}.keyData") if "keyData" in doc else None,
        signed_identity=(_identity(doc["signedIdentity"], f"{where}.signedIdentity")
                         if "signedIdentity" in doc else None),
    )


_FULCIO_KEYS = ("caPath", "caData", "oidcIssuer", "subjectEmail")
_PKI_KEYS = ("caRootsPath", "caRootsData", "caIntermediatesPath", "caIntermediatesData",
             "subjectEmail", "subjectHostname")
_REKOR_KEYS = ("rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData",
               "rekorPublicKeyDatas")


def _sub_document(value: Any, where: str, keys: Sequence[str]) -> dict[str, Any]:
    doc = _object(value, where, keys)
    if not doc:
        raise _Bad(where, "must not be empty")
    for key, item in doc.items():
        if key.endswith("Data"):
            _bytes(item, f"{where}.{key}")
        else:
            _str(item, f"{where}.{key}")
    return dict(doc)


def _sigstore_signed(doc: dict[str, Any], where: str) -> SigstoreSigned:
    _object(doc, where, ("type", "keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki",
                         *_REKOR_KEYS, "signedIdentity"))
    _one_source(doc, ("keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki"), where)
    rekor: dict[str, Any] = {}
    for key in _REKOR_KEYS:
        if key in doc:
            if key.endswith("Paths"):
                _str_list(doc[key], f"{where}.{key}")
            elif key.endswith("Datas"):
                _bytes_list(doc[key], f"{where}.{key}")
            elif key.endswith("Data"):
                _bytes(doc[key], f"{where}.{key}")
            else:
                _str(doc[key], f"{where}.{key}")
            rekor[key] = doc[key]
    if len(rekor) > 1:
        raise _Bad(where, f"at most one of {', '.join(_REKOR_KEYS)} can be used")
    if "fulcio" in doc and not rekor:
        raise _Bad(where, "a rekorPublicKey* field must be specified if fulcio is used")
    for key in ("keyPaths", "keyDatas"):
        if key in doc and isinstance(doc[key], list) and not doc[key]:
            raise _Bad(f"{where}.{key}", "contains no entries")
    return SigstoreSigned(
        key_path=_str(doc["keyPath"], f"{where}.keyPath") if "keyPath" in doc else None,
        key_paths=_str_list(doc["keyPaths"], f"{where}.keyPaths") if "keyPaths" in doc else None,
        key_data=_bytes(doc["keyData"], f"{where}.keyData") if "keyData" in doc else None,
        key_datas=(_bytes_list(doc["keyDatas"], f"{where}.keyDatas")
                   if "keyDatas" in doc else None),
        fulcio=_sub_document(doc["fulcio"], f"{where}.fulcio", _FULCIO_KEYS)
        if "fulcio" in doc else None,
        pki=_sub_document(doc["pki"], f"{where}.pki", _PKI_KEYS) if "pki" in doc else None,
        rekor=rekor,
        signed_identity=(_identity(doc["signedIdentity"], f"{where}.signedIdentity")
                         if "signedIdentity" in doc else None),
    )


def _requirement(value: Any, where: str) -> Requirement:
    doc = _object(value, where)
    kind = doc.get("type")
    if kind == InsecureAcceptAnything.type:
        _object(doc, where, ("type",))
        return InsecureAcceptAnything()
    if kind == Reject.type:
        _object(doc, where, ("type",))
        return Reject()
    if kind == SignedBy.type:
        return _signed_by(doc, where)
    if kind == SigstoreSigned.type:
        return _sigstore_signed(doc, where)
    if kind == SignedBaseLayer.type:
        _object(doc, where, ("type", "baseLayerIdentity"), ("baseLayerIdentity",))
        return SignedBaseLayer(_identity(doc["baseLayerIdentity"], f"{where}.baseLayerIdentity"))
    what = shown(kind) if isinstance(kind, str) else "missing or not a string"
    raise _Bad(where, f"unknown policy requirement type {what}")


def _requirements(value: Any, where: str) -> Requirements:
    if not isinstance(value, list):
        raise _Bad(where, "expected a list of requirements")
    if not value:
        raise _Bad(where, "the list of requirements must not be empty")
    return tuple(_requirement(item, f"{where}[{i}]") for i, item in enumerate(value))


def _scope_problem(transport: str, scope: str) -> str | None:
    if scope == "":
        return None
    if transport in PATH_TRANSPORTS:
        return path_scope_problem(scope)
    if transport in SCOPELESS_TRANSPORTS:
        return f'{transport} supports only the default "" scope'
    return None


def _from_document(doc: Any, source: str) -> Policy:
    try:
        top = _object(doc, "", ("default", "transports"))
        if "default" not in top:
            raise _Bad("", "the default policy is missing")
        default = _requirements(top["default"], "default")
        transports: dict[str, dict[str, Requirements]] = {}
        for transport, scopes in _object(top.get("transports", {}), "transports").items():
            where = f"transports.{transport}"
            transports[transport] = {}
            for scope, reqs in _object(scopes, where).items():
                problem = _scope_problem(transport, scope)
                if problem is not None:
                    raise _Bad(where, f"invalid scope {shown(scope)}: {problem}")
                transports[transport][scope] = _requirements(
                    reqs, f"{where}[{shown(scope)}]")
    except _Bad as e:
        raise PolicyFormatError(f"invalid policy in {source}: {e}") from None
    return Policy(default=default, transports=transports)


def parse_policy(raw: bytes, *, source: str = "policy") -> Policy:
    """Parse a policy file's bytes; ``source`` (its path) starts every message."""
    return _from_document(load_strict(raw, f"invalid policy in {source}", PolicyFormatError),
                          source)


def load_policy(path: str) -> Policy:
    """Read and parse the policy file at ``path``."""
    try:
        with open(path, "rb") as f:
            raw = f.read(16 * 1024 * 1024 + 1)
    except FileNotFoundError:
        from libaci.errors import NotFoundError

        raise NotFoundError(f"policy file {path} does not exist") from None
    except OSError as e:
        raise PolicyFormatError(f"cannot read policy file {path}: {e.strerror}") from None
    if len(raw) > 16 * 1024 * 1024:
        raise PolicyFormatError(f"policy file {path} is larger than 16 MiB")
    return parse_policy(raw, source=path)


def find_policy_file(home: str | None, *, exists: Callable[[str], bool] | None = None,
                     system_path: str = SYSTEM_POLICY_PATH) -> str:
    """The policy in force: ``$HOME/.config/podkit/policy.json`` if it exists, else system's.

    (c/image: ``~/.config/containers/policy.json`` then ``/etc/containers/
    policy.json``; podkit keeps its own pair so that it never changes what
    skopeo or podman accept.)  ``exists`` defaults to ``os.path.exists``.
    """
    import os.path

    check = exists or os.path.exists
    if home:
        user = os.path.join(home, USER_POLICY_PATH)
        if check(user):
            return user
    return system_path
