"""Tests for libaci.trust.openpgp: reading gpgv's --status-fd output.

The status lines are as gpgv 2.2 prints them (captured on Debian 12).
"""

from __future__ import annotations

import pytest

from libaci.trust.errors import InvalidSignatureError
from libaci.trust.openpgp import gpg_status_fingerprint

FPR = "FC71624D521F90AACBB390D2A4C4972E1DEDA539"
GOOD = f"""[GNUPG:] PLAINTEXT 62 1795892966
[GNUPG:] PLAINTEXT_LENGTH 5
[GNUPG:] NEWSIG
[GNUPG:] KEY_CONSIDERED {FPR} 0
[GNUPG:] SIG_ID YdxJ3c/RBz/jrwxK48Ol0z0CwDg 2026-11-28 1795892966
[GNUPG:] GOODSIG A4C4972E1DEDA539 Test <t@example.com>
[GNUPG:] VALIDSIG 1111111111111111111111111111111111111111 2026-11-28 1795892966 0 4 0 22 8 00 {FPR}
"""
NO_PUBKEY = f"""[GNUPG:] NEWSIG
[GNUPG:] ERRSIG A4C4972E1DEDA539 22 8 00 1795892966 9 {FPR}
[GNUPG:] NO_PUBKEY A4C4972E1DEDA539
"""


def test_good_signature_gives_the_primary_fingerprint() -> None:
    assert gpg_status_fingerprint(GOOD.encode()) == FPR
    without_primary = GOOD.replace(f" 00 {FPR}", " 00").replace("1111", "abcd", 1)
    assert gpg_status_fingerprint(without_primary).startswith("ABCD")


@pytest.mark.parametrize(("status", "message"), [
    (NO_PUBKEY, "the signing key is not trusted"),
    (GOOD.replace("GOODSIG", "EXPKEYSIG"), "the signing key has expired"),
    (GOOD.replace("GOODSIG", "REVKEYSIG"), "revoked"),
    (GOOD.replace("GOODSIG", "EXPSIG"), "the signature has expired"),
    (GOOD.replace("GOODSIG", "BADSIG"), "bad signature"),
    ("[GNUPG:] ERRSIG A4C4972E1DEDA539 22 8 00 1795892966 4 -", "cannot be checked"),
    ("", "no valid signature"),
    (GOOD.replace("[GNUPG:] VALIDSIG", "[GNUPG:] X"), "no valid signature"),
    (GOOD + GOOD, "more than one signature"),
    ("GOODSIG x\nVALIDSIG y", "no valid signature"),
])
def test_failures(status: str, message: str) -> None:
    with pytest.raises(InvalidSignatureError, match=message):
        gpg_status_fingerprint(status)
