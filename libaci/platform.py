"""Choosing one manifest from an index, the way containers/image does.

OS and architecture must match exactly; variants fall back to less capable
ones (arm v7 -> v6 -> v5), an arm64 image without variant equals v8, and the
first matching entry in the index wins.
"""

from __future__ import annotations

import os

import attrs

from libaci.errors import NotFoundError
from libaci.oci import Descriptor, Index

_VARIANTS = {"arm": ["v8", "v7", "v6", "v5"], "arm64": ["v8"]}
_UNAME_ARCH = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "i386": ("386", None),
    "i686": ("386", None),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "ppc64le": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
    "mips64": ("mips64", None),
}


@attrs.frozen
class Wanted:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        return f"{s}/{self.variant}" if self.variant else s


def host_platform() -> Wanted:
    machine = os.uname().machine
    arch, variant = _UNAME_ARCH.get(machine, (machine, None))
    return Wanted("linux", arch, variant)


def wanted(os_name: str | None = None, arch: str | None = None,
           variant: str | None = None) -> Wanted:
    """The host's platform, with any of its parts overridden."""
    host = host_platform()
    if arch and arch != host.architecture and variant is None:
        host = attrs.evolve(host, variant=None)
    return Wanted(os_name or host.os, arch or host.architecture,
                  variant if variant is not None else host.variant)


def _variant_candidates(w: Wanted) -> list[str]:
    order = _VARIANTS.get(w.architecture, [])
    if w.variant:
        if w.variant in order:
            return [*order[order.index(w.variant):], ""]
        return [w.variant, ""]
    return ["", *order]


def _norm_variant(arch: str, variant: str | None) -> str:
    if arch == "arm64" and variant in (None, "", "v8"):
        return ""
    return variant or ""


def select(index: Index, w: Wanted) -> Descriptor:
    """The descriptor in ``index`` that best fits ``w``; NotFoundError if none."""
    candidates = _variant_candidates(w)
    if w.architecture == "arm64":
        candidates = [""]
    best: tuple[int, int] | None = None
    chosen: Descriptor | None = None
    for pos, desc in enumerate(index.manifests):
        p = desc.platform
        if p is None or p.os != w.os or p.architecture != w.architecture:
            continue
        v = _norm_variant(p.architecture, p.variant)
        if v not in candidates:
            continue
        rank = (candidates.index(v), pos)
        if best is None or rank < best:
            best, chosen = rank, desc
    if chosen is None:
        have = ", ".join(str(d.platform) for d in index.manifests if d.platform) or "none"
        raise NotFoundError(f"no image for platform {w} in the index (it has: {have})")
    return chosen
