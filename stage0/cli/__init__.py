"""The podkit-* commands: thin argument parsing around one library call each.

``podkit VERB ARGS`` finds ``podkit-VERB`` next to itself or on PATH and execs
it, as git does, so third-party ``podkit-*`` tools are commands too.  This
module stays tiny: it is imported by every command, including podkit-run.
"""

from __future__ import annotations

import os
import sys

VERSION = "0.1.0"


def _candidates() -> list[str]:
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    return [here, *os.environ.get("PATH", os.defpath).split(os.pathsep)]


def _find(verb: str) -> str | None:
    for d in _candidates():
        p = os.path.join(d, f"podkit-{verb}")
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _commands() -> list[str]:
    seen: set[str] = set()
    for d in _candidates():
        try:
            for n in os.listdir(d):
                if n.startswith("podkit-") and os.access(os.path.join(d, n), os.X_OK):
                    seen.add(n[7:])
        except OSError:
            continue
    return sorted(seen)


def dispatch(argv: list[str] | None = None) -> int:
    """``podkit VERB ...`` -> exec ``podkit-VERB ...``."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        out = sys.stdout if args else sys.stderr
        print("usage: podkit VERB [ARGS...]\n"
              "       podkit --version\n\n"
              "Runs podkit-VERB with ARGS (found next to podkit or on PATH), as git does.\n"
              "Options such as --store go after the verb; see podkit-VERB --help.\n\n"
              "commands: " + " ".join(_commands()), file=out)
        return 0 if args else 2
    if args[0] == "--version":
        print(f"podkit {VERSION}")
        return 0
    verb = args[0]
    exe = _find(verb) if "/" not in verb else None
    if exe is None:
        print(f"podkit: '{verb}' is not a podkit command (see 'podkit --help')", file=sys.stderr)
        return 2
    os.execv(exe, [f"podkit-{verb}", *args[1:]])
    return 70  # not reached


def run_tool(name: str) -> int:
    """Entry for the bin/ shims: run podkit-VERB from a checkout."""
    import importlib

    if name == "podkit":
        return dispatch()
    sys.argv[0] = name
    verb = name.removeprefix("podkit-").replace("-", "_")
    try:
        mod = importlib.import_module(f"stage0.cli.{verb}")
    except ModuleNotFoundError:
        print(f"{name}: no such podkit command", file=sys.stderr)
        return 2
    return int(mod.main())
