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
    from libaci.errors import PodkitError
    from stage0 import podgc
    from stage0.pods import Pods, find_pods, parse_duration, uuid_args

    timeout = parse_duration(args.timeout, "--timeout")
    specs = uuid_args(args.uuids, args.uuid_file)
    if specs is None:
        specs = common.words_or_stdin([])
    store = common.store_of(args)
    pods = Pods(store.path("pods"))
    targets = find_pods(pods, specs)
    status = 0
    for pod in targets:
        try:
            podgc.stop(pods, pod, force=args.force, timeout=timeout)
        except PodkitError as e:
            if len(targets) == 1:
                raise
            common.warn(PROG, str(e))
            status = status or e.exit_status
            continue
        common.emit(pod.uuid)
    return status


def main() -> int:
    return common.main(build(), run)
