"""podkit-rmi: remove image names, and images with their last name."""

from __future__ import annotations

import argparse

from stage0.cli import common

PROG = "podkit-rmi"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Remove images. A name with other names left is only untagged;\n"
                            "an ID (or the last name) removes the image, then unused blobs\n"
                            "and layers are collected. Prints the IDs of removed images.",
                      epilog="example: podkit-images -q | xargs podkit-rmi")
    p.add_argument("refs", nargs="*", metavar="REF|ID",
                   help="images (read from stdin when none or '-')")
    p.add_argument("-f", "--force", action="store_true",
                   help="remove even if a pod uses the image")
    p.add_argument("--no-prune", action="store_true", help="keep unused blobs and layers")
    return p


def run(args: argparse.Namespace) -> int:
    from libaci.errors import PodkitError
    from libaci.gc import collect, remove_image

    refs = common.words_or_stdin(args.refs)
    store = common.store_of(args)
    store.require()
    status = 0
    deleted = False
    for ref in refs:
        try:
            rec, removed = remove_image(store, ref, force=args.force)
        except PodkitError as e:
            common.warn(PROG, str(e))
            status = status or e.exit_status
            continue
        for n in removed:
            if n != str(rec.descriptor.digest):
                common.warn(PROG, f"untagged: {n}")
        if rec.id not in {r.id for r in store.images()}:
            common.emit(rec.id)
            deleted = True
    if deleted and not args.no_prune:
        from libaci.errors import ConflictError

        try:
            collect(store)
        except ConflictError:
            common.warn(PROG, "store busy; unused blobs stay until podkit-gc")
    return status


def main() -> int:
    return common.main(build(), run)
