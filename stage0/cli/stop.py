"""podkit-stop: stop running pods (rkt stop)."""

from __future__ import annotations

import argparse

from stage0.cli import common

PROG = "podkit-stop"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Stop running pods, as 'rkt stop' does: the stage1 sends the pod's\n"
                            "stop signal, and after --timeout seconds kills the pod. Waits\n"
                            "until each pod exited and prints its UUID. A pod that already\n"
                            "exited is fine.",
                      epilog="example: podkit-list -q | xargs -r podkit-stop")
    common.add_pod_arguments(p, many=True)
    p.add_argument("--force", action="store_true", help="kill the pods at once")
    p.add_argument("--timeout", metavar="SECONDS", default="10",
                   help="how long to wait before killing a pod (default 10; 30s, 2m, ...)")
    return p


def run(args: argparse.Namespace) -> int:
    from stage0 import podgc
    from stage0.pods import parse_duration

    timeout = parse_duration(args.timeout, "--timeout")
    return common.for_each_pod(
        args, PROG, lambda pods, pod: podgc.stop(pods, pod, force=args.force, timeout=timeout))


def main() -> int:
    return common.main(build(), run)
