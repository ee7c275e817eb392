"""Tests for libaci.trust.cosignkey: the cosign encrypted key file and public keys.

The format is checked with an independent decoder written from the cosign /
go-tuf description (hashlib.scrypt + nacl SecretBox + cryptography), not
with podkit's loader, so that a bug shared by writer and reader cannot hide.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from nacl.secret import SecretBox

from libaci.errors import AuthError, UsageError
from libaci.trust import cosignkey
from libaci.trust.errors import KeyFormatError, PassphraseError

PASS = b"correct horse"


@pytest.fixture(scope="module")
def pair() -> cosignkey.CosignKeyPair:
    return cosignkey.generate_key_pair(PASS)


def independent_decode(pem: bytes, passphrase: bytes) -> bytes:
    """A few lines from the format description: PEM -> JSON -> scrypt -> secretbox."""
    text = pem.decode("ascii")
    match = re.fullmatch(r"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n((?:[A-Za-z0-9+/=]{1,64}"
                         r"\n)+)-----END ENCRYPTED COSIGN PRIVATE KEY-----\n", text)
    assert match is not None, "not a 64-column PEM block with the COSIGN label"
    doc = json.loads(base64.b64decode(match.group(1)))
    assert doc["kdf"]["name"] == "scrypt"
    assert doc["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert doc["cipher"]["name"] == "nacl/secretbox"
    salt = base64.b64decode(doc["kdf"]["salt"])
    nonce = base64.b64decode(doc["cipher"]["nonce"])
    assert (len(salt), len(nonce)) == (32, 24)
    key = hashlib.scrypt(passphrase, salt=salt, n=32768, r=8, p=1, dklen=32,
                         maxmem=64 * 1024 * 1024)
    return SecretBox(key).decrypt(base64.b64decode(doc["ciphertext"]), nonce)


def test_generated_key_decodes_independently_to_p256_matching_pub(
        pair: cosignkey.CosignKeyPair) -> None:
    der = independent_decode(pair.private_pem, PASS)
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    # PKCS#8 (not SEC1): re-encoding as PKCS#8 gives the same bytes
    assert der == key.private_bytes(serialization.Encoding.DER,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    pub = serialization.load_pem_public_key(pair.public_pem)
    assert pub.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo) == \
        key.public_key().public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pair.public_pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")


def test_key_document_is_compact_go_json_in_field_order(pair: cosignkey.CosignKeyPair) -> None:
    body = b"".join(pair.private_pem.splitlines()[1:-1])
    raw = base64.b64decode(body)
    assert raw.startswith(b'{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"')
    assert b'"cipher":{"name":"nacl/secretbox","nonce":"' in raw
    assert b" " not in raw and raw.endswith(b'"}')
    assert list(json.loads(raw)) == ["kdf", "cipher", "ciphertext"]


def test_fixed_salt_and_nonce_give_fixed_bytes() -> None:
    key = ec.derive_private_key(7, ec.SECP256R1())
    one = cosignkey.encrypt_private_key(key, b"", salt=b"s" * 32, nonce=b"n" * 24)
    two = cosignkey.encrypt_private_key(key, b"", salt=b"s" * 32, nonce=b"n" * 24)
    assert one == two
    assert independent_decode(one, b"")  # empty passphrase is allowed, as in cosign


def test_round_trip(pair: cosignkey.CosignKeyPair) -> None:
    key = cosignkey.load_private_key(pair.private_pem, PASS)
    assert cosignkey.public_key_pem(key.public_key()) == pair.public_pem
    assert cosignkey.key_fingerprint(key.public_key()) == cosignkey.key_fingerprint(
        cosignkey.load_public_key(pair.public_pem))


def test_wrong_passphrase_is_a_passphrase_error(pair: cosignkey.CosignKeyPair) -> None:
    with pytest.raises(PassphraseError, match="wrong passphrase") as info:
        cosignkey.load_private_key(pair.private_pem, b"wrong", source="k.key")
    assert isinstance(info.value, AuthError) and info.value.exit_status == 6
    assert str(info.value).startswith("k.key: ")


def _rewrap(pair: cosignkey.CosignKeyPair, change) -> bytes:  # type: ignore[no-untyped-def]
    body = b"".join(pair.private_pem.splitlines()[1:-1])
    doc = json.loads(base64.b64decode(body))
    change(doc)
    return cosignkey._pem(cosignkey.COSIGN_PEM_LABEL, json.dumps(doc).encode())


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["kdf"]["params"].update(N=16384), "unexpected scrypt parameters"),
    (lambda d: d["kdf"]["params"].update(r=8.0), "unexpected scrypt parameters"),
    (lambda d: d["kdf"].update(name="argon2"), "unknown kdf"),
    (lambda d: d["cipher"].update(name="aes-gcm"), "unknown cipher"),
    (lambda d: d["cipher"].update(nonce=base64.b64encode(b"x" * 12).decode()), "nonce is 12"),
    (lambda d: d.update(ciphertext="not base64!"), "not valid base64"),
    (lambda d: d.update(ciphertext="AAA\u0100"), "not valid base64"),
    (lambda d: d.pop("kdf"), "kdf must be a JSON object"),
])
def test_malformed_documents(pair: cosignkey.CosignKeyPair, change, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(KeyFormatError, match=message) as info:
        cosignkey.load_private_key(_rewrap(pair, change), PASS)
    assert isinstance(info.value, UsageError)


def test_altered_ciphertext_fails_like_a_wrong_passphrase(pair: cosignkey.CosignKeyPair) -> None:
    def flip(doc: dict) -> None:  # type: ignore[type-arg]
        raw = bytearray(base64.b64decode(doc["ciphertext"]))
        raw[-1] ^= 1
        doc["ciphertext"] = base64.b64encode(bytes(raw)).decode()

    with pytest.raises(PassphraseError):
        cosignkey.load_private_key(_rewrap(pair, flip), PASS)


def test_sigstore_label_is_read_but_cosign_label_written(pair: cosignkey.CosignKeyPair) -> None:
    relabelled = pair.private_pem.replace(b"COSIGN", b"SIGSTORE")
    assert cosignkey.load_private_key(relabelled, PASS).private_numbers() == \
        cosignkey.load_private_key(pair.private_pem, PASS).private_numbers()
    with pytest.raises(KeyFormatError, match='unsupported PEM type "EC PRIVATE KEY"'):
        cosignkey.load_private_key(pair.private_pem.replace(
            b"ENCRYPTED COSIGN PRIVATE KEY", b"EC PRIVATE KEY"), PASS)


@pytest.mark.parametrize("data", [b"", b"hello", b"-----BEGIN X-----\n@@@\n-----END X-----\n",
                                  b"-----BEGIN A-----\nAAAA\n-----END B-----\n"])
def test_garbage_private_key_files(data: bytes) -> None:
    with pytest.raises(KeyFormatError):
        cosignkey.load_private_key(data, PASS)


def test_other_key_types_load_and_unsupported_types_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import dsa

    for key in (ed25519.Ed25519PrivateKey.generate(),
                rsa.generate_private_key(public_exponent=65537, key_size=2048),
                ec.generate_private_key(ec.SECP384R1())):
        pem = cosignkey.encrypt_private_key(key, b"x")
        loaded = cosignkey.load_private_key(pem, b"x")
        assert type(loaded) is type(key)
        pub = cosignkey.public_key_pem(key.public_key())
        assert cosignkey.key_fingerprint(cosignkey.load_public_key(pub)) == \
            cosignkey.key_fingerprint(key.public_key())
    dsa_key = dsa.generate_private_key(key_size=1024)
    with pytest.raises(KeyFormatError, match="unsupported private key type"):
        cosignkey.load_private_key(cosignkey.encrypt_private_key(dsa_key, b"x"), b"x")
    dsa_pub = cosignkey._pem("PUBLIC KEY", dsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(KeyFormatError, match="unsupported public key type"):
        cosignkey.load_public_key(dsa_pub)


def test_public_key_files() -> None:
    a = cosignkey.public_key_pem(ec.generate_private_key(ec.SECP256R1()).public_key())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pkcs1 = rsa_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    assert b"RSA PUBLIC KEY" in pkcs1
    assert len(cosignkey.load_public_keys(a + b"comment\n" + pkcs1)) == 2
    with pytest.raises(KeyFormatError, match="holds 2 public keys"):
        cosignkey.load_public_key(a + pkcs1)
    with pytest.raises(KeyFormatError, match="no PEM"):
        cosignkey.load_public_keys(b"ssh-ed25519 AAAA")
    with pytest.raises(KeyFormatError, match="is not a public key"):
        cosignkey.load_public_keys(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(KeyFormatError, match="invalid PUBLIC KEY"):
        cosignkey.load_public_keys(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
