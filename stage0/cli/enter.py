"""podkit-enter: run a command inside a running pod (rkt enter)."""

from __future__ import annotations

import argparse
import time

from stage0.cli import common

PROG = "podkit-enter"
PID_WAIT = 2.0  # seconds to wait for a just-started pod's pid file


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Run CMD (default /bin/sh) in a running pod, as 'rkt enter' does:\n"
                            "in the app's namespaces, root, user, environment, capability\n"
                            "bounding set and cgroup. The exit status is CMD's.",
                      epilog="example: podkit-list -q | head -n1 | "
                             "xargs -I{} podkit-enter {} cat /etc/hostname")
    p.add_argument("--app", metavar="NAME", help="the app to enter (default: the pod's only "
                   "app)")
    p.add_argument("--uuid-file", metavar="FILE", help="read the UUID from FILE (as podkit-run "
                   "saves it); then all the arguments are CMD")
    p.add_argument("uuid", nargs="?", metavar="UUID", help="the pod: UUID or unique prefix")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD [ARG...]",
                   help="the command to run (default /bin/sh)")
    return p


def run(args: argparse.Namespace) -> int:
    from libaci.errors import NotFoundError, PodStateError, UsageError
    from stage0 import stage1
    from stage0.pods import Pods, read_uuid_file

    cmd = list(args.cmd)
    if args.uuid_file is not None:
        spec = read_uuid_file(args.uuid_file)
        if args.uuid is not None:
            cmd.insert(0, args.uuid)
    elif args.uuid is None:
        raise UsageError("no pod UUID given")
    else:
        spec = args.uuid
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    cmd = cmd or ["/bin/sh"]
    store = common.store_of(args)
    pods = Pods(store.path("pods"))
    pod = pods.find(spec)
    if pod.state != "running":
        raise PodStateError(f"pod {pod.uuid} is {pod.state}, not running")
    apps = pod.app_names()
    if args.app is not None and args.app not in apps:
        raise NotFoundError(f"pod {pod.uuid} has no app {args.app!r} "
                            f"(it has {', '.join(apps) or 'none'})")
    if args.app is None and len(apps) != 1:
        raise UsageError(f"pod {pod.uuid} has {len(apps)} apps; choose one with --app")
    app = args.app or apps[0]
    ep = stage1.of_pod(pod.dir).entrypoint("enter")
    deadline = time.monotonic() + PID_WAIT
    pid = pod.pid()
    while pid is None:  # rkt polled too: the stage1 writes it right after starting
        now = pods.refresh(pod)
        if now is None or now.state != "running":
            raise PodStateError(f"pod {pod.uuid} is {now.state if now else 'gone'}, "
                                "not running")
        if time.monotonic() >= deadline:
            raise PodStateError(f"pod {pod.uuid} has no PID yet (its stage1 wrote no pid "
                                "or ppid file); try again")
        time.sleep(0.05)
        pid = pod.pid()
    stage1.exec_entrypoint(ep, [f"--pid={pid}", f"--appname={app}", "--", *cmd], pod.dir)


def main() -> int:
    return common.main(build(), run)
