"""podkit-images: list the images in the store, like docker images."""

from __future__ import annotations

import argparse
import time

from stage0.cli import common

PROG = "podkit-images"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "List images in the store (one row per name).",
                      epilog="example: podkit-images -q | xargs podkit-inspect")
    p.add_argument("filter", nargs="?", metavar="REPOSITORY",
                   help="only images whose repository (or full name, or last path "
                        "component) is REPOSITORY")
    p.add_argument("-a", "--all", action="store_true", help="also list unnamed images")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("-q", "--quiet", action="store_true", help="print image IDs only")
    fmt.add_argument("--json", action="store_true",
                     help="print one JSON document (full IDs, all names)")
    p.add_argument("--no-trunc", action="store_true", help="do not shorten image IDs")
    return p


def _parse_time(s: str | None) -> float | None:
    if not s:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def run(args: argparse.Namespace) -> int:
    from libaci import catalog

    store = common.store_of(args)
    records = store.images() if store.exists() else []
    rows = []
    for rec in records:
        if not catalog.is_image(rec):
            continue
        names = list(rec.names) or ([None] if args.all else [])
        for name in names:
            repo, tag = catalog.split_name(name, rec.is_aci) if name else ("<none>", "<none>")
            if args.filter and args.filter not in (repo, name) and \
                    not repo.endswith("/" + args.filter):
                continue
            rows.append((rec, name, repo, tag))
    if args.json:
        seen: dict[str, dict] = {}
        for rec, _, _, _ in rows:
            if rec.id not in seen:
                seen[rec.id] = catalog.summary(store, rec)
        common.emit_json(list(seen.values()))
        return 0
    if args.quiet:
        for rec_id in dict.fromkeys(r[0].id if args.no_trunc else r[0].short_id for r in rows):
            common.emit(rec_id)
        return 0
    now = time.time()
    table = [("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")]
    for rec, _, repo, tag in rows:
        created = _parse_time(catalog.created(store, rec))
        table.append((repo, tag, rec.id if args.no_trunc else rec.short_id,
                      common.human_ago(now - created) if created else "N/A",
                      common.human_size(store.image_size(rec))))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        common.emit("   ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True))
                    + "   " + r[4])
    return 0


def main() -> int:
    return common.main(build(), run)
