"""podkit-export: write an image from the store to an archive or layout."""

from __future__ import annotations

import argparse

from stage0.cli import common

PROG = "podkit-export"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Export an image to oci-archive:FILE[:REF], "
                            "docker-archive:FILE[:REF],\noci:DIR[:REF] (added to the layout) "
                            "or FILE.aci (uncompressed); prints the image ID.",
                      epilog="example: podkit-export busybox oci-archive:/tmp/bb.tar && "
                             "skopeo inspect oci-archive:/tmp/bb.tar")
    p.add_argument("ref", metavar="REF|ID", help="the image")
    p.add_argument("dest", metavar="DEST", help="where to write it")
    p.add_argument("--overwrite", action="store_true",
                   help="replace DEST if it exists (oci:DIR is always added to)")
    return p


def run(args: argparse.Namespace) -> int:
    from libaci.imageops import export_image

    store = common.store_of(args)
    store.require()
    rec = store.resolve(args.ref)
    export_image(store, rec, args.dest, overwrite=args.overwrite)
    common.emit(rec.id)
    return 0


def main() -> int:
    return common.main(build(), run)
