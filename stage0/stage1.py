"""Finding a stage1 and calling its entrypoints, as podkit-stage1(7) defines.

A stage1 is a folder holding ``manifest`` (an appc ImageManifest) and
``rootfs/``; the manifest's annotations name its entrypoints, paths inside
``rootfs`` (rkt's names: ``coreos.com/rkt/stage1/run``, ``enter``, ``stop``,
``gc``).  ``--stage1=NAME`` picks a built-in flavour (``nspawn``, ``fly``)
or one an operator declared in ``/etc/podkit/stage1.d/*.json``; a path picks a
folder.  Without ``--stage1``, the last ``"default": true`` declaration in
stage1.d wins, else ``nspawn``.  A pod remembers its stage1 (``$POD/stage1``),
so stop, enter and gc use the flavour the pod was started with.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import attrs

from libaci.errors import NotFoundError, UsageError

ANN_PREFIX = "coreos.com/rkt/stage1/"
ANN_VERSION = "coreos.com/rkt/stage1/interface-version"
ANN_PODKIT_VERSION = "podkit.io/stage1/interface-version"
ENTRYPOINTS = ("run", "enter", "stop", "gc")
INTERFACE_VERSION = 1  # podkit's; see podkit-stage1(7)
BUILTIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stage1")


def config_dir() -> str:
    return os.environ.get("PODKIT_CONFIG_DIR") or "/etc/podkit"


@attrs.frozen
class Stage1:
    name: str
    path: str  # the folder: manifest + rootfs/
    manifest: dict[str, Any] = attrs.field(eq=False)

    def annotation(self, name: str) -> str | None:
        for a in self.manifest.get("annotations") or ():
            if isinstance(a, dict) and a.get("name") == name:
                return str(a.get("value"))
        return None

    def entrypoint(self, which: str) -> str:
        rel = self.annotation(ANN_PREFIX + which)
        if not rel:
            raise NotFoundError(f"stage1 {self.name} has no {which} entrypoint")
        path = os.path.join(self.path, "rootfs", rel.lstrip("/"))
        if not os.access(path, os.X_OK):
            raise NotFoundError(f"stage1 {self.name}: {which} entrypoint {rel} is not an "
                                f"executable file in {self.path}/rootfs")
        return path


def load(path: str, name: str | None = None) -> Stage1:
    """The stage1 in folder ``path``; NotFoundError/UsageError when it is not one."""
    mpath = os.path.join(path, "manifest")
    try:
        with open(mpath, "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise NotFoundError(f"{path} is not a stage1 (no manifest in it)") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"stage1 manifest {mpath}: {e}") from None
    if not isinstance(doc, dict) or doc.get("acKind") != "ImageManifest":
        raise UsageError(f"stage1 manifest {mpath} is not an appc ImageManifest")
    s1 = Stage1(name or str(doc.get("name") or os.path.basename(path)),
                os.path.realpath(path), doc)
    s1.entrypoint("run")  # the one a stage1 cannot do without
    return s1


def declared() -> tuple[dict[str, str], str | None]:
    """Stage1s declared in stage1.d: ({name: location}, default name or None)."""
    names: dict[str, str] = {}
    default = None
    for path in sorted(glob.glob(os.path.join(config_dir(), "stage1.d", "*.json"))):
        try:
            with open(path, "rb") as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise UsageError(f"{path}: {e}") from None
        if not isinstance(doc, dict) or doc.get("podkitKind") != "stage1":
            raise UsageError(f"{path}: not a stage1 declaration "
                             '({"podkitKind": "stage1", "name": ..., ...})')
        name = doc.get("name")
        if not isinstance(name, str) or not name:
            raise UsageError(f"{path}: \"name\" is missing")
        location = doc.get("location")
        if location is not None:
            if not isinstance(location, str) or not location.startswith("/"):
                raise UsageError(f"{path}: \"location\" must be an absolute path")
            names[name] = location
        if doc.get("default") is True:
            default = name
    return names, default


def select(spec: str | None) -> Stage1:
    """The stage1 ``--stage1`` names (a flavour, a declared name or a folder)."""
    names, default = declared()
    spec = spec or default or "nspawn"
    if "/" in spec:
        return load(spec)
    if spec in names:
        return load(names[spec], spec)
    builtin = os.path.join(BUILTIN, spec)
    if os.path.isfile(os.path.join(builtin, "manifest")):
        return load(builtin, spec)
    known = sorted({*names, *(d for d in os.listdir(BUILTIN)
                              if os.path.isfile(os.path.join(BUILTIN, d, "manifest")))})
    raise NotFoundError(f"no stage1 named {spec!r} (known: {', '.join(known)}; "
                        "or give a folder path)")


def of_pod(pod_dir: str) -> Stage1:
    """The stage1 a pod was prepared with."""
    return load(os.path.join(pod_dir, "stage1"))


def attach(pod_dir: str, s1: Stage1) -> None:
    """Record the stage1 in the pod: ``stage1/manifest`` and ``stage1/rootfs``."""
    d = os.path.join(pod_dir, "stage1")
    os.mkdir(d, 0o755)
    with open(os.path.join(d, "manifest"), "w") as f:
        json.dump(s1.manifest, f)
    os.symlink(os.path.join(s1.path, "rootfs"), os.path.join(d, "rootfs"))


def exec_entrypoint(ep: str, args: Sequence[str], pod_dir: str, *,
                    env: dict[str, str] | None = None) -> NoReturn:
    """Replace this process with entrypoint ``ep``, in the pod directory.

    podkit's own flavours are Python scripts: they run in this interpreter
    (same PID, arguments, environment, working directory and descriptors as
    after an exec; no second interpreter to start, ~20 ms saved).  Any other
    stage1 is exec'ed.
    """
    os.chdir(pod_dir)
    sys.stdout.flush()
    sys.stderr.flush()
    environ = env if env is not None else dict(os.environ)
    if os.path.realpath(ep).startswith(BUILTIN + os.sep):
        import runpy

        os.environ.clear()
        os.environ.update(environ)
        sys.argv = [ep, *args]
        runpy.run_path(ep, run_name="__main__")  # ends with SystemExit(status)
        raise SystemExit(0)
    os.execve(ep, [ep, *args], environ)
