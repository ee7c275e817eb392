"""podkit-status: a pod's state as rkt status prints it (key=value lines)."""

from __future__ import annotations

import argparse
import math
import sys
import time

from stage0.cli import common

PROG = "podkit-status"
POLL = 0.05


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Print a pod's status as key=value lines, as 'rkt status' does:\n"
                            "state, created, started, pid, exited, app-NAME=CODE, ready.\n"
                            "--wait and --wait-ready take their SECONDS after '=' only.",
                      epilog="example: podkit-prepare busybox | podkit-status")
    common.add_pod_arguments(p)
    p.add_argument("--wait", nargs="?", const="inf", default=None, metavar="SECONDS",
                   help="first wait until the pod exited (at most SECONDS; 30s, 5m, ...)")
    p.add_argument("--wait-ready", nargs="?", const="inf", default=None, metavar="SECONDS",
                   help="first wait until the pod is ready or exited (at most SECONDS)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    return p


def _argv(argv: list[str]) -> list[str]:
    """``--wait`` and ``--wait-ready`` take a value only as ``--wait=N`` (as rkt's do), so
    that ``--wait UUID`` waits for UUID."""
    out = []
    for i, a in enumerate(argv):
        if a == "--":
            return out + argv[i:]
        out.append(f"{a}=inf" if a in ("--wait", "--wait-ready") else a)
    return out


def _timeout(value: str | None, what: str) -> float | None:
    from stage0.pods import parse_duration

    if value is None or value == "inf":
        return None
    return parse_duration(value, what)


def wait(pods, pod, timeout: float | None, *, ready: bool):  # type: ignore[no-untyped-def]
    """Until the pod exited (or, with ``ready``, is ready); the pod as it is then."""
    from libaci.errors import NotFoundError, PodkitError

    deadline = math.inf if timeout is None else time.monotonic() + timeout
    while True:
        now = pods.refresh(pod)
        if now is None:
            raise NotFoundError(f"pod {pod.uuid} was removed while waiting for it")
        pod = now
        if pod.exited or pod.where == "garbage" or (ready and pod.is_ready()):
            return pod
        left = deadline - time.monotonic()
        if left <= 0:
            what = "ready" if ready else "exited"
            raise PodkitError(f"pod {pod.uuid} is {pod.state}, not {what}, after "
                              f"{timeout:g} seconds")
        if pod.state == "running" and not ready:
            pods.wait_exit(pod, None if left == math.inf else left)
        else:
            time.sleep(min(POLL, left))


def lines(pod) -> list[str]:  # type: ignore[no-untyped-def]
    info = pod.info()
    out = [f"state={info['state']}"]
    for key in ("created", "started"):
        if info[key]:
            out.append(f"{key}={info[key]}")
    if info["pid"] is not None:
        out.append(f"pid={info['pid']}")
    out.append(f"exited={'true' if pod.exited else 'false'}")
    if pod.exited:
        for name in pod.app_names():
            code = pod.exit_status(name)
            if code is not None:
                out.append(f"app-{name}={code}")
    out.append(f"ready={'true' if pod.is_ready() else 'false'}")
    return out


def run(args: argparse.Namespace) -> int:
    from libaci.errors import UsageError
    from stage0.pods import Pods, uuid_args

    wait_exit = _timeout(args.wait, "--wait")
    wait_ready = _timeout(args.wait_ready, "--wait-ready")
    specs = uuid_args([args.uuid] if args.uuid else [], args.uuid_file)
    if specs is None:
        specs = common.words_or_stdin([])
    if len(specs) != 1:
        raise UsageError(f"give one pod UUID, not {len(specs)}")
    store = common.store_of(args)
    pods = Pods(store.path("pods"))
    pod = pods.find(specs[0])
    if args.wait_ready is not None:
        pod = wait(pods, pod, wait_ready, ready=True)
    if args.wait is not None:
        pod = wait(pods, pod, wait_exit, ready=False)
    if args.json:
        info = pod.info()
        info["exitCodes"] = {n: pod.exit_status(n) for n in pod.app_names()} \
            if pod.exited else {}
        info["ready"] = pod.is_ready()
        common.emit_json(info)
        return 0
    for line in lines(pod):
        common.emit(line)
    return 0


def main() -> int:
    return common.main(build(), run, _argv(sys.argv[1:]))
