"""podkit-gc: remove exited pods, then blobs and extracted layers that nothing uses."""

from __future__ import annotations

import argparse

from stage0.cli import common

PROG = "podkit-gc"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Collect garbage in the store, as 'rkt gc' and 'rkt image gc' do:\n"
                            "first pods (exited ones are marked, and removed once marked for\n"
                            "longer than --grace-period; aborted and expired prepared pods\n"
                            "are removed), then blobs and extracted layers that no image or\n"
                            "remaining pod uses, and staging left by killed processes.\n"
                            "Prints what it removed ('pod UUID', 'blob DIGEST', 'layer "
                            "CHAINID').",
                      epilog="examples: podkit-rmi old-image && podkit-gc\n"
                             "          podkit-gc --grace-period=0 | grep -c '^pod '")
    p.add_argument("-n", "--dry-run", action="store_true", help="only print what would go")
    p.add_argument("--grace-period", metavar="DURATION", default="30m",
                   help="remove exited pods marked at least this long ago (default 30m; "
                        "0, 30s, 10m, 1h)")
    p.add_argument("--expire-prepared", metavar="DURATION", default="24h",
                   help="remove prepared pods older than this (default 24h)")
    p.add_argument("--mark-only", action="store_true",
                   help="only mark exited pods; remove nothing, collect no images")
    return p


def run(args: argparse.Namespace) -> int:
    from libaci.gc import collect
    from stage0 import podgc
    from stage0.pods import Pods, parse_duration

    grace = parse_duration(args.grace_period, "--grace-period")
    expire = parse_duration(args.expire_prepared, "--expire-prepared")
    store = common.store_of(args)
    pods = podgc.collect(Pods(store.path("pods")), grace_period=grace,
                         expire_prepared=expire, mark_only=args.mark_only,
                         dry_run=args.dry_run, debug=args.debug,
                         warn=lambda msg: common.warn(PROG, msg))
    if args.mark_only:
        verb = "would mark" if args.dry_run else "marked"
        common.warn(PROG, f"{verb} {len(pods.marked)} exited pods")
        return 0
    for uuid in pods.removed:
        common.emit(f"pod {uuid}")
    result = collect(store, dry_run=args.dry_run)
    for d in result.blobs:
        common.emit(f"blob {d}")
    for d in result.layers:
        common.emit(f"layer {d}")
    verb = "would free" if args.dry_run else "freed"
    common.warn(PROG, f"{len(pods.removed)} pods, {len(result.blobs)} blobs, "
                      f"{len(result.layers)} layers; {verb} "
                      f"{common.human_size(result.bytes)} of blobs")
    return 0  # pods kept by a failing stage1 gc were warned about; the next gc retries


def main() -> int:
    return common.main(build(), run)
