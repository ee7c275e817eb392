"""The seam between policy evaluation and OpenPGP (gpgv / gpg).

podkit does not parse OpenPGP itself: simple-signing signatures and appc
``.asc`` files are checked by gpgv against a keyring built from the trusted
keys, as apt does.  That needs a subprocess, which libaci never starts, so
policy evaluation takes the check as a parameter of type
:class:`OpenPGPVerifier`, and stage0 implements it with gpgv::

    gpgv --status-fd 1 --keyring KEYRING --output - MESSAGE

(``KEYRING`` = the keyrings given, armored ones dearmored, concatenated).
It returns the signed content and the signer's fingerprint, or raises
:class:`~libaci.trust.errors.InvalidSignatureError` with a one-line reason.
:func:`gpg_status_fingerprint` turns gpgv's ``--status-fd`` output into that
fingerprint or reason, so the stage0 side is a few lines of process plumbing.
Signing (``gpg --sign``) is the :class:`OpenPGPSigner` seam, for podkit-sign.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

from libaci.trust.errors import InvalidSignatureError

__all__ = [
    "DetachedVerifier",
    "OpenPGPSigner",
    "OpenPGPVerified",
    "OpenPGPVerifier",
    "gpg_status_fingerprint",
]


@attrs.frozen
class OpenPGPVerified:
    """A good OpenPGP signature: what was signed and by which key.

    ``fingerprint`` is the primary key's fingerprint, uppercase hex (the last
    field of gpg's ``VALIDSIG``; the signing subkey's if gpg gives no other).
    """

    content: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    fingerprint: str


class OpenPGPVerifier(Protocol):
    """Verify a signed OpenPGP message against trusted keyrings.

    ``message`` is the binary message (what ``gpg --sign`` writes: the
    payload inside, not detached); ``keyrings`` are the contents of the
    keyring files or ``keyData`` values of one policy requirement (binary or
    ASCII-armored); any key in any of them may have signed.  Return the
    signed content, or raise ``InvalidSignatureError`` (bad or expired
    signature, revoked or expired key, a key not in the keyrings, a message
    that is not a signature).  Must not trust any other keyring (no
    ``~/.gnupg``).
    """

    def __call__(self, message: bytes, keyrings: Sequence[bytes]) -> OpenPGPVerified: ...


class DetachedVerifier(Protocol):
    """Verify a detached signature (appc ``.aci.asc``) of ``data`` against keyrings.

    Returns the signer's primary-key fingerprint or raises
    ``InvalidSignatureError``; stage0 runs ``gpgv --status-fd 1 --keyring K
    SIG DATA`` (``DATA`` streamed from a file: an ACI is not held in memory).
    """

    def __call__(self, signature: bytes, data_path: str, keyrings: Sequence[bytes]) -> str: ...


class OpenPGPSigner(Protocol):
    """Sign ``payload`` with the secret key ``key_id`` (a fingerprint), non-detached.

    stage0 runs ``gpg --batch --local-user KEY_ID --sign`` and returns the
    binary message, as skopeo ``--sign-by`` does.
    """

    def __call__(self, payload: bytes, key_id: str) -> bytes: ...


_FAILURES = {
    "BADSIG": "bad signature (the signed data was altered)",
    "EXPSIG": "the signature has expired",
    "EXPKEYSIG": "the signing key has expired",
    "REVKEYSIG": "the signing key has been revoked",
    "NO_PUBKEY": "the signing key is not trusted (not in the keyring)",
}


def gpg_status_fingerprint(status: bytes | str) -> str:
    """The primary fingerprint of the one good signature in gpg ``--status-fd`` output.

    Raises :class:`InvalidSignatureError` naming the problem when the output
    has a failure status (``BADSIG``, ``EXPSIG``, ``EXPKEYSIG``,
    ``REVKEYSIG``, ``ERRSIG``/``NO_PUBKEY``), no ``GOODSIG`` + ``VALIDSIG``
    pair, or more than one signature.
    """
    text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
    good = 0
    fingerprints: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0] != "[GNUPG:]":
            continue
        keyword, args = fields[1], fields[2:]
        if keyword in _FAILURES:
            key = f" (key {args[0]})" if args else ""
            raise InvalidSignatureError(f"OpenPGP signature refused: {_FAILURES[keyword]}{key}")
        if keyword == "ERRSIG":
            missing = len(args) >= 6 and args[5] == "9"
            reason = _FAILURES["NO_PUBKEY"] if missing else "the signature cannot be checked"
            key = f" (key {args[0]})" if args else ""
            raise InvalidSignatureError(f"OpenPGP signature refused: {reason}{key}")
        if keyword == "GOODSIG":
            good += 1
        elif keyword == "VALIDSIG" and args:
            fingerprints.append((args[9] if len(args) >= 10 else args[0]).upper())
    if good == 0 or not fingerprints:
        raise InvalidSignatureError("OpenPGP signature refused: no valid signature found")
    if good > 1 or len(fingerprints) > 1:
        raise InvalidSignatureError("OpenPGP signature refused: more than one signature")
    return fingerprints[0]
