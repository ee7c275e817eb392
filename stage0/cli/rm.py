"""podkit-rm: remove pods that are not running (rkt rm)."""

from __future__ import annotations

import argparse

from stage0.cli import common

PROG = "podkit-rm"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Remove pods at once, as 'rkt rm' does: exited, prepared or aborted\n"
                            "pods, after the stage1 released what it made outside the pod\n"
                            "(cgroups). Prints the UUID of each pod removed. A running pod\n"
                            "must be stopped first (podkit-stop).",
                      epilog="example: podkit-list -a -q | xargs -r podkit-rm")
    common.add_pod_arguments(p, many=True)
    return p


def run(args: argparse.Namespace) -> int:
    from stage0 import podgc

    return common.for_each_pod(args, PROG,
                               lambda pods, pod: podgc.remove(pods, pod, debug=args.debug))


def main() -> int:
    return common.main(build(), run)
