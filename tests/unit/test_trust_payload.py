"""Tests for libaci.trust.payload and the Go-compatible JSON it relies on.

The byte strings are the payloads captured from Debian skopeo (GPG), upstream
skopeo 1.9.3 (sigstore) and cosign (reference oci.md section 4a/4b).
"""

from __future__ import annotations

import json

import pytest

from libaci.errors import VerificationError
from libaci.reference import parse_docker_reference
from libaci.trust import payload as pl
from libaci.trust.errors import InvalidSignatureError
from libaci.trust.jsonutil import Struct, go_marshal

DIGEST = "sha256:58365068f231c14545ee9a615192b9758fe9a95d5dcbdcc1dbe6ffd9e42e6bbb"
SKOPEO_GPG = (
    b'{"critical":{"identity":{"docker-reference":"127.0.0.1:33151/test/gpgsigned:v1"},'
    b'"image":{"docker-manifest-digest":"sha256:58365068f231c14545ee9a615192b9758fe9a95d5dcbd'
    b'cc1dbe6ffd9e42e6bbb"},"type":"atomic container signature"},"optional":{"creator":'
    b'"atomic 5.23.1","timestamp":1795876935}}')
SKOPEO_SIGSTORE = (
    b'{"critical":{"identity":{"docker-reference":"127.0.0.1:33151/test/sigstore:v1"},'
    b'"image":{"docker-manifest-digest":"sha256:58365068f231c14545ee9a615192b9758fe9a95d5dcbd'
    b'cc1dbe6ffd9e42e6bbb"},"type":"cosign container image signature"},"optional":{"creator":'
    b'"containers/image 5.22.1","timestamp":1795876997}}')
COSIGN = (
    b'{"critical":{"identity":{"docker-reference":"us.gcr.io/dlorenc-vmtest2/demo"},"image":'
    b'{"docker-manifest-digest":"' + DIGEST.encode() + b'"},"type":"cosign container image '
    b'signature"},"optional":null}')


@pytest.mark.parametrize("raw", [SKOPEO_GPG, SKOPEO_SIGSTORE, COSIGN])
def test_captured_payloads_round_trip_byte_identically(raw: bytes) -> None:
    parsed = pl.parse_payload(raw)
    assert parsed.to_bytes() == raw
    assert parsed.manifest_digest == DIGEST


def test_parsed_fields() -> None:
    gpg = pl.parse_payload(SKOPEO_GPG, signature_type=pl.ATOMIC_SIGNATURE_TYPE)
    assert (gpg.docker_reference, gpg.creator, gpg.timestamp, gpg.is_sigstore) == (
        "127.0.0.1:33151/test/gpgsigned:v1", "atomic 5.23.1", 1795876935, False)
    cos = pl.parse_payload(COSIGN, signature_type=pl.COSIGN_SIGNATURE_TYPE)
    assert cos.optional_null and cos.creator is None and cos.timestamp is None


def test_build_reproduces_skopeo_bytes() -> None:
    ref = parse_docker_reference("127.0.0.1:33151/test/sigstore:v1")
    assert pl.build_payload(ref, DIGEST, creator="containers/image 5.22.1",
                            timestamp=1795876997) == SKOPEO_SIGSTORE
    assert pl.build_payload("127.0.0.1:33151/test/gpgsigned:v1", DIGEST,
                            signature_type=pl.ATOMIC_SIGNATURE_TYPE, creator="atomic 5.23.1",
                            timestamp=1795876935) == SKOPEO_GPG
    # no optional fields: an empty object, as Go marshals an empty map
    assert pl.build_payload("a.io/b:c", DIGEST).endswith(b',"optional":{}}')


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"docker_reference": ""}, "must not be empty"),
    ({"manifest_digest": "sha256:abc"}, "64 lowercase hex"),
    ({"manifest_digest": "md5:" + "0" * 32}, "unsupported digest algorithm"),
    ({"signature_type": "other"}, "unknown signature type"),
    ({"timestamp": 1.5}, "64-bit integer"),
    ({"timestamp": 2**63}, "64-bit integer"),
])
def test_build_refuses_bad_arguments(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    args = {"docker_reference": "a.io/b:c", "manifest_digest": DIGEST, **kwargs}
    with pytest.raises(ValueError, match=message):
        pl.build_payload(**args)


def _doc(raw: bytes = SKOPEO_SIGSTORE) -> dict:  # type: ignore[type-arg]
    return json.loads(raw)


def _bytes(doc: object) -> bytes:
    return json.dumps(doc).encode()


def _mutated(path: list[str], value: object, raw: bytes = SKOPEO_SIGSTORE) -> bytes:
    doc = _doc(raw)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return _bytes(doc)


@pytest.mark.parametrize(("raw", "message"), [
    (_mutated(["critical", "extra"], "x"), 'unknown key "extra" in critical'),
    (_mutated(["critical", "identity", "tag"], "v1"), "unknown key \"tag\" in critical.identity"),
    (_mutated(["critical", "image", "x"], 1), "unknown key \"x\" in critical.image"),
    (_mutated(["extra"], {}), "unknown key \"extra\" in the payload"),
    (_mutated(["critical", "type"], KeyError), "key 'type' missing in critical"),
    (_mutated(["optional"], KeyError), "key 'optional' missing in the payload"),
    (_mutated(["critical", "type"], "something else"), "unrecognized signature type"),
    (_mutated(["critical", "type"], 7), "critical.type is not a string"),
    (_mutated(["optional", "timestamp"], 1.5), "timestamp is not an integer"),
    (_mutated(["optional", "timestamp"], "1795876997"), "timestamp is not an integer"),
    (_mutated(["optional", "timestamp"], True), "timestamp is not an integer"),
    (_mutated(["optional", "timestamp"], 2**64), "out of range"),
    (_mutated(["optional", "creator"], 5), "optional.creator is not a string"),
    (_mutated(["optional"], []), "optional is not a JSON object"),
    (_mutated(["optional"], None, SKOPEO_GPG), "optional is null"),
    (_mutated(["critical", "image", "docker-manifest-digest"], "sha256:xyz"), "digest"),
    (_mutated(["critical", "identity", "docker-reference"], None), "not a string"),
    (b'{"critical":{},"critical":{},"optional":{}}', "duplicate key"),
    (SKOPEO_SIGSTORE + b"x", "invalid JSON"),
    (b"\xef\xbb\xbf" + SKOPEO_SIGSTORE, "byte order mark"),
    (b"\xff", "not UTF-8"),
    (b"[]", "not a JSON object"),
    (b'{"critical": NaN}', "NaN is not a JSON value"),
    (b"[" * 100000, "nested too deeply"),
])
def test_strict_parser_rejects(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidSignatureError, match=message) as info:
        pl.parse_payload(raw)
    assert isinstance(info.value, VerificationError)
    assert "\n" not in str(info.value)


def test_expected_type_is_enforced() -> None:
    with pytest.raises(InvalidSignatureError, match="expected atomic container signature"):
        pl.parse_payload(SKOPEO_SIGSTORE, signature_type=pl.ATOMIC_SIGNATURE_TYPE)
    with pytest.raises(InvalidSignatureError, match="unrecognized"):
        pl.parse_payload(SKOPEO_GPG, signature_type=pl.COSIGN_SIGNATURE_TYPE)


def test_unknown_optional_fields_are_kept_and_integral_floats_accepted() -> None:
    raw = _mutated(["optional", "zz"], {"b": 1, "a": [True, None]})
    parsed = pl.parse_payload(raw)
    assert parsed.optional_extra == {"zz": {"b": 1, "a": [True, None]}}
    assert pl.parse_payload(parsed.to_bytes()) == parsed
    assert b'"zz":{"a":[true,null],"b":1}' in parsed.to_bytes()
    as_float = _mutated(["optional", "timestamp"], 1795876997.0)
    assert pl.parse_payload(as_float).timestamp == 1795876997


def test_go_marshal_escapes_like_go() -> None:
    assert go_marshal("<a>&\u2028\u2029\x01\x7f\b\f\n\t\"\\é") == (
        '"\\u003ca\\u003e\\u0026\\u2028\\u2029\\u0001\x7f\\u0008\\u000c\\n\\t\\"\\\\é"'
    ).encode()
    assert go_marshal({"b": 1, "a": Struct(z=1, y=2)}) == b'{"a":{"z":1,"y":2},"b":1}'
    assert go_marshal([1.0, 1.5, 1e21, 1e-7, 1e20, -0.0, 123456789.125]) == \
        b"[1,1.5,1e+21,1e-7,100000000000000000000,-0,123456789.125]"
    assert go_marshal("\ud800") == '"\ufffd"'.encode()
    with pytest.raises(TypeError):
        go_marshal({1: 2})
    with pytest.raises(ValueError):
        go_marshal(float("nan"))


def test_reference_with_html_characters_round_trips() -> None:
    raw = pl.build_payload("a.io/b:c<d>", DIGEST)
    assert b"\\u003c" in raw
    assert pl.parse_payload(raw).docker_reference == "a.io/b:c<d>"
    assert pl.parse_payload(raw).to_bytes() == raw
