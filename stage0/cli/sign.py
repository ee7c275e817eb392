"""podkit-sign: sign an image's manifest for a registry reference, as cosign and skopeo do."""

from __future__ import annotations

import argparse
import os
import re
import time

from stage0.cli import VERSION, common
from stage0.cli.keygen import add_passphrase_option, read_passphrase

PROG = "podkit-sign"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Sign IMAGE's manifest digest for the reference DEST and print the "
                            "digest.\nWith --key: a sigstore (cosign) signature attached in "
                            "the registry (tag\nsha256-<hex>.sig); with --gpg-key: an OpenPGP "
                            "simple signature in a lookaside\ndirectory, as skopeo copy "
                            "(sign-by) writes it.",
                      epilog="example: podkit-push app:1 docker://reg.example.com/team/app:1 |\n"
                             "           podkit-sign - docker://reg.example.com/team/app:1 "
                             "--key cosign.key")
    p.add_argument("image", metavar="IMAGE",
                   help="a stored image (name, ID or ID prefix), a manifest digest "
                        "(sha256:...), or - for the first word on stdin")
    p.add_argument("dest", metavar="DEST",
                   help="docker://REGISTRY/REPO[:TAG]: the identity the signature claims")
    key = p.add_mutually_exclusive_group(required=True)
    key.add_argument("--key", metavar="FILE", help="sign with this cosign private key "
                     "(podkit-keygen) and push the signature to the registry")
    key.add_argument("--gpg-key", metavar="FINGERPRINT",
                     help="sign with this OpenPGP key (gpg, GNUPGHOME honoured) into a "
                          "lookaside directory")
    add_passphrase_option(p)
    p.add_argument("--lookaside", metavar="DIR",
                   help="with --gpg-key: the lookaside directory (default: registries.d's "
                        "lookaside for DEST, else /var/lib/containers/sigstore as root)")
    p.add_argument("--registries-dir", metavar="DIR",
                   help="registries.d (default ~/.config/containers/registries.d or "
                        "/etc/containers/registries.d)")
    common.add_registry_options(p)
    return p


def _digest_of(args: argparse.Namespace, store):  # type: ignore[no-untyped-def]
    """(manifest digest, the stored image or None) for IMAGE."""
    from libaci.digest import Digest
    from libaci.errors import NotFoundError

    word = common.words_or_stdin([args.image])[0]
    if store.exists():
        try:
            rec = store.resolve(word)
        except NotFoundError:
            rec = None
        if rec is not None:
            if rec.is_aci:
                from libaci.errors import UsageError

                raise UsageError(f"{word} is an appc image: sign its .aci file with "
                                 "gpg --armor --detach-sign")
            return rec.descriptor.digest, rec
    if _DIGEST.match(word):
        return Digest.parse(word), None
    raise NotFoundError(f"image {word!r} is not in the store (give a stored image or a "
                        "manifest digest sha256:...)")


def run(args: argparse.Namespace) -> int:
    from libaci.errors import UsageError
    from libaci.reference import parse_docker_reference

    if not args.dest.startswith("docker://"):
        raise UsageError(f"DEST {args.dest!r} must be docker://REGISTRY/REPO[:TAG]")
    ref = parse_docker_reference(args.dest[len("docker://"):])
    if args.lookaside and not args.gpg_key:
        raise UsageError("--lookaside goes with --gpg-key")
    if args.passphrase_file and not args.key:
        raise UsageError("--passphrase-file goes with --key")
    store = common.store_of(args)
    digest, rec = _digest_of(args, store)
    if ref.digest is not None and ref.digest != str(digest):
        raise UsageError(f"DEST names the digest {ref.digest}, but IMAGE is {digest}")
    identity = str(ref) if ref.tag is not None or ref.digest is None else \
        f"{ref.name}@{ref.digest}"
    creator, now = f"podkit {VERSION}", int(time.time())
    if args.key:
        _sigstore(args, ref, identity, digest, creator, now, store, rec)
    else:
        blob = _gpg(args, ref, identity, digest, creator, now)
        if rec is not None:  # the stored image carries it too, for podkit-verify
            from libaci.sources import signatures
            from libaci.trust.signature import UntrustedSignature

            signatures.keep(store, digest, [UntrustedSignature.simple(blob)])
    common.emit(str(digest))
    return 0


def _sigstore(args, ref, identity, digest, creator, now, store, rec) -> None:  # type: ignore[no-untyped-def]
    from libaci.errors import NotFoundError
    from libaci.registry.client import Registry, api_host
    from libaci.sources import signatures
    from libaci.trust.cosignkey import load_private_key
    from libaci.trust.sigstore import make_signature

    try:
        with open(args.key, "rb") as f:
            pem = f.read(1 << 20)
    except FileNotFoundError:
        raise NotFoundError(f"key file {args.key} does not exist") from None
    key = load_private_key(pem, read_passphrase(args, confirm=False, what=args.key),
                           source=args.key)
    tls, credentials = common.registry_settings(args)
    reg = Registry(api_host(ref.domain), tls=tls, credentials=credentials)
    try:
        reg.get_manifest(ref.path, str(digest), method="HEAD")
    except NotFoundError:
        shown = rec.id if rec is not None else str(digest)
        raise NotFoundError(f"{ref.name} has no manifest {digest} (push it first: podkit-push "
                            f"{shown} docker://{ref})") from None
    signature = make_signature(key, identity, digest, creator=creator, timestamp=now)
    tag, pushed, added = signatures.push_sigstore(reg, ref.path, digest, [signature])
    common.warn(PROG, f"signature for {identity} pushed to {ref.name}:{tag} ({pushed})"
                if added else f"{ref.name}:{tag} already has this signature")
    if rec is not None:  # the stored image carries it too, for podkit-verify
        signatures.keep(store, digest, [signature])


def _gpg(args, ref, identity, digest, creator, now) -> bytes:  # type: ignore[no-untyped-def]
    from libaci.trust.lookaside import default_lookaside, write_signature
    from libaci.trust.payload import ATOMIC_SIGNATURE_TYPE, build_payload
    from stage0 import gpg
    from stage0.trust import Enforcer

    if args.lookaside:
        base = args.lookaside if "://" in args.lookaside else \
            "file://" + os.path.abspath(args.lookaside)
    else:
        regd = Enforcer(common.store_of(args), registries=args.registries_dir).registries_d
        base = (regd.lookaside_for(ref, write=True)
                or default_lookaside(os.geteuid(), os.environ.get("HOME") or "/"))
    payload = build_payload(identity, digest, signature_type=ATOMIC_SIGNATURE_TYPE,
                            creator=creator, timestamp=now)
    blob = gpg.sign(payload, args.gpg_key)
    path = write_signature(base, ref, digest, blob)
    common.warn(PROG, f"signature for {identity} written to {path}")
    return blob


def main() -> int:
    return common.main(build(), run)
