"""podkit-tag: give an image in the store another name."""

from __future__ import annotations

import argparse

from stage0.cli import common

PROG = "podkit-tag"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Name an image NEWREF (the name moves if another image had it). "
                            "Prints the image ID.",
                      epilog="example: podkit-tag busybox registry:5000/tools/busybox:1 && "
                             "podkit-push registry:5000/tools/busybox:1 "
                             "docker://registry:5000/tools/busybox:1")
    p.add_argument("ref", metavar="SRC", help="an image name or ID")
    p.add_argument("names", nargs="+", metavar="NEWREF", help="new names")
    return p


def run(args: argparse.Namespace) -> int:
    from libaci import names as naming
    from libaci.reference import parse_appc_name

    store = common.store_of(args)
    store.require()
    rec = store.resolve(args.ref)
    if rec.is_aci:
        new = []
        for n in args.names:
            app = parse_appc_name(n)
            new.append(naming.appc_store_name(app.name, app.version))
    else:
        from libaci.errors import UsageError
        from libaci.reference import parse_docker_reference

        new = []
        for n in args.names:
            parsed = parse_docker_reference(n)
            if parsed.digest and parsed.digest != str(rec.descriptor.digest):
                raise UsageError(f"{n}: the digest is not the image's {rec.descriptor.digest}")
            new.append(str(parsed))
    store.add_image(rec.descriptor, new)
    common.emit(rec.id)
    return 0


def main() -> int:
    return common.main(build(), run)
