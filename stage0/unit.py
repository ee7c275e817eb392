"""systemd units that run an image with podkit-run: what podkit-unit prints.

The service is modelled on systemd's own systemd-nspawn@.service:

- ``Type=notify``: podkit-run's stage1 sends READY=1 (with MAINPID, its own
  PID, which an exec never changed) when the pod is up, or with
  ``--ready=app`` when the app says so; ``NotifyAccess=main`` accepts it
  from that PID only.
- ``KillMode=mixed``: ``systemctl stop`` sends SIGTERM to podkit-run alone,
  which delivers the pod's own stop signal (the image's StopSignal) to the
  app and waits for it; only after ``TimeoutStopSec`` does systemd SIGKILL
  everything left in the unit's cgroup.  (``control-group`` would send
  SIGTERM to every process of the pod at once, bypassing the stop signal.)
- ``Delegate=yes``: the stage1 makes the pod's cgroups below the unit's own,
  so that systemd accounts for and kills the pod with the unit.
- ``--uuid-file-save=%t/podkit/%n.uuid`` and ``ExecStopPost=-podkit-rm
  --uuid-file=...``: the exited pod is removed when the service stops
  (``RuntimeDirectory=podkit``, preserved: several units share it).
- ``SuccessExitStatus=143``: an app that ends of the SIGTERM it was sent
  stopped as asked.

Values are escaped for systemd: ``%`` as ``%%`` (in a template, ``%i`` and
``%I`` are kept, so that instances can differ), ``$`` as ``$$``, and each
word of a command line quoted when it needs to be.
"""

from __future__ import annotations

import re

import attrs

from libaci.errors import UsageError
from stage0.cli import VERSION

SAFE_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\-]+")
RESTART = ("no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always")
UUID_FILE = "%t/podkit/%n.uuid"


@attrs.frozen
class UnitSpec:
    """What to generate; ``run_args`` are podkit-run's arguments, unescaped."""

    name: str  # without .service, without @ for a template
    run_args: tuple[str, ...]
    podkit_run: str  # absolute paths of the commands
    podkit_rm: str
    image: str
    store: str | None = None  # given to both commands when not the default
    description: str | None = None
    sockets: tuple[str, ...] = ()
    template: bool = False
    restart: str | None = None
    stop_timeout: str | None = None
    keep_pod: bool = False
    command_line: str = ""  # how podkit-unit was called, for the header comment


def specifiers(text: str, template: bool) -> str:
    """``%`` escaped as ``%%``; in a template, ``%i`` and ``%I`` stay specifiers."""
    if template:
        return re.sub(r"%(?![iI])", "%%", text)
    return text.replace("%", "%%")


def exec_word(word: str, template: bool = False) -> str:
    """One word of an Exec*= command line, as systemd will hand it to the program."""
    w = specifiers(word.replace("$", "$$"), template)
    if w and SAFE_WORD.fullmatch(w):
        return w
    out = []
    for ch in w:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_SPAN = re.compile(r"(?:\d+(?:\.\d+)?\s*(?:usec|us|msec|ms|seconds?|sec|s|minutes?|min|m"
                   r"|hours?|hr|h|days?|d|weeks?|w|months?|M|years?|y)?\s*)+")


def check_timespan(text: str, what: str) -> str:
    """A systemd time span (``90``, ``30s``, ``2min``, ``1min 30s``, ``infinity``)."""
    t = text.strip()
    if t != "infinity" and not _SPAN.fullmatch(t):
        raise UsageError(f"{what} {text!r}: not a time span (like 90, 30s, 2min, infinity)")
    return t


def check_name(name: str) -> str:
    if not name or len(name) > 200 or not UNIT_NAME.fullmatch(name) or "@" in name:
        raise UsageError(f"--unit {name!r}: a unit name is letters, digits and ':_.-' "
                         "(no '@'; --template adds it)")
    return name


def default_name(image: str, app: str | None) -> str:
    """``podkit-NAME``: the app's name, else the last path component of the image."""
    base = app or image
    if not app:
        base = base.split("://", 1)[-1]
        base = re.split(r"[@]", base, maxsplit=1)[0]
        if re.fullmatch(r"(sha256:|sha512:)?[0-9a-f]{12,}", base):
            base = base.split(":")[-1][:12]
        else:
            last = base.rsplit("/", 1)[-1]
            base = last.split(":", 1)[0] or last
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-.") or "pod"
    return f"podkit-{base}"[:200]


def _one_line(value: str, what: str) -> str:
    if "\n" in value or "\r" in value:
        raise UsageError(f"{what}: must be one line")
    return value


def render(spec: UnitSpec) -> list[tuple[str, str]]:
    """(file name, contents) of each unit: the service, then the socket if any."""
    at = "@" if spec.template else ""
    service = f"{spec.name}{at}.service"
    socket = f"{spec.name}{at}.socket"
    t = spec.template
    store = [f"--store={spec.store}"] if spec.store else []
    run_cmd = [spec.podkit_run, f"--uuid-file-save={UUID_FILE}"]
    start = " ".join([*(exec_word(w) for w in run_cmd[:1]), run_cmd[1],
                      *(exec_word(w, t) for w in [*store, *spec.run_args])])
    rm = " ".join([exec_word(spec.podkit_rm), *(exec_word(w) for w in store),
                   f"--uuid-file={UUID_FILE}"])
    desc = spec.description or f"podkit pod of {spec.image}" + (" (%i)" if t else "")
    desc = specifiers(_one_line(desc, "--description"), t)
    called = spec.command_line.replace("\r", "\\r").replace("\n", "\\n")
    header = [f"# Generated by podkit-unit {VERSION}" + (f": {called}" if called else "")]
    unit = ["[Unit]", f"Description={desc}", "Documentation=man:podkit-run(1) man:podkit-unit(1)",
            "Wants=network-online.target", "After=network-online.target"]
    if spec.sockets:
        unit += [f"Requires={socket}", f"After={socket}"]
    svc = ["[Service]", "Type=notify", "NotifyAccess=main", f"ExecStart={start}"]
    if not spec.keep_pod:
        svc += [f"ExecStopPost=-{rm}", f"ExecStopPost=-/bin/rm -f {UUID_FILE}"]
    svc += ["RuntimeDirectory=podkit", "RuntimeDirectoryPreserve=yes", "KillMode=mixed",
            "Delegate=yes", "SuccessExitStatus=143"]
    if spec.stop_timeout is not None:
        svc.append(f"TimeoutStopSec={spec.stop_timeout}")
    if spec.restart is not None:
        svc.append(f"Restart={spec.restart}")
    install = ["[Install]", f"Also={socket}" if spec.sockets else "WantedBy=multi-user.target"]
    files = [(service, "\n".join([*header, *unit, "", *svc, "", *install]) + "\n")]
    if spec.sockets:
        sock = ["[Unit]", f"Description=Sockets of {desc}",
                "Documentation=man:podkit-unit(1) man:systemd.socket(5)", "", "[Socket]"]
        sock += [f"ListenStream={specifiers(_one_line(a, '--socket'), t)}"
                 for a in spec.sockets]
        sock += ["", "[Install]", "WantedBy=sockets.target"]
        files.append((socket, "\n".join([*header, *sock]) + "\n"))
    return files


def multi_file(files: list[tuple[str, str]]) -> str:
    """The units one after the other, each after a ``# ---- NAME ----`` line (a comment in
    a unit file, so that a single unit can be redirected to its file as it is)."""
    return "".join(f"# ---- {name} ----\n{text}" for name, text in files)
