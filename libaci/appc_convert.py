"""Converting an OCI / Docker image config into an appc image manifest.

What docker2aci did, for ``podkit-export IMAGE FILE.aci``: the entrypoint and
command become ``app.exec``, Env, WorkingDir, User, ExposedPorts and Volumes
map to their appc fields, and the platform becomes ``os``/``arch`` labels.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

from libaci.appc import (
    App,
    ImageManifest,
    MountPoint,
    NameValue,
    Port,
    check_image_manifest,
)
from libaci.errors import ManifestError


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)

# appc ToAppcOSArch: (GOOS, GOARCH, variant) -> (appc os, appc arch).
_GO_TO_APPC: dict[tuple[str, str, str], tuple[str, str]] = {
    ("linux", "amd64", ""): ("linux", "amd64"),
    ("linux", "386", ""): ("linux", "i386"),
    ("linux", "arm64", ""): ("linux", "aarch64"),
    ("linux", "arm", ""): ("linux", "armv6l"),
    ("linux", "arm", "v6"): ("linux", "armv6l"),
    ("linux", "arm", "v7"): ("linux", "armv7l"),
    ("linux", "ppc64", ""): ("linux", "ppc64"),
    ("linux", "ppc64le", ""): ("linux", "ppc64le"),
    ("linux", "s390x", ""): ("linux", "s390x"),
    ("freebsd", "amd64", ""): ("freebsd", "amd64"),
    ("freebsd", "386", ""): ("freebsd", "i386"),
    ("freebsd", "arm", ""): ("freebsd", "arm"),
    ("freebsd", "arm", "v5"): ("freebsd", "arm"),
    ("freebsd", "arm", "v6"): ("freebsd", "arm"),
    ("freebsd", "arm", "v7"): ("freebsd", "arm"),
    ("darwin", "amd64", ""): ("darwin", "x86_64"),
    ("darwin", "386", ""): ("darwin", "i386"),
}

ANNOTATION_DOCKER_ENTRYPOINT = "appc.io/docker/entrypoint"
ANNOTATION_DOCKER_CMD = "appc.io/docker/cmd"

_AC_ID_INVALID = re.compile(r"[^a-z0-9\-._~/]")
_AC_ID_EDGES = re.compile(r"(^[\-._~/]+)|([\-._~/]+$)")
_AC_NAME_INVALID = re.compile(r"[^a-z0-9-]")


def sanitize_ac_identifier(s: str) -> str:
    """appc ``SanitizeACIdentifier``: lower-case, bad characters to "_", trim edges."""
    out = _AC_ID_EDGES.sub("", _AC_ID_INVALID.sub("_", s.lower()))
    if not out:
        raise ManifestError(f"cannot make an appc name of {_q(s)}")
    return out


def sanitize_ac_name(s: str) -> str:
    """appc ``SanitizeACName`` (0.8.11 AC Name: ``[a-z0-9]+(-[a-z0-9]+)*``)."""
    out = re.sub(r"-+", "-", _AC_NAME_INVALID.sub("-", s.lower())).strip("-")
    if not out:
        raise ManifestError(f"cannot make an appc name of {_q(s)}")
    return out


def appc_os_arch(os_name: str, arch: str, variant: str | None = None) -> tuple[str, str]:
    """Translate an OCI (Go) platform to appc ``os``/``arch`` label values (ToAppcOSArch)."""
    hit = _GO_TO_APPC.get((os_name, arch, variant or ""))
    if hit is None and arch != "arm":  # only 32-bit arm variants change the appc arch
        hit = _GO_TO_APPC.get((os_name, arch, ""))
    if hit is None:
        plat = "/".join(x for x in (os_name, arch, variant) if x)
        raise ManifestError(f"platform {plat} has no appc os/arch equivalent")
    return hit


def _user_group(user: str) -> tuple[str, str]:
    # docker2aci parseDockerUser: empty -> root; "u" alone -> group named like the user.
    if not user:
        return "0", "0"
    u, sep, g = user.partition(":")
    return (u or "0"), (g if sep and g else (u or "0"))


def _parse_exposed(spec: str) -> Port:
    num, _, proto = spec.partition("/")
    proto = proto or "tcp"
    lo, dash, hi = num.partition("-")
    try:
        port = int(lo)
        count = int(hi) - port + 1 if dash else 1
    except ValueError:
        raise ManifestError(f"image config: bad exposed port {_q(spec)}") from None
    if not 1 <= port <= 65535 or count < 1 or port + count > 65536:
        raise ManifestError(f"image config: bad exposed port {_q(spec)}")
    return Port(name=sanitize_ac_name(spec), protocol=proto, port=port,
                count=count if count != 1 else None)


def _mount_points(volumes: Iterable[str]) -> tuple[MountPoint, ...]:
    mps: list[MountPoint] = []
    dup: dict[str, int] = {}
    for path in volumes:
        name = sanitize_ac_name(posixpath.join("volume", path.lstrip("/")))
        if name in dup:
            dup[name] += 1
            name = f"{name}-{dup[name] - 1}"
        else:
            dup[name] = 1
        mps.append(MountPoint(name=name, path=path))
    return tuple(sorted(mps, key=lambda m: m.name))


def _env(entries: Iterable[str]) -> tuple[NameValue, ...]:
    env: dict[str, str] = {}
    for entry in entries:
        k, sep, v = entry.partition("=")
        if sep and k:
            env[k] = v  # like appc Environment.Set: a later value replaces an earlier one
    return tuple(NameValue(k, v) for k, v in env.items())


def manifest_from_oci_config(name: str, version: str | None,
                             config: Mapping[str, Any]) -> ImageManifest:
    """An appc image manifest for an OCI / Docker image config, as docker2aci made it.

    ``name`` is sanitized into an AC Identifier.  Entrypoint+Cmd become
    ``exec`` (also kept as JSON in the ``appc.io/docker/{entrypoint,cmd}``
    annotations), Env the environment, User "u[:g]" the user and group ("0"/"0"
    when unset, the group named like the user when only a user is given),
    ExposedPorts "80/tcp" ports named "80-tcp", Volumes mount points named
    "volume-<path>", Labels ``userLabels``, os/architecture/variant the appc
    ``os``/``arch`` labels.
    """
    labels: list[NameValue] = []
    if version:
        labels.append(NameValue("version", version))
    os_name, arch = config.get("os"), config.get("architecture")
    if os_name and arch:
        aos, aarch = appc_os_arch(os_name, arch, config.get("variant"))
        labels += [NameValue("os", aos), NameValue("arch", aarch)]
    elif os_name:
        labels.append(NameValue("os", os_name))  # os names are the same in Go and appc

    annotations: list[NameValue] = []
    if config.get("author"):
        annotations.append(NameValue("authors", str(config["author"])))
    if config.get("created"):
        annotations.append(NameValue("created", str(config["created"])))

    app: App | None = None
    inner = config.get("config")
    if isinstance(inner, Mapping):
        entrypoint = list(inner.get("Entrypoint") or [])
        cmd = list(inner.get("Cmd") or [])
        if entrypoint:
            annotations.append(NameValue(ANNOTATION_DOCKER_ENTRYPOINT, json.dumps(entrypoint)))
        if cmd:
            annotations.append(NameValue(ANNOTATION_DOCKER_CMD, json.dumps(cmd)))
        user, group = _user_group(str(inner.get("User") or ""))
        env = _env(inner.get("Env") or [])
        mps = _mount_points(inner.get("Volumes") or {})
        ports = tuple(sorted((_parse_exposed(p) for p in inner.get("ExposedPorts") or {}),
                             key=lambda p: p.name))
        user_labels = dict(inner.get("Labels") or {})
        app = App(
            exec=tuple(entrypoint + cmd),
            user=user,
            group=group,
            working_directory=inner.get("WorkingDir") or None,
            environment=env or None,
            mount_points=mps or None,
            ports=ports or None,
            user_labels=user_labels or None,
        )
    m = ImageManifest(
        name=sanitize_ac_identifier(name),
        labels=tuple(labels) or None,
        app=app,
        annotations=tuple(annotations) or None,
    )
    check_image_manifest(m)
    return m
