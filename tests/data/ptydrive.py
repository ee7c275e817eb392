"""Drive an interactive program through a pseudo-terminal, as a person would.

    python3 ptydrive.py SESSION_FILE -- COMMAND [ARG...]

Starts COMMAND on a new pty, waits for a shell prompt (a line ending in "# "
or "$ "), then types each line of SESSION_FILE, waiting for the next prompt
(or for the program to exit) before the next one.  Everything the program
writes is copied to stdout (without carriage returns).  Exits with the
program's exit status; gives up after PTYDRIVE_TIMEOUT seconds (default 600)
per line.  Used by demo.sh and the tests: typing into a real terminal session,
not a pipe.
"""

import os
import pty
import re
import select
import sys
import time

PROMPT = re.compile(rb"[#$] $")
ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
CURSOR_QUERY = b"\x1b[6n"  # line editors ask where the cursor is; a terminal answers


def main(argv: list[str]) -> int:
    session, sep, cmd = argv[0], argv[1], argv[2:]
    if sep != "--" or not cmd:
        print(__doc__, file=sys.stderr)
        return 2
    lines = open(session, encoding="utf-8").read().splitlines()
    timeout = float(os.environ.get("PTYDRIVE_TIMEOUT", "600"))
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    buf = b""

    def read_until_prompt() -> bool:
        nonlocal buf
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if not r:
                if PROMPT.search(ESCAPES.sub(b"", buf[-200:])):
                    return True
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:
                return False  # the program ended
            if not data:
                return False
            if CURSOR_QUERY in data:
                os.write(fd, b"\x1b[1;1R")
                data = data.replace(CURSOR_QUERY, b"")
            shown = ESCAPES.sub(b"", data).replace(b"\r", b"")  # colours, bracketed paste...
            sys.stdout.write(shown.decode(errors="replace"))
            sys.stdout.flush()
            buf = (buf + data)[-4096:]
        print("\nptydrive: timed out waiting for a prompt", file=sys.stderr)
        return False

    for line in lines:
        if not read_until_prompt():
            break
        buf = b""
        os.write(fd, line.encode() + b"\n")
    else:
        read_until_prompt()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
