"""podkit-list: list pods, like docker ps (and rkt list)."""

from __future__ import annotations

import argparse
import time

from stage0.cli import common

PROG = "podkit-list"
COMMAND_WIDTH = 30


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "List pods, as 'docker ps' does: the running ones, or all with -a\n"
                            "(newest first). STATUS is rkt's state: running, exited (CODE),\n"
                            "prepared, exited garbage, ...",
                      epilog="example: podkit-list -a -q | xargs -r podkit-status")
    p.add_argument("-a", "--all", action="store_true",
                   help="list pods in every state, not only running ones")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("-q", "--quiet", action="store_true", help="print full pod UUIDs only")
    fmt.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--no-trunc", action="store_true",
                   help="do not shorten UUIDs, image IDs and commands")
    return p


def short_image(image: dict, no_trunc: bool) -> str:
    name, image_id = image.get("name"), image.get("id")
    if name:
        return str(name)
    if not image_id:
        return "-"
    image_id = str(image_id)
    if no_trunc:
        return image_id
    if image_id.startswith("sha512-"):
        return image_id[:19]
    return image_id.split(":", 1)[-1][:12]


def status_text(info: dict) -> str:
    if info["state"] == "exited" and info["exitCode"] is not None:
        return f"exited ({info['exitCode']})"
    return str(info["state"])


def run(args: argparse.Namespace) -> int:
    from stage0.pods import Pod, Pods

    store = common.store_of(args)
    seen: dict[str, Pod] = {}
    for pod in Pods(store.path("pods")).all():
        if args.all or pod.state == "running":
            seen.setdefault(pod.uuid, pod)  # a pod moving on may show up twice
    infos = [p.info() for p in seen.values()]
    infos.sort(key=lambda i: (i["created"] or "", i["uuid"]), reverse=True)
    if args.json:
        common.emit_json(infos)
        return 0
    if args.quiet:
        for info in infos:
            common.emit(info["uuid"])
        return 0
    now = time.time()
    table = [("UUID", "IMAGE", "COMMAND", "CREATED", "STATUS")]
    for info in infos:
        command = info["command"] or ""
        if not args.no_trunc and len(command) > COMMAND_WIDTH:
            command = command[:COMMAND_WIDTH - 1] + "\u2026"
        created = seen[info["uuid"]].created()
        table.append((info["uuid"] if args.no_trunc else info["uuid"][:8],
                      short_image(info["image"], args.no_trunc), command,
                      common.human_ago(now - created) if created else "N/A",
                      status_text(info)))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        common.emit("   ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True))
                    + "   " + r[4])
    return 0


def main() -> int:
    return common.main(build(), run)
