"""stage0.cli.common: the conventions every command shares (the parts unit-testable here;
each command's exit statuses and messages are tested by its integration tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from stage0.cli import common
from libaci.errors import NotFoundError

def run(args):
    print("x" * 70000)          # more than the pipe buffer and stdio's: flushed in pieces
    print("last line")          # still in the buffer when run() returns
    sys.stderr.write("note\\n")
    if args.fail:
        raise NotFoundError("no such image")
    return 3

p = common.parser("podkit-probe", "probe", store=False)
p.add_argument("--fail", action="store_true")
rc = common.main(p, run, sys.argv[1:], exit_now=True)
print("not reached", rc)
"""


@pytest.mark.parametrize(("argv", "status", "err"), [
    ([], 3, "note\n"),
    (["--fail"], 4, "note\npodkit-probe: no such image\n"),
])
def test_exit_now_flushes_and_keeps_the_status(argv: list[str], status: int, err: str) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, *argv], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert done.returncode == status
    assert done.stdout == "x" * 70000 + "\nlast line\n"
    assert done.stderr == err


def test_usage_errors_still_exit_2() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, "--nope"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("podkit-probe: unrecognized arguments: --nope")


def test_help_width_follows_columns() -> None:
    def usage(columns: str) -> str:
        done = subprocess.run([sys.executable, "-c", SCRIPT, "--help"], cwd=ROOT,
                              capture_output=True, text=True, check=True,
                              env={"COLUMNS": columns, "PATH": "/usr/bin:/bin"})
        return done.stdout

    narrow = usage("40").split("\n\nexit status:")[0]  # the epilog is not wrapped (raw)
    assert max(len(line) for line in narrow.splitlines()) <= 40
    assert "usage: podkit-probe [-h] [--version] [--debug] [--fail]" in usage("200")
