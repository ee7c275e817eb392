"""Tests for libaci.trust.sigstore and libaci.trust.signature.

The attachment documents are compared with the ones upstream skopeo 1.9.3
wrote (reference oci.md section 4b): the captured payload must give the
captured layer digest and size (sha256:7c6a4760..., 304) and config digest
and size (sha256:95c637e2..., 153), and the manifest the captured layout.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from libaci import mediatypes as mt
from libaci.trust import payload as pl
from libaci.trust import sigstore as ss
from libaci.trust.errors import InvalidSignatureError
from libaci.trust.signature import (
    SIGNATURE_ANNOTATION,
    SIGSTORE_PAYLOAD_MEDIA_TYPE,
    UntrustedSignature,
    decode_signature_blob,
    encode_signature_blob,
    looks_like_openpgp,
)

from .test_trust_payload import DIGEST, SKOPEO_SIGSTORE

CAPTURED_SIGNATURE = ("MEUCIQCr2cwGC9OTJ8h7KXNTVQSupqZreqNiO5Tg4Z7/bjwhRwIgNXBGDlUZsfWFF0AV0bd9"
                      "zruCbINvj5ro9EbJGbKm7nI=")
LAYER = "sha256:7c6a4760b4d1776a4c5b82d7aa89d504a4d43c1a8daa80746e275f9b05ad36bb"
CONFIG = "sha256:95c637e20fa7b2d21bd9d86687980702c99e7f5a11c6bc01f0a556ccb82d5efa"
CAPTURED_CONFIG = ('{"architecture":"","os":"","config":{},"rootfs":{"type":"layers",'
                   f'"diff_ids":["{LAYER}"]}}}}').encode()
CAPTURED_MANIFEST = (
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    f'"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CONFIG}",'
    '"size":153},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json",'
    f'"digest":"{LAYER}","size":304,"annotations":{{"dev.cosignproject.cosign/signature":'
    f'"{CAPTURED_SIGNATURE}"}}}}]}}').encode()


def captured_signature() -> UntrustedSignature:
    return UntrustedSignature.sigstore(SKOPEO_SIGSTORE, {SIGNATURE_ANNOTATION: CAPTURED_SIGNATURE})


def test_attachment_tag() -> None:
    assert ss.attachment_tag(DIGEST) == "sha256-" + DIGEST[7:] + ".sig"
    with pytest.raises(ValueError):
        ss.attachment_tag("latest")


def test_new_attachment_matches_skopeo_bytes() -> None:
    att = ss.add_signatures([captured_signature()])
    assert att.config == CAPTURED_CONFIG
    assert "sha256:" + hashlib.sha256(att.config).hexdigest() == CONFIG and len(att.config) == 153
    assert att.manifest == CAPTURED_MANIFEST
    assert att.blobs == {LAYER: SKOPEO_SIGSTORE, CONFIG: CAPTURED_CONFIG}
    assert att.added == 1 and att.media_type == mt.OCI_MANIFEST
    assert att.manifest_digest == "sha256:" + hashlib.sha256(CAPTURED_MANIFEST).hexdigest()


def test_parse_attachment_gives_back_pairs() -> None:
    layers = ss.parse_attachment(CAPTURED_MANIFEST, content_type=mt.OCI_MANIFEST)
    assert [(x.digest, x.signature, x.size, x.is_signature) for x in layers] == [
        (LAYER, CAPTURED_SIGNATURE, 304, True)]
    sig = layers[0].to_signature(SKOPEO_SIGSTORE, origin="layer 1")
    assert sig == captured_signature()
    with pytest.raises(InvalidSignatureError, match="does not match digest"):
        layers[0].to_signature(SKOPEO_SIGSTORE.replace(b"v1", b"v2"))
    with pytest.raises(InvalidSignatureError, match="303 bytes"):
        layers[0].to_signature(SKOPEO_SIGSTORE[:-1])


@pytest.mark.parametrize(("manifest", "content_type", "message"), [
    (CAPTURED_MANIFEST, mt.DOCKER_MANIFEST, "unexpected media type"),
    (CAPTURED_MANIFEST.replace(b"oci.image.manifest", b"oci.image.index"), None, "mediaType"),
    (b'{"schemaVersion":1}', None, "schemaVersion is not 2"),
    (b'{"schemaVersion":2,"config":{}}', None, "config is not|config.mediaType"),
    (CAPTURED_MANIFEST.replace(b'"size":304', b'"size":-1'), None, "size"),
    (CAPTURED_MANIFEST.replace(CAPTURED_SIGNATURE.encode(), b'x", "y'), None, "invalid JSON"),
    (b"[]", None, "not a JSON object"),
])
def test_parse_attachment_rejects(manifest: bytes, content_type: str | None,
                                  message: str) -> None:
    with pytest.raises(InvalidSignatureError, match=message):
        ss.parse_attachment(manifest, content_type=content_type)


def test_adding_merges_and_skips_identical_layers() -> None:
    first = ss.add_signatures([captured_signature()])
    again = ss.add_signatures([captured_signature()], manifest=first.manifest,
                              config=first.config)
    assert again.added == 0 and again.manifest == first.manifest
    assert set(again.blobs) == {CONFIG}  # only the (unchanged) config is uploaded
    other = UntrustedSignature.sigstore(SKOPEO_SIGSTORE, {SIGNATURE_ANNOTATION: "AAAA"})
    merged = ss.add_signatures([other], manifest=first.manifest, config=first.config)
    assert merged.added == 1
    layers = ss.parse_attachment(merged.manifest)
    assert [x.signature for x in layers] == [CAPTURED_SIGNATURE, "AAAA"]
    assert json.loads(merged.config)["rootfs"]["diff_ids"] == [LAYER, LAYER]
    doc = json.loads(merged.manifest)
    assert doc["config"]["digest"] == "sha256:" + hashlib.sha256(merged.config).hexdigest()
    with pytest.raises(ValueError):
        ss.add_signatures([other], manifest=first.manifest)
    with pytest.raises(ValueError):
        ss.add_signatures([UntrustedSignature.simple(b"\xa3x")])


def test_merge_keeps_foreign_layers_and_descriptor_fields() -> None:
    foreign = {"schemaVersion": 2, "config": {"mediaType": mt.OCI_CONFIG, "digest": CONFIG,
                                              "size": 153},
               "layers": [{"mediaType": "application/x-other", "digest": LAYER, "size": 304,
                           "urls": ["https://x"], "annotations": {}}],
               "annotations": {"b": "2", "a": "1"}, "unknown": 1}
    cosign_config = json.dumps({"architecture": "", "created": "0001-01-01T00:00:00Z",
                                "os": "", "rootfs": {"type": "layers", "diff_ids": [LAYER]},
                                "config": {}}).encode()
    merged = ss.add_signatures([captured_signature()], manifest=json.dumps(foreign).encode(),
                               config=cosign_config)
    assert merged.manifest.endswith(b'],"annotations":{"a":"1","b":"2"}}')
    layers = json.loads(merged.manifest)["layers"]
    assert layers[0] == {"mediaType": "application/x-other", "digest": LAYER, "size": 304,
                         "urls": ["https://x"]}
    assert list(layers[0]) == ["mediaType", "digest", "size", "urls"]
    assert [x.is_signature for x in ss.parse_attachment(merged.manifest)] == [False, True]


@pytest.mark.parametrize("make_key", [
    lambda: ec.generate_private_key(ec.SECP256R1()),
    lambda: ec.generate_private_key(ec.SECP384R1()),
    lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ed25519.Ed25519PrivateKey.generate,
])
def test_sign_verify_and_tamper(make_key) -> None:  # type: ignore[no-untyped-def]
    key, other = make_key(), make_key()
    sig = ss.make_signature(key, "127.0.0.1:5000/app:1", DIGEST, creator="podkit test",
                            timestamp=1)
    assert pl.parse_payload(sig.blob).docker_reference == "127.0.0.1:5000/app:1"
    assert ss.verify_payload([other.public_key(), key.public_key()], sig.blob,
                             sig.signature) is not None
    with pytest.raises(InvalidSignatureError, match="verification failed"):
        ss.verify_payload([other.public_key()], sig.blob, sig.signature)
    flipped = bytearray(sig.blob)
    flipped[10] ^= 1
    with pytest.raises(InvalidSignatureError):
        ss.verify_payload([key.public_key()], bytes(flipped), sig.signature)
    raw = bytearray(base64.b64decode(sig.signature or ""))
    raw[len(raw) // 2] ^= 0x10
    with pytest.raises(InvalidSignatureError):
        ss.verify_payload([key.public_key()], sig.blob, base64.b64encode(bytes(raw)).decode())


def test_verify_payload_annotation_problems() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(InvalidSignatureError, match="missing"):
        ss.verify_payload([key], b"x", None)
    with pytest.raises(InvalidSignatureError, match="not valid base64"):
        ss.verify_payload([key], b"x", "abc")
    with pytest.raises(InvalidSignatureError, match="not valid base64"):
        ss.verify_payload([key], b"x", "AAA\u00e9")
    with pytest.raises(InvalidSignatureError, match="verification failed"):
        ss.verify_payload([], b"x", "AAAA")


def test_signature_blob_round_trip() -> None:
    sig = captured_signature()
    blob = encode_signature_blob(sig)
    assert blob.startswith(b"\x00sigstore-json\n{\"mimeType\":\"" +
                           SIGSTORE_PAYLOAD_MEDIA_TYPE.encode() + b"\",\"payload\":\"")
    back = decode_signature_blob(blob)
    assert back == sig and back.signature == CAPTURED_SIGNATURE
    gpg = UntrustedSignature.simple(b"\xa3\x01\x02")
    assert encode_signature_blob(gpg) == b"\xa3\x01\x02"
    assert decode_signature_blob(b"\xa3\x01\x02") == gpg
    assert decode_signature_blob(b"\x00simple-signing\n\x90xyz").blob == b"\x90xyz"
    assert looks_like_openpgp(b"\xc2") and not looks_like_openpgp(b"{")


@pytest.mark.parametrize(("blob", "message"), [
    (b"", "empty"),
    (b"{}", "starting with byte 0x7b"),
    (b"\x00sigstore-json", "header"),
    (b"\x00bad\x01\n", "header"),
    (b"\x00x509\n", "unrecognized signature format 'x509'"),
    (b'\x00sigstore-json\n{"mimeType":"a","payload":"!!","annotations":{}}', "not base64"),
    ('\x00sigstore-json\n{"mimeType":"a","payload":"\u0100","annotations":{}}'.encode(),
     "not base64"),
    (b'\x00sigstore-json\n{"mimeType":"a","payload":"","annotations":{},"x":1}', "exactly"),
    (b'\x00sigstore-json\n{"mimeType":"a","payload":"","annotations":{"a":1}}', "strings"),
    (b'\x00sigstore-json\n{"mimeType":1,"payload":"","annotations":{}}', "strings"),
])
def test_signature_blob_rejects(blob: bytes, message: str) -> None:
    with pytest.raises(InvalidSignatureError, match=message):
        decode_signature_blob(blob)
