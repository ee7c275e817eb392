"""podkit-unit: print systemd units that run an image with podkit-run."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys

from stage0.cli import common
from stage0.cli.run import add_run_options

PROG = "podkit-unit"
NOT_IN_A_UNIT = ("interactive", "tty", "uuid_file_save")  # podkit-run options refused here


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Print a systemd service unit (and a socket unit with --socket) that "
                            "runs IMAGE\nwith podkit-run and these podkit-run options: "
                            "Type=notify, KillMode=mixed\n(SIGTERM to podkit-run, which gives "
                            "the pod its stop signal), the pod removed\nby ExecStopPost. Each "
                            "unit follows a '# ---- NAME ----' line; --output-dir\nwrites the "
                            "files instead. systemd-analyze verify accepts them.",
                      epilog="examples: podkit-unit --socket 8080 --ready=app web:1\n"
                             "          podkit-unit --output-dir /etc/systemd/system busybox "
                             "-- httpd -f\n"
                             "          podkit-unit --template --unit worker busybox -- "
                             "sleep 1d | tail -n +2 >worker@.service")
    add_run_options(p)
    for action in p._actions:
        if action.dest in NOT_IN_A_UNIT:
            action.help = argparse.SUPPRESS  # accepted, to be refused with a reason
    g = p.add_argument_group("unit options")
    g.add_argument("--unit", metavar="NAME", help="the unit's name, without .service "
                   "(default podkit-APP: the --name, else the image's repository)")
    g.add_argument("--description", metavar="TEXT", help="Description= of the unit")
    g.add_argument("--socket", action="append", default=[], metavar="ADDRESS",
                   help="also print NAME.socket with ListenStream=ADDRESS (repeatable; a port, "
                        "IP:PORT or a socket path), passed to the app as LISTEN_FDS")
    g.add_argument("--template", action="store_true",
                   help="a template NAME@.service for instances NAME@I: hostname NAME-I "
                        "(unless --hostname), %%i and %%I kept in option values")
    g.add_argument("--restart", choices=("no", "on-success", "on-failure", "on-abnormal",
                                         "on-watchdog", "on-abort", "always"),
                   help="Restart= of the service (default: systemd's, no)")
    g.add_argument("--stop-timeout", metavar="SPAN", help="TimeoutStopSec=: how long the "
                   "app may take to stop before systemd kills the pod (90, 30s, 2min; default "
                   "systemd's, 90s)")
    g.add_argument("--keep-pod", action="store_true",
                   help="no ExecStopPost=podkit-rm: leave exited pods (and their logs) to "
                        "podkit-gc")
    g.add_argument("--podkit-run", metavar="PATH", help="the podkit-run of ExecStart (default: "
                   "the one next to this command, else on PATH); podkit-rm is taken from the "
                   "same directory")
    g.add_argument("--output-dir", metavar="DIR", help="write the unit files to DIR "
                   "(/etc/systemd/system, say) and print their paths")
    return p


def run_option_dests() -> list[str]:
    """The dests of podkit-run's options, in the order podkit-run declares them."""
    p = argparse.ArgumentParser(add_help=False)
    add_run_options(p)
    return [a.dest for a in p._actions if a.option_strings]


def run_argv(p: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """podkit-run's arguments for the options given (canonical long forms)."""
    from libaci.errors import UsageError

    by_dest = {a.dest: a for a in p._actions if a.option_strings}
    out: list[str] = []
    for dest in run_option_dests():
        action = by_dest[dest]
        value = getattr(args, dest)
        if value == action.default or value is None:
            continue
        opt = next(o for o in action.option_strings if o.startswith("--"))
        if dest in NOT_IN_A_UNIT:
            raise UsageError(f"{opt} is not for a service: "
                             + ("it has no terminal" if dest != "uuid_file_save"
                                else f"the unit saves the UUID in {shlex.quote('%t/podkit')}"))
        if isinstance(action, argparse._StoreTrueAction):
            out.append(opt)
        elif isinstance(action, argparse._AppendAction):
            out += [f"{opt}={v}" for v in value]
        else:
            out.append(f"{opt}={value}")
    return out


def _podkit_run(given: str | None) -> str:
    from libaci.errors import NotFoundError, UsageError

    if given:
        if not os.path.isabs(given):
            raise UsageError(f"--podkit-run {given}: give an absolute path")
        return given
    here = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "podkit-run")
    if os.path.isabs(sys.argv[0]) and os.access(here, os.X_OK):
        return here
    found = shutil.which("podkit-run")
    if found:
        return os.path.abspath(found)
    raise NotFoundError("podkit-run is not on PATH (give its path with --podkit-run)")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from libaci.errors import UsageError
    from libaci.fsutil import atomic_write
    from stage0 import unit

    if args.pids_limit is not None and args.pids_limit < 1:
        raise UsageError("--pids-limit must be at least 1")
    opts = run_argv(parser, args)
    rest = list(args.args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    name = unit.check_name(args.unit) if args.unit else unit.default_name(args.image, args.name)
    if args.template and args.hostname is None:
        opts.append(f"--hostname={name.removeprefix('podkit-')}-%i")
    for address in args.socket:
        if not address.strip() or any(c.isspace() for c in address):
            raise UsageError(f"--socket {address!r}: not a socket address (PORT, IP:PORT, "
                             "/PATH)")
    stop_timeout = None
    if args.stop_timeout is not None:
        stop_timeout = unit.check_timespan(args.stop_timeout, "--stop-timeout")
    podkit_run = _podkit_run(args.podkit_run)
    store = args.store if os.path.abspath(args.store) != common.DEFAULT_STORE else None
    spec = unit.UnitSpec(
        name=name, run_args=(*opts, args.image, *(["--", *rest] if rest else [])),
        podkit_run=podkit_run,
        podkit_rm=os.path.join(os.path.dirname(podkit_run), "podkit-rm"),
        image=args.image, store=os.path.abspath(store) if store else None,
        description=args.description, sockets=tuple(args.socket), template=args.template,
        restart=args.restart, stop_timeout=stop_timeout, keep_pod=args.keep_pod,
        command_line=shlex.join([PROG, *sys.argv[1:]]))
    files = unit.render(spec)
    if args.output_dir is None:
        sys.stdout.write(unit.multi_file(files))
        sys.stdout.flush()
        return 0
    if not os.path.isdir(args.output_dir):
        from libaci.errors import NotFoundError

        raise NotFoundError(f"--output-dir {args.output_dir}: no such directory")
    for fname, text in files:
        path = os.path.join(args.output_dir, fname)
        atomic_write(path, text.encode())
        common.emit(path)
    return 0


def main() -> int:
    p = build()
    return common.main(p, lambda args: run(args, p))
