"""podkit-inspect: manifest, config and layers of images as JSON."""

from __future__ import annotations

import argparse

from stage0.cli import common

PROG = "podkit-inspect"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Show images as JSON: descriptor, manifest, config, layers.",
                      epilog="example: podkit-fetch oci:img | podkit-inspect | jq .Config")
    p.add_argument("refs", nargs="*", metavar="REF|ID",
                   help="images (read from stdin when none or '-')")
    return p


def run(args: argparse.Namespace) -> int:
    from libaci.catalog import inspect

    refs = common.words_or_stdin(args.refs)
    store = common.store_of(args)
    store.require()
    docs = [inspect(store, store.resolve(r)) for r in refs]
    common.emit_json(docs[0] if len(docs) == 1 else docs)
    return 0


def main() -> int:
    return common.main(build(), run)
