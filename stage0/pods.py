"""Pods on disk: directories, locks and renames, as rkt kept them.

There is no daemon and no database.  A pod is ``STORE/pods/<state>/<uuid>``;
its state is the directory it sits in plus whether its flock is held:

=================  ==============================  ==================
directory          locked (exclusive, by a writer)  unlocked
=================  ==============================  ==================
``embryo``         being created                    (never seen)
``prepare``        preparing                        aborted prepare
``prepared``       (being started)                  prepared
``run``            running (the stage1 holds it)    exited
``exited-garbage`` being deleted                    exited, marked by gc
``garbage``        being deleted                    garbage
=================  ==============================  ==================

Transitions are ``rename(2)``, atomic; a process that loses a race gets
ENOENT and treats it as normal.  The lock is an flock on the directory's
own file descriptor, which survives renames and is released by the kernel
when the last process holding it (the stage1, its children) exits, so a
killed pod always reads as exited.  Probing a state takes the lock shared
and non-blocking; waiting for a pod to exit takes it blocking.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
import uuid as uuidlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import attrs

from libaci.errors import AmbiguousError, NotFoundError, PodStateError, UsageError
from libaci.fsutil import rmtree, try_flock

STATES = ("embryo", "prepare", "prepared", "run", "exited-garbage", "garbage")
EXITED = ("exited", "exited garbage")  # states of a pod that ran and ended


@attrs.frozen
class Pod:
    """One pod as found on disk at one moment."""

    uuid: str
    dir: str
    where: str  # one of STATES: the directory it was found in
    locked: bool

    @property
    def state(self) -> str:
        """rkt's state names (running, exited, prepared...)."""
        return {
            ("embryo", True): "embryo", ("embryo", False): "embryo",
            ("prepare", True): "preparing", ("prepare", False): "aborted prepare",
            ("prepared", True): "prepared", ("prepared", False): "prepared",
            ("run", True): "running", ("run", False): "exited",
            ("exited-garbage", True): "deleting", ("exited-garbage", False): "exited garbage",
            ("garbage", True): "deleting", ("garbage", False): "garbage",
        }[(self.where, self.locked)]

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    def manifest(self) -> dict[str, Any]:
        try:
            with open(self.path("pod"), "rb") as f:
                doc = json.load(f)
        except FileNotFoundError:
            raise NotFoundError(f"pod {self.uuid} has no manifest (still being created?)") \
                from None
        except (OSError, ValueError) as e:
            raise PodStateError(f"pod {self.uuid}: unreadable manifest: {e}") from None
        return doc if isinstance(doc, dict) else {}

    def read(self, name: str) -> str | None:
        try:
            with open(self.path(name)) as f:
                return f.read().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return None

    def mtime(self, name: str) -> float | None:
        try:
            return os.stat(self.path(name)).st_mtime
        except OSError:
            return None

    def pid(self) -> int | None:
        """The PID to enter: ``pid``, else the only child of ``ppid`` (rkt's rule)."""
        text = self.read("pid")
        if text and text.isdigit():
            return int(text)
        text = self.read("ppid")
        if not (text and text.isdigit()):
            return None
        try:
            with open(f"/proc/{text}/task/{text}/children") as f:
                kids = f.read().split()
        except OSError:
            return None
        return int(kids[0]) if len(kids) == 1 else None

    def exit_status(self, app: str) -> int | None:
        text = self.read(os.path.join("status", app))
        return int(text) if text is not None and text.lstrip("-").isdigit() else None

    # -- what the listing commands show ------------------------------------------------
    @property
    def exited(self) -> bool:
        """The pod ran and ended (its lock is free, or gc/rm is deleting it)."""
        return self.state in EXITED or self.where == "exited-garbage"

    def app_names(self) -> list[str]:
        """The apps of the manifest ([] when it cannot be read)."""
        try:
            doc = self.manifest()
        except (NotFoundError, PodStateError):
            return []
        return [a["name"] for a in doc.get("apps") or ()
                if isinstance(a, dict) and isinstance(a.get("name"), str)]

    def created(self) -> float | None:
        """mtime of ``pod-created``."""
        return self.mtime("pod-created")

    def started(self) -> float | None:
        """mtime of ``pid`` (or ``ppid``): when the stage1 started the pod."""
        t = self.mtime("pid")
        return t if t is not None else self.mtime("ppid")

    def exited_at(self, app: str) -> float | None:
        """mtime of ``status/APP``: when the app ended."""
        return self.mtime(os.path.join("status", app))

    def marked(self) -> float | None:
        """ctime of the directory: when it was renamed into its state directory (gc marks)."""
        try:
            return os.stat(self.dir).st_ctime
        except OSError:
            return None

    def is_ready(self) -> bool:
        """The pod is running and its stage1 created ``ready``."""
        return self.state == "running" and os.path.exists(self.path("ready"))

    def info(self) -> dict[str, Any]:
        """What podkit-list --json and podkit-status --json print about the pod."""
        try:
            doc = self.manifest()
        except (NotFoundError, PodStateError):
            doc = {}
        apps = [a for a in doc.get("apps") or () if isinstance(a, dict)]
        app = apps[0] if apps else {}
        name = app.get("name") if isinstance(app.get("name"), str) else None
        image = app.get("image") if isinstance(app.get("image"), dict) else {}
        command = None
        for a in doc.get("annotations") or ():
            if isinstance(a, dict) and a.get("name") == "podkit.io/command":
                command = str(a.get("value"))
        exited = self.exited
        return {
            "uuid": self.uuid,
            "state": self.state,
            "image": {"name": image.get("name"), "id": image.get("id")},
            "app": name,
            "command": command,
            "created": rfc3339(self.created()),
            "started": rfc3339(self.started()),
            "exited": rfc3339(self.exited_at(name)) if exited and name else None,
            "exitCode": self.exit_status(name) if exited and name else None,
            "pid": self.pid() if self.state == "running" else None,
        }


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def open_dir(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def is_locked(path: str) -> bool:
    """True when some process holds the directory's lock (probe: shared, non-blocking)."""
    try:
        fd = open_dir(path)
    except OSError:
        return False
    try:
        return not try_flock(fd, exclusive=False)
    finally:
        os.close(fd)


class Pods:
    """The pods of one store."""

    def __init__(self, root: str) -> None:
        self.root = root

    def dir(self, where: str, uuid: str = "") -> str:
        return os.path.join(self.root, where, uuid) if uuid else os.path.join(self.root, where)

    def ensure(self) -> None:
        for where in STATES:
            os.makedirs(self.dir(where), mode=0o711, exist_ok=True)

    # -- creating and moving ---------------------------------------------------
    def create(self) -> tuple[str, int]:
        """A new pod in ``embryo``, locked exclusively; (uuid, fd of its dir)."""
        self.ensure()
        uuid = new_uuid()
        path = self.dir("embryo", uuid)
        os.mkdir(path, 0o711)
        fd = open_dir(path)
        if not try_flock(fd):
            os.close(fd)
            raise PodStateError(f"cannot lock new pod {uuid}")
        with open(os.path.join(path, "pod-created"), "w"):
            pass
        return uuid, fd

    def move(self, uuid: str, src: str, dst: str) -> str:
        """Rename the pod from state dir ``src`` to ``dst``; PodStateError if not there."""
        try:
            os.rename(self.dir(src, uuid), self.dir(dst, uuid))
        except FileNotFoundError:
            raise PodStateError(f"pod {uuid} is no longer {src!r} "
                                f"(another command moved it)") from None
        return self.dir(dst, uuid)

    # -- finding ---------------------------------------------------------------
    def all(self) -> Iterator[Pod]:
        for where in STATES:
            try:
                names = sorted(os.listdir(self.dir(where)))
            except FileNotFoundError:
                continue
            for name in names:
                path = self.dir(where, name)
                if where == "embryo":
                    yield Pod(name, path, where, True)
                    continue
                yield Pod(name, path, where, is_locked(path))

    def refresh(self, pod: Pod) -> Pod | None:
        """The same pod as it is now (None once it is gone)."""
        return self.get(pod.uuid)

    def get(self, uuid: str) -> Pod | None:
        for where in STATES:
            path = self.dir(where, uuid)
            if os.path.isdir(path):
                return Pod(uuid, path, where, True if where == "embryo" else is_locked(path))
        return None

    def find(self, prefix: str) -> Pod:
        """The pod whose UUID is ``prefix`` or starts with it (dashes optional)."""
        want = prefix.strip().lower()
        if not want or any(c not in "0123456789abcdef-" for c in want):
            raise UsageError(f"{prefix!r} is not a pod UUID or UUID prefix")
        bare = want.replace("-", "")
        matches = {p.uuid: p for p in self.all()
                   if p.uuid.replace("-", "").startswith(bare) and p.where != "embryo"}
        if not matches:
            raise NotFoundError(f"no pod {prefix} (podkit-list -a shows the pods)")
        if len(matches) > 1:
            raise AmbiguousError(f"pod UUID prefix {prefix} is ambiguous: "
                                 f"{', '.join(sorted(matches))}")
        return next(iter(matches.values()))

    # -- waiting ---------------------------------------------------------------
    def wait_exit(self, pod: Pod, timeout: float | None = None) -> bool:
        """Block until the pod's lock is free (it exited); False on timeout."""
        try:
            fd = open_dir(pod.dir)
        except FileNotFoundError:
            moved = self.get(pod.uuid)
            if moved is None:
                return True
            fd = open_dir(moved.dir)
        try:
            if timeout is None:
                fcntl.flock(fd, fcntl.LOCK_SH)
                return True
            deadline = time.monotonic() + timeout
            while True:
                if try_flock(fd, exclusive=False):
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)
        finally:
            os.close(fd)


@contextlib.contextmanager
def locked_pod(pods: Pods, pod: Pod) -> Iterator[int]:
    """Hold the pod's lock exclusively, or PodStateError if it is busy (running)."""
    try:
        fd = open_dir(pod.dir)
    except FileNotFoundError:
        raise PodStateError(f"pod {pod.uuid} moved while being handled; try again") from None
    try:
        if not try_flock(fd):
            raise PodStateError(f"pod {pod.uuid} is {pod.state} (its lock is held)")
        yield fd
    finally:
        os.close(fd)


def remove_pod_dir(path: str) -> None:
    """Delete a pod directory, its upper dirs included, whatever their modes.

    Pods mount nothing in the host's mount namespace, but should anything be
    mounted below the directory all the same (a misbehaving stage1, a bind
    mount by hand), it is detached first: deleting through a mount point
    would delete a volume's host files.  PodStateError if one stays.  The app
    directories (the bulk: what the apps wrote) go first, as rkt removed the
    stage1 rootfs first, so that a failure part way leaves the manifest and
    the stage1 for the next gc to retry with.
    """
    from stage0 import linux

    for mnt in mounts_under(path):
        with contextlib.suppress(OSError):
            linux.umount(mnt, linux.MNT_DETACH)
    left = mounts_under(path)
    if left:
        raise PodStateError(f"{left[0]} is mounted and cannot be unmounted; the pod "
                            "directory is kept")
    rmtree(os.path.join(path, "apps"))
    rmtree(path)


def mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace, deepest first."""
    real = os.path.realpath(path)
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        mnt = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if mnt == real or mnt.startswith(real.rstrip("/") + "/"):
            out.append(mnt)
    return sorted(set(out), key=len, reverse=True)


# -- helpers of the pod commands ---------------------------------------------------------
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, what: str) -> float:
    """Seconds from ``30``, ``30s``, ``10m``, ``1h30m``, ``0`` (Go's duration syntax, plus d)."""
    s = text.strip().lower()
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        if value >= 0 and value != float("inf"):
            return value
        raise UsageError(f"{what}: {text!r} is not a duration (like 30s, 10m, 1h)")
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise UsageError(f"{what}: {text!r} is not a duration (like 30s, 10m, 1h)")
    return total


def find_pods(pods: Pods, specs: list[str]) -> list[Pod]:
    """Every pod that ``specs`` (UUIDs or prefixes) name, each once, in order.

    All are resolved before the caller acts on any, so one bad UUID changes nothing.
    """
    found: dict[str, Pod] = {}
    for spec in specs:
        pod = pods.find(spec)
        found.setdefault(pod.uuid, pod)
    return list(found.values())


def uuid_args(uuids: list[str], uuid_file: str | None) -> list[str] | None:
    """The UUIDs of the command line: ``--uuid-file``'s, the positional ones, or None
    (read them from standard input)."""
    if uuid_file is not None:
        if uuids and uuids != ["-"]:
            raise UsageError("give pod UUIDs or --uuid-file, not both")
        return [read_uuid_file(uuid_file)]
    if uuids and uuids != ["-"]:
        return uuids
    return None


def read_uuid_file(path: str) -> str:
    """The UUID that ``--uuid-file-save`` wrote to ``path``."""
    try:
        with open(path) as f:
            text = f.read(4096).strip()
    except FileNotFoundError:
        raise NotFoundError(f"--uuid-file {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--uuid-file {path}: is a directory") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--uuid-file {path}: cannot read it: "
                         f"{getattr(e, 'strerror', None) or e}") from None
    if not text or len(text.split()) != 1:
        raise UsageError(f"--uuid-file {path}: does not hold one pod UUID")
    return text


def rfc3339(t: float | None) -> str | None:
    """A timestamp as RFC 3339 (UTC, milliseconds), or None."""
    if t is None:
        return None
    stamp = datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")
