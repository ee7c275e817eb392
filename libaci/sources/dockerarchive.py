"""``docker-archive:FILE[:REF|@N]``: what ``docker save`` writes.

The archive has no image manifest, so podkit authors an OCI manifest over
the archive's own config bytes (the image's Docker ID stays the config
digest) and its layers; layers keep their compression (usually none).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from typing import Any, BinaryIO

from libaci import mediatypes as mt
from libaci import names as naming
from libaci.compress import detect
from libaci.digest import Digest
from libaci.errors import (
    ImageError,
    InvalidReferenceError,
    NotFoundError,
    PodkitError,
    UsageError,
)
from libaci.oci import Descriptor, dumps
from libaci.schema import validate
from libaci.sources import Fetched, FetchOptions
from libaci.sources.oci_import import import_manifest
from libaci.store import Store

_LAYER_TYPE = {"none": mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}


class DockerArchive:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.tf = tarfile.open(path, mode="r:")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise NotFoundError(f"archive {path} does not exist") from None
        except (tarfile.TarError, OSError) as e:
            raise ImageError(f"{path}: not a tar archive ({e})") from None
        self.members = {m.name.removeprefix("./"): m for m in self.tf.getmembers()}

    def close(self) -> None:
        self.tf.close()

    def member(self, name: str) -> tarfile.TarInfo:
        m = self.members.get(name.removeprefix("./"))
        while m is not None and m.issym():  # docker save links duplicate layers
            target = m.linkname
            if "/" in name and not target.startswith("/"):
                import posixpath

                target = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            name = target
            m = self.members.get(name)
        if m is None or not m.isfile():
            raise ImageError(f"{self.path}: missing entry {name!r}")
        return m

    def open_member(self, name: str) -> BinaryIO:
        """A member's bytes through a file handle of its own: layers are read by
        several threads at once, and the tarfile's shared handle must not be."""
        m = self.member(name)
        f = open(self.path, "rb")  # noqa: SIM115 - closed by _Member
        f.seek(m.offset_data)
        return _Member(f, m.size)  # type: ignore[return-value]

    def read(self, name: str, limit: int) -> bytes:
        m = self.member(name)
        if m.size > limit:
            raise ImageError(f"{self.path}: {name} is larger than {limit} bytes")
        f = self.tf.extractfile(m)
        assert f is not None
        return f.read()

    def manifest(self) -> list[dict[str, Any]]:
        raw = self.read("manifest.json", 16 << 20)
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise ImageError(f"{self.path}: manifest.json is not valid JSON ({e})") from None
        validate(doc, "docker-archive-manifest")
        return doc  # type: ignore[no-any-return]


def _diff_ids(config_raw: bytes) -> list[Digest]:
    """The config's diff IDs, or [] when it has none that parse (the import says why)."""
    try:
        ids = json.loads(config_raw)["rootfs"]["diff_ids"]
        return [Digest.parse(x) for x in ids]
    except (ValueError, KeyError, TypeError, PodkitError):
        return []


class _Member:
    """``size`` bytes of an open file from its current position; closes the file."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f, self._left = f, size

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        data = self._f.read(self._left if n is None or n < 0 else min(n, self._left))
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> _Member:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pick(entries: list[dict[str, Any]], sel: str | None, path: str) -> dict[str, Any]:
    if sel is None:
        if len(entries) != 1:
            raise UsageError(f"{path} holds {len(entries)} images; pick one with "
                             f"docker-archive:{path}:REF or @N")
        return entries[0]
    if sel.startswith("@"):
        try:
            return entries[int(sel[1:])]
        except (ValueError, IndexError):
            raise NotFoundError(f"{path}: no image {sel}") from None
    want = set(naming.lookup_keys(sel))
    for e in entries:
        for tag in e.get("RepoTags") or ():
            if want & set(naming.lookup_keys(tag)):
                return e
    raise NotFoundError(f"{path}: no image tagged {sel!r}")


def fetch(store: Store, rest: str, options: FetchOptions) -> Fetched:
    path, _, sel = rest.partition(":")
    if "@" in path and not sel:
        path, _, idx = path.rpartition("@")
        sel = "@" + idx
    arch = DockerArchive(path)
    try:
        entry = _pick(arch.manifest(), sel or None, path)
        config_raw = arch.read(entry["Config"], 32 << 20)
        blobs: dict[Digest, tuple[str, int]] = {}
        config_digest = Digest.of_bytes(config_raw)
        layers = []
        diff_ids = _diff_ids(config_raw)
        for i, name in enumerate(entry["Layers"]):
            m = arch.member(name)
            with arch.open_member(name) as f:
                kind = detect(f.read(8))
            if kind == "none" and i < len(diff_ids):
                # an uncompressed layer's digest is its diff ID: no need to read it
                # twice, as the copy into the store verifies it anyway
                digest = diff_ids[i]
            else:
                with arch.open_member(name) as f:
                    digest, _ = Digest.of_stream(f)
            blobs[digest] = (name, m.size)
            layers.append({"mediaType": _LAYER_TYPE.get(kind, mt.OCI_LAYER),
                           "digest": str(digest), "size": m.size})
        manifest = dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                          "config": {"mediaType": mt.OCI_CONFIG, "digest": str(config_digest),
                                     "size": len(config_raw)},
                          "layers": layers})
        mdesc = Descriptor(mt.OCI_MANIFEST, Digest.of_bytes(manifest), len(manifest))

        def opener(desc: Descriptor):  # type: ignore[no-untyped-def]
            if desc.digest == mdesc.digest:
                return io.BytesIO(manifest)
            if desc.digest == config_digest:
                return io.BytesIO(config_raw)
            name, _ = blobs[desc.digest]
            return arch.open_member(name)

        names: list[str] = []
        if options.name:
            names = [naming.normalize(options.name)]
        else:
            for tag in entry.get("RepoTags") or ():
                try:
                    names.append(naming.normalize(tag))
                except InvalidReferenceError:
                    continue
        with store.writing() as staging:
            source = f"docker-archive:{os.path.abspath(path)}" + (f":{sel}" if sel else "")
            return import_manifest(staging, opener, mdesc, names, options, source)
    finally:
        arch.close()
