"""Hypothesis fuzzing of every parser that reads untrusted or hand-written input.

The property is the same everywhere: whatever the bytes, the parser either
returns a value or raises a podkit error with a one-line message, never
anything else (no KeyError, TypeError, RecursionError, UnicodeError...).
Where parsing succeeds, writing the value back and parsing again gives the
same value.  Inputs are both raw bytes and JSON built from each format's
own vocabulary, so that the deep branches of the validators are reached.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from libaci.errors import PodkitError
from libaci.trust import cosignkey, lookaside, sigstore
from libaci.trust import payload as pl
from libaci.trust import policy as pol
from libaci.trust.errors import KeyFormatError, PassphraseError
from libaci.trust.signature import SIGSTORE_PAYLOAD_MEDIA_TYPE as SIGSTORE_MEDIA_TYPE
from libaci.trust.signature import decode_signature_blob, encode_signature_blob

# No example database, and hypothesis's caches (unicode tables) outside the work tree.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "podkit-hypothesis"))

T = TypeVar("T")
FUZZ = settings(database=None, deadline=None, max_examples=300,
                suppress_health_check=[HealthCheck.too_slow])
DIGEST = "sha256:" + "ab" * 32


def only_podkit_errors(parse: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    try:
        return parse(*args, **kwargs)
    except PodkitError as e:
        message = str(e)
        assert message and "\n" not in message and "\r" not in message, repr(message)
        return None


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def vocabulary_json(keys: list[str], values: list[Any]) -> st.SearchStrategy[Any]:
    scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
               | st.floats(allow_nan=False, allow_infinity=False)
               | st.sampled_from(values) | st.text(max_size=12))
    return st.recursive(
        scalars,
        lambda inner: (st.lists(inner, max_size=4)
                       | st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), inner,
                                         max_size=5)),
        max_leaves=25)


# --- policy ----------------------------------------------------------------------------------

KEYDATA = base64.b64encode(b"k").decode()
POLICY_KEYS = ["default", "transports", "docker", "oci", "dir", "podkit", "docker-daemon", "",
               "type", "keyType", "keyPath", "keyPaths", "keyData", "keyDatas",
               "signedIdentity", "dockerReference", "dockerRepository", "prefix",
               "signedPrefix", "baseLayerIdentity", "fulcio", "pki", "caPath", "caData",
               "oidcIssuer", "subjectEmail", "rekorPublicKeyPath", "rekorPublicKeyData",
               "/abs/path", "quay.io/ns", "*.example.com"]
POLICY_VALUES = ["insecureAcceptAnything", "reject", "signedBy", "sigstoreSigned",
                 "signedBaseLayer", "GPGKeys", "X509Certificates", "matchExact",
                 "matchRepoDigestOrExact", "matchRepository", "exactReference",
                 "exactRepository", "remapIdentity", "/k/key.pub", KEYDATA, "quay.io/ns/app:1",
                 "quay.io", "busybox", "docker.io/library", "BAD//ref", "", "\u0100AA="]
policy_json = vocabulary_json(POLICY_KEYS, POLICY_VALUES)


VALID_REQUIREMENTS: list[dict[str, Any]] = [
    {"type": "insecureAcceptAnything"},
    {"type": "reject"},
    {"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/a"},
    {"type": "signedBy", "keyType": "GPGKeys", "keyPaths": ["/a", "/b"],
     "signedIdentity": {"type": "matchRepository"}},
    {"type": "signedBy", "keyType": "GPGKeys", "keyData": KEYDATA,
     "signedIdentity": {"type": "exactReference", "dockerReference": "quay.io/ns/app:1"}},
    {"type": "sigstoreSigned", "keyPath": "/a.pub",
     "signedIdentity": {"type": "remapIdentity", "prefix": "quay.io",
                        "signedPrefix": "docker.io/library"}},
    {"type": "sigstoreSigned", "keyDatas": [KEYDATA],
     "signedIdentity": {"type": "exactRepository", "dockerRepository": "busybox"}},
    {"type": "sigstoreSigned", "fulcio": {"caPath": "/c", "oidcIssuer": "i",
                                          "subjectEmail": "e"}, "rekorPublicKeyPath": "/r"},
    {"type": "signedBaseLayer", "baseLayerIdentity": {"type": "matchExact"}},
]
REQUIREMENT_PATHS = [("type",), ("keyType",), ("keyPath",), ("keyPaths",), ("keyData",),
                     ("signedIdentity",), ("signedIdentity", "type"), ("fulcio",),
                     ("signedIdentity", "dockerReference"), ("signedIdentity", "prefix"),
                     ("baseLayerIdentity",), ("rekorPublicKeyData",)]


def _mutated_requirement(base: dict[str, Any], path: tuple[str, ...], value: Any,
                         delete: bool) -> dict[str, Any]:
    doc = json.loads(json.dumps(base))
    node = doc
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            return doc
        node = node[key]
    if delete:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return doc


def requirement_strategy() -> st.SearchStrategy[dict[str, Any]]:
    """Valid requirements, and valid ones with one field changed or removed."""
    valid = st.sampled_from(VALID_REQUIREMENTS)
    values = st.sampled_from(POLICY_VALUES) | st.sampled_from(POLICY_VALUES) | policy_json
    return valid | st.builds(_mutated_requirement, valid, st.sampled_from(REQUIREMENT_PATHS),
                             values, st.booleans())


policy_documents = st.fixed_dictionaries(
    {"default": st.lists(requirement_strategy(), max_size=2)},
    optional={"transports": st.dictionaries(
        st.sampled_from(["docker", "oci", "dir", "podkit", "docker-daemon", "x"]),
        st.dictionaries(st.sampled_from(["", "quay.io", "/abs", "rel", "/a/../b", "/"]),
                        st.lists(requirement_strategy(), max_size=2), max_size=3),
        max_size=3)})


def check_policy(raw: bytes) -> None:
    policy = only_podkit_errors(pol.parse_policy, raw, source="fuzz.json")
    if policy is not None:
        assert pol.parse_policy(pol.dump_policy(policy)) == policy


@FUZZ
@given(st.binary(max_size=300))
def test_policy_parser_bytes(raw: bytes) -> None:
    check_policy(raw)


@FUZZ
@given(policy_json)
def test_policy_parser_any_json(doc: Any) -> None:
    check_policy(json_bytes(doc))


@FUZZ
@given(policy_documents)
def test_policy_parser_policy_shaped(doc: dict[str, Any]) -> None:
    check_policy(json_bytes(doc))


# --- payload ---------------------------------------------------------------------------------

PAYLOAD_VALUES = [pl.ATOMIC_SIGNATURE_TYPE, pl.COSIGN_SIGNATURE_TYPE, DIGEST, "sha512:ab",
                  "quay.io/a:1", "x<y>&z\u2028", 1795876997, 1.5, None]
PAYLOAD_KEYS = ["critical", "optional", "type", "image", "identity", "docker-manifest-digest",
                "docker-reference", "creator", "timestamp"]
payload_json = vocabulary_json(PAYLOAD_KEYS, PAYLOAD_VALUES)
any_payload_value = st.sampled_from(PAYLOAD_VALUES) | payload_json


def mostly(*valid: Any) -> st.SearchStrategy[Any]:
    """Usually one of ``valid``, sometimes anything: reaches both sides of each check."""
    return st.integers(0, 3).flatmap(
        lambda n: st.sampled_from(valid) if n else any_payload_value)


payload_documents = st.fixed_dictionaries(
    {"critical": st.fixed_dictionaries(
        {"type": mostly(pl.ATOMIC_SIGNATURE_TYPE, pl.COSIGN_SIGNATURE_TYPE),
         "image": st.fixed_dictionaries({"docker-manifest-digest": mostly(DIGEST)}),
         "identity": st.fixed_dictionaries(
             {"docker-reference": mostly("quay.io/a:1", "x<y>&z\u2028", "")})}),
     "optional": st.none() | st.fixed_dictionaries(
         {}, optional={"creator": mostly("podkit", "\u00e9"),
                       "timestamp": mostly(0, 1795876997, -1, 2.0, 2**63 - 1),
                       "annotation": any_payload_value})})


def check_payload(raw: bytes) -> None:
    parsed = only_podkit_errors(pl.parse_payload, raw)
    if parsed is not None:
        again = pl.parse_payload(parsed.to_bytes())
        assert again == parsed
        assert again.to_bytes() == parsed.to_bytes()


@FUZZ
@given(st.binary(max_size=300))
def test_payload_parser_bytes(raw: bytes) -> None:
    check_payload(raw)


@FUZZ
@given(payload_json)
def test_payload_parser_any_json(doc: Any) -> None:
    check_payload(json_bytes(doc))


@FUZZ
@given(payload_documents)
def test_payload_parser_payload_shaped(doc: dict[str, Any]) -> None:
    check_payload(json.dumps(doc, ensure_ascii=False).encode())


# --- key files -------------------------------------------------------------------------------

KEY_VALUES = ["scrypt", "nacl/secretbox", 32768, 8, 1, base64.b64encode(b"s" * 32).decode(),
              base64.b64encode(b"n" * 24).decode(), base64.b64encode(b"c" * 48).decode(), "!!",
              "\u00e9AA="]
KEY_KEYS = ["kdf", "cipher", "ciphertext", "name", "params", "salt", "nonce", "N", "r", "p"]
key_json = vocabulary_json(KEY_KEYS, KEY_VALUES)
PASSPHRASE = b"pass"
SALT, NONCE = b"s" * 32, b"n" * 24
BOX_KEY = hashlib.scrypt(PASSPHRASE, salt=SALT, n=32768, r=8, p=1, dklen=32,
                         maxmem=64 * 1024 * 1024)


def key_document(plaintext: bytes | None) -> dict[str, Any]:
    """A well-formed key document whose ciphertext opens with PASSPHRASE to ``plaintext``."""
    from nacl.secret import SecretBox

    ciphertext = SecretBox(BOX_KEY).encrypt(plaintext or b"", NONCE).ciphertext
    return {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1},
                    "salt": base64.b64encode(SALT).decode()},
            "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(NONCE).decode()},
            "ciphertext": base64.b64encode(ciphertext).decode()}


def mutate(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


KEY_PATHS = [("kdf",), ("kdf", "name"), ("kdf", "params"), ("kdf", "params", "N"),
             ("kdf", "salt"), ("cipher",), ("cipher", "name"), ("cipher", "nonce"),
             ("ciphertext",)]
# well-formed files whose plaintext is junk (or a real key), and files with one field changed
key_documents = (
    st.binary(max_size=80).map(key_document)
    | st.builds(mutate, st.builds(key_document, st.none()), st.sampled_from(KEY_PATHS),
                st.sampled_from(KEY_VALUES) | key_json
                | st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode()))
)
LABELS = st.sampled_from([cosignkey.COSIGN_PEM_LABEL, cosignkey.SIGSTORE_PEM_LABEL,
                          "PUBLIC KEY", "RSA PUBLIC KEY", "EC PRIVATE KEY", "X"])


def check_private_key(raw: bytes) -> None:
    only_podkit_errors(cosignkey.load_private_key, raw, PASSPHRASE, source="fuzz.key")
    only_podkit_errors(cosignkey.load_public_keys, raw, source="fuzz.pub")


@FUZZ
@given(st.binary(max_size=300))
def test_key_loader_bytes(raw: bytes) -> None:
    check_private_key(raw)


@FUZZ
@given(LABELS, st.binary(max_size=200))
def test_key_loader_pem_wrapped_bytes(label: str, body: bytes) -> None:
    check_private_key(cosignkey._pem(label, body))


@settings(database=None, deadline=None, max_examples=60,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([cosignkey.COSIGN_PEM_LABEL] * 3 + [cosignkey.SIGSTORE_PEM_LABEL, "X"]),
       key_documents | key_json)
def test_key_loader_key_shaped(label: str, doc: Any) -> None:
    check_private_key(cosignkey._pem(label, json_bytes(doc)))


def test_key_loader_reaches_every_outcome() -> None:
    """The strategies above do reach decryption: prove each outcome is reachable."""
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = cosignkey._pem(cosignkey.COSIGN_PEM_LABEL, json_bytes(key_document(b"junk")))
    with pytest.raises(KeyFormatError, match="not a PKCS#8"):
        cosignkey.load_private_key(pem, PASSPHRASE)
    with pytest.raises(PassphraseError):
        cosignkey.load_private_key(pem, b"other")
    real = cosignkey._private_der(ec.generate_private_key(ec.SECP256R1()))
    pem = cosignkey._pem(cosignkey.COSIGN_PEM_LABEL, json_bytes(key_document(real)))
    assert cosignkey.load_private_key(pem, PASSPHRASE) is not None


# --- attachments, signature blobs, registries.d ----------------------------------------------

ATTACHMENT_KEYS = ["schemaVersion", "mediaType", "config", "layers", "digest", "size",
                   "annotations", "urls", "dev.cosignproject.cosign/signature"]
ATTACHMENT_VALUES = [2, DIGEST, 304, "application/vnd.oci.image.manifest.v1+json",
                     "application/vnd.dev.cosign.simplesigning.v1+json", "AAAA", "\u00e9"]


@FUZZ
@given(vocabulary_json(ATTACHMENT_KEYS, ATTACHMENT_VALUES) | st.binary(max_size=200))
def test_attachment_parser(doc: Any) -> None:
    raw = doc if isinstance(doc, bytes) else json_bytes(doc)
    layers = only_podkit_errors(sigstore.parse_attachment, raw)
    if layers is not None:
        config = b'{"rootfs":{"diff_ids":[]}}'
        merged = sigstore.add_signatures([], manifest=raw, config=config)
        assert sigstore.parse_attachment(merged.manifest) == layers


BLOB_VALUES = (st.sampled_from(["AAAA", "x", "\u00e9", "", SIGSTORE_MEDIA_TYPE])
               | vocabulary_json(["a", "dev.cosignproject.cosign/signature"], ["AAAA"]))


@FUZZ
@given(st.binary(max_size=200)
       | st.binary(max_size=100).map(lambda b: b"\x00sigstore-json\n" + b)
       | st.fixed_dictionaries(
           {"mimeType": BLOB_VALUES, "payload": BLOB_VALUES,
            "annotations": st.dictionaries(st.text(max_size=5), st.text(max_size=5),
                                           max_size=2) | BLOB_VALUES},
           optional={"x": BLOB_VALUES}).map(
           lambda d: b"\x00sigstore-json\n" + json_bytes(d)))
def test_signature_blob_parser(raw: bytes) -> None:
    only_podkit_errors(decode_signature_blob, raw)


@FUZZ
@given(st.binary(max_size=200)
       | vocabulary_json(["docker", "default-docker", "lookaside", "lookaside-staging",
                          "sigstore", "use-sigstore-attachments", "quay.io"],
                         ["file:///x", True, "https://h"]).map(json_bytes))
def test_registries_d_parser(raw: bytes) -> None:
    only_podkit_errors(lookaside.parse_registries_d, raw)


# --- systematic mutations: every field of a valid document, every awkward value ---------------
#
# Random inputs reach a given field with a given bad value only by luck; these tests replace
# (or delete) every value of valid documents with every value below, deterministically.

AWKWARD: list[Any] = [None, True, 0, -1, 2**64, 1.5, -0.0, 1e308, "", "\u0100AA=", "%%",
                      "x" * 300, [], [None], {}, {"": None}, {"type": "reject"}]


def all_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            paths.extend(all_paths(value, (*prefix, key)))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            paths.extend(all_paths(value, (*prefix, index)))
    return paths


def variants(doc: Any) -> list[Any]:
    """``doc`` with each value replaced by each AWKWARD value, or deleted."""
    out = []
    for path in all_paths(doc):
        for value in [*AWKWARD, KeyError]:
            copy = json.loads(json.dumps(doc))
            node = copy
            for key in path[:-1]:
                node = node[key]
            if value is KeyError:
                del node[path[-1]]
            else:
                node[path[-1]] = value
            out.append(copy)
    return out


def test_policy_mutations() -> None:
    for requirement in VALID_REQUIREMENTS:
        doc = {"default": [requirement], "transports": {"docker": {"quay.io": [requirement]},
                                                        "oci": {"/srv": [requirement]}}}
        for variant in variants(doc):
            check_policy(json_bytes(variant))


def test_payload_mutations() -> None:
    from .test_trust_payload import COSIGN, SKOPEO_GPG, SKOPEO_SIGSTORE

    for raw in (SKOPEO_GPG, SKOPEO_SIGSTORE, COSIGN):
        for variant in variants(json.loads(raw)):
            check_payload(json_bytes(variant))


def test_key_document_mutations() -> None:
    for variant in variants(key_document(b"")):
        check_private_key(cosignkey._pem(cosignkey.COSIGN_PEM_LABEL, json_bytes(variant)))


def test_attachment_and_blob_mutations() -> None:
    from .test_trust_sigstore import CAPTURED_MANIFEST, captured_signature

    for variant in variants(json.loads(CAPTURED_MANIFEST)):
        raw = json_bytes(variant)
        if only_podkit_errors(sigstore.parse_attachment, raw) is not None:
            sigstore.add_signatures([captured_signature()], manifest=raw, config=b"{}")
    blob = encode_signature_blob(captured_signature())
    for variant in variants(json.loads(blob[len(b"\x00sigstore-json\n"):])):
        only_podkit_errors(decode_signature_blob, b"\x00sigstore-json\n" + json_bytes(variant))


def test_registries_d_mutations() -> None:
    doc = {"docker": {"quay.io": {"lookaside": "file:///a", "lookaside-staging": "file:///b",
                                  "use-sigstore-attachments": True}},
           "default-docker": {"sigstore": "https://h/x"}}
    for variant in variants(doc):
        only_podkit_errors(lookaside.parse_registries_d, json_bytes(variant))
