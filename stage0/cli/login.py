"""podkit-login: check credentials against a registry and save them, like podman login."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from libaci.errors import AuthError, NotFoundError, UsageError
from stage0.cli import common

PROG = "podkit-login"


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r} (use true or false)")


def build() -> argparse.ArgumentParser:
    p = common.parser(
        PROG, "Log in to a registry: check the credentials with the registry, then save "
              "them in the auth file (as podman login does).",
        epilog='example: echo "$PW" | podkit-login --username alice --password-stdin reg:5000')
    p.add_argument("registry", metavar="REGISTRY",
                   help="HOST[:PORT], or HOST[:PORT]/NAMESPACE for credentials used only "
                        "for the repositories under it")
    p.add_argument("-u", "--username", metavar="USER",
                   help="the user name (default: ask on the terminal)")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input (needs --username)")
    # never accepted: refused with a message that does not repeat the value
    p.add_argument("-p", "--password", dest="password_argument", help=argparse.SUPPRESS)
    p.add_argument("--authfile", metavar="FILE",
                   help="the auth file to write (default $REGISTRY_AUTH_FILE, else "
                        "$XDG_RUNTIME_DIR/containers/auth.json)")
    p.add_argument("--get-login", action="store_true",
                   help="print the user name stored for REGISTRY and exit")
    p.add_argument("--tls-verify", metavar="BOOL", type=_bool, nargs="?", const=True,
                   default=True,
                   help="verify the registry's TLS certificate (default true)")
    p.add_argument("--cert-dir", metavar="DIR",
                   help="CA certificates (*.crt) and client certificate (*.cert, *.key) "
                        "for the registry")
    return p


def _password_from_stdin() -> str:
    data = sys.stdin.buffer.read() if sys.stdin is not None else b""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("the password on standard input is not UTF-8") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise UsageError("no password on standard input")
    return text


def _ask(prompt: str, *, secret: bool) -> str:
    try:
        if secret:
            return getpass.getpass(prompt)
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")
    except EOFError:
        raise UsageError("no answer on the terminal") from None


def run(args: argparse.Namespace) -> int:
    from libaci.registry import credentials as creds
    from stage0 import credhelper

    if args.password_argument is not None:
        raise UsageError("passwords are not accepted as arguments (they show in ps and in "
                         "the shell history): use --password-stdin or answer the prompt")
    env = os.environ
    key, host = creds.parse_auth_key(args.registry)

    if args.get_login:
        files = creds.auth_files_for_read(env, authfile=args.authfile)
        cred = credhelper.resolve(creds.lookup(key, env=env, files=files), host)
        if cred is None:
            raise NotFoundError(f"not logged in to {key}")
        common.emit(cred.username)
        return 0

    if args.cert_dir is not None and not os.path.isdir(args.cert_dir):
        raise UsageError(f"--cert-dir {args.cert_dir}: not a directory")
    if args.username is not None and (not args.username or ":" in args.username):
        raise UsageError("the user name must be non-empty and without ':'")
    if args.password_stdin and not args.username:
        raise UsageError("--password-stdin needs --username")
    path = creds.auth_file_for_write(env, authfile=args.authfile)
    helper = creds.configured_helper(key, path=path)
    if helper is not None and key != host:
        raise UsageError(f"{host} uses the credential helper docker-credential-{helper} "
                         f"({path}), which keeps one credential per host: log in to {host}")
    tls = {"cert_dir": args.cert_dir, "insecure_tls": not args.tls_verify}

    from libaci.registry.client import check_login

    if args.password_stdin:
        cred = creds.Credential(args.username, _password_from_stdin())
    else:
        if args.username is None:
            # as podman does: stored credentials that still work need no prompt
            existing = credhelper.resolve(creds.lookup(key, env=env, files=[path]), host)
            if existing is not None:
                try:
                    check_login(host, existing, **tls)
                except AuthError:
                    common.warn(PROG, f"the stored credentials for {key} are refused; "
                                      "enter new ones")
                else:
                    common.warn(PROG, f"existing credentials are valid: already logged in "
                                      f"to {key}")
                    return 0
        if sys.stdin is None or not sys.stdin.isatty():
            raise UsageError("standard input is not a terminal, so the password cannot be "
                             "asked for: pipe it to --password-stdin (with --username)")
        username = args.username or _ask("Username: ", secret=False)
        if not username or ":" in username:
            raise UsageError("the user name must be non-empty and without ':'")
        password = _ask("Password: ", secret=True)
        if not password:
            raise UsageError("no password given")
        cred = creds.Credential(username, password)

    check_login(host, cred, **tls)
    if helper is not None:
        credhelper.store(helper, host, cred)
    else:
        creds.store_credential(key, cred, path=path)
    print("Login Succeeded!", file=sys.stderr)
    return 0


def main() -> int:
    return common.main(build(), run)
