"""OpenPGP through gpgv and gpg: the process side of libaci.trust.openpgp's seams.

podkit parses no OpenPGP itself.  Signatures are checked by ``gpgv`` against
a keyring built from the trusted keys only (as apt does): the keys are
written, dearmored, to a private temporary directory that is also gpgv's
home, so ``~/.gnupg`` is never consulted.  gpgv reports on a pipe of its own
(``--status-fd``) and :func:`libaci.trust.openpgp.gpg_status_fingerprint`
reads that report.  Signing (``podkit-sign --gpg-key``) runs ``gpg --sign``
with the user's keys (``GNUPGHOME`` honoured), as skopeo ``--sign-by`` does;
showing a key's fingerprint and user IDs (``podkit-trust``) runs ``gpg
--show-keys`` in a throw-away home.

Undoing ASCII armor (Radix-64, RFC 4880 section 6) is done here in Python: it
is base64 between two marker lines, not OpenPGP parsing.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence

import attrs

from libaci.errors import PodkitError, UsageError
from libaci.trust.errors import InvalidSignatureError, KeyFormatError
from libaci.trust.openpgp import OpenPGPVerified, gpg_status_fingerprint

__all__ = ["KeyInfo", "dearmor", "show_keys", "sign", "verify_detached", "verify_message"]

TIMEOUT = 120
_ARMOR = re.compile(
    rb"-----BEGIN PGP ([A-Z ,0-9/]+)-----\r?\n(.*?)-----END PGP \1-----", re.DOTALL)


class GpgMissingError(PodkitError):
    """gpg or gpgv is not installed."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = "gpgv" if name == "gpgv" else "gnupg"
        raise GpgMissingError(f"{name} is not installed (apt-get install {package})")
    return path


def dearmor(data: bytes) -> bytes:
    """Binary OpenPGP packets from ``data``: armored blocks decoded, binary kept as is."""
    if not data.lstrip().startswith(b"-----BEGIN PGP"):
        return data
    out = bytearray()
    for match in _ARMOR.finditer(data):
        # armor headers ("Version: ...") hold a colon, base64 never does; the
        # checksum line starts with "=", which no base64 line (of 4n chars) does
        body = [x.strip() for x in match.group(2).splitlines()
                if x.strip() and b":" not in x and not x.strip().startswith(b"=")]
        try:
            out += base64.b64decode(b"".join(body), validate=True)
        except ValueError:
            raise KeyFormatError("invalid ASCII-armored OpenPGP data (bad base64)") from None
    if not out:
        raise KeyFormatError("no ASCII-armored OpenPGP block found")
    return bytes(out)


@contextlib.contextmanager
def _workdir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="podkit-gpg-")
    try:
        os.chmod(d, 0o700)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def _keyring(work: str, keyrings: Sequence[bytes]) -> str:
    return _write(os.path.join(work, "trusted.gpg"),
                  b"".join(dearmor(k) for k in keyrings))


def _run_gpgv(args: list[str], work: str, *, stdin: object = subprocess.DEVNULL
              ) -> tuple[int, bytes, bytes]:
    """Run gpgv with a status pipe; (exit status, status output, stderr)."""
    read_fd, write_fd = os.pipe()
    try:
        cmd = [_tool("gpgv"), "--homedir", work, "--status-fd", str(write_fd), *args]
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL,  # type: ignore[arg-type]
                                stderr=subprocess.PIPE, pass_fds=(write_fd,),
                                env={**os.environ, "LC_ALL": "C"})
        os.close(write_fd)
        write_fd = -1
        with os.fdopen(read_fd, "rb") as status_pipe:
            read_fd = -1
            status = status_pipe.read(1 << 20)
        try:
            _, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise InvalidSignatureError("gpgv did not finish in time") from None
        return proc.returncode, status, err
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)


def _fingerprint(rc: int, status: bytes, err: bytes) -> str:
    fingerprint = gpg_status_fingerprint(status)  # raises with the reason gpgv gives
    if rc != 0:
        first = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["failed"]
        raise InvalidSignatureError(f"OpenPGP signature refused: gpgv: {first[0]}")
    return fingerprint


def verify_message(message: bytes, keyrings: Sequence[bytes]) -> OpenPGPVerified:
    """An :class:`~libaci.trust.openpgp.OpenPGPVerifier`: the signed content and signer."""
    with _workdir() as work:
        keyring = _keyring(work, keyrings)
        msg = _write(os.path.join(work, "message"), message)
        out = os.path.join(work, "content")
        rc, status, err = _run_gpgv(["--keyring", keyring, "--output", out, msg], work)
        fingerprint = _fingerprint(rc, status, err)
        try:
            with open(out, "rb") as f:
                content = f.read(16 << 20)
        except FileNotFoundError:
            raise InvalidSignatureError("OpenPGP signature refused: the message signs "
                                        "no content (a detached signature?)") from None
        return OpenPGPVerified(content=content, fingerprint=fingerprint)


def verify_detached(signature: bytes, data_path: str, keyrings: Sequence[bytes]) -> str:
    """A :class:`~libaci.trust.openpgp.DetachedVerifier`: the signer's fingerprint."""
    with _workdir() as work:
        keyring = _keyring(work, keyrings)
        sig = _write(os.path.join(work, "signature.asc"), signature)
        rc, status, err = _run_gpgv(["--keyring", keyring, sig, data_path], work)
        return _fingerprint(rc, status, err)


def sign(payload: bytes, key_id: str) -> bytes:
    """An :class:`~libaci.trust.openpgp.OpenPGPSigner`: ``gpg --sign`` with the user's keys."""
    try:
        # from a file, not a pipe: gpg may exit unread (an unknown key), and podkit's
        # commands die of SIGPIPE rather than print a traceback
        with _workdir() as work:
            path = _write(os.path.join(work, "payload"), payload)
            cmd = [_tool("gpg"), "--batch", "--no-tty", "--yes", "--local-user", key_id,
                   "--output", "-", "--sign", path]
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise PodkitError(f"gpg did not sign with {key_id} in {TIMEOUT}s (is it waiting "
                          "for a passphrase? start gpg-agent with the key unlocked)") from None
    if proc.returncode != 0 or not proc.stdout:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise UsageError(f"gpg cannot sign with key {key_id}: {why}")
    return proc.stdout


@attrs.frozen
class KeyInfo:
    """One OpenPGP public key: primary fingerprint (uppercase hex) and user IDs."""

    fingerprint: str
    uids: tuple[str, ...] = ()

    def __str__(self) -> str:
        who = ", ".join(self.uids) if self.uids else "no user ID"
        return f"{self.fingerprint} ({who})"


def show_keys(data: bytes) -> list[KeyInfo]:
    """The public keys in ``data`` (binary or armored), as ``gpg --show-keys`` lists them."""
    with _workdir() as work:
        path = _write(os.path.join(work, "keys"), data)
        try:
            proc = subprocess.run([_tool("gpg"), "--homedir", work, "--batch", "--no-tty",
                                   "--with-colons", "--show-keys", path],
                                  capture_output=True, timeout=TIMEOUT, check=False,
                                  env={**os.environ, "LC_ALL": "C"})
        except subprocess.TimeoutExpired:
            raise KeyFormatError("gpg --show-keys did not finish in time") from None
    keys: list[KeyInfo] = []
    expect_fpr = False
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if fields[0] in ("pub", "sec"):
            expect_fpr = True
            if fields[1:2] == ["r"]:
                raise KeyFormatError("the key is revoked")
        elif fields[0] == "fpr" and expect_fpr and len(fields) > 9:
            keys.append(KeyInfo(fields[9].upper()))
            expect_fpr = False
        elif fields[0] == "uid" and keys and len(fields) > 9:
            uid = _unescape(fields[9])
            keys[-1] = attrs.evolve(keys[-1], uids=(*keys[-1].uids, uid))
        elif fields[0] == "sub":
            expect_fpr = False
    if proc.returncode != 0 or not keys:
        raise KeyFormatError("not an OpenPGP public key (gpg --show-keys found none)")
    return keys


def _unescape(text: str) -> str:
    """gpg's colon-listing escapes (``\\x3a`` for ``:``)."""
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), text)
