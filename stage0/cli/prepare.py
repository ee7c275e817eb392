"""podkit-prepare: prepare a pod to run later with podkit-run-prepared (rkt prepare)."""

from __future__ import annotations

import argparse

from stage0.cli import common

PROG = "podkit-prepare"


def build() -> argparse.ArgumentParser:
    from stage0.cli.run import add_run_options

    p = common.parser(PROG, "Prepare a pod for IMAGE, as 'rkt prepare' does: the image is fetched\n"
                            "if needed, the pod directory and its manifest are written, and\n"
                            "the pod waits in the 'prepared' state for podkit-run-prepared.\n"
                            "Prints the pod's UUID.",
                      epilog="example: podkit-prepare busybox -- echo hi | "
                             "xargs podkit-run-prepared")
    add_run_options(p, run=False)
    p.set_defaults(progress="auto")
    return p


def run(args: argparse.Namespace) -> int:
    from stage0 import launch
    from stage0.cli.run import prepare_pod, run_options
    from stage0.pods import Pods

    opts = run_options(args)
    store, uuid, _, fd = prepare_pod(args, opts)
    launch.finish_prepare(Pods(store.path("pods")), uuid, fd)  # aborted: gc removes it
    common.emit(uuid)
    return 0


def main() -> int:
    return common.main(build(), run)
