"""OCI and Docker schema2 image documents as attrs models.

Manifests and indexes are parsed from their exact bytes and keep them
(``raw``): a document podkit did not author is never re-serialised, so its
digest always matches.  ``from_dict`` pops the fields it knows and keeps the
rest in ``extra``, so unknown fields and annotations survive ``to_dict``.
Schema validation (slow to import) runs only when ``validate=True``, at the
boundary where documents enter the store.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from libaci import mediatypes as mt
from libaci.digest import Digest
from libaci.errors import ManifestError


def _loads(raw: bytes, kind: str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{kind}: invalid JSON: {e}") from None


def _validated(raw: bytes, schema: str, validate: bool) -> Any:
    if validate:
        from libaci.schema import load_json

        return load_json(raw, schema)
    return _loads(raw, schema)


@attrs.frozen
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Platform:
        d = dict(d)
        return cls(
            os=d.pop("os", ""),
            architecture=d.pop("architecture", ""),
            variant=d.pop("variant", None),
            os_version=d.pop("os.version", None),
            os_features=tuple(d.pop("os.features", None) or ()),
            extra=d,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        out.update(self.extra)
        return out

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        return f"{s}/{self.variant}" if self.variant else s


@attrs.frozen
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str] = attrs.field(factory=dict, eq=False)
    urls: tuple[str, ...] = ()
    platform: Platform | None = None
    artifact_type: str | None = None
    data: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Descriptor:
        d = dict(d)
        try:
            digest = Digest.parse(d.pop("digest"))
            media_type = d.pop("mediaType")
            size = d.pop("size")
        except KeyError as e:
            raise ManifestError(f"descriptor lacks {e.args[0]!r}") from None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"descriptor {digest}: invalid size {size!r}")
        plat = d.pop("platform", None)
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=dict(d.pop("annotations", None) or {}),
            urls=tuple(d.pop("urls", None) or ()),
            platform=Platform.from_dict(plat) if plat else None,
            artifact_type=d.pop("artifactType", None),
            data=d.pop("data", None),
            extra=d,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.data is not None:
            out["data"] = self.data
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out.update(self.extra)
        return out

    def with_annotations(self, annotations: dict[str, str]) -> Descriptor:
        return attrs.evolve(self, annotations=dict(annotations))


def _envelope(doc: Manifest | Index, body: dict[str, Any]) -> dict[str, Any]:
    """The fields manifests and indexes share, around ``body``, in spec order."""
    out: dict[str, Any] = {"schemaVersion": 2}
    if doc.media_type:
        out["mediaType"] = doc.media_type
    if doc.artifact_type:
        out["artifactType"] = doc.artifact_type
    out.update(body)
    if doc.subject is not None:
        out["subject"] = doc.subject.to_dict()
    if doc.annotations:
        out["annotations"] = dict(doc.annotations)
    out.update(doc.extra)
    return out


@attrs.frozen
class Manifest:
    """An OCI image manifest or Docker schema2 manifest."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str | None = None
    annotations: dict[str, str] = attrs.field(factory=dict, eq=False)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)
    raw: bytes = attrs.field(default=b"", eq=False, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any], raw: bytes = b"") -> Manifest:
        d = dict(d)
        d.pop("schemaVersion", None)
        subject = d.pop("subject", None)
        try:
            config = Descriptor.from_dict(d.pop("config"))
        except KeyError:
            raise ManifestError("manifest lacks 'config'") from None
        return cls(
            config=config,
            layers=tuple(Descriptor.from_dict(x) for x in d.pop("layers", None) or ()),
            media_type=d.pop("mediaType", None),
            annotations=dict(d.pop("annotations", None) or {}),
            subject=Descriptor.from_dict(subject) if subject else None,
            artifact_type=d.pop("artifactType", None),
            extra=d,
            raw=raw,
        )

    def to_dict(self) -> dict[str, Any]:
        return _envelope(self, {"config": self.config.to_dict(),
                                "layers": [x.to_dict() for x in self.layers]})

    @property
    def is_docker(self) -> bool:
        return self.media_type == mt.DOCKER_MANIFEST

    @property
    def effective_media_type(self) -> str:
        return self.media_type or mt.OCI_MANIFEST


@attrs.frozen
class Index:
    """An OCI image index or Docker manifest list."""

    manifests: tuple[Descriptor, ...]
    media_type: str | None = None
    annotations: dict[str, str] = attrs.field(factory=dict, eq=False)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)
    raw: bytes = attrs.field(default=b"", eq=False, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any], raw: bytes = b"") -> Index:
        d = dict(d)
        d.pop("schemaVersion", None)
        subject = d.pop("subject", None)
        return cls(
            manifests=tuple(Descriptor.from_dict(x) for x in d.pop("manifests", None) or ()),
            media_type=d.pop("mediaType", None),
            annotations=dict(d.pop("annotations", None) or {}),
            subject=Descriptor.from_dict(subject) if subject else None,
            artifact_type=d.pop("artifactType", None),
            extra=d,
            raw=raw,
        )

    def to_dict(self) -> dict[str, Any]:
        return _envelope(self, {"manifests": [x.to_dict() for x in self.manifests]})

    @property
    def effective_media_type(self) -> str:
        return self.media_type or mt.OCI_INDEX


@attrs.frozen
class ImageConfig:
    """An image configuration; the whole document is kept, accessors read it."""

    doc: dict[str, Any] = attrs.field(eq=False)
    raw: bytes = attrs.field(default=b"", repr=False)

    @property
    def os(self) -> str:
        return self.doc.get("os") or ""

    @property
    def architecture(self) -> str:
        return self.doc.get("architecture") or ""

    @property
    def variant(self) -> str | None:
        return self.doc.get("variant")

    @property
    def created(self) -> str | None:
        return self.doc.get("created")

    @property
    def diff_ids(self) -> list[Digest]:
        rootfs = self.doc.get("rootfs") or {}
        return [Digest.parse(x) for x in rootfs.get("diff_ids") or ()]

    @property
    def config(self) -> dict[str, Any]:
        return self.doc.get("config") or {}

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.doc.get("history") or []

    def to_dict(self) -> dict[str, Any]:
        return self.doc


def detect_kind(doc: Any) -> str:
    """"index" or "manifest", from mediaType or, for umoci-style documents, from shape."""
    if not isinstance(doc, dict):
        raise ManifestError("manifest: not a JSON object")
    media = doc.get("mediaType")
    if media in mt.INDEX_TYPES:
        return "index"
    if media in mt.MANIFEST_TYPES:
        return "manifest"
    if media in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED) or doc.get("schemaVersion") == 1:
        raise ManifestError("Docker schema1 manifests are not supported (deprecated format)")
    if media not in (None, ""):
        raise ManifestError(f"unsupported manifest media type {media!r}")
    if "manifests" in doc:
        return "index"
    if "config" in doc or "layers" in doc:
        return "manifest"
    raise ManifestError("manifest: neither an image manifest nor an index")


_SCHEMA_FOR = {
    mt.OCI_MANIFEST: "oci-manifest",
    mt.DOCKER_MANIFEST: "docker-manifest-v2",
    mt.OCI_INDEX: "oci-index",
    mt.DOCKER_LIST: "docker-manifest-list",
}


def parse_document(raw: bytes, *, validate: bool = True,
                   media_type: str | None = None) -> Manifest | Index:
    """Parse a manifest or index from its exact bytes.

    ``media_type`` is the type a descriptor or server announced; it must agree
    with the document's own ``mediaType`` when both are given.
    """
    doc = _loads(raw, "manifest")
    kind = detect_kind(doc)
    own = doc.get("mediaType")
    if media_type and own and media_type != own:
        raise ManifestError(f"manifest: media type {own!r} differs from announced {media_type!r}")
    if validate:
        from libaci.schema import validate as check

        schema = _SCHEMA_FOR.get(own or "", "oci-index" if kind == "index" else "oci-manifest")
        check(doc, schema)
    if kind == "index":
        return Index.from_dict(doc, raw)
    return Manifest.from_dict(doc, raw)


def parse_config(raw: bytes, *, validate: bool = True) -> ImageConfig:
    return ImageConfig(_validated(raw, "oci-config", validate), raw)


def dumps(doc: dict[str, Any]) -> bytes:
    """Serialise a document podkit authors (compact, stable key order)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
