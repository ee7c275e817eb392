"""One error hierarchy for all of podkit.

Commands map classes (never message text) to exit statuses, see
``EXIT_STATUS`` below and the EXIT STATUS section of every man page.  Every
message is one line that says what went wrong and, where it helps, what to do.
"""

from __future__ import annotations


class PodkitError(Exception):
    """Base of every error podkit raises on purpose."""

    exit_status = 1


class UsageError(PodkitError):
    """The command line or an argument value is wrong."""

    exit_status = 2


class ImageError(PodkitError):
    """An image or archive is malformed or unsupported."""


class ManifestError(ImageError):
    """A JSON document does not match its schema or cannot be parsed."""


class LayerError(ImageError):
    """A layer archive is malformed or tries to escape its directory."""


class InvalidReferenceError(PodkitError):
    """An image reference or appc name does not parse."""

    exit_status = 2


class VerificationError(PodkitError):
    """Content does not match what was promised (size, digest, signature)."""

    exit_status = 3


class DigestMismatchError(VerificationError):
    """A blob's size or digest differs from its descriptor."""


class TrustError(VerificationError):
    """A policy or signature refused an image."""


class NotFoundError(PodkitError):
    """An image, blob, pod or file that was asked for does not exist."""

    exit_status = 4


class AmbiguousError(PodkitError):
    """An ID prefix or name matches more than one thing."""

    exit_status = 2


class ConflictError(PodkitError):
    """Something is in use or locked by another process."""

    exit_status = 5


class FetchError(PodkitError):
    """Transport failed while fetching an image."""


class StoreError(PodkitError):
    """The store on disk cannot be read or written."""


class PodStateError(PodkitError):
    """A pod is not in the state an operation needs."""

    exit_status = 5


class Stage1Error(PodkitError):
    """A stage1 is missing, malformed or failed."""


class AuthError(PodkitError):
    """Credentials are missing, refused or cannot be read (auth files, helpers)."""

    exit_status = 6
