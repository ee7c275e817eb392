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
    from libaci.errors import PodkitError
    from stage0 import podgc
    from stage0.pods import Pods, find_pods, uuid_args

    specs = uuid_args(args.uuids, args.uuid_file)
    if specs is None:
        specs = common.words_or_stdin([])
    store = common.store_of(args)
    pods = Pods(store.path("pods"))
    targets = find_pods(pods, specs)
    status = 0
    for pod in targets:
        try:
            podgc.remove(pods, pod, debug=args.debug)
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
