"""Ending and removing pods: podkit-stop, podkit-rm and the pod half of podkit-gc.

rkt's gc in two phases.  Mark: an exited pod in ``run/`` (its lock free) is
renamed to ``exited-garbage/``, which sets the directory's ctime, the mark
time; an aborted prepare (``prepare/``, unlocked), a prepared pod older than
``--expire-prepared`` and an abandoned embryo are renamed to ``garbage/``.
Sweep: each ``exited-garbage/`` pod marked longer ago than the grace period
and each ``garbage/`` pod is locked exclusively, its stage1's gc entrypoint
releases what the stage1 made outside the directory (cgroups), and the
directory goes.  A stage1 gc that fails leaves the pod where it is, for the
next gc.  podkit-rm is the same for the pods it is given, without waiting.

The stage1's stop and gc entrypoints are run as child processes in the pod
directory (rkt: fork/exec, never exec), their standard output sent to our
standard error: podkit's standard output carries only UUIDs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import attrs

from libaci.errors import PodkitError, PodStateError
from stage0 import stage1
from stage0.pods import Pod, Pods, locked_pod, open_dir, remove_pod_dir, try_flock

ENTRYPOINT_TIMEOUT = 120.0  # seconds a stop or gc entrypoint may take
EMBRYO_EXPIRY = 600.0  # an unlocked embryo this old was left by a killed podkit-run


@attrs.define
class PodGcResult:
    marked: list[str] = attrs.field(factory=list)  # exited pods moved to exited-garbage
    removed: list[str] = attrs.field(factory=list)  # pod directories deleted
    kept: list[tuple[str, str]] = attrs.field(factory=list)  # (uuid, why) left for later


# -- calling the stage1 ------------------------------------------------------------------
def call_entrypoint(pod: Pod, which: str, args: Sequence[str], *,
                    timeout: float = ENTRYPOINT_TIMEOUT, required: bool = True) -> str | None:
    """Run the pod's stage1 entrypoint ``which`` with ``args``; an error message or None.

    Without ``required``, a stage1 that does not declare the entrypoint (or a
    pod that never got a stage1) is not an error: there is nothing to do.
    """
    if not os.path.exists(pod.path("stage1", "manifest")):
        return f"pod {pod.uuid} has no stage1" if required else None
    try:
        s1 = stage1.of_pod(pod.dir)
        if not required and not s1.annotation(stage1.ANN_PREFIX + which):
            return None
        ep = s1.entrypoint(which)
    except PodkitError as e:
        return str(e)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        r = subprocess.run([ep, *args], cwd=pod.dir, stdin=subprocess.DEVNULL,
                           stdout=sys.stderr.fileno(), timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"the stage1's {which} entrypoint did not finish in {timeout:g} seconds"
    except OSError as e:
        return f"cannot run the stage1's {which} entrypoint {ep}: {e.strerror}"
    if r.returncode != 0:
        return f"the stage1's {which} entrypoint failed (exit status {r.returncode})"
    return None


# -- stop ----------------------------------------------------------------------------------
def stop(pods: Pods, pod: Pod, *, force: bool = False, timeout: float = 10.0) -> None:
    """Stop a running pod and wait until it exited (its lock is free).

    Without ``force``: the stage1's ``stop UUID``, then ``stop --force UUID``
    after ``timeout`` seconds.  A pod that already exited is left alone.
    """
    if pod.exited or pod.where == "garbage":
        return
    if pod.state != "running":
        raise PodStateError(f"pod {pod.uuid} is {pod.state}, not running "
                            "(podkit-rm removes a pod that never ran)")
    if not force:
        err = call_entrypoint(pod, "stop", [pod.uuid])
        if err is None and pods.wait_exit(pod, timeout):
            return
    err = call_entrypoint(pod, "stop", ["--force", pod.uuid])
    if err is not None:
        raise PodStateError(f"cannot stop pod {pod.uuid}: {err}")
    if not pods.wait_exit(pod, max(timeout, 10.0)):
        raise PodStateError(f"pod {pod.uuid} still runs after stop --force "
                            "(its lock is still held)")


# -- marking ------------------------------------------------------------------------------
def mark_exited(pods: Pods, pod: Pod) -> Pod | None:
    """``run/`` -> ``exited-garbage/`` for an exited pod; the moved pod, or None (it runs,
    or another command moved it first)."""
    return _move_unlocked(pods, pod, "exited-garbage", exclusive=False)  # running: left


def to_garbage(pods: Pods, pod: Pod) -> Pod | None:
    """An unlocked pod that never ran (prepared, aborted, embryo) -> ``garbage/``."""
    return _move_unlocked(pods, pod, "garbage", exclusive=True)  # being prepared: left


def _move_unlocked(pods: Pods, pod: Pod, state: str, *, exclusive: bool) -> Pod | None:
    """Move ``pod`` to ``state`` if nobody holds its lock (a shared or an exclusive
    try, held across the rename); the moved pod, or None."""
    try:
        fd = open_dir(pod.dir)
    except FileNotFoundError:
        return None
    try:
        if not try_flock(fd, exclusive=exclusive):
            return None
        dst = pods.dir(state, pod.uuid)
        try:
            os.rename(pod.dir, dst)
        except FileNotFoundError:
            return None
    finally:
        os.close(fd)
    return Pod(pod.uuid, dst, state, False)


# -- sweeping -----------------------------------------------------------------------------
def sweep(pods: Pods, pod: Pod, *, debug: bool = False) -> str | None:
    """Delete a pod in ``exited-garbage/`` or ``garbage/``; an error message or None.

    Under the pod's exclusive lock: the stage1's gc entrypoint for a pod that
    ran, then the directory.  A stage1 gc failure keeps the directory.
    """
    try:
        with locked_pod(pods, pod):
            if pod.where == "exited-garbage":
                err = call_entrypoint(pod, "gc", [*(["--debug"] if debug else []), pod.uuid],
                                      required=False)
                if err is not None:
                    return f"{err}; pod kept in {pod.where}/ for the next podkit-gc"
            try:
                remove_pod_dir(pod.dir)
            except PodStateError as e:
                return str(e)
    except PodStateError:
        return "another command holds its lock; try again later"
    except OSError as e:
        return f"cannot remove {pod.dir}: {e.strerror}"
    return None


def remove(pods: Pods, pod: Pod, *, debug: bool = False) -> None:
    """podkit-rm: mark and sweep one pod now; PodStateError when it runs or is busy."""
    if pod.state == "running":
        raise PodStateError(f"pod {pod.uuid} is running; stop it first "
                            f"(podkit-stop {pod.uuid})")
    if pod.state in ("embryo", "preparing", "deleting"):
        raise PodStateError(f"pod {pod.uuid} is {pod.state} (another command holds it); "
                            "try again later")
    moved: Pod | None = pod
    if pod.where == "run":
        moved = mark_exited(pods, pod)
    elif pod.where in ("prepare", "prepared"):
        moved = to_garbage(pods, pod)
    if moved is None:
        raise PodStateError(f"pod {pod.uuid} changed state while being removed; try again")
    err = sweep(pods, moved, debug=debug)
    if err is not None:
        raise PodStateError(f"pod {pod.uuid}: {err}")


def collect(pods: Pods, *, grace_period: float, expire_prepared: float,
            mark_only: bool = False, dry_run: bool = False, debug: bool = False,
            warn: Callable[[str], None] | None = None) -> PodGcResult:
    """The pod half of podkit-gc (see the module docstring)."""
    result = PodGcResult()
    if not os.path.isdir(pods.root):
        return result
    now = time.time()
    swept: list[Pod] = []
    for pod in list(pods.all()):
        if pod.state == "exited":
            result.marked.append(pod.uuid)
            if dry_run:
                if grace_period <= 0 and not mark_only:
                    swept.append(pod)
                continue
            moved = mark_exited(pods, pod)
            if moved is not None and grace_period <= 0:
                swept.append(moved)
        elif pod.state in ("aborted prepare", "prepared", "embryo"):
            if pod.where == "prepared":
                age = now - (pod.marked() or now)
                if age < expire_prepared:
                    continue
            elif pod.where == "embryo" and (not pods_lock_free(pod)
                                            or now - (pod.marked() or now) < EMBRYO_EXPIRY):
                continue
            moved = pod if dry_run else to_garbage(pods, pod)
            if moved is not None:
                swept.append(moved)
        elif pod.state == "exited garbage":
            if now - (pod.marked() or now) >= grace_period:
                swept.append(pod)
        elif pod.state == "garbage":
            swept.append(pod)
    if mark_only:
        return result
    for pod in sorted({p.uuid: p for p in swept}.values(), key=lambda p: p.uuid):
        if dry_run:
            result.removed.append(pod.uuid)
            continue
        err = sweep(pods, pod, debug=debug)
        if err is None:
            result.removed.append(pod.uuid)
        else:
            result.kept.append((pod.uuid, err))
            if warn is not None:
                warn(f"pod {pod.uuid}: {err}")
    return result


def pods_lock_free(pod: Pod) -> bool:
    """Whether nobody holds the pod's lock (Pods.all() reports embryos as locked)."""
    try:
        fd = open_dir(pod.dir)
    except OSError:
        return False
    try:
        return try_flock(fd, exclusive=False)
    finally:
        os.close(fd)
