"""podkit-push: copy an image from the store to a registry (or a layout, an archive)."""

from __future__ import annotations

import argparse

from stage0.cli import common

PROG = "podkit-push"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Push an image to docker://REGISTRY/REPO[:TAG] (blobs the registry "
                            "has are skipped,\nknown ones mounted, the rest uploaded in chunks), "
                            "or write it to oci:DIR[:REF] or\noci-archive:FILE[:REF]. "
                            "Prints the pushed manifest digest.",
                      epilog="example: podkit-fetch oci:/srv/app:1 | "
                             "podkit-push - docker://registry:5000/app:1")
    p.add_argument("ref", metavar="REF|ID", help="the image ('-' reads it from stdin)")
    p.add_argument("dest", metavar="DEST", help="docker://..., oci:DIR[:REF] or "
                                                "oci-archive:FILE[:REF]")
    common.add_registry_options(p)
    common.add_progress_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    store = common.store_of(args)
    store.require()
    ref = common.words_or_stdin([args.ref])[0]
    rec = store.resolve(ref)
    progress = common.progress_sink(args)
    if not args.dest.startswith("docker://"):
        from libaci.imageops import export_image, parse_destination

        kind, _, _ = parse_destination(args.dest)
        if kind not in ("oci", "oci-archive"):
            from libaci.errors import UsageError

            raise UsageError(f"cannot push to {args.dest!r} (use docker://, oci: or "
                             "oci-archive:; podkit-export writes the other formats)")
        export_image(store, rec, args.dest)
        common.emit(str(rec.descriptor.digest))
        return 0
    from libaci.reference import parse_docker_reference
    from libaci.registry.client import Registry, api_host
    from libaci.registry.push import push_image

    dest = parse_docker_reference(args.dest[len("docker://"):])
    tls, credentials = common.registry_settings(args)
    reg = Registry(api_host(dest.domain), tls=tls, credentials=credentials)
    digest = push_image(store, rec, dest, reg, progress)
    common.emit(str(digest))
    return 0


def main() -> int:
    return common.main(build(), run, exit_now=True)
