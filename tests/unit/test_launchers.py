"""stage0.cli.launchers: console scripts rewritten to start without ``site``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stage0.cli import launchers

ROOT = Path(__file__).resolve().parents[2]
PIP_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from stage0.cli.tag import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def _pip_bin(tmp_path: Path) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "podkit-tag").write_text(PIP_SCRIPT.format(python=sys.executable))
    (bindir / "podkit-tag").chmod(0o755)
    (bindir / "pip").write_text("#!/bin/sh\nexit 0\n")  # not podkit's: left alone
    (bindir / "podkit-notes.txt").write_text("no shebang\n")
    return bindir


def test_rewrites_podkit_scripts_only(tmp_path: Path) -> None:
    bindir = _pip_bin(tmp_path)
    assert launchers.rewrite(str(bindir)) == 1
    text = (bindir / "podkit-tag").read_text()
    assert text.startswith(f"#!{sys.executable} -S\n")
    assert "from stage0.cli.tag import main\n" in text
    assert (bindir / "pip").read_text() == "#!/bin/sh\nexit 0\n"
    assert os.access(bindir / "podkit-tag", os.X_OK)
    assert launchers.rewrite(str(bindir)) == 1  # idempotent
    assert (bindir / "podkit-tag").read_text() == text


def test_launcher_runs_without_site_and_finds_everything(tmp_path: Path) -> None:
    bindir = _pip_bin(tmp_path)
    launchers.rewrite(str(bindir))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(bindir / "podkit-tag"), "--version"], capture_output=True,
                          text=True, check=False, cwd="/", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("podkit-tag (podkit) ")
    code = ("import sys; print(sys.flags.no_site); import attrs, jsonschema, libaci; "
            "print(libaci.__file__)")
    script = (bindir / "podkit-tag").read_text().replace(
        "from stage0.cli.tag import main\nsys.exit(main())\n", code + "\n")
    (bindir / "probe").write_text(script)
    done = subprocess.run([sys.executable, "-S", str(bindir / "probe")], capture_output=True,
                          text=True, check=True, cwd="/", env=env)
    assert done.stdout.splitlines() == ["1", str(ROOT / "libaci" / "__init__.py")]


def test_pythonpath_still_comes_first(tmp_path: Path) -> None:
    """Benchmarks run a snapshot of the sources through PYTHONPATH."""
    bindir = _pip_bin(tmp_path)
    launchers.rewrite(str(bindir))
    other = tmp_path / "snapshot" / "stage0" / "cli"
    other.mkdir(parents=True)
    (other.parent / "__init__.py").write_text("")
    (other / "__init__.py").write_text("")
    (other / "tag.py").write_text("def main():\n    print('snapshot')\n    return 0\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "snapshot")}
    done = subprocess.run([str(bindir / "podkit-tag")], capture_output=True, text=True,
                          check=True, env=env)
    assert done.stdout == "snapshot\n"


def test_installed_commands_are_launchers() -> None:
    """install.sh ran the rewrite: the commands the tests use start without site."""
    venv_bin = Path(sys.executable).parent
    scripts = sorted(venv_bin.glob("podkit-*"))
    assert scripts
    for script in scripts:
        assert script.read_text().split("\n", 1)[0].endswith(" -S"), script


def test_usage() -> None:
    assert launchers.main([]) == 2
    assert launchers.main(["-h"]) == 2
