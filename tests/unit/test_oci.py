"""OCI/Docker document models, digests and platform selection."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from libaci import mediatypes as mt
from libaci.digest import Digest, DigestError, Hasher, chain_ids, verify
from libaci.errors import DigestMismatchError, ManifestError, NotFoundError
from libaci.oci import Index, Manifest, detect_kind, parse_config, parse_document
from libaci.platform import Wanted, select

H = "a" * 64


def test_digest_parse_and_render():
    d = Digest.parse(f"sha256:{H}")
    assert (d.algorithm, d.encoded, str(d), d.short) == ("sha256", H, f"sha256:{H}", H[:12])
    assert Digest.parse("sha512:" + "b" * 128).computable
    assert not Digest.parse("blake3:abc").computable  # grammar-valid, not computable


@pytest.mark.parametrize("bad", ["", "sha256", "sha256:", ":abc", "sha256:ABC" + "a" * 61,
                                 "sha256:" + "a" * 63, "sha512:" + "a" * 64, "SHA256:" + H,
                                 "sha256:" + H + "\n"])
def test_digest_rejects(bad):
    with pytest.raises(DigestError):
        Digest.parse(bad)


def test_hashing_streams_and_verification():
    data = b"x" * 3_000_000
    d, n = Digest.of_stream(io.BytesIO(data))
    assert n == len(data) and d.encoded == hashlib.sha256(data).hexdigest()
    h = Hasher("sha512")
    h.update(b"ab")
    h.update(b"c")
    assert h.digest().encoded == hashlib.sha512(b"abc").hexdigest() and h.size == 3
    verify(d, len(data), d, len(data), "blob")
    with pytest.raises(DigestMismatchError, match="size mismatch"):
        verify(d, 5, d, len(data), "blob")
    with pytest.raises(DigestMismatchError, match="digest mismatch"):
        verify(Digest("sha256", H), None, d, len(data), "blob")


def test_chain_ids_follow_the_spec():
    a, b, c = (Digest.of_bytes(x) for x in (b"1", b"2", b"3"))
    ids = chain_ids([a, b, c])
    assert ids[0] == a
    assert ids[1].encoded == hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert ids[2].encoded == hashlib.sha256(f"{ids[1]} {c}".encode()).hexdigest()
    assert chain_ids([]) == []


def _desc(i: int, **kw) -> dict:  # type: ignore[no-untyped-def]
    return {"mediaType": mt.OCI_LAYER_GZIP, "digest": f"sha256:{i:064x}", "size": i, **kw}


MANIFEST = {
    "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
    "config": {"mediaType": mt.OCI_CONFIG, "digest": f"sha256:{1:064x}", "size": 2},
    "layers": [_desc(2, annotations={"x": "y"}, urls=["https://e/x"]), _desc(3)],
    "annotations": {"org.opencontainers.image.created": "now"},
    "x-future": {"keep": [1, 2]},
}


def test_manifest_keeps_bytes_and_unknown_fields():
    raw = json.dumps(MANIFEST, indent=3).encode()
    m = parse_document(raw)
    assert isinstance(m, Manifest) and m.raw == raw
    assert [x.size for x in m.layers] == [2, 3]
    assert m.layers[0].annotations == {"x": "y"} and m.layers[0].urls == ("https://e/x",)
    assert m.to_dict() == MANIFEST


def test_umoci_manifest_without_media_type():
    doc = {k: v for k, v in MANIFEST.items() if k != "mediaType"}
    m = parse_document(json.dumps(doc).encode())
    assert isinstance(m, Manifest) and m.media_type is None
    assert m.effective_media_type == mt.OCI_MANIFEST


def test_index_round_trip_with_platforms():
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {**_desc(4), "mediaType": mt.OCI_MANIFEST,
         "platform": {"architecture": "arm", "os": "linux", "variant": "v7",
                      "os.features": ["f"], "x-p": 1}}], "annotations": {"a": "b"}}
    idx = parse_document(json.dumps(doc).encode())
    assert isinstance(idx, Index)
    assert str(idx.manifests[0].platform) == "linux/arm/v7"
    assert idx.to_dict() == doc


@pytest.mark.parametrize(("doc", "match"), [
    ({"schemaVersion": 1, "name": "x"}, "schema1"),
    ({"mediaType": mt.DOCKER_SCHEMA1_SIGNED}, "schema1"),
    ({"mediaType": "text/plain"}, "unsupported manifest media type"),
    ({"schemaVersion": 2}, "neither"),
    ([], "not a JSON object"),
])
def test_detect_kind_refuses(doc, match):
    with pytest.raises(ManifestError, match=match):
        detect_kind(doc)


def test_media_type_must_agree_with_announced():
    raw = json.dumps(MANIFEST).encode()
    with pytest.raises(ManifestError, match="differs"):
        parse_document(raw, media_type=mt.DOCKER_MANIFEST)


def test_docker_manifest_is_validated_against_its_schema():
    doc = {**MANIFEST, "mediaType": mt.DOCKER_MANIFEST}
    doc["layers"] = [{**_desc(2), "mediaType": mt.DOCKER_LAYER_GZIP}]
    m = parse_document(json.dumps(doc).encode())
    assert isinstance(m, Manifest) and m.is_docker
    doc["layers"][0]["size"] = -1
    with pytest.raises(ManifestError, match=r"\$.layers\[0\].size"):
        parse_document(json.dumps(doc).encode())


def test_config_accessors():
    raw = json.dumps({"architecture": "arm64", "os": "linux", "variant": "v8",
                      "created": "2020-01-01T00:00:00Z", "config": None,
                      "rootfs": {"type": "layers", "diff_ids": [f"sha256:{H}"]}}).encode()
    c = parse_config(raw)
    assert (c.architecture, c.os, c.variant, c.config, c.history) == ("arm64", "linux", "v8",
                                                                      {}, [])
    assert c.diff_ids == [Digest("sha256", H)]


def _index(*plats: tuple[str, str, str | None]) -> Index:
    ms = []
    for i, (os_, arch, var) in enumerate(plats):
        p = {"os": os_, "architecture": arch}
        if var is not None:
            p["variant"] = var
        ms.append({**_desc(i + 10), "mediaType": mt.OCI_MANIFEST, "platform": p})
    return Index.from_dict({"schemaVersion": 2, "manifests": ms})


@pytest.mark.parametrize(("plats", "want", "pick"), [
    ([("linux", "amd64", None), ("linux", "arm64", None)], ("linux", "amd64", None), 0),
    ([("linux", "arm64", None), ("linux", "amd64", None)], ("linux", "amd64", None), 1),
    ([("linux", "amd64", None), ("linux", "amd64", None)], ("linux", "amd64", None), 0),
    ([("linux", "arm", "v6"), ("linux", "arm", "v7")], ("linux", "arm", "v7"), 1),
    ([("linux", "arm", "v5"), ("linux", "arm", "v6")], ("linux", "arm", "v7"), 1),
    ([("linux", "arm", None), ("linux", "arm", "v5")], ("linux", "arm", "v7"), 1),
    ([("linux", "arm", None)], ("linux", "arm", "v7"), 0),
    ([("linux", "arm64", "v8")], ("linux", "arm64", None), 0),
    ([("linux", "arm64", None)], ("linux", "arm64", "v8"), 0),
    ([("windows", "amd64", None), ("linux", "amd64", None)], ("linux", "amd64", None), 1),
])
def test_platform_selection_like_containers_image(plats, want, pick):
    idx = _index(*plats)
    assert select(idx, Wanted(*want)) is idx.manifests[pick]


@pytest.mark.parametrize(("plats", "want"), [
    ([("linux", "arm", "v7")], ("linux", "arm", "v6")),  # never a more capable variant
    ([("linux", "amd64", None)], ("linux", "386", None)),
    ([("linux", "amd64", None)], ("freebsd", "amd64", None)),
    ([], ("linux", "amd64", None)),
])
def test_platform_selection_refuses(plats, want):
    with pytest.raises(NotFoundError, match="no image for platform"):
        select(_index(*plats), Wanted(*want))
