"""``oci:DIR[:REF]``: an OCI image layout directory (what skopeo and umoci write)."""

from __future__ import annotations

import json
import os
import stat
from typing import BinaryIO

from libaci import names as naming
from libaci.errors import AmbiguousError, ImageError, InvalidReferenceError, NotFoundError
from libaci.oci import Descriptor, Index, parse_document
from libaci.sources import Fetched, FetchOptions, split_path_ref
from libaci.sources.oci_import import import_manifest
from libaci.store import REF_NAME, Store


class Layout:
    """Read access to an OCI layout directory, with paths that cannot escape it."""

    def __init__(self, root: str) -> None:
        self.root = root
        try:
            st = os.stat(root)
        except FileNotFoundError:
            raise NotFoundError(f"OCI layout {root} does not exist") from None
        except PermissionError:
            raise ImageError(f"OCI layout {root}: permission denied") from None
        if not stat.S_ISDIR(st.st_mode):
            raise ImageError(f"{root} is not a directory (an OCI layout is one)")
        try:
            with open(os.path.join(root, "oci-layout"), "rb") as f:
                layout = json.loads(f.read(65536))
        except FileNotFoundError:
            raise ImageError(f"{root} is not an OCI image layout (no oci-layout file)") from None
        except ValueError:
            raise ImageError(f"{root}/oci-layout is not valid JSON") from None
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            raise ImageError(f"{root}: unsupported imageLayoutVersion {version!r}")

    def index(self) -> Index:
        try:
            with open(os.path.join(self.root, "index.json"), "rb") as f:
                raw = f.read(16 << 20)
        except FileNotFoundError:
            raise ImageError(f"{self.root} has no index.json") from None
        doc = parse_document(raw)
        if not isinstance(doc, Index):
            raise ImageError(f"{self.root}/index.json is not an image index")
        return doc

    def open(self, desc: Descriptor) -> BinaryIO:
        d = desc.digest
        path = os.path.join(self.root, "blobs", d.algorithm, d.encoded)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise NotFoundError(f"blob {d} is missing from {self.root}") from None

    def find(self, ref: str | None) -> Descriptor:
        manifests = self.index().manifests
        if ref is None:
            if len(manifests) == 1:
                return manifests[0]
            if not manifests:
                raise NotFoundError(f"{self.root} holds no images")
            refs = sorted({m.annotations.get(REF_NAME, "") for m in manifests} - {""})
            raise AmbiguousError(f"{self.root} holds {len(manifests)} images; name one as "
                                 f"oci:{self.root}:REF (refs: {', '.join(refs) or 'none'})")
        hits = [m for m in manifests if m.annotations.get(REF_NAME) == ref]
        if not hits:
            raise NotFoundError(f"no image named {ref!r} in {self.root}")
        return hits[0]


def store_name(path: str, ref: str | None, override: str | None) -> list[str]:
    """The name an image from a layout gets in the store."""
    if override:
        return [naming.normalize(override)]
    base = os.path.basename(os.path.normpath(path)).lower() or "image"
    if ref and "/" in ref:
        try:
            return [naming.normalize(ref)]
        except InvalidReferenceError:
            pass
    tag = ref or "latest"
    try:
        return [naming.normalize(f"localhost/{base}:{tag}")]
    except InvalidReferenceError:
        return []


def fetch(store: Store, rest: str, options: FetchOptions) -> Fetched:
    path, ref = split_path_ref(rest)
    layout = Layout(path)
    desc = layout.find(ref)
    names = store_name(path, ref or desc.annotations.get(REF_NAME), options.name)
    with store.writing() as staging:
        source = f"oci:{os.path.abspath(path)}" + (f":{ref}" if ref else "")
        return import_manifest(staging, layout.open, desc, names, options, source)
