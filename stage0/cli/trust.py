"""podkit-trust: trust keys, for appc images by name prefix (as rkt trust) or for registry
scopes in the verification policy."""

from __future__ import annotations

import argparse
import os
import re
import sys

from stage0.cli import common

PROG = "podkit-trust"
_HOST = re.compile(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?\Z")


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Trust public keys.  appc images (rkt's trust store): --prefix "
                            "PREFIX or --root\nwith OpenPGP key files or https URLs (none: "
                            "appc discovery of PREFIX's keys).\nRegistry images: --scope "
                            "REGISTRY[/REPO] with --sigstore-key or --gpg-key adds the\nkey "
                            "to that scope of the verification policy.  Each key's fingerprint "
                            "is\nshown and must be confirmed (yes) unless "
                            "--skip-fingerprint-review.\nPrints the fingerprints trusted.",
                      epilog="examples: podkit-trust --prefix example.com/app pubkey.gpg\n"
                             "          podkit-trust --scope reg.example.com/team "
                             "--sigstore-key cosign.pub")
    p.add_argument("keys", nargs="*", metavar="KEYFILE",
                   help="OpenPGP public key files or https URLs (appc)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--prefix", metavar="PREFIX",
                       help="trust the keys for appc images whose name starts with PREFIX")
    where.add_argument("--root", action="store_true",
                       help="trust the keys for every appc image (needs KEYFILEs)")
    where.add_argument("--scope", metavar="SCOPE",
                       help="a registry scope of the policy: HOST[:PORT][/REPO...] "
                            "(or *.DOMAIN)")
    p.add_argument("--sigstore-key", metavar="FILE",
                   help="with --scope: a cosign public key (PEM) whose sigstore "
                        "signatures to accept")
    p.add_argument("--gpg-key", metavar="FILE",
                   help="with --scope: an OpenPGP public key whose simple signatures "
                        "to accept")
    p.add_argument("--skip-fingerprint-review", action="store_true",
                   help="trust without asking (after checking the fingerprints elsewhere)")
    p.add_argument("--policy", metavar="FILE",
                   help="with --scope: the policy file to change (default: the one in force, "
                        "see podkit-verify)")
    common.add_registry_options(p)
    return p


def confirm(args: argparse.Namespace, lines: list[str]) -> bool:
    """Show ``lines`` on stderr and ask (yes/no) unless --skip-fingerprint-review."""
    if not args.skip_fingerprint_review and (sys.stdin is None or not sys.stdin.isatty()):
        from libaci.errors import UsageError

        fingerprint = lines[2].rpartition(" ")[2] if len(lines) > 2 else "the key"
        raise UsageError(f"cannot ask to confirm {fingerprint}: standard input is not a "
                         "terminal (check the fingerprint, then use --skip-fingerprint-review)")
    for line in lines:
        print(line, file=sys.stderr)
    if args.skip_fingerprint_review:
        return True
    while True:
        sys.stderr.write("Are you sure you want to trust this key (yes/no)? ")
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if not answer:
            return False
        answer = answer.strip().lower()
        if answer in ("yes", "y"):
            return True
        if answer in ("no", "n"):
            return False


def _read_source(source: str, client_factory) -> bytes:  # type: ignore[no-untyped-def]
    from libaci.errors import NotFoundError, UsageError

    if source.startswith(("https://", "http://")):
        from libaci.http import read_capped

        with client_factory().get(source, what=source) as resp:
            return read_capped(resp, 1 << 20, source)
    if "://" in source:
        raise UsageError(f"{source}: keys come from files or https:// URLs")
    try:
        with open(source, "rb") as f:
            return f.read(1 << 20)
    except FileNotFoundError:
        raise NotFoundError(f"key file {source} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{source} is a directory, not a key file") from None


def run(args: argparse.Namespace) -> int:
    from libaci.errors import UsageError

    if args.scope is not None:
        if args.keys:
            raise UsageError("--scope takes its key from --sigstore-key or --gpg-key, "
                             "not KEYFILE arguments")
        return _scope(args)
    if args.sigstore_key or args.gpg_key or args.policy:
        raise UsageError("--sigstore-key, --gpg-key and --policy go with --scope")
    return _appc(args)


def _appc(args: argparse.Namespace) -> int:
    from libaci.errors import UsageError
    from stage0 import gpg
    from stage0.trust import trust_store
    from stage0.truststore import check_prefix

    if args.root and not args.keys:
        raise UsageError("--root needs KEYFILE arguments (no discovery for the root)")
    if not args.root and args.prefix is None:
        raise UsageError("give --prefix PREFIX, --root or --scope SCOPE (trusting a key for "
                         "every image needs --root explicitly)")
    prefix = None if args.root else check_prefix(args.prefix)
    clients: list = []

    def client():  # type: ignore[no-untyped-def]
        if not clients:
            from libaci.http import HttpClient

            tls, credentials = common.registry_settings(args)
            clients.append(HttpClient(tls, credentials=credentials))
        return clients[0]

    sources = list(args.keys)
    try:
        if not sources:
            assert prefix is not None
            from libaci.reference import parse_appc_name
            from libaci.sources.appcname import discover_keys

            tls, _ = common.registry_settings(args)
            page, sources = discover_keys(client(), parse_appc_name(prefix),
                                          allow_http=tls.allow_http)
            common.warn(PROG, f"{page} lists {len(sources)} key(s) for {prefix}")
        store = trust_store()
        for source in sources:
            data = _read_source(source, client)
            keys = gpg.show_keys(data)
            if len(keys) != 1:
                raise UsageError(f"{source} holds {len(keys)} keys; give one key per file")
            key = keys[0]
            lines = [f"Prefix: {prefix if prefix is not None else '(root: every image)'}",
                     f"Key: {source}",
                     f"GPG key fingerprint is: {key.fingerprint}"]
            lines += [f"\t{uid}" for uid in key.uids]
            if not confirm(args, lines):
                common.warn(PROG, f"key {key.fingerprint} not trusted")
                return 1
            path = store.add(prefix, key.fingerprint, data)
            common.warn(PROG, f"trusted key {key.fingerprint} for "
                              f"{prefix if prefix is not None else 'every image'}: {path}")
            common.emit(key.fingerprint)
    finally:
        for c in clients:
            c.close()
    return 0


def check_scope(scope: str) -> str:
    """``scope`` if it is a docker scope c/image accepts (host[:port][/repo...])."""
    from libaci.errors import InvalidReferenceError, UsageError
    from libaci.reference import parse_docker_reference

    if "://" in scope:
        raise UsageError(f"--scope {scope!r}: give HOST[:PORT][/REPO], without a scheme")
    if "/" not in scope:
        if not _HOST.match(scope):
            raise UsageError(f"--scope {scope!r} is not a registry host[:port]")
        if "." not in scope and ":" not in scope and scope != "localhost":
            raise UsageError(f"--scope {scope!r} is not a registry host (for Docker Hub "
                             f"write docker.io/library/{scope})")
        return scope
    if scope.startswith("*."):
        raise UsageError(f"--scope {scope!r}: a wildcard scope is a domain only (*.example.com)")
    try:
        ref = parse_docker_reference(scope, default_tag=None)
    except InvalidReferenceError as e:
        raise UsageError(f"--scope: {e}") from None
    if str(ref) != scope:
        raise UsageError(f"--scope {scope!r}: write the full name {ref} (the policy matches "
                         "fully expanded names)")
    return scope


def _scope(args: argparse.Namespace) -> int:
    from libaci.errors import NotFoundError, UsageError
    from libaci.fsutil import atomic_write
    from libaci.trust import policy as libpolicy
    from libaci.trust.evaluate import read_key_file
    from stage0.trust import policy_path

    if (args.sigstore_key is None) == (args.gpg_key is None):
        raise UsageError("--scope needs exactly one of --sigstore-key FILE and --gpg-key FILE")
    scope = check_scope(args.scope)
    key_file = args.sigstore_key or args.gpg_key
    if "://" in key_file:
        raise UsageError(f"{key_file}: give the key as a file")
    data = _read_source(key_file, None)
    if not data:
        raise UsageError(f"{key_file}: the key file is empty")
    if args.sigstore_key:
        from libaci.trust.cosignkey import key_fingerprint, load_public_keys

        keys = load_public_keys(data, source=key_file)
        fingerprints = [key_fingerprint(k) for k in keys]
        lines = [f"Scope: docker {scope}", f"Key: {key_file}"]
        lines += [f"sigstore public key fingerprint is: {f}" for f in fingerprints]
    else:
        from stage0 import gpg

        infos = gpg.show_keys(data)
        fingerprints = [k.fingerprint for k in infos]
        data = gpg.dearmor(data)
        lines = [f"Scope: docker {scope}", f"Key: {key_file}"]
        for info in infos:
            lines.append(f"GPG key fingerprint is: {info.fingerprint}")
            lines += [f"\t{uid}" for uid in info.uids]
    path = policy_path(args.policy)
    try:
        current = libpolicy.load_policy(path)
    except NotFoundError:
        current = libpolicy.SECURE_DEFAULT  # the built-in default, made explicit
    if not confirm(args, lines):
        common.warn(PROG, "key not trusted")
        return 1
    old = current.transports.get("docker", {}).get(scope, ())

    def contents(req) -> list[bytes]:  # type: ignore[no-untyped-def]
        paths = req.key_paths or ((req.key_path,) if req.key_path else ())
        try:
            return [read_key_file(p) for p in paths]
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read a key of scope {scope} in {path}: {e}") from None

    kept: list = []
    if args.sigstore_key:
        datas: list[bytes] = []
        for req in old:
            if isinstance(req, libpolicy.SigstoreSigned) and req.unsupported() is None:
                datas += contents(req) + list(req.key_datas or ()) + \
                    ([req.key_data] if req.key_data else [])
            elif isinstance(req, libpolicy.SignedBy):
                kept.append(req)
        identity = next((r.signed_identity for r in old
                         if isinstance(r, libpolicy.SigstoreSigned)), None)
        if data not in datas:
            datas.append(data)
        if len(datas) == 1:  # keyData: what skopeo 1.9 (c/image 5.23) reads too
            new = libpolicy.SigstoreSigned(key_data=datas[0], signed_identity=identity)
        else:
            common.warn(PROG, f"scope {scope} now accepts {len(datas)} sigstore keys "
                              "(keyDatas, which skopeo reads from 1.13 on only)")
            new = libpolicy.SigstoreSigned(key_datas=tuple(datas), signed_identity=identity)
    else:
        ring = b""
        for req in old:
            if isinstance(req, libpolicy.SignedBy) and req.key_type == libpolicy.GPG_KEYS:
                from stage0 import gpg

                for blob in [*contents(req), *([req.key_data] if req.key_data else [])]:
                    ring += gpg.dearmor(blob)
            elif isinstance(req, libpolicy.SigstoreSigned):
                kept.append(req)
        identity = next((r.signed_identity for r in old
                         if isinstance(r, libpolicy.SignedBy)), None)
        if data not in ring:
            ring += data
        new = libpolicy.SignedBy(key_data=ring, signed_identity=identity)
    updated = current.with_scope("docker", scope, [*kept, new])
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
    atomic_write(path, libpolicy.dump_policy(updated), mode=0o644)
    common.warn(PROG, f"{path}: docker scope {scope} accepts images signed by "
                      f"{', '.join(fingerprints)}")
    for fingerprint in fingerprints:
        common.emit(fingerprint)
    return 0


def main() -> int:
    return common.main(build(), run)
