"""podkit-commit: a pod's changes as a new layer over its image (``docker commit``).

What the app wrote is in the pod's overlayfs upper directory
(``apps/APP/upper``, see podkit-stage1(7)), already in the form a layer needs:
new and changed files, 0/0 character devices for deletions, opaque
directories.  :func:`commit` writes it as a gzip layer
(:mod:`libaci.layerwrite`), adds it to the image the pod ran with a history
entry and the ``--change`` instructions (:mod:`libaci.imagewrite`), and
stores blob, extracted layer, config and manifest as one new image.

Placeholders: the stage1 creates mount points that the image may lack, in the
upper directory, so that it can mount over them: the empty files
``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf`` and the directories
``/proc``, ``/sys``, ``/dev``, ``/run``, ``/tmp`` (and nspawn ``/root``, ``/var``, ``/usr``),
the app's working directory and home, and the targets of volumes.  Such an
entry is left out of the layer when it is absent from the image and still
empty (a file of 0 bytes, a directory with nothing left in it), and so is a
directory the image lacks, or has with the same mode and owner, that held
nothing but placeholders (``/etc`` after ``/etc/hosts``).  An empty
``/etc/hosts`` that the app itself made is lost the same way.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shlex
import stat
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from libaci import layerwrite
from libaci.errors import ImageError, NotFoundError, PodStateError, UsageError
from libaci.fsutil import try_flock
from libaci.render import is_opaque, union_lookup
from libaci.store import ImageRecord, Store
from stage0.pods import Pod, Pods, open_dir

PLACEHOLDER_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")
PLACEHOLDER_DIRS = ("proc", "sys", "dev", "run", "tmp", "var", "root", "usr")
COMMITTABLE = ("running", "exited", "exited garbage")
BASE_DIGEST = "org.opencontainers.image.base.digest"
BASE_NAME = "org.opencontainers.image.base.name"


@attrs.frozen
class CommitOptions:
    name: str | None = None  # as the user gave it; normalised by commit()
    changes: tuple[str, ...] = ()
    message: str | None = None
    author: str | None = None
    epoch: int | None = None  # SOURCE_DATE_EPOCH / --timestamp: created, mtime clamp


def lookup(layers: Sequence[str], rel: str) -> os.stat_result | None:
    """lstat of ``rel`` in the union of extracted ``layers`` (bottom first), None if absent
    (see :func:`libaci.render.union_lookup`)."""
    found = union_lookup(layers, rel)
    return found[1] if found else None


def placeholder_candidates(manifest: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(files, directories) the stage1 may have created for the pod in ``manifest``."""
    files = set(PLACEHOLDER_FILES)
    dirs = set(PLACEHOLDER_DIRS)
    for ra in manifest.get("apps") or ():
        app = ra.get("app") or {}
        paths = [m.get("path") for m in ra.get("mounts") or ()]
        paths += [m.get("path") for m in app.get("mountPoints") or ()]
        paths.append(app.get("workingDirectory"))
        for env in app.get("environment") or ():
            if env.get("name") == "HOME":
                paths.append(env.get("value"))
        for p in paths:
            if isinstance(p, str) and p.startswith("/"):
                rel = posixpath.normpath(p).strip("/")
                if rel:  # a directory, or an empty file for a file volume
                    dirs.add(rel)
                    files.add(rel)
    return files, dirs


def placeholders(upper: str, layers: Sequence[str], files: set[str], dirs: set[str]) -> set[str]:
    """The paths of ``upper`` to leave out of the layer (see the module's rules)."""
    skip: set[str] = set()

    def entry(rel: str) -> os.stat_result | None:
        try:
            return os.lstat(os.path.join(upper, rel))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def emptied(rel: str) -> bool:
        try:
            names = os.listdir(os.path.join(upper, rel))
        except OSError:
            return False
        return all(f"{rel}/{n}" in skip for n in names)

    for rel in sorted(files, key=lambda p: -p.count("/")):
        st = entry(rel)
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_size == 0 \
                and lookup(layers, rel) is None:
            skip.add(rel)
    todo = sorted(dirs | {a for p in files | dirs for a in _ancestors(p)},
                  key=lambda p: -p.count("/"))
    for rel in todo:  # deepest first, so a parent sees its children's verdict
        st = entry(rel)
        if st is None or not stat.S_ISDIR(st.st_mode) or not emptied(rel):
            continue
        if is_opaque(os.path.join(upper, rel)):
            continue
        below = lookup(layers, rel)
        if below is None:
            if rel in dirs or os.listdir(os.path.join(upper, rel)):
                skip.add(rel)
        elif os.listdir(os.path.join(upper, rel)) and stat.S_ISDIR(below.st_mode) and \
                (below.st_mode, below.st_uid, below.st_gid) == (st.st_mode, st.st_uid, st.st_gid):
            skip.add(rel)  # only its mtime changed, by making the placeholders
    return skip


def _ancestors(rel: str) -> Iterator[str]:
    parts = rel.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


@contextlib.contextmanager
def _held(pods: Pods, pod: Pod) -> Iterator[tuple[Pod, str]]:
    """The pod as it is now, and its directory as a path that survives a rename (gc
    marking it); its lock is held shared while it is not running, so that rm and gc
    wait for the commit."""
    for _ in range(3):  # gc may rename it between our look and our open
        if pod.state not in COMMITTABLE:
            raise PodStateError(f"pod {pod.uuid} is {pod.state}; only a running or exited "
                                "pod can be committed")
        try:
            fd = open_dir(pod.dir)
            break
        except FileNotFoundError:
            moved = pods.get(pod.uuid)
            if moved is None:
                raise NotFoundError(f"pod {pod.uuid} is gone") from None
            pod = moved
    else:
        raise PodStateError(f"pod {pod.uuid} keeps moving; try again")
    try:
        if pod.state != "running" and not try_flock(fd, exclusive=False):
            raise PodStateError(f"pod {pod.uuid} is being removed")
        path = f"/proc/self/fd/{fd}"
        if not os.path.exists(os.path.join(path, "pod")):
            raise NotFoundError(f"pod {pod.uuid} is gone")
        yield pod, path
    finally:
        os.close(fd)


def _pod_manifest(path: str, uuid: str) -> dict[str, Any]:
    import json

    try:
        with open(os.path.join(path, "pod"), "rb") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise PodStateError(f"pod {uuid}: unreadable manifest: {e}") from None
    apps = doc.get("apps") if isinstance(doc, dict) else None
    if not apps or not isinstance(apps[0], dict):
        raise PodStateError(f"pod {uuid}: its manifest has no app")
    return doc


def _annotation(doc: dict[str, Any], name: str) -> str | None:
    for a in doc.get("annotations") or ():
        if isinstance(a, dict) and a.get("name") == name:
            return str(a.get("value"))
    return None


def normalize_name(name: str) -> str:
    from libaci import names as naming
    from libaci.reference import parse_docker_reference

    if "@" in name:
        raise UsageError(f"{name}: a new image cannot be named by digest (give NAME[:TAG])")
    parse_docker_reference(name)
    return naming.normalize(name)


def commit(store: Store, spec: str, opts: CommitOptions) -> ImageRecord:
    """Commit pod ``spec`` (UUID or prefix) as a new image; returns its record."""
    import time

    from libaci import imagewrite
    from libaci.store import ANN_CREATED, ANN_SOURCE

    changes = imagewrite.parse_changes(opts.changes)
    names = [normalize_name(opts.name)] if opts.name else []
    store.require()
    pods = Pods(store.path("pods"))
    pod = pods.find(spec)
    with _held(pods, pod) as (pod, pod_dir):
        doc = _pod_manifest(pod_dir, pod.uuid)
        ra = doc["apps"][0]
        app, image = ra.get("name"), ra.get("image") or {}
        if not isinstance(app, str) or not isinstance(image.get("id"), str):
            raise PodStateError(f"pod {pod.uuid}: its manifest names no app or image")
        try:
            rec = store.resolve(image["id"])
        except NotFoundError:
            raise NotFoundError(f"the image of pod {pod.uuid} ({image['id']}) is no longer "
                                "in the store") from None
        if rec.is_aci:
            raise ImageError(f"pod {pod.uuid} runs an appc image (ACI); podkit-commit "
                             "writes OCI and Docker images only")
        upper = os.path.join(pod_dir, "apps", app, "upper")
        if not os.path.isdir(upper):
            raise PodStateError(f"pod {pod.uuid} has no upper directory for app {app}")
        manifest = store.manifest(rec.descriptor.digest)
        config = store.config(manifest)
        layers = [x.path for x in store.extract_layers(rec)]
        files, dirs = placeholder_candidates(doc)
        skip = placeholders(upper, layers, files, dirs)
        root_st, base_st = os.lstat(upper), lookup(layers, "")
        root_entry = base_st is None or (root_st.st_mode, root_st.st_uid, root_st.st_gid) != \
            (base_st.st_mode, base_st.st_uid, base_st.st_gid)
        epoch = opts.epoch

        def write(out: Any) -> layerwrite.LayerResult:
            return layerwrite.write_overlay_layer(out, upper, skip=lambda rel, _st: rel in skip,
                                                  root_entry=root_entry, epoch=epoch)

        command = _annotation(doc, "podkit.io/command") or \
            shlex.join((ra.get("app") or {}).get("exec") or [])
        created = imagewrite.rfc3339(time.time() if epoch is None else epoch)
        with store.writing() as staging:
            layer = imagewrite.stage_layer(staging, write, config.diff_ids, layers[::-1])
            new_config = imagewrite.child_config(
                config.doc, layer.diff_id, created=created,
                created_by=f"podkit-commit {command}".rstrip(), comment=opts.message,
                author=opts.author, changes=changes)
            annotations = {BASE_DIGEST: str(rec.descriptor.digest)}
            if rec.names:
                annotations[BASE_NAME] = rec.names[0]
            desc = imagewrite.stage_image(staging, manifest, new_config, layer,
                                          annotations=annotations)
            top = desc.with_annotations({
                ANN_CREATED: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                ANN_SOURCE: f"pod:{pod.uuid}"})
            staging.commit(top, names)
    return ImageRecord(top, tuple(names))
