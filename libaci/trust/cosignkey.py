"""cosign key files: the encrypted private key and the public key PEM.

podkit signs with keys that cosign, skopeo and podman also read, so the
format is exactly cosign's (pkg/cosign/keys.go, go-tuf encrypted/encrypted.go)
as containers/image 5.22-5.23 accepts it:

* the private key file is PEM ``ENCRYPTED COSIGN PRIVATE KEY`` (c/image
  before 5.25 refuses the newer ``ENCRYPTED SIGSTORE PRIVATE KEY`` label, so
  that one is read but never written), its body the compact JSON
  ``{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":B64},
  "cipher":{"name":"nacl/secretbox","nonce":B64},"ciphertext":B64}``;
* key = scrypt(passphrase, salt (32 bytes), N=32768, r=8, p=1, 32 bytes);
  ciphertext = NaCl secretbox (XSalsa20-Poly1305, tag first) of the
  unencrypted PKCS#8 DER private key under a 24-byte nonce; go-tuf refuses
  any other scrypt parameters, and so does podkit (they bound the work an
  attacker-supplied file can cause);
* the public key file is PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo).

New keys are ECDSA P-256 as cosign generates them; loading accepts what
c/image's sigstore code accepts: ECDSA on any curve, RSA and Ed25519.
``cryptography`` and PyNaCl are imported only when a key is used.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs

from libaci.trust.errors import KeyFormatError, PassphraseError
from libaci.trust.jsonutil import Struct, b64decode, go_marshal, load_strict, shown

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
else:
    PrivateKey = Any
    PublicKey = Any

__all__ = [
    "COSIGN_PEM_LABEL",
    "SIGSTORE_PEM_LABEL",
    "CosignKeyPair",
    "PrivateKey",
    "PublicKey",
    "encrypt_private_key",
    "generate_key_pair",
    "key_fingerprint",
    "load_private_key",
    "load_public_key",
    "load_public_keys",
    "public_key_pem",
]

COSIGN_PEM_LABEL = "ENCRYPTED COSIGN PRIVATE KEY"
SIGSTORE_PEM_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"
PUBLIC_PEM_LABEL = "PUBLIC KEY"
RSA_PUBLIC_PEM_LABEL = "RSA PUBLIC KEY"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1
SALT_SIZE = 32
NONCE_SIZE = 24
BOX_KEY_SIZE = 32
#: scrypt needs 128 * N * r bytes (32 MiB); hashlib's default limit is too small.
SCRYPT_MAXMEM = 64 * 1024 * 1024
#: refuse absurd inputs before doing any work on them
MAX_KEY_FILE = 1024 * 1024

_PEM_RE = re.compile(
    rb"-----BEGIN ([\x20-\x2c\x2e-\x7e]+)-----\r?\n(.*?)-----END ([\x20-\x2c\x2e-\x7e]+)-----",
    re.DOTALL,
)
_B64_BODY_RE = re.compile(rb"[A-Za-z0-9+/=\s]*")


@attrs.frozen
class CosignKeyPair:
    """A new key pair: write ``private_pem`` to ``X.key`` and ``public_pem`` to ``X.pub``."""

    private_pem: bytes
    public_pem: bytes


def _pem(label: str, der: bytes) -> bytes:
    """Go's ``pem.Encode``: 64-column base64 lines, newline-terminated."""
    body = base64.b64encode(der)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        f"-----BEGIN {label}-----\n".encode()
        + b"".join(line + b"\n" for line in lines)
        + f"-----END {label}-----\n".encode()
    )


def _pem_blocks(data: bytes, source: str) -> Iterator[tuple[str, bytes]]:
    """Every PEM block in ``data``: (label, DER bytes); headers are refused."""
    for match in _PEM_RE.finditer(data):
        begin, body, end = match.groups()
        label = begin.decode("ascii")
        if begin != end:
            raise KeyFormatError(f"{source}: PEM block {shown(label)} ends with "
                                 f"{shown(end.decode('ascii'))}")
        if not _B64_BODY_RE.fullmatch(body):
            raise KeyFormatError(f"{source}: PEM block {shown(label)} has headers or bad "
                                 "characters (podkit reads unencrypted PEM bodies only)")
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except ValueError:
            raise KeyFormatError(
                f"{source}: PEM block {shown(label)} is not valid base64") from None
        yield label, der


def _b64field(doc: dict[str, Any], key: str, where: str, source: str) -> bytes:
    value = doc.get(key)
    if not isinstance(value, str):
        raise KeyFormatError(f"{source}: {where}{key} must be a base64 string")
    try:
        return b64decode(value)
    except ValueError:
        raise KeyFormatError(f"{source}: {where}{key} is not valid base64") from None


def _object(value: Any, name: str, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KeyFormatError(f"{source}: {name} must be a JSON object")
    return value


def _box_key(passphrase: bytes, salt: bytes) -> bytes:
    return hashlib.scrypt(passphrase, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                          dklen=BOX_KEY_SIZE, maxmem=SCRYPT_MAXMEM)


def _private_der(key: PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def encrypt_private_key(key: PrivateKey, passphrase: bytes, *, salt: bytes | None = None,
                        nonce: bytes | None = None) -> bytes:
    """``key`` as a cosign ``ENCRYPTED COSIGN PRIVATE KEY`` PEM file.

    ``salt`` and ``nonce`` are random unless given (tests give them to get
    fixed bytes); never reuse a nonce with the same passphrase and salt.
    """
    from nacl.secret import SecretBox

    salt = os.urandom(SALT_SIZE) if salt is None else salt
    nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
    if len(salt) != SALT_SIZE or len(nonce) != NONCE_SIZE:
        raise ValueError(f"salt must be {SALT_SIZE} bytes and nonce {NONCE_SIZE} bytes")
    ciphertext = SecretBox(_box_key(passphrase, salt)).encrypt(_private_der(key), nonce).ciphertext
    document = Struct(
        kdf=Struct(name="scrypt", params=Struct(N=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P),
                   salt=base64.b64encode(salt).decode()),
        cipher=Struct(name="nacl/secretbox", nonce=base64.b64encode(nonce).decode()),
        ciphertext=base64.b64encode(ciphertext).decode(),
    )
    return _pem(COSIGN_PEM_LABEL, go_marshal(document))


def generate_key_pair(passphrase: bytes) -> CosignKeyPair:
    """A new ECDSA P-256 key pair in cosign's format (``cosign generate-key-pair``)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return CosignKeyPair(private_pem=encrypt_private_key(key, passphrase),
                         public_pem=public_key_pem(key.public_key()))


def _check_private_type(key: object, source: str) -> PrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey,
                        ed25519.Ed25519PrivateKey)):
        return key
    raise KeyFormatError(f"{source}: unsupported private key type {type(key).__name__} "
                         "(use ECDSA, RSA or Ed25519)")


def load_private_key(data: bytes, passphrase: bytes, *, source: str = "cosign private key"
                     ) -> PrivateKey:
    """Decrypt a cosign private key file (either PEM label).

    Raises :class:`KeyFormatError` for a malformed file or unexpected KDF or
    cipher parameters and :class:`PassphraseError` when the secretbox does
    not open (a wrong passphrase, or a ciphertext that was altered).
    """
    if len(data) > MAX_KEY_FILE:
        raise KeyFormatError(f"{source}: file is larger than {MAX_KEY_FILE} bytes")
    blocks = list(_pem_blocks(data, source))
    if not blocks:
        raise KeyFormatError(f"{source}: no PEM block found (expected {COSIGN_PEM_LABEL})")
    label, body = blocks[0]
    if label not in (COSIGN_PEM_LABEL, SIGSTORE_PEM_LABEL):
        raise KeyFormatError(f"{source}: unsupported PEM type {shown(label)} "
                             f"(expected {COSIGN_PEM_LABEL})")
    doc = _object(load_strict(body, source, KeyFormatError), "the key document", source)
    kdf = _object(doc.get("kdf"), "kdf", source)
    cipher = _object(doc.get("cipher"), "cipher", source)
    if kdf.get("name") != "scrypt":
        raise KeyFormatError(f"{source}: unknown kdf {shown(kdf.get('name'))} (expected scrypt)")
    if cipher.get("name") != "nacl/secretbox":
        raise KeyFormatError(
            f"{source}: unknown cipher {shown(cipher.get('name'))} (expected nacl/secretbox)")
    params = _object(kdf.get("params"), "kdf.params", source)
    expected = {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}
    if any(type(params.get(k)) is not int or params.get(k) != v for k, v in expected.items()):
        raise KeyFormatError(f"{source}: unexpected scrypt parameters {shown(params)} "
                             f"(cosign uses N={SCRYPT_N}, r={SCRYPT_R}, p={SCRYPT_P})")
    salt = _b64field(kdf, "salt", "kdf.", source)
    nonce = _b64field(cipher, "nonce", "cipher.", source)
    ciphertext = _b64field(doc, "ciphertext", "", source)
    if len(nonce) != NONCE_SIZE:
        raise KeyFormatError(f"{source}: the nonce is {len(nonce)} bytes, not {NONCE_SIZE}")

    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    try:
        der = SecretBox(_box_key(passphrase, salt)).decrypt(ciphertext, nonce)
    except CryptoError:
        raise PassphraseError(
            f"{source}: cannot decrypt the private key: wrong passphrase "
            "(or the key file was altered)") from None

    from cryptography.hazmat.primitives.serialization import load_der_private_key

    try:
        key = load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        raise KeyFormatError(f"{source}: the decrypted key is not a PKCS#8 DER private key"
                             ) from None
    return _check_private_type(key, source)


def _check_public_type(key: object, source: str) -> PublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        return key
    raise KeyFormatError(f"{source}: unsupported public key type {type(key).__name__} "
                         "(use ECDSA, RSA or Ed25519)")


def load_public_keys(data: bytes, *, source: str = "public key") -> list[PublicKey]:
    """Every ``PUBLIC KEY`` (or PKCS#1 ``RSA PUBLIC KEY``) PEM block in ``data``."""
    from cryptography.hazmat.primitives import serialization

    if len(data) > MAX_KEY_FILE:
        raise KeyFormatError(f"{source}: file is larger than {MAX_KEY_FILE} bytes")
    keys: list[PublicKey] = []
    for label, der in _pem_blocks(data, source):
        try:
            if label == PUBLIC_PEM_LABEL:
                key: object = serialization.load_der_public_key(der)
            elif label == RSA_PUBLIC_PEM_LABEL:
                key = serialization.load_pem_public_key(_pem(label, der))
            else:
                raise KeyFormatError(f"{source}: PEM type {shown(label)} is not a public key "
                                     f"(expected {PUBLIC_PEM_LABEL!r})")
        except (ValueError, TypeError):
            raise KeyFormatError(f"{source}: invalid {label} (not a DER public key)") from None
        keys.append(_check_public_type(key, source))
    if not keys:
        raise KeyFormatError(f"{source}: no PEM {PUBLIC_PEM_LABEL!r} block found")
    return keys


def load_public_key(data: bytes, *, source: str = "public key") -> PublicKey:
    """The one public key in ``data`` (a file with several is refused)."""
    keys = load_public_keys(data, source=source)
    if len(keys) != 1:
        raise KeyFormatError(f"{source}: holds {len(keys)} public keys, expected one")
    return keys[0]


def public_key_pem(key: PublicKey) -> bytes:
    """``key`` as PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo), as cosign writes ``.pub``."""
    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return _pem(PUBLIC_PEM_LABEL, der)


def key_fingerprint(key: PublicKey) -> str:
    """``sha256:<hex>`` of the key's SubjectPublicKeyInfo DER: how podkit names a key."""
    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()
