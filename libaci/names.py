"""How the user's words map to images in the store.

A name given on the command line may be a Docker reference (``busybox``,
``registry:5000/app:1``), an appc name (``example.com/app:v1``), a full image
ID (``sha256:<hex>``, appc ``sha512-<hex>``) or a unique prefix of one.
Names are stored fully normalised (``docker.io/library/busybox:latest``).
"""

from __future__ import annotations

import re

from libaci.errors import InvalidReferenceError
from libaci.reference import parse_appc_name, parse_docker_reference

_ID = re.compile(r"^(?:(sha256|sha512)[:-])?([0-9a-f]{4,128})\Z")


def normalize(name: str) -> str:
    """The stored form of a user-given image name (Docker normalisation)."""
    return str(parse_docker_reference(name))


def lookup_keys(ref: str) -> list[str]:
    """Stored names that ``ref`` may denote, most specific first."""
    keys = [ref]
    try:
        docker = parse_docker_reference(ref)
        keys.append(str(docker))
        if docker.domain == "docker.io" and not ref.startswith(("docker.io/", "index.docker.io/")):
            # short names also find local images, as podman's localhost/ does
            keys.append(f"localhost/{docker.familiar}")
    except InvalidReferenceError:
        pass
    try:
        app = parse_appc_name(ref)
        keys.append(appc_store_name(app.name, app.version))
        if app.version is None:
            keys.append(appc_store_name(app.name, "latest"))
    except InvalidReferenceError:
        pass
    return list(dict.fromkeys(keys))


def appc_name_without_version(ref: str) -> str | None:
    """The appc name when ``ref`` is one with no version label, else None."""
    try:
        app = parse_appc_name(ref)
    except InvalidReferenceError:
        return None
    return app.name if app.version is None else None


def appc_store_name(name: str, version: str | None) -> str:
    return f"{name}:{version}" if version else name


def id_prefix(ref: str) -> tuple[str | None, str] | None:
    """(algorithm or None, hex prefix) when ``ref`` looks like an image ID."""
    m = _ID.match(ref)
    if not m:
        return None
    return m.group(1), m.group(2)
