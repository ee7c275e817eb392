"""One RUN in a fresh, single-use pod: prepared, run through the stage1, removed.

The pod is an ordinary podkit pod (``STORE/pods``, appc pod manifest, the
stage1 of ``--stage1``), made from the layers of the stage so far and the
RUN's argv, environment, user and working directory.  Its stage1 runs as a
*child* of podkit-build: the child starts a session of its own (a Ctrl-C on
the terminal reaches podkit-build only, which stops the pod with SIGTERM and
cleans up), mounts the rootfs in a mount namespace of its own and becomes
the stage1's ``run`` entrypoint, exactly as podkit-run does; its stdout and
stderr are a pipe that podkit-build reads, so the RUN's output goes to the
build log on stderr and never to stdout.  podkit-build waits, then takes the
pod's upper directory as the step's layer and deletes the pod, whatever the
outcome.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator

import attrs

from libaci.errors import PodkitError
from libaci.store import Store
from stage0 import launch, podspec
from stage0.build.log import BuildLog
from stage0.pods import Pods, remove_pod_dir
from stage0.stage1 import Stage1

STOP_GRACE = 10.0  # seconds a pod has to stop after SIGTERM before it is killed


@attrs.define
class Pod:
    """A prepared single-use pod in ``run/``, locked by us."""

    store: Store
    uuid: str
    dir: str
    fd: int
    app: str

    @property
    def upper(self) -> str:
        return os.path.join(self.dir, "apps", self.app, "upper")

    def manifest(self) -> dict[str, object]:
        import json

        with open(os.path.join(self.dir, "pod"), "rb") as f:
            doc = json.load(f)
        return doc if isinstance(doc, dict) else {}

    def run(self, log: BuildLog, n: int) -> int:
        """Run the pod to its end, its output into the log; the app's exit status."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the build's stack
            _child(self.dir, self.uuid, self.fd, r, w)
        os.close(w)
        try:
            _relay(r, log, n)
        except BaseException:
            _stop(pid)
            raise
        finally:
            os.close(r)
        return _wait(pid)


def _child(pod_dir: str, uuid: str, fd: int, r: int, w: int) -> None:
    code = 70
    try:
        os.setsid()
        os.close(r)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(w, 1)
        os.dup2(w, 2)
        os.close(null)
        os.close(w)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        launch.exec_run(pod_dir, uuid, fd)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:
        what = str(e) if isinstance(e, PodkitError | OSError) else f"{type(e).__name__}: {e}"
        with contextlib.suppress(OSError):
            os.write(2, f"podkit-build: cannot start the RUN pod: {what}\n".encode())
        code = 125
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _relay(r: int, log: BuildLog, n: int) -> None:
    pending = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        pending += chunk.replace(b"\r\n", b"\n")
        *lines, pending = pending.split(b"\n")
        for line in lines:
            log.output(n, line.decode("utf-8", "replace"))
    if pending:
        log.output(n, pending.decode("utf-8", "replace"))


def _wait(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _stop(pid: int) -> None:
    """Interrupted: stop the pod (the stage1 forwards SIGTERM), kill it if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@contextlib.contextmanager
def single_use_pod(store: Store, s1: Stage1, layers: list[str], image: podspec.ImageApp,
                   opts: podspec.RunOptions, *, image_id: str,
                   image_name: str | None = None) -> Iterator[Pod]:
    """A pod over ``layers`` ready to run; deleted when the block ends, however it ends."""
    uuid, pod_dir, fd = launch.prepare_layers(store, layers, image, opts, s1,
                                              image_id=image_id, image_name=image_name)
    pods = Pods(store.path("pods"))
    try:
        pod_dir = pods.move(uuid, "prepare", "run")
        import json

        with open(os.path.join(pod_dir, "pod"), "rb") as f:
            app = json.load(f)["apps"][0]["name"]
        yield Pod(store, uuid, pod_dir, fd, app)
    finally:
        os.close(fd)
        _remove(pods, uuid)


def _remove(pods: Pods, uuid: str) -> None:
    for where in ("run", "prepare"):
        with contextlib.suppress(PodkitError):
            pods.move(uuid, where, "garbage")
            break
    pod = pods.get(uuid)
    if pod is not None:
        remove_pod_dir(pod.dir)
