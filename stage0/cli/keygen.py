"""podkit-keygen: a cosign key pair (PREFIX.key encrypted, PREFIX.pub) for podkit-sign."""

from __future__ import annotations

import argparse
import os
import sys

from stage0.cli import common

PROG = "podkit-keygen"
PASSWORD_ENV = "COSIGN_PASSWORD"


def add_passphrase_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--passphrase-file", metavar="FILE",
                   help="read the key's passphrase from the first line of FILE (default "
                        f"${PASSWORD_ENV}, else a prompt when stdin is a terminal)")


def read_passphrase(args: argparse.Namespace, *, confirm: bool, what: str) -> bytes:
    """The passphrase: --passphrase-file, $COSIGN_PASSWORD, or a prompt on a terminal."""
    from libaci.errors import UsageError

    if args.passphrase_file:
        try:
            with open(args.passphrase_file, "rb") as f:
                first = f.readline(64 * 1024)
        except FileNotFoundError:
            raise UsageError(f"--passphrase-file {args.passphrase_file} does not exist") from None
        except OSError as e:
            raise UsageError(f"cannot read --passphrase-file {args.passphrase_file}: "
                             f"{e.strerror}") from None
        return first.rstrip(b"\r\n")
    env = os.environ.get(PASSWORD_ENV)
    if env is not None:
        return env.encode()
    if sys.stdin is None or not sys.stdin.isatty():
        raise UsageError(f"no passphrase for {what}: give --passphrase-file FILE or set "
                         f"{PASSWORD_ENV} (standard input is not a terminal to ask on)")
    import getpass

    first = getpass.getpass(f"Enter the passphrase for {what}: ")
    if confirm and getpass.getpass(f"Enter the passphrase for {what} again: ") != first:
        raise UsageError("the two passphrases differ")
    return first.encode()


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Make an ECDSA P-256 key pair in cosign's format: PREFIX.key (the\n"
                            "encrypted private key, to sign with podkit-sign) and PREFIX.pub (to\n"
                            "trust with podkit-trust, or name in a policy).  Prints PREFIX.pub.",
                      epilog="example: COSIGN_PASSWORD=... podkit-keygen -o team   "
                             "(writes team.key and team.pub)")
    p.add_argument("--output", "-o", metavar="PREFIX", default="cosign",
                   help="write PREFIX.key and PREFIX.pub (default: cosign); never overwrites")
    add_passphrase_option(p)
    return p


def run(args: argparse.Namespace) -> int:
    from libaci.errors import ConflictError, UsageError
    from libaci.trust.cosignkey import generate_key_pair

    prefix = args.output
    if not prefix or prefix.endswith("/"):
        raise UsageError(f"--output {prefix!r}: give a file name prefix such as ./cosign")
    key_path, pub_path = f"{prefix}.key", f"{prefix}.pub"
    for path in (key_path, pub_path):
        if os.path.lexists(path):
            raise ConflictError(f"{path} exists (remove it or choose another --output)")
    directory = os.path.dirname(os.path.abspath(key_path))
    if not os.path.isdir(directory):
        from libaci.errors import NotFoundError

        raise NotFoundError(f"directory {directory} does not exist")
    passphrase = read_passphrase(args, confirm=True, what=key_path)
    pair = generate_key_pair(passphrase)
    written = []
    try:
        for path, data, mode in ((key_path, pair.private_pem, 0o600),
                                 (pub_path, pair.public_pem, 0o644)):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            except FileExistsError:
                raise ConflictError(f"{path} appeared meanwhile; nothing written") from None
            written.append(path)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        for path in written:
            os.unlink(path)
        raise
    common.warn(PROG, f"private key written to {key_path}, public key to {pub_path}")
    common.emit(pub_path)
    return 0


def main() -> int:
    return common.main(build(), run)
