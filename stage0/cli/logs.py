"""podkit-logs: a pod's output, while it runs and after it exited (docker logs)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from stage0.cli import common

PROG = "podkit-logs"
LOG_WAIT = 5.0  # seconds a just-started pod may take to create its log


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Print what a pod's app wrote to its standard output and error, as\n"
                            "'docker logs' does: stdout to stdout, stderr to stderr, from the\n"
                            "log the stage1 keeps in the pod (no journald needed), while the\n"
                            "pod runs and after it exited, until podkit-gc or podkit-rm\n"
                            "removes it.",
                      epilog="examples: podkit-logs --tail 20 6b1d\n"
                             "          podkit-logs -f --uuid-file /run/podkit/web.service.uuid"
                             "\n          podkit-list -q | head -1 | podkit-logs --timestamps")
    common.add_pod_arguments(p)
    p.add_argument("-f", "--follow", action="store_true",
                   help="go on printing what the pod writes until it exited")
    p.add_argument("-n", "--tail", metavar="N", default="all",
                   help="only the last N lines (default all)")
    p.add_argument("-t", "--timestamps", action="store_true",
                   help="put the time each line was written before it (RFC 3339, UTC, ns)")
    p.add_argument("--since", metavar="WHEN",
                   help="only lines written since WHEN: a duration ago (30s, 10m, 1h) or "
                        "an RFC 3339 time (2026-11-28T18:50:00Z)")
    return p


def _tail(text: str) -> int | None:
    from libaci.errors import UsageError

    if text.strip().lower() == "all":
        return None
    if not text.strip().isdigit():
        raise UsageError(f"--tail: {text!r} is not a number of lines (or 'all')")
    return int(text)


def _since(text: str | None) -> int | None:
    from stage0.podlog import parse_time
    from stage0.pods import parse_duration

    if text is None:
        return None
    ns = parse_time(text)
    if ns is not None:
        return ns
    return time.time_ns() - int(parse_duration(text, "--since") * 1e9)


def _no_log(pod) -> str:  # type: ignore[no-untyped-def]
    """Why a pod that ran has no log file."""
    from libaci.errors import PodkitError

    try:
        doc = pod.manifest()
    except PodkitError:
        doc = {}
    interactive = any(a.get("name") == "podkit.io/interactive" and a.get("value") == "true"
                      for a in doc.get("annotations") or () if isinstance(a, dict))
    if interactive:
        return (f"pod {pod.uuid} ran interactively (-t -i): its output went to the terminal "
                "only and was not logged")
    return f"pod {pod.uuid} has no log (its stage1 keeps none)"


def run(args: argparse.Namespace) -> int:
    from libaci.errors import PodkitError, UsageError
    from stage0 import podlog
    from stage0.pods import Pods, uuid_args

    tail = _tail(args.tail)
    since = _since(args.since)
    specs = uuid_args([args.uuid] if args.uuid else [], args.uuid_file)
    if specs is None:
        specs = common.words_or_stdin([])
    if len(specs) != 1:
        raise UsageError(f"give one pod UUID, not {len(specs)}")
    store = common.store_of(args)
    pods = Pods(store.path("pods"))
    pod = pods.find(specs[0])
    names = pod.app_names()
    if not names:
        return 0  # still being created: nothing written yet
    path = podlog.log_path(pod.dir, names[0])

    def running() -> bool:
        now = pods.refresh(pod)
        return now is not None and now.state in ("running", "preparing", "embryo")

    deadline = time.monotonic() + LOG_WAIT
    while True:
        now = pods.refresh(pod) or pod  # gc may have marked it: another directory
        path = podlog.log_path(now.dir, names[0])
        if os.path.exists(path):
            break
        if now.state not in ("running", "preparing", "embryo"):
            if now.exited or now.started() is not None:
                raise PodkitError(_no_log(now))
            return 0  # it never ran (prepared): nothing to show
        if time.monotonic() > deadline:
            raise PodkitError(_no_log(now))
        time.sleep(podlog.POLL)  # just started: the stage1 creates the log at once
    printer = podlog.Printer(sys.stdout.buffer, sys.stderr.buffer, timestamps=args.timestamps)
    try:
        podlog.show(path, printer, tail=tail, since=since, follow=args.follow, running=running)
    except KeyboardInterrupt:
        return 0  # ^C ends -f
    return 0


def main() -> int:
    return common.main(build(), run)
