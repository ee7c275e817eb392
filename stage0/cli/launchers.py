"""Rewrite podkit's console scripts as launchers that start without ``site``.

pip writes each ``podkit-VERB`` script as ``#!python`` + ``from MODULE import
main``.  Starting that interpreter runs ``site``, which reads every ``.pth``
file of every site directory (an editable install adds a path finder that
imports pathlib and importlib.util; a distribution may add more) before the
first line of podkit runs: ~18-25 ms per command on a warm cache, more on a
cold one, for paths that do not change between runs.

``python3 -m stage0.cli.launchers BINDIR`` (install.sh runs it after pip)
rewrites those scripts with ``#!python -S`` and the path ``site`` would have
added, computed now, appended to ``sys.path``: the same modules are found in
the same order (``PYTHONPATH`` still comes first), without the start-up cost.
A re-run of pip simply writes the plain scripts again.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

_MAIN = re.compile(r"^from ([\w.]+) import (\w+)$", re.M)
MARK = "# podkit launcher"


def site_paths(python: str) -> list[str]:
    """What ``site`` adds to ``sys.path`` for ``python`` (in order), and the
    directory holding podkit's packages first (an editable install maps them
    with a finder instead of a path)."""
    def path(*flags: str) -> list[str]:
        code = "import sys, json; print(json.dumps(sys.path))"
        out = subprocess.run([python, *flags, "-c", code], check=True, capture_output=True,
                             text=True, cwd="/",
                             env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        return [p for p in json.loads(out.stdout) if p]

    bare = set(path("-S"))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return [root] + [p for p in path() if p not in bare and p != root]


def launcher(python: str, module: str, func: str, paths: list[str]) -> str:
    return (f"#!{python} -S\n"
            f"{MARK}: written by 'python3 -m stage0.cli.launchers'; see its docstring.\n"
            "import sys\n"
            f"sys.path += {paths!r}\n"
            f"from {module} import {func}\n"
            f"sys.exit({func}())\n")


def rewrite(bindir: str) -> int:
    """Rewrite every podkit console script in ``bindir``; returns how many."""
    paths: dict[str, list[str]] = {}
    n = 0
    for name in sorted(os.listdir(bindir)):
        if name != "podkit" and not name.startswith("podkit-"):
            continue
        path = os.path.join(bindir, name)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read(4096)
        except (OSError, UnicodeDecodeError):
            continue
        m = _MAIN.search(text)
        if m is None or not text.startswith("#!"):
            continue
        python = text[2:].split("\n", 1)[0].split()[0]
        if python not in paths:
            paths[python] = site_paths(python)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(launcher(python, m.group(1), m.group(2), paths[python]))
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python3 -m stage0.cli.launchers BINDIR", file=sys.stderr)
        return 2
    print(f"{rewrite(args[0])} launchers written in {args[0]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
