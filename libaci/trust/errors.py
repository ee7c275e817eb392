"""The error classes of the trust package.

They subclass the classes of :mod:`libaci.errors`, so the commands map them to
exit statuses without knowing this module: a malformed key, policy or
registries.d file is a usage error (2), a bad or unacceptable signature a
verification failure (3), a wrong passphrase an authentication failure (6).
They live here only because :mod:`libaci.errors` belongs to another file
owner; moving them there later changes no caller.
"""

from __future__ import annotations

from libaci.errors import AuthError, FetchError, UsageError, VerificationError


class KeyFormatError(UsageError):
    """A private or public key file cannot be parsed or uses an unsupported type."""


class PassphraseError(AuthError):
    """An encrypted private key does not open with the passphrase given."""


class InvalidSignatureError(VerificationError):
    """A signature, its payload or its attachment is malformed or does not verify."""


class PolicyFormatError(UsageError):
    """A containers-policy.json(5) document is invalid (the whole file is refused)."""


class RegistriesConfigError(UsageError):
    """A registries.d file is invalid, or two files configure the same scope."""


class LookasideError(FetchError):
    """Signatures cannot be read from or written to a lookaside location."""
