"""Which policy scope an image falls in: transports, identities, namespaces.

containers-policy.json(5) keys its requirements by transport and scope; the
most specific scope that exists wins.  An image is described here by an
:class:`ImageName`: its transport, its *identity* (the most specific scope)
and its *namespaces* (ever less specific scopes, tried in order before the
transport's ``""`` and the policy's ``default``), exactly as c/image computes
them (``PolicyConfigurationIdentity`` / ``PolicyConfigurationNamespaces``):

``docker``
    identity ``host[:port]/repo:tag`` or ``host[:port]/repo@digest``;
    namespaces the repository, each parent path, the host[:port], then
    wildcard domains without the port (``*.b.example.com``, ``*.example.com``,
    ``*.com``).  ``busybox`` is ``docker.io/library/busybox:latest``.
``oci``, ``oci-archive``, ``dir``, ``docker-archive``
    identity the absolute path of the directory or file (symlinks resolved
    by the caller); namespaces the path and its parents, not ``/``.
``podkit`` (podkit's own, proposed)
    images made on this machine (podkit-build, podkit-commit): identity and
    namespaces as for docker from the image's name (``localhost/app:1``),
    only ``""`` when it has none.  A policy with no ``podkit`` section
    accepts them (``insecureAcceptAnything``); c/image ignores the unknown
    transport, so the same file still works with skopeo.

A reference with both a tag and a digest is evaluated as the digest alone:
that is what is pulled (c/image 5.23 refuses such references outright).
"""

from __future__ import annotations

import posixpath

import attrs

from libaci.reference import DockerReference, parse_docker_reference

__all__ = [
    "DOCKER",
    "LOCAL",
    "PATH_TRANSPORTS",
    "ImageName",
    "docker_identity",
    "docker_namespaces",
    "path_scope_problem",
]

DOCKER = "docker"
LOCAL = "podkit"
#: transports whose scopes are absolute paths
PATH_TRANSPORTS = frozenset({"oci", "oci-archive", "dir", "docker-archive", "sif"})
#: transports that only have the "" scope
SCOPELESS_TRANSPORTS = frozenset({"docker-daemon"})


def _for_policy(ref: DockerReference) -> DockerReference:
    if ref.digest is not None and ref.tag is not None:
        return attrs.evolve(ref, tag=None)
    return ref


def docker_identity(ref: DockerReference) -> str:
    """``PolicyConfigurationIdentity`` of a docker reference."""
    ref = _for_policy(ref)
    if ref.digest is not None:
        return f"{ref.name}@{ref.digest}"
    if ref.tag is not None:
        return f"{ref.name}:{ref.tag}"
    raise ValueError(f"{ref} has neither a tag nor a digest")


def docker_namespaces(ref: DockerReference) -> tuple[str, ...]:
    """``PolicyConfigurationNamespaces`` of a docker reference (c/image naming.go)."""
    result = []
    name = ref.name
    while True:
        result.append(name)
        slash = name.rfind("/")
        if slash == -1:
            break
        name = name[:slash]
    host = name.partition(":")[0]
    while "." in host:
        host = host[host.index(".") + 1 :]
        result.append("*." + host)
    return tuple(result)


def _path_namespaces(path: str) -> tuple[str, ...]:
    result = []
    while True:
        slash = path.rfind("/")
        if slash == -1 or path == "/":
            break
        result.append(path)
        path = path[:slash]
    return tuple(result)


def path_scope_problem(scope: str) -> str | None:
    """Why ``scope`` is not a valid path scope (c/image's oci/dir validation), or None."""
    if not scope.startswith("/"):
        return "must be an absolute path"
    if scope == "/":
        return 'use the default "" scope instead of "/"'
    cleaned = posixpath.normpath(scope)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if cleaned != scope:
        return f"uses a non-canonical form, perhaps try {cleaned}"
    return None


@attrs.frozen
class ImageName:
    """An image as the policy sees it: build it with the class methods.

    ``docker_reference`` is what ``signedIdentity`` compares signatures
    with; images without one (``oci``/``dir`` paths) can only satisfy the
    ``exactReference`` and ``exactRepository`` forms.
    """

    transport: str
    identity: str
    namespaces: tuple[str, ...] = ()
    docker_reference: DockerReference | None = None

    @classmethod
    def docker(cls, reference: DockerReference | str) -> ImageName:
        """An image from a registry (``docker://`` reference; ``latest`` added if bare)."""
        ref = parse_docker_reference(reference) if isinstance(reference, str) else reference
        if ref.tag is None and ref.digest is None:
            ref = ref.with_tag("latest")
        ref = _for_policy(ref)
        return cls(transport=DOCKER, identity=docker_identity(ref),
                   namespaces=docker_namespaces(ref), docker_reference=ref)

    @classmethod
    def path(cls, transport: str, path: str, *,
             docker_reference: DockerReference | None = None) -> ImageName:
        """An image read from a layout directory or archive at absolute ``path``."""
        problem = path_scope_problem(path)
        if problem is not None:
            raise ValueError(f"{transport} image path {path!r}: {problem}")
        return cls(transport=transport, identity=path, namespaces=_path_namespaces(path),
                   docker_reference=docker_reference)

    @classmethod
    def local(cls, name: DockerReference | str | None = None) -> ImageName:
        """An image made on this machine (podkit-build, podkit-commit), named or not."""
        if name is None:
            return cls(transport=LOCAL, identity="")
        ref = parse_docker_reference(name) if isinstance(name, str) else name
        ref = _for_policy(ref)
        return cls(transport=LOCAL, identity=docker_identity(ref),
                   namespaces=docker_namespaces(ref), docker_reference=ref)

    def __str__(self) -> str:
        return f"{self.transport}:{self.identity}" if self.identity else self.transport
