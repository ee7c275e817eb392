"""podkit-commit: make a new image from a pod's changes."""

from __future__ import annotations

import argparse

from stage0.cli import common

PROG = "podkit-commit"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Make a new image from what pod UUID changed in its root filesystem:\n"
                            "one layer over the pod's image (deletions as whiteouts), with the\n"
                            "--change instructions applied to the config.  Prints the image ID;\n"
                            "with NAME, also names it.  The pod may be running or exited.",
                      epilog="example: podkit-list -q | tail -n 1 | podkit-commit - web:2 "
                             "--change 'CMD [\"nginx\", \"-g\", \"daemon off;\"]'")
    p.add_argument("pod", nargs="?", metavar="UUID",
                   help="the pod: a UUID or unique prefix (read from stdin when absent or '-')")
    p.add_argument("name", nargs="?", metavar="NAME", help="name the new image NAME[:TAG]")
    p.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                   help="apply a Dockerfile instruction to the config: CMD, ENTRYPOINT, ENV, "
                        "EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME or WORKDIR "
                        "(repeatable)")
    p.add_argument("-m", "--message", metavar="TEXT",
                   help="the comment of the new history entry")
    p.add_argument("-a", "--author", metavar="NAME", help="the image's author")
    p.add_argument("--timestamp", metavar="SECONDS", type=_seconds,
                   help="creation time and latest file time, in seconds since 1970 "
                        "(default $SOURCE_DATE_EPOCH, else now and the files' own)")
    return p


def _seconds(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return int(text)


def run(args: argparse.Namespace) -> int:
    from libaci.errors import UsageError
    from libaci.imagewrite import source_date_epoch
    from stage0.commit import CommitOptions, commit

    if args.pod in (None, "-"):
        words = common.words_or_stdin([])
        if len(words) != 1:
            raise UsageError(f"one pod UUID expected on stdin, got {len(words)}")
        pod = words[0]
    else:
        pod = args.pod
    epoch = args.timestamp if args.timestamp is not None else source_date_epoch()
    opts = CommitOptions(name=args.name, changes=tuple(args.change), message=args.message,
                         author=args.author, epoch=epoch)
    rec = commit(common.store_of(args), pod, opts)
    common.emit(rec.id)
    return 0


def main() -> int:
    return common.main(build(), run)
