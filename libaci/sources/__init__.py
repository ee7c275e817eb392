"""Image sources for podkit-fetch, chosen by the prefix of the argument.

A source turns a string like ``oci:DIR:REF`` into an image in the store.  New
transports register themselves in :func:`_registry` and :func:`classify`, so
podkit-fetch itself never changes.  A bare argument is a Docker reference
when it is one (``example.com/app:v1`` is); an appc name goes through appc
discovery when written ``appc:NAME`` or when it has labels (a comma), which
no Docker reference has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import attrs

from libaci.digest import Digest
from libaci.errors import UsageError
from libaci.platform import Wanted, host_platform
from libaci.progress import QUIET, Sink
from libaci.store import Store


class AciCheck(Protocol):
    """The signature check of one ACI download (see FetchOptions.verify_aci)."""

    def wrap(self, stream: Any) -> Any:
        """The download stream, as read: the check sees the bytes as served."""

    def check(self, info: Any) -> None:
        """The ACI (a libaci.aci.AciInfo) was read whole: refuse it by raising."""

    def close(self) -> None:
        """Done, whatever happened."""


@attrs.frozen
class FetchOptions:
    platform: Wanted = attrs.field(factory=host_platform)
    name: str | None = None
    progress: Sink = QUIET
    # registries: libaci.registry.client.TLSOptions and a credentials callback
    # (host, repository) -> Credential | None; typed loosely so that importing
    # this module does not import requests
    tls: Any = None
    credentials: Any = None
    pull_policy: str = "update"  # never | new | update, as rkt
    extract: bool = False  # extract the layers now (before publishing), not at first use
    # the trust policy (stage0.trust), asked before an image is published:
    # verify(source, signed manifest digest, its bytes) for OCI/Docker images
    # (``source`` as in the image's io.podkit.image.source annotation; the digest
    # is the index's when the image was picked from one) raises to refuse it;
    # verify_aci(url, signature URL, HTTP client) starts the check of an ACI
    # downloaded from ``url`` (None: nothing to check).  None: no checks.
    verify: Callable[[str, Digest, bytes], None] | None = None
    verify_aci: Callable[[str, str, Any], AciCheck | None] | None = None

    def say(self, msg: str) -> None:
        self.progress.message(msg)


@attrs.frozen
class Fetched:
    image_id: str
    names: tuple[str, ...]


Importer = Callable[[Store, str, FetchOptions], Fetched]
_PREFIXES: dict[str, str] = {}


def _registry() -> dict[str, Callable[[], Importer]]:
    def lazy(mod: str) -> Callable[[], Importer]:
        def load() -> Importer:
            import importlib

            return importlib.import_module(f"libaci.sources.{mod}").fetch  # type: ignore[no-any-return]
        return load

    return {
        "oci": lazy("ocilayout"),
        "oci-archive": lazy("ociarchive"),
        "docker-archive": lazy("dockerarchive"),
        "aci": lazy("acifile"),
        "docker": lazy("docker"),
        "aciurl": lazy("aciurl"),
        "appc": lazy("appcname"),
    }


LOCAL = ("docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF|@N], "
         "FILE.aci, https://URL.aci or appc:NAME[:VERSION][,LABEL=VALUE...]")
ACI_SUFFIXES = (".aci", ".aci.gz", ".aci.bz2", ".aci.xz", ".aci.zst")


def classify(source: str) -> tuple[str, str]:
    """(transport, rest) for a source argument."""
    for transport in ("oci", "oci-archive", "docker-archive"):
        if source.startswith(transport + ":"):
            return transport, source[len(transport) + 1:]
    if source.startswith("docker://"):
        return "docker", source[9:]
    if source.startswith("appc:"):
        return "appc", source[5:]
    if source.startswith(("http://", "https://")):
        return "aciurl", source
    if source.startswith("file://"):
        return "aci", source[7:]
    if source.endswith(ACI_SUFFIXES):
        return "aci", source
    from libaci.reference import is_appc_name, is_docker_reference

    if "://" not in source and is_docker_reference(source):
        return "docker", source  # a bare reference, as docker pull takes it
    if "," in source and is_appc_name(source):
        return "appc", source  # labels: an appc name, never a Docker reference
    raise UsageError(f"unknown image source {source!r} (use {LOCAL})")


def fetch(store: Store, source: str, options: FetchOptions | None = None) -> Fetched:
    transport, rest = classify(source)
    importer = _registry()[transport]()
    return importer(store, rest, options or FetchOptions())


def split_path_ref(rest: str) -> tuple[str, str | None]:
    """``PATH[:REF]`` as containers-transports(5) splits it (at the first colon)."""
    path, sep, ref = rest.partition(":")
    if not path:
        raise UsageError("missing path in image source")
    return path, (ref if sep and ref else None)
