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

The launchers also carry :func:`stage0.cli.bundle.install` and call it first:
the modules the commands import then come from one file, built here after the
scripts (``LIB/podkit-modules.bundle`` beside ``BINDIR``; see that module).
``--bundle OUT BINDIR`` builds only a bundle, for the interpreter of the launchers in
BINDIR and the current ``PYTHONPATH`` (the benchmarks' source snapshots; the
launchers use it with ``PODKIT_BUNDLE=OUT``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

_MAIN = re.compile(r"^from ([\w.]+) import (\w+)$", re.M)
_PATHS = re.compile(r"^sys\.path \+= (\[.*\])$", re.M)
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


BUNDLE_NAME = "podkit-modules.bundle"


def default_bundle(bindir: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(bindir)), "lib", BUNDLE_NAME)


def launcher(python: str, module: str, func: str, paths: list[str],
             bundle: str | None = None) -> str:
    lines = [f"#!{python} -S",
             f"{MARK}: written by 'python3 -m stage0.cli.launchers'; see its docstring.",
             "import sys",
             f"sys.path += {paths!r}"]
    if bundle:
        import inspect

        from stage0.cli import bundle as bundling

        lines += [inspect.getsource(bundling.install).rstrip(), "",
                  "",
                  "import os",
                  f"install(os.environ.get('PODKIT_BUNDLE', {bundle!r}))",
                  "del install"]
    lines += [f"from {module} import {func}", f"sys.exit({func}())"]
    return "\n".join(lines) + "\n"


def build_bundle(python: str, paths: list[str], out: str) -> int:
    """Build the module bundle ``out`` in a fresh ``python -S`` whose ``sys.path`` is
    the launchers' (``PYTHONPATH`` included, as they see it); returns its module count."""
    code = ("import json, sys\n"
            "del sys.path[0]\n"  # '' for -c: the launchers have their own directory there
            "sys.path += json.loads(sys.argv[2])\n"
            "from stage0.cli import bundle\n"
            "print(bundle.build(sys.argv[1], bundle.collect()))\n")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    done = subprocess.run([python, "-S", "-c", code, out, json.dumps(paths)], cwd="/",
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building {out} failed: {done.stderr.strip()}")
    return int(done.stdout)


def _scripts(bindir: str) -> list[tuple[str, str, re.Match[str]]]:
    """(path, python, match of the main import) of each podkit console script."""
    found = []
    for name in sorted(os.listdir(bindir)):
        if name != "podkit" and not name.startswith("podkit-"):
            continue
        path = os.path.join(bindir, name)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read(1 << 16)  # a launcher, carrying bundle.install, is ~4 KB
        except (OSError, UnicodeDecodeError):
            continue
        m = _MAIN.search(text)
        if m is None or not text.startswith("#!"):
            continue
        found.append((path, text[2:].split("\n", 1)[0].split()[0], m))
    return found


def launcher_paths(path: str) -> list[str] | None:
    """The ``sys.path`` entries the launcher at ``path`` adds (None: not a launcher)."""
    import ast

    with open(path, encoding="utf-8") as f:
        text = f.read(1 << 16)
    m = _PATHS.search(text)
    return ast.literal_eval(m.group(1)) if MARK in text and m else None


def rewrite(bindir: str, bundle: str | None = None) -> int:
    """Rewrite every podkit console script in ``bindir``; returns how many.  With
    ``bundle``, the launchers use that module bundle, built here."""
    paths: dict[str, list[str]] = {}
    n = 0
    for path, python, m in _scripts(bindir):
        if python not in paths:
            paths[python] = site_paths(python)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(launcher(python, m.group(1), m.group(2), paths[python], bundle))
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
        n += 1
    if bundle and paths:
        python, where = next(iter(paths.items()))
        build_bundle(python, where, bundle)
    return n


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 3 and args[0] == "--bundle":
        scripts = _scripts(args[2])
        if not scripts:
            print(f"no podkit launchers in {args[2]}", file=sys.stderr)
            return 1
        path, python, _ = scripts[0]
        n = build_bundle(python, launcher_paths(path) or site_paths(python), args[1])
        print(f"{n} modules bundled in {args[1]}", file=sys.stderr)
        return 0
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python3 -m stage0.cli.launchers [--bundle OUT] BINDIR", file=sys.stderr)
        return 2
    bundle = default_bundle(args[0])
    print(f"{rewrite(args[0], bundle)} launchers written in {args[0]}, modules in {bundle}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
