"""podkit-verify: check stored images against the verification policy; print those that pass."""

from __future__ import annotations

import argparse
import sys

from stage0.cli import common

PROG = "podkit-verify"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Check each image against the verification policy with the "
                            "signatures kept\nin the store (and local lookaside files); print "
                            "the IDs of those that pass,\none per line, and one line on stderr "
                            "for each that does not.",
                      epilog="example: podkit-fetch docker://reg.example.com/app:1 | "
                             "podkit-verify | xargs -r podkit-run")
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="images (name, ID or ID prefix); read from stdin when none or '-'")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="say on stderr why each image passes (which key, which scope)")
    common.add_trust_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from libaci.errors import PodkitError
    from stage0.trust import Enforcer

    words = common.words_or_stdin(args.images)
    store = common.store_of(args)
    store.require()
    enforcer = Enforcer(store, policy=args.policy, registries=args.registries_dir)
    enforcer.policy  # noqa: B018 - a missing or malformed policy fails the whole command
    status = 0
    for word in words:
        try:
            rec = store.resolve(word)
            why = enforcer.check_stored(rec)
        except PodkitError as e:
            if args.debug:
                import traceback

                traceback.print_exc()
            print(f"{PROG}: {word}: {' '.join(str(e).split())}", file=sys.stderr)
            if status == 0 or e.exit_status == 3:
                status = e.exit_status
            continue
        if args.verbose:
            common.warn(PROG, f"{rec.id}: {why}")
        common.emit(rec.id)
    return status


def main() -> int:
    return common.main(build(), run)
