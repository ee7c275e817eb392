"""podkit-logout: remove a registry's credentials from the auth file, like podman logout."""

from __future__ import annotations

import argparse
import os
import sys

from libaci.errors import AuthError, NotFoundError, UsageError
from stage0.cli import common

PROG = "podkit-logout"


def build() -> argparse.ArgumentParser:
    p = common.parser(
        PROG, "Remove the credentials of a registry from the auth file that podkit-login "
              "writes (as podman logout does).",
        epilog="example: grep -v '^#' registries.txt | xargs -n1 podkit-logout")
    p.add_argument("registry", nargs="?", metavar="REGISTRY",
                   help="HOST[:PORT] or HOST[:PORT]/NAMESPACE, as given to podkit-login")
    p.add_argument("-a", "--all", action="store_true",
                   help="remove the credentials of every registry from the auth file")
    p.add_argument("--authfile", metavar="FILE",
                   help="the auth file (default $REGISTRY_AUTH_FILE, else "
                        "$XDG_RUNTIME_DIR/containers/auth.json)")
    return p


def run(args: argparse.Namespace) -> int:
    from libaci.registry import credentials as creds
    from stage0 import credhelper

    if args.all and args.registry:
        raise UsageError("--all takes no REGISTRY")
    if not args.all and not args.registry:
        raise UsageError("give a REGISTRY, or --all")
    env = os.environ
    path = creds.auth_file_for_write(env, authfile=args.authfile)
    if args.all:
        creds.remove_all_credentials(path=path)
        print("Removed login credentials for all registries", file=sys.stderr)
        return 0

    key, host = creds.parse_auth_key(args.registry)
    removed = False
    helper = creds.configured_helper(key, path=path)
    if helper is not None and key == host:
        removed = credhelper.erase(helper, host)
    removed = creds.remove_credential(key, path=path) or removed
    if not removed:
        others = [f for f in creds.auth_files_for_read(env, authfile=args.authfile)
                  if os.path.realpath(f) != os.path.realpath(path)]
        try:
            found = creds.lookup_with_source(key, env=env, files=others)
        except AuthError:
            found = None
        if found is not None and isinstance(found[1], creds.Credential):
            raise NotFoundError(f"not logged in to {key} in {path}, but {found[0]} has "
                                "credentials for it, which are still used (remove them "
                                "there, e.g. with docker logout)")
        raise NotFoundError(f"not logged in to {key} (nothing for it in {path})")
    print(f"Removed login credentials for {key}", file=sys.stderr)
    return 0


def main() -> int:
    return common.main(build(), run)
