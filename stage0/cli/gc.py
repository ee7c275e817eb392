"""podkit-gc: delete blobs and extracted layers that no image or pod uses."""

from __future__ import annotations

import argparse

from stage0.cli import common

PROG = "podkit-gc"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Collect garbage in the store: blobs and extracted layers that no\n"
                            "image or pod uses, and staging left by killed processes.\n"
                            "Prints what it removed ('blob DIGEST', 'layer CHAINID').",
                      epilog="example: podkit-rmi old-image && podkit-gc")
    p.add_argument("-n", "--dry-run", action="store_true", help="only print what would go")
    return p


def run(args: argparse.Namespace) -> int:
    from libaci.gc import collect

    store = common.store_of(args)
    result = collect(store, dry_run=args.dry_run)
    for d in result.blobs:
        common.emit(f"blob {d}")
    for d in result.layers:
        common.emit(f"layer {d}")
    verb = "would free" if args.dry_run else "freed"
    common.warn(PROG, f"{len(result.blobs)} blobs, {len(result.layers)} layers; "
                      f"{verb} {common.human_size(result.bytes)} of blobs")
    return 0


def main() -> int:
    return common.main(build(), run)
