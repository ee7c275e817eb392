"""rkt's trust store for appc images: OpenPGP keys trusted by image-name prefix.

Layout (rkt's pkg/keystore, under podkit's configuration directories)::

    /usr/lib/podkit/trustedkeys/        system keys (the distribution's; read only)
    $PODKIT_CONFIG_DIR/trustedkeys/     local keys (default /etc/podkit/trustedkeys;
                                        podkit-trust writes here)
        root.d/<fingerprint>            trusted for every image name
        prefix.d/<prefix>/<fingerprint> trusted for names that start with <prefix>

A file is named by its key's fingerprint in lowercase hex and holds that one
public key (ASCII-armored or binary).  The keys for an image name are those
of ``root.d`` and of every ``prefix.d`` directory whose path is a string
prefix of the name (``prefix.d/example.com`` and ``prefix.d/example.com/app``
both serve ``example.com/app``), system first; a local file overrides the
system file of the same name, and an empty local file masks it.
"""

from __future__ import annotations

import os

import attrs

from libaci.errors import UsageError
from libaci.fsutil import atomic_write
from libaci.reference import ac_identifier_ok

__all__ = ["SYSTEM_TRUSTED_KEYS", "TrustStore", "TrustedKey", "check_prefix"]

SYSTEM_TRUSTED_KEYS = "/usr/lib/podkit/trustedkeys"
MAX_KEY = 1 << 20


@attrs.frozen
class TrustedKey:
    """One trusted key file: its fingerprint (uppercase), path and scope."""

    fingerprint: str
    path: str
    prefix: str | None  # None: root.d


def check_prefix(prefix: str) -> str:
    """``prefix`` if podkit-trust may store keys for it, else a UsageError."""
    if "://" in prefix:
        raise UsageError(f"--prefix {prefix!r}: a prefix is an image name prefix, not a URL "
                         "(drop the scheme)")
    cleaned = prefix.rstrip("/")
    if not cleaned or not ac_identifier_ok(cleaned) or ".." in cleaned.split("/"):
        raise UsageError(f"--prefix {prefix!r} is not an appc image name prefix "
                         "(lowercase letters, digits and -._~/, e.g. example.com/app)")
    return cleaned


class TrustStore:
    """The keys of one local and one system trust store directory."""

    def __init__(self, local: str, system: str = SYSTEM_TRUSTED_KEYS) -> None:
        self.local = local
        self.system = system

    def _scan(self, base: str, name: str | None) -> dict[str, TrustedKey]:
        """Key files under ``base`` for ``name`` (every prefix when None)."""
        found: dict[str, TrustedKey] = {}

        def files(directory: str, prefix: str | None) -> None:
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                return
            for entry in entries:
                if entry.is_file(follow_symlinks=True) and not entry.name.startswith("."):
                    found[entry.name.lower()] = TrustedKey(entry.name.upper(), entry.path,
                                                           prefix)

        files(os.path.join(base, "root.d"), None)
        top = os.path.join(base, "prefix.d")

        def walk(directory: str) -> None:
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                return
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                rel = os.path.relpath(entry.path, top)
                if name is not None and not name.startswith(rel):
                    continue
                files(entry.path, rel)
                walk(entry.path)

        walk(top)
        return found

    def keys_for(self, name: str | None) -> list[TrustedKey]:
        """The keys trusted for image ``name`` (every key in the store when None)."""
        merged = self._scan(self.system, name)
        for fpr, key in self._scan(self.local, name).items():
            merged[fpr] = key
        out = []
        for key in merged.values():
            try:
                if os.path.getsize(key.path) == 0:  # a local empty file masks a system key
                    continue
            except OSError:
                continue
            out.append(key)
        return out

    def read(self, key: TrustedKey) -> bytes:
        with open(key.path, "rb") as f:
            data = f.read(MAX_KEY + 1)
        if len(data) > MAX_KEY:
            raise UsageError(f"trusted key {key.path} is larger than {MAX_KEY} bytes")
        return data

    def keyrings_for(self, name: str) -> list[bytes]:
        """The contents of the key files trusted for ``name``."""
        return [self.read(k) for k in self.keys_for(name)]

    def path_for(self, prefix: str | None, fingerprint: str) -> str:
        if prefix is None:
            return os.path.join(self.local, "root.d", fingerprint.lower())
        return os.path.join(self.local, "prefix.d", *prefix.split("/"), fingerprint.lower())

    def add(self, prefix: str | None, fingerprint: str, data: bytes) -> str:
        """Store ``data`` (one public key) as trusted for ``prefix`` (None: root.d)."""
        path = self.path_for(prefix, fingerprint)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        atomic_write(path, data, mode=0o644)
        return path
