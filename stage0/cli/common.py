"""What every podkit command shares: options, error reporting, exit statuses.

A command builds its parser with :func:`parser`, and :func:`main` runs its
function with the conventions applied: one-line errors ``podkit-VERB: ...``
on stderr, exit status by error class (0 ok, 1 failure, 2 usage, 3
verification, 4 not found, 5 conflict, 70 internal), no traceback unless
``--debug``, and quiet exit when stdout is a closed pipe.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from libaci.errors import PodkitError, UsageError
from stage0.cli import VERSION

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70
EXIT_STATUS_TEXT = ("0 ok, 1 failure, 2 usage error, 3 verification or trust failure, "
                    "4 not found, 5 conflict or busy, 6 authentication failed, 70 internal error")
DEFAULT_STORE = "/var/lib/podkit"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, minus an ``import shutil`` (with bz2, lzma, fnmatch) at the
    first ``add_argument``: the width is found as shutil.get_terminal_size() would."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = _columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def _columns() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def parser(prog: str, description: str, *, store: bool = True,
           epilog: str | None = None) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description=description,
                epilog=(epilog + "\n\n" if epilog else "") + "exit status: " + EXIT_STATUS_TEXT,
                formatter_class=_Formatter)
    p.add_argument("--version", action="version", version=f"{prog} (podkit) {VERSION}")
    p.add_argument("--debug", action="store_true", help="show the full cause of errors")
    if store:
        p.add_argument("--store", metavar="DIR",
                       default=os.environ.get("PODKIT_STORE") or DEFAULT_STORE,
                       help="the store directory (default $PODKIT_STORE or /var/lib/podkit)")
    return p


def store_of(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from libaci.store import Store

    return Store(args.store)


def words_or_stdin(values: list[str]) -> list[str]:
    """Positional values, or whitespace-separated words from stdin when none or '-'."""
    if values and values != ["-"]:
        return values
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("no arguments given and nothing on stdin")
    words = sys.stdin.read().split()
    if not words:
        raise UsageError("no arguments given and nothing on stdin")
    return words


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def emit_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def warn(prog: str, msg: str) -> None:
    print(f"{prog}: {msg}", file=sys.stderr)


def add_pod_arguments(p: argparse.ArgumentParser, *, many: bool = False,
                      what: str = "the pod") -> None:
    """The pod(s) a lifecycle command acts on: UUIDs or prefixes, stdin, or --uuid-file."""
    if many:
        p.add_argument("uuids", nargs="*", metavar="UUID",
                       help="pods: UUIDs or unique prefixes (read from stdin when none or '-')")
    else:
        p.add_argument("uuid", nargs="?", metavar="UUID",
                       help=f"{what}: UUID or unique prefix (read from stdin when none or '-')")
    p.add_argument("--uuid-file", metavar="FILE", help="read the UUID from FILE (as written "
                   "by podkit-run and podkit-prepare)")


def for_each_pod(args: argparse.Namespace, prog: str, act: Callable[[Any, Any], None]) -> int:
    """Run ``act(pods, pod)`` on every pod ``args`` names (add_pod_arguments(many=True)),
    printing the UUID of each one done.  One pod: its error is the command's.  Several:
    each failure is a warning, the others go on, and the status is the first failure's."""
    from libaci.errors import PodkitError
    from stage0.pods import Pods, find_pods, uuid_args

    specs = uuid_args(args.uuids, args.uuid_file)
    if specs is None:
        specs = words_or_stdin([])
    pods = Pods(store_of(args).path("pods"))
    targets = find_pods(pods, specs)
    status = 0
    for pod in targets:
        try:
            act(pods, pod)
        except PodkitError as e:
            if len(targets) == 1:
                raise
            warn(prog, str(e))
            status = status or e.exit_status
            continue
        emit(pod.uuid)
    return status


def add_progress_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=("auto", "tty", "plain", "none"), default="auto",
                   help="progress on stderr: auto (tty on a terminal, else none; default), "
                        "tty (lines redrawn in place), plain (a line per state change), none")
    p.add_argument("-q", "--quiet", dest="progress", action="store_const", const="none",
                   help="no progress (same as --progress=none)")


def progress_sink(args: argparse.Namespace) -> Any:
    """The libaci.progress.Sink that ``--progress`` asks for."""
    mode = args.progress
    if mode == "auto":
        mode = "tty" if sys.stderr.isatty() else "none"
    if mode == "none":
        from libaci.progress import QUIET

        return QUIET
    from stage0.progress import PlainProgress, TerminalProgress

    return TerminalProgress(sys.stderr) if mode == "tty" else PlainProgress(sys.stderr)


def main(p: argparse.ArgumentParser, func: Callable[[argparse.Namespace], int | None],
         argv: Iterable[str] | None = None, *, exit_now: bool = False) -> int:
    """Parse arguments and run ``func`` with podkit's error conventions.

    ``exit_now``: end the process right there (flush, ``os._exit``) instead of
    returning, for commands whose work is all written and closed when ``func``
    returns: the interpreter's finalization (modules, idle pool threads) costs
    5-15 ms that podkit-fetch and podkit-push would otherwise add to every run.
    """
    rc = _run(p, func, argv)
    if exit_now:
        import contextlib

        for f in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                f.flush()
        os._exit(rc)
    return rc


def _run(p: argparse.ArgumentParser, func: Callable[[argparse.Namespace], int | None],
         argv: Iterable[str] | None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = p.parse_args(list(argv) if argv is not None else None)
    prog = p.prog
    try:
        rc = func(args)
        return EXIT_OK if rc is None else rc
    except PodkitError as e:
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"{prog}: {_one_line(str(e))}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as e:
        if args.debug:
            import traceback

            traceback.print_exc()
        where = f" ({e.filename})" if e.filename else ""
        print(f"{prog}: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_FAIL
    except Exception as e:
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"{prog}: internal error: {type(e).__name__}: {_one_line(str(e))} "
              "(run with --debug and report this)", file=sys.stderr)
        return EXIT_INTERNAL


def _one_line(s: str) -> str:
    return " ".join(s.split()) or "error"


def human_size(n: float) -> str:
    """Sizes as docker prints them (SI units, 3 significant digits)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}TB"


def human_ago(seconds: float) -> str:
    """'3 days ago', as docker prints CREATED."""
    s = int(seconds)
    if s < 1:
        return "Less than a second ago"
    for size, unit in ((365 * 86400, "year"), (30 * 86400, "month"), (7 * 86400, "week"),
                       (86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if s >= size:
            n = s // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "Less than a second ago"


INSECURE_OPTIONS = ("image", "tls", "http", "all-fetch", "all")


def add_registry_options(p: argparse.ArgumentParser) -> None:
    """Options of every command that talks to registries (as rkt and skopeo name them)."""
    p.add_argument("--insecure-options", metavar="LIST", default="",
                   help="comma-separated: tls (do not verify certificates), http (allow plain "
                        "HTTP to any host), image (do not verify signatures), all-fetch, all")
    p.add_argument("--cert-dir", metavar="DIR",
                   help="CA certificates (*.crt) and client certificates (*.cert/*.key) for "
                        "the registry (default /etc/containers/certs.d/HOST)")
    p.add_argument("--authfile", metavar="FILE",
                   help="credentials file (default: containers auth.json, then "
                        "~/.docker/config.json)")


def insecure_options(args: argparse.Namespace) -> set[str]:
    """The checks ``--insecure-options`` skips (all-fetch and all expanded)."""
    insecure = {x.strip() for x in args.insecure_options.split(",") if x.strip()}
    unknown = insecure - set(INSECURE_OPTIONS)
    if unknown:
        raise UsageError(f"--insecure-options: unknown {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(INSECURE_OPTIONS)})")
    if insecure & {"all-fetch", "all"}:
        insecure |= {"tls", "http", "image"}
    return insecure


def add_trust_options(p: argparse.ArgumentParser) -> None:
    """Where the verification policy and registries.d are (podkit-verify(1))."""
    p.add_argument("--policy", metavar="FILE",
                   help="the verification policy (default $PODKIT_POLICY, "
                        "~/.config/podkit/policy.json, then /etc/podkit/policy.json)")
    p.add_argument("--registries-dir", metavar="DIR",
                   help="registries.d: where lookaside signatures are (default "
                        "~/.config/containers/registries.d or /etc/containers/registries.d)")


def registry_settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """(TLSOptions, credentials callback) from the registry options."""
    from libaci.registry.client import TLSOptions

    insecure = insecure_options(args)
    tls = TLSOptions(cert_dir=args.cert_dir, insecure_tls="tls" in insecure,
                     allow_http="http" in insecure)
    authfile = args.authfile

    def credentials(host: str, repository: str | None):  # type: ignore[no-untyped-def]
        from libaci.registry import credentials as creds
        from stage0 import credhelper

        files = creds.auth_files_for_read(authfile=authfile) if authfile else None
        return credhelper.resolve(creds.lookup(host, repository, files=files), host)

    return tls, credentials


REMOTE_TRANSPORTS = frozenset({"docker", "aciurl", "appc"})


def fetch_hooks(args: argparse.Namespace, store: Any, *, tls: Any, credentials: Any, prog: str,
                sources: Iterable[str], say: Callable[[str], None] | None = None
                ) -> dict[str, Any]:
    """FetchOptions fields that enforce the verification policy (stage0.trust), or none
    with --insecure-options=image, after a warning on stderr for each remote source
    (and without importing the trust machinery: a fetch then starts ~10 ms sooner)."""
    if "image" in insecure_options(args):
        from libaci.sources import classify

        for source in sources:
            try:
                transport = classify(source)[0]
            except Exception:
                continue
            if transport in REMOTE_TRANSPORTS:
                warn(prog, f"warning: not verifying the signatures of {source} "
                           "(--insecure-options=image)")
        return {}
    from stage0.trust import Enforcer

    enforcer = Enforcer(store, policy=getattr(args, "policy", None),
                        registries=getattr(args, "registries_dir", None), tls=tls,
                        credentials=credentials, say=say)
    return {"verify": enforcer.verify, "verify_aci": enforcer.verify_aci}
