"""podkit-run-prepared: run a pod that podkit-prepare prepared (rkt run-prepared)."""

from __future__ import annotations

import argparse
import json
import os

from stage0.cli import common

PROG = "podkit-run-prepared"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Run a prepared pod, as 'rkt run-prepared' does: this process\n"
                            "becomes the pod's stage1, and the app's exit status is this\n"
                            "command's (128+N after signal N).",
                      epilog="example: podkit-prepare busybox -- true | podkit-run-prepared")
    common.add_pod_arguments(p, what="the prepared pod")
    p.add_argument("--net", choices=("host", "none"), default=None,
                   help="host (the caller's network) or none (loopback only); default: "
                        "what the pod was prepared with (host)")
    p.add_argument("-i", "--interactive", action="store_true",
                   help="give the app the caller's terminal (-t -i, as docker run)")
    p.add_argument("-t", "--tty", action="store_true", help="same as --interactive")
    return p


def override(pod_dir: str, *, net: str | None, interactive: bool) -> None:
    """Rewrite the pod manifest's podkit.io/net and podkit.io/interactive (atomically)."""
    from libaci.fsutil import atomic_write
    from stage0.podspec import ANN

    if net is None and not interactive:
        return
    path = os.path.join(pod_dir, "pod")
    with open(path, "rb") as f:
        doc = json.load(f)
    annotations = [a for a in doc.get("annotations") or ()
                   if not (net is not None and a.get("name") == ANN + "net")
                   and not (interactive and a.get("name") == ANN + "interactive")]
    if net is not None:
        annotations.append({"name": ANN + "net", "value": net})
    if interactive:
        annotations.append({"name": ANN + "interactive", "value": "true"})
        for app in doc.get("apps") or ():  # as podkit-run -i does: a TERM for the app
            env = (app.get("app") or {}).get("environment")
            if isinstance(env, list) and not any(e.get("name") == "TERM" for e in env):
                env.append({"name": "TERM", "value": os.environ.get("TERM") or "xterm"})
    doc["annotations"] = annotations
    atomic_write(path, json.dumps(doc).encode())


def run(args: argparse.Namespace) -> int:
    from libaci.errors import UsageError
    from stage0 import launch
    from stage0.pods import Pods, uuid_args

    specs = uuid_args([args.uuid] if args.uuid else [], args.uuid_file)
    if specs is None:
        specs = common.words_or_stdin([])
    if len(specs) != 1:
        raise UsageError(f"give one pod UUID, not {len(specs)}")
    store = common.store_of(args)
    pods = Pods(store.path("pods"))
    pod = pods.find(specs[0])
    pod_dir, fd = launch.claim_prepared(pods, pod.uuid)
    override(pod_dir, net=args.net, interactive=args.interactive or args.tty)
    launch.exec_run(pod_dir, pod.uuid, fd, debug=args.debug)  # does not return


def main() -> int:
    return common.main(build(), run)
