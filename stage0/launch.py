"""Preparing a pod and handing it to its stage1: what podkit-run does.

The order follows rkt's stage0: resolve the image (fetching it if the pull
policy allows), extract its layers on first use, create the pod in
``embryo`` under its lock, write the pod manifest and the per-app overlay
directories, move it to ``prepare``, then either stop there (``prepared``,
unlocked: podkit-prepare) or move it to ``run``, mount the rootfs and exec
the stage1's run entrypoint with the still-locked directory's descriptor in
``RKT_LOCK_FD``.  The rootfs is one overlay mount of the image's extracted
layers (bottom to top) with the pod's own upper directory, made in a mount
namespace private to the pod, so it costs the same for any image size and
vanishes with the pod's last process.
"""

from __future__ import annotations

import json
import os
from typing import NoReturn

from libaci import appc
from libaci.errors import NotFoundError, PodkitError, PodStateError, UsageError
from libaci.fsutil import atomic_write
from libaci.store import ImageRecord, Store
from stage0 import linux, podspec, stage1
from stage0.pods import Pods, try_flock

MAX_LAYERS = 500  # overlayfs' limit on lower directories


def image_app(store: Store, rec: ImageRecord) -> podspec.ImageApp:
    if rec.is_aci:
        from libaci.catalog import aci_manifest

        doc = aci_manifest(store, rec)
        return podspec.from_appc_app(appc.App.from_dict(dict(doc["app"]))
                                     if doc.get("app") else None)
    return podspec.from_oci_config(store.config(store.manifest(rec.descriptor.digest)).doc)


def _app_dirs(pod_dir: str, app: str, layers: list[str]) -> None:
    """``apps/APP/{upper,work,rootfs}`` and ``lower/N`` links to the layers (0 = bottom)."""
    d = os.path.join(pod_dir, "apps", app)
    for sub in ("upper", "work", "rootfs", "lower"):
        os.makedirs(os.path.join(d, sub), mode=0o755)
    for i, path in enumerate(layers):
        os.symlink(path, os.path.join(d, "lower", str(i)))


def prepare(store: Store, rec: ImageRecord, opts: podspec.RunOptions,
            s1: stage1.Stage1) -> tuple[str, str, int]:
    """A pod in ``prepare/``, still locked: (uuid, directory, lock fd)."""
    layers = store.extract_layers(rec)
    if len(layers) > MAX_LAYERS:
        raise UsageError(f"image {rec.short_id} has {len(layers)} layers; overlayfs mounts "
                         f"at most {MAX_LAYERS}")
    if any(x.whiteouts == "marker" for x in layers):
        raise PodStateError(f"image {rec.short_id} was extracted without privileges (its "
                            "whiteouts are marker files); remove it and fetch it again as root")
    return prepare_layers(store, [x.path for x in layers], image_app(store, rec), opts, s1,
                          image_id=rec.id, image_name=rec.names[0] if rec.names else None)


def prepare_layers(store: Store, layers: list[str], image: podspec.ImageApp,
                   opts: podspec.RunOptions, s1: stage1.Stage1, *, image_id: str,
                   image_name: str | None = None) -> tuple[str, str, int]:
    """Like :func:`prepare`, for a rootfs given as extracted layer directories
    (bottom first, at least one) and an :class:`~stage0.podspec.ImageApp`
    instead of an image in the store: podkit-build's single-use RUN pods."""
    if not layers or len(layers) > MAX_LAYERS:
        raise UsageError(f"a pod needs 1 to {MAX_LAYERS} layers, not {len(layers)}")
    pods = Pods(store.path("pods"))
    uuid, fd = pods.create()
    pod_dir = pods.dir("embryo", uuid)
    try:
        manifest = podspec.build_manifest(image_name=image_name, image_id=image_id,
                                          image=image, layers=layers, opts=opts, uuid=uuid)
        _app_dirs(pod_dir, manifest.apps[0].name, layers)
        for vol in manifest.volumes or ():
            if vol.kind == "empty":
                os.makedirs(os.path.join(pod_dir, "volumes", vol.name), mode=0o755)
        os.mkdir(os.path.join(pod_dir, "status"), 0o755)
        stage1.attach(pod_dir, s1)
        atomic_write(os.path.join(pod_dir, "pod"), manifest.to_json())
        pod_dir = pods.move(uuid, "embryo", "prepare")
    except BaseException:
        os.close(fd)
        _discard(pods, uuid)
        raise
    return uuid, pod_dir, fd


def _discard(pods: Pods, uuid: str) -> None:
    from libaci.fsutil import rmtree

    for where in ("embryo", "prepare"):
        path = pods.dir(where, uuid)
        if os.path.isdir(path):
            rmtree(path)


def finish_prepare(pods: Pods, uuid: str, fd: int) -> str:
    """podkit-prepare: ``prepare`` -> ``prepared``, unlocked."""
    path = pods.move(uuid, "prepare", "prepared")
    os.close(fd)
    return path


def claim_prepared(pods: Pods, uuid: str) -> tuple[str, int]:
    """podkit-run-prepared: lock a prepared pod and move it to ``run``; (dir, fd)."""
    pod = pods.get(uuid)
    if pod is None:
        raise NotFoundError(f"no pod {uuid}")
    if pod.where != "prepared":
        raise PodStateError(f"pod {uuid} is {pod.state}, not prepared")
    fd = os.open(pod.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if not try_flock(fd):
        os.close(fd)
        raise PodStateError(f"pod {uuid} is being started by another command")
    try:
        return pods.move(uuid, "prepared", "run"), fd
    except PodkitError:
        os.close(fd)
        raise


def mount_rootfs(pod_dir: str, manifest: appc.PodManifest) -> None:
    """One overlay per app: lower = the image's layers, upper = the pod's own dir.

    Always writable: the stage1 creates its mount points first, then makes the
    root read-only when the manifest says readOnlyRootFS.
    """
    linux.private_mount_namespace()
    for ra in manifest.apps:
        d = os.path.join(pod_dir, "apps", ra.name)
        n = len(os.listdir(os.path.join(d, "lower")))
        lower = ":".join(f"lower/{i}" for i in reversed(range(n)))
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.chdir(d)  # relative paths keep the options under one page for 500 layers
            linux.mount("overlay", "rootfs", "overlay", 0,
                        f"lowerdir={lower},upperdir=upper,workdir=work")
        except OSError as e:
            raise PodStateError(f"cannot mount the rootfs of app {ra.name}: {e.strerror}") \
                from None
        finally:
            os.fchdir(cwd)
            os.close(cwd)


def read_manifest(pod_dir: str) -> appc.PodManifest:
    with open(os.path.join(pod_dir, "pod"), "rb") as f:
        return appc.PodManifest.from_dict(json.load(f))


def exec_run(pod_dir: str, uuid: str, fd: int, *, debug: bool = False) -> NoReturn:
    """Mount the rootfs and become the stage1's run entrypoint."""
    manifest = read_manifest(pod_dir)
    s1 = stage1.of_pod(pod_dir)
    ep = s1.entrypoint("run")
    mount_rootfs(pod_dir, manifest)
    net = manifest.annotation(podspec.ANN + "net") or "host"
    args = [f"--net={net}"]
    if debug:
        args.insert(0, "--debug")
    if manifest.annotation(podspec.ANN + "interactive") == "true":
        args.append("--interactive")
    hostname = manifest.annotation(podspec.ANN + "hostname")
    if hostname:
        args.append(f"--hostname={hostname}")
    args.append(uuid)
    os.set_inheritable(fd, True)
    env = dict(os.environ)
    env["RKT_LOCK_FD"] = str(fd)
    stage1.exec_entrypoint(ep, args, pod_dir, env=env)


def save_uuid(path: str | None, uuid: str) -> None:
    if path:
        atomic_write(path, (uuid + "\n").encode())

