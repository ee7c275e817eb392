"""podkit-render: write an image's flattened rootfs to a directory."""

from __future__ import annotations

import argparse

from stage0.cli import common

PROG = "podkit-render"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Write the flattened root filesystem of an image to DIR\n"
                            "(what 'rkt image render' and 'umoci unpack' give).\n"
                            "With --debug, also print file, directory and byte counts.",
                      epilog="example: podkit-fetch oci:img | "
                             "xargs -I{} podkit-render {} /tmp/rootfs")
    p.add_argument("ref", metavar="REF|ID", help="the image")
    p.add_argument("dir", metavar="DIR", help="destination (must not exist, or be empty)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    return p


def run(args: argparse.Namespace) -> int:
    from libaci.imageops import render_image

    store = common.store_of(args)
    store.require()
    rec = store.resolve(args.ref)
    stats = render_image(store, rec, args.dir, overwrite=args.overwrite)
    if not args.debug:
        return 0
    common.warn(PROG, f"{stats.files} files, {stats.dirs} directories, {stats.bytes} bytes")
    return 0


def main() -> int:
    return common.main(build(), run)
