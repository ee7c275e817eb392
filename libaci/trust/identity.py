"""``signedIdentity``: which image names a signature may vouch for.

A signature names the image it was made for (``critical.identity.
docker-reference``); a policy requirement's ``signedIdentity`` says whether
that name is acceptable for the image being verified.  The six forms and
their exact semantics follow c/image (signature/policy_reference_match.go):

``matchExact``
    the image and signature references are equal, both with a tag or digest.
``matchRepoDigestOrExact`` (the default)
    equal when the image has a tag; same repository when the image is
    pulled by digest (the digest itself is checked separately).
``matchRepository``
    same repository, tags ignored.
``exactReference`` (``dockerReference``)
    the signature names exactly that reference, whatever the image is.
``exactRepository`` (``dockerRepository``)
    the signature names that repository.
``remapIdentity`` (``prefix``, ``signedPrefix``)
    the image's name with ``prefix`` replaced by ``signedPrefix`` (for
    mirrors), then as ``matchRepoDigestOrExact``.

Names are compared fully normalized (``docker.io/library/busybox``), never
with a default tag added to the signature's side.
"""

from __future__ import annotations

import re

import attrs

from libaci.errors import InvalidReferenceError
from libaci.reference import DockerReference, parse_docker_reference

__all__ = [
    "IDENTITY_TYPES",
    "MATCH_REPO_DIGEST_OR_EXACT",
    "IdentityRule",
    "identity_matches",
    "remap_prefix_ok",
]

MATCH_EXACT = "matchExact"
MATCH_REPO_DIGEST_OR_EXACT = "matchRepoDigestOrExact"
MATCH_REPOSITORY = "matchRepository"
EXACT_REFERENCE = "exactReference"
EXACT_REPOSITORY = "exactRepository"
REMAP_IDENTITY = "remapIdentity"
IDENTITY_TYPES = (MATCH_EXACT, MATCH_REPO_DIGEST_OR_EXACT, MATCH_REPOSITORY, EXACT_REFERENCE,
                  EXACT_REPOSITORY, REMAP_IDENTITY)
#: the forms that need the image's own Docker reference
NEEDS_IMAGE_REFERENCE = frozenset({MATCH_EXACT, MATCH_REPO_DIGEST_OR_EXACT, MATCH_REPOSITORY,
                                   REMAP_IDENTITY})

# distribution/reference DomainRegexp and NameRegexp (for remapIdentity prefixes).
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = (r"(?:" + _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
           r"|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_NAME = r"(?:" + _DOMAIN + r"/)?" + _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_DOMAIN_RE = re.compile(_DOMAIN, re.ASCII)
_DOMAIN_PREFIX_RE = re.compile(_DOMAIN + "/", re.ASCII)
_NAME_RE = re.compile(_NAME, re.ASCII)


def remap_prefix_ok(prefix: str) -> bool:
    """Whether ``prefix`` is a valid ``remapIdentity`` prefix (a host or host/path)."""
    return bool(_DOMAIN_RE.fullmatch(prefix)
                or (_NAME_RE.fullmatch(prefix) and _DOMAIN_PREFIX_RE.match(prefix)))


@attrs.frozen
class IdentityRule:
    """A ``signedIdentity`` value.  Fields other than ``type`` as that type needs."""

    type: str = MATCH_REPO_DIGEST_OR_EXACT
    docker_reference: str | None = None
    docker_repository: str | None = None
    prefix: str | None = None
    signed_prefix: str | None = None

    def to_dict(self) -> dict[str, str]:
        out = {"type": self.type}
        if self.type == EXACT_REFERENCE:
            out["dockerReference"] = self.docker_reference or ""
        elif self.type == EXACT_REPOSITORY:
            out["dockerRepository"] = self.docker_repository or ""
        elif self.type == REMAP_IDENTITY:
            out["prefix"] = self.prefix or ""
            out["signedPrefix"] = self.signed_prefix or ""
        return out

    def __str__(self) -> str:
        if self.type == EXACT_REFERENCE:
            return f"{self.type} {self.docker_reference}"
        if self.type == EXACT_REPOSITORY:
            return f"{self.type} {self.docker_repository}"
        if self.type == REMAP_IDENTITY:
            return f"{self.type} {self.prefix} -> {self.signed_prefix}"
        return self.type


def _parse(text: str) -> DockerReference | None:
    try:
        return parse_docker_reference(text, default_tag=None)
    except InvalidReferenceError:
        return None


def _name_only(ref: DockerReference) -> bool:
    return ref.tag is None and ref.digest is None


def _repo_digest_or_exact(intended: DockerReference, signature: DockerReference) -> bool:
    if _name_only(signature):
        return False
    if intended.tag is not None:  # includes a tag and a digest
        return str(signature) == str(intended)
    if intended.digest is not None:
        return signature.name == intended.name
    return False


def _remap(rule: IdentityRule, ref: DockerReference) -> DockerReference | None:
    prefix, signed_prefix = rule.prefix or "", rule.signed_prefix or ""
    name = ref.name
    if not (name == prefix or (name.startswith(prefix) and name[len(prefix):][:1] == "/")):
        return ref
    text = str(ref).replace(prefix, signed_prefix, 1)
    remapped = _parse(text)
    # reference.ParseNamed: the rewritten name must already be canonical.
    if remapped is None or str(remapped) != text:
        return None
    return remapped


def identity_matches(rule: IdentityRule, image: DockerReference | None, claimed: str) -> bool:
    """Whether a signature claiming ``claimed`` is acceptable for ``image`` under ``rule``.

    ``image`` is the image's Docker reference, or None for images that have
    none (then only the ``exact*`` forms can match).
    """
    signature = _parse(claimed)
    if signature is None:
        return False
    kind = rule.type
    if kind == EXACT_REFERENCE:
        wanted = _parse(rule.docker_reference or "")
        return (wanted is not None and not _name_only(wanted) and not _name_only(signature)
                and str(signature) == str(wanted))
    if kind == EXACT_REPOSITORY:
        wanted = _parse(rule.docker_repository or "")
        return wanted is not None and signature.name == wanted.name
    if image is None:
        return False
    if kind == MATCH_EXACT:
        return (not _name_only(image) and not _name_only(signature)
                and str(signature) == str(image))
    if kind == MATCH_REPO_DIGEST_OR_EXACT:
        return _repo_digest_or_exact(image, signature)
    if kind == MATCH_REPOSITORY:
        return signature.name == image.name
    if kind == REMAP_IDENTITY:
        remapped = _remap(rule, image)
        return remapped is not None and _repo_digest_or_exact(remapped, signature)
    return False
