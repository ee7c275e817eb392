"""Image names: Docker references, appc names with labels, OCI ref names.

Three naming schemes reach podkit from the command line and from image
layouts, and each has its own grammar:

* Docker / distribution references (``busybox``, ``quay.io/a/b:tag``,
  ``host:5000/x@sha256:...``).  :func:`parse_docker_reference` follows
  github.com/distribution/reference exactly: the grammar of ``regexp.go``,
  ``splitDockerDomain`` and ``ParseNormalizedNamed`` of ``normalize.go`` (the
  ``docker.io`` default, the ``library/`` prefix for official images,
  ``index.docker.io`` folded into ``docker.io``), ``TagNameOnly`` (the default
  ``latest`` tag) and ``FamiliarString`` (:attr:`DockerReference.familiar`).
  Digests are checked as go-digest does: sha256, sha384 and sha512 with the
  exact number of lowercase hex digits; other well-formed algorithms are
  refused as unsupported, as Docker refuses them.
* appc names with labels (``example.com/app:v1,os=linux,arch=amd64``), as the
  appc discovery spec writes them (``NewAppFromString``), with AC Identifiers
  for the name and the label names.
* The value of the OCI ``org.opencontainers.image.ref.name`` annotation
  (:func:`ref_name_ok`), per image-spec ``annotations.md``.

Everything here is pure string work; failures raise
:class:`~libaci.errors.InvalidReferenceError` with a one-line message that
names the input and says what is wrong with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

import attrs

from libaci.errors import InvalidReferenceError

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "LEGACY_DEFAULT_DOMAIN",
    "OFFICIAL_REPO_PREFIX",
    "REPOSITORY_NAME_MAX",
    "AppcName",
    "DockerReference",
    "ac_identifier_ok",
    "ac_name_ok",
    "default_labels",
    "is_appc_name",
    "is_docker_reference",
    "parse_appc_name",
    "parse_docker_reference",
    "ref_name_ok",
]

# --------------------------------------------------------------------------
# Docker / distribution references
# --------------------------------------------------------------------------

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
LOCALHOST = "localhost"
#: distribution/reference ``RepositoryNameTotalLengthMax``; it bounds the path
#: (the repository name without the domain), as ``Parse`` checks it.
REPOSITORY_NAME_MAX = 255

# The productions of distribution/reference regexp.go.  Go's ``\w`` and
# ``[[:xdigit:]]`` are ASCII-only, hence re.ASCII; every use is a fullmatch
# (Python's ``$`` would also match before a trailing newline).
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_OPTIONAL_PORT = r"(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
_IDENTIFIER = r"[a-f0-9]{64}"
_IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = _DOMAIN_NAME_COMPONENT + r"(?:\." + _DOMAIN_NAME_COMPONENT + r")*"
_HOST = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6_ADDRESS + r")"
_DOMAIN_AND_PORT = _HOST + _OPTIONAL_PORT
_PATH_COMPONENT = _ALPHANUMERIC + r"(?:" + _SEPARATOR + _ALPHANUMERIC + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME

_REFERENCE_RE = re.compile(
    r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?", re.ASCII
)
_NAME_RE = re.compile(r"(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")", re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_DIGEST_RE = re.compile(_DIGEST, re.ASCII)
_IDENTIFIER_RE = re.compile(_IDENTIFIER, re.ASCII)

# go-digest: algorithms Docker registers, with their exact encodings, and the
# looser pattern that tells "unsupported algorithm" from "malformed digest".
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_LOWER_HEX_RE = re.compile(r"[a-f0-9]+", re.ASCII)
_GO_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+", re.ASCII)

_TAG_RULE = "a tag is 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
_NAME_RULE = (
    "repository name must be '/'-separated components of lowercase letters and digits "
    "joined by '.', '_', '__' or dashes, after an optional registry host[:port]"
)


def _q(text: str) -> str:
    """Quote ``text`` for a one-line message (control characters escaped)."""
    return json.dumps(text, ensure_ascii=False)


def _bad(text: str, why: str) -> InvalidReferenceError:
    return InvalidReferenceError(f"invalid reference {_q(text)}: {why}")


def _digest_problem(digest: str) -> str | None:
    """Why ``digest`` is not acceptable, or None (regexp.go, then go-digest)."""
    if not _DIGEST_RE.fullmatch(digest):
        return f"digest {_q(digest)} is not algorithm:hex with at least 32 hex digits"
    algorithm, _, encoded = digest.partition(":")
    width = _DIGEST_HEX_LENGTHS.get(algorithm)
    if width is None:
        if not _GO_DIGEST_RE.fullmatch(digest):
            return f"digest {_q(digest)} is malformed (the algorithm must be lowercase)"
        return f"unsupported digest algorithm {_q(algorithm)} (use sha256, sha384 or sha512)"
    if len(encoded) != width or not _LOWER_HEX_RE.fullmatch(encoded):
        return f"{algorithm} digest must be {width} lowercase hex digits, got {_q(encoded)}"
    return None


def _tag_problem(tag: str) -> str | None:
    if _TAG_RE.fullmatch(tag):
        return None
    if len(tag) > 128:
        return f"tag is {len(tag)} characters long, the limit is 128"
    return f"invalid tag {_q(tag)}: {_TAG_RULE}"


def _diagnose(text: str) -> str:
    """Say why ``text`` failed the reference grammar (the grammar decides)."""
    name_tag, at, digest = text.partition("@")
    if at and not _DIGEST_RE.fullmatch(digest):
        return f"digest {_q(digest)} is not algorithm:hex with at least 32 hex digits"
    slash, colon = name_tag.rfind("/"), name_tag.rfind(":")
    name = name_tag
    if colon > slash:
        name, tag = name_tag[:colon], name_tag[colon + 1 :]
        problem = _tag_problem(tag)
        if problem is not None and _NAME_RE.fullmatch(name):
            return problem
    if not name:
        return "repository name must have at least one component"
    return _NAME_RULE


def _split_docker_domain(name: str) -> tuple[str, str]:
    """normalize.go ``splitDockerDomain``: the domain and the rest of ``name``."""
    maybe_domain, slash, maybe_remote = name.partition("/")
    if not slash:
        # A single element ("ubuntu", "ubuntu:latest", even "localhost:5000")
        # is always an official image on Docker Hub.
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == LOCALHOST:
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain.lower() != maybe_domain:
        # Namespaces are lowercase, so an uppercase first element is a host.
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def _familiar_path(domain: str, path: str) -> str:
    """normalize.go ``familiarizeName`` for a name on ``domain``."""
    if domain == DEFAULT_DOMAIN and path.startswith(OFFICIAL_REPO_PREFIX):
        rest = path[len(OFFICIAL_REPO_PREFIX) :]
        if "/" not in rest:
            return rest
    return path


@attrs.frozen
class DockerReference:
    """A normalized Docker reference: ``domain/path[:tag][@digest]``.

    ``domain`` is empty only for the rare name whose first component looks
    like a host to :func:`parse_docker_reference` but not to the grammar
    (``a_b.com/x``); distribution/reference keeps such names domain-less too.
    Build instances with :func:`parse_docker_reference`.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``domain/path`` (the repository, without tag or digest)."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def repository(self) -> str:
        """The same as :attr:`name`."""
        return self.name

    @property
    def familiar_name(self) -> str:
        """Docker's short name: ``busybox``, ``user/repo``, ``quay.io/a/b``."""
        if self.domain == DEFAULT_DOMAIN:
            return _familiar_path(self.domain, self.path)
        return self.name

    @property
    def familiar(self) -> str:
        """Docker's short form (``FamiliarString``): ``busybox:latest``."""
        return self._render(self.familiar_name)

    def _render(self, name: str) -> str:
        text = name
        if self.tag is not None:
            text += ":" + self.tag
        if self.digest is not None:
            text += "@" + self.digest
        return text

    def __str__(self) -> str:
        return self._render(self.name)

    def with_tag(self, tag: str) -> DockerReference:
        """This reference with ``tag`` (a digest, if any, is kept)."""
        problem = _tag_problem(tag)
        if problem is not None:
            raise _bad(str(self), problem)
        return attrs.evolve(self, tag=tag)

    def with_digest(self, digest: object) -> DockerReference:
        """This reference with ``digest`` (a str or a Digest; a tag is kept)."""
        text = str(digest)
        problem = _digest_problem(text)
        if problem is not None:
            raise _bad(str(self), problem)
        return attrs.evolve(self, digest=text)


def parse_docker_reference(text: str, *, default_tag: str | None = DEFAULT_TAG) -> DockerReference:
    """Parse ``text`` as Docker does (``ParseNormalizedNamed``).

    ``default_tag`` is added when the reference has neither a tag nor a
    digest (``TagNameOnly``); pass None to leave such a reference bare.
    """
    if default_tag is not None and not _TAG_RE.fullmatch(default_tag):
        raise InvalidReferenceError(f"invalid default tag {_q(default_tag)}: {_TAG_RULE}")
    if not text:
        raise _bad(text, "repository name must have at least one component")
    if _IDENTIFIER_RE.fullmatch(text):
        raise _bad(text, "cannot specify 64-byte hexadecimal strings (that is an image ID)")
    domain, remainder = _split_docker_domain(text)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        # As in Go, the text up to the first ':' is checked, which for
        # "name@ALG:hex" includes a digest algorithm: say what is wrong.
        name_part, at, algorithm = remote.partition("@")
        if at and name_part.lower() == name_part:
            raise _bad(text, f"digest algorithm {_q(algorithm)} must be lowercase")
        raise _bad(text, "repository name must be lowercase")

    # reference.go ``Parse`` of the normalized string.
    full = domain + "/" + remainder
    match = _REFERENCE_RE.fullmatch(full)
    if match is None:
        lowered = full.lower()
        if lowered != full and _REFERENCE_RE.fullmatch(lowered):
            raise _bad(text, "repository name must be lowercase")
        raise _bad(text, _diagnose(text))
    name, tag, digest = match.groups()
    name_match = _NAME_RE.fullmatch(name)
    assert name_match is not None  # the reference grammar embeds the name grammar
    ref_domain, path = name_match.group(1) or "", name_match.group(2)
    if len(path) > REPOSITORY_NAME_MAX:
        raise _bad(
            text,
            f"repository name must not be more than {REPOSITORY_NAME_MAX} characters "
            f"({_q(path[:40] + '...')} has {len(path)})",
        )
    if digest is not None:
        problem = _digest_problem(digest)
        if problem is not None:
            raise _bad(text, problem)
    if tag is None and digest is None and default_tag is not None:
        tag = default_tag
    return DockerReference(domain=ref_domain, path=path, tag=tag, digest=digest)


def is_docker_reference(text: str) -> bool:
    """Whether :func:`parse_docker_reference` accepts ``text``."""
    try:
        parse_docker_reference(text)
    except InvalidReferenceError:
        return False
    return True


# --------------------------------------------------------------------------
# appc names with labels
# --------------------------------------------------------------------------

_AC_IDENTIFIER_RE = re.compile(r"[a-z0-9]+(?:[-._~/][a-z0-9]+)*", re.ASCII)
_AC_NAME_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII)
_AC_IDENTIFIER_RULE = (
    "an AC Identifier is lowercase letters and digits, joined by single '-', '.', '_', '~' or '/'"
)

#: uname machine -> appc arch for Linux (appc spec, "OS-Arch" table).
_APPC_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "i386",
    "i486": "i386",
    "i586": "i386",
    "i686": "i386",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "aarch64_be": "aarch64_be",
    "armv6l": "armv6l",
    "armv7l": "armv7l",
    "armv7b": "armv7b",
    "ppc64": "ppc64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}


def ac_identifier_ok(text: str) -> bool:
    """Whether ``text`` is an AC Identifier (``^[a-z0-9]+([-._~/][a-z0-9]+)*$``)."""
    return _AC_IDENTIFIER_RE.fullmatch(text) is not None


def ac_name_ok(text: str) -> bool:
    """Whether ``text`` is an AC Name (``^[a-z0-9]+([-][a-z0-9]+)*$``)."""
    return _AC_NAME_RE.fullmatch(text) is not None


def default_labels(os_name: str, machine: str) -> dict[str, str]:
    """appc ``os``/``arch`` labels for a uname sysname and machine.

    ``default_labels("Linux", "x86_64") == {"os": "linux", "arch": "amd64"}``;
    a machine not in the table is passed through lowercased.
    """
    machine = machine.lower()
    return {"os": os_name.lower(), "arch": _APPC_ARCH.get(machine, machine)}


def _label_problem(labels: Iterable[tuple[str, str]]) -> str | None:
    seen: set[str] = set()
    for key, value in labels:
        if not ac_identifier_ok(key):
            return f"label name {_q(key)} is not valid: {_AC_IDENTIFIER_RULE}"
        if key == "name":
            return 'label name "name" is reserved for the app name'
        if key in seen:
            return f"label {_q(key)} is given more than once"
        seen.add(key)
        if not value:
            return f"label {_q(key)} has an empty value"
        if "," in value or ":" in value:
            return f"label {_q(key)} value {_q(value)} must not contain ',' or ':'"
    return None


def _to_labels(value: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple((str(k), str(v)) for k, v in items)


def _check_appc(instance: AppcName, attribute: attrs.Attribute, value: object) -> None:
    del attribute, value
    why = None
    if not ac_identifier_ok(instance.name):
        why = f"app name {_q(instance.name)} is not valid: {_AC_IDENTIFIER_RULE}"
    else:
        why = _label_problem(instance.labels)
    if why is not None:
        raise InvalidReferenceError(f"invalid appc name {_q(instance.name)}: {why}")


@attrs.frozen
class AppcName:
    """An appc image name with labels: ``example.com/app:v1,os=linux``.

    ``labels`` keeps the given order; equality and hashing treat it as a
    mapping.  The ``version`` label is written after a colon.
    """

    name: str
    labels: tuple[tuple[str, str], ...] = attrs.field(
        default=(), converter=_to_labels, eq=frozenset, validator=_check_appc
    )

    @property
    def labels_dict(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def version(self) -> str | None:
        return self.labels_dict.get("version")

    def __str__(self) -> str:
        text = self.name
        if self.version is not None:
            text += ":" + self.version
        for key, value in self.labels:
            if key != "version":
                text += f",{key}={value}"
        return text


def parse_appc_name(text: str) -> AppcName:
    """Parse an appc discovery name: ``name[:version][,label=value...]``."""

    def bad(why: str) -> InvalidReferenceError:
        return InvalidReferenceError(f"invalid appc name {_q(text)}: {why}")

    head, comma, rest = text.partition(",")
    name, colon, version = head.partition(":")
    if not name:
        raise bad("the app name is empty")
    if not ac_identifier_ok(name):
        raise bad(f"app name {_q(name)} is not valid: {_AC_IDENTIFIER_RULE}")
    if ":" in version or ":" in rest:
        raise bad("a colon may appear only once, right after the app name, before the version")
    labels: list[tuple[str, str]] = []
    if colon:
        labels.append(("version", version))
    if comma:
        for part in rest.split(","):
            key, equals, value = part.partition("=")
            if not equals:
                raise bad(f"label {_q(part)} has no value (write name=value)")
            labels.append((key, value))
    why = _label_problem(labels)
    if why is not None:
        raise bad(why)
    return AppcName(name=name, labels=tuple(labels))


def is_appc_name(text: str) -> bool:
    """Whether :func:`parse_appc_name` accepts ``text``."""
    try:
        parse_appc_name(text)
    except InvalidReferenceError:
        return False
    return True


# --------------------------------------------------------------------------
# OCI org.opencontainers.image.ref.name
# --------------------------------------------------------------------------

_REF_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_NAME_RE = re.compile(_REF_COMPONENT + r"(?:/" + _REF_COMPONENT + r")*", re.ASCII)


def ref_name_ok(text: str) -> bool:
    """Whether ``text`` is a valid ``org.opencontainers.image.ref.name`` value."""
    return _REF_NAME_RE.fullmatch(text) is not None
