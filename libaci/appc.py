"""appc 0.8.11 ImageManifest and PodManifest as attrs models.

Each model's ``from_dict`` pops the keys it knows and keeps the rest in
``extra``, which ``to_dict`` writes back, so documents from newer or foreign
tools round-trip.  Optional fields are ``None`` when absent and are written
only when set, so ``to_dict(from_dict(d)) == d`` for every well-formed ``d``.
Isolator values stay raw JSON.

:func:`parse_image_manifest` / :func:`parse_pod_manifest` are the boundary:
schema validation (``libaci.schema``) plus the checks JSON Schema cannot
express (unique names, the os/arch whitelist of appc ``types/labels.go``).
Converting OCI image configs lives in :mod:`libaci.appc_convert`.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from libaci.errors import ManifestError

AC_VERSION = "0.8.11"
IMAGE_MANIFEST_KIND = "ImageManifest"
POD_MANIFEST_KIND = "PodManifest"

# appc schema/types/labels.go (0.8.11): the os/arch combinations an ACE accepts.
VALID_OS_ARCH: dict[str, tuple[str, ...]] = {
    "linux": ("amd64", "i386", "aarch64", "aarch64_be", "armv6l", "armv7l", "armv7b",
              "ppc64", "ppc64le", "s390x"),
    "freebsd": ("amd64", "i386", "arm"),
    "darwin": ("x86_64", "i386"),
}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z_0-9.\-]*\Z")


def _req(d: dict[str, Any], key: str, where: str) -> Any:
    try:
        return d.pop(key)
    except KeyError:
        raise ManifestError(f"{where}: missing {key!r}") from None


def _obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, Mapping):
        raise ManifestError(f"{where}: expected an object, got {type(v).__name__}")
    return dict(v)


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list | tuple):
        raise ManifestError(f"{where}: expected a list, got {type(v).__name__}")
    return list(v)


def _opt_tuple(v: Any, where: str) -> tuple[Any, ...] | None:
    return None if v is None else tuple(_list(v, where))


def _pop(d: dict[str, Any], key: str) -> Any:
    """Pop an optional field; an explicit null stays in ``d`` (the extras) to round-trip."""
    return d.pop(key) if d.get(key) is not None else None


def _merge(out: dict[str, Any], extra: dict[str, Any]) -> None:
    """Append the extras; set fields win over a null kept from the input."""
    for k, v in extra.items():
        out.setdefault(k, v)


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


# ---------------------------------------------------------------- small types


@attrs.frozen
class NameValue:
    """A ``{"name", "value"}`` pair: labels, annotations, environment variables."""

    name: str
    value: str
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "name/value pair") -> NameValue:
        d = _obj(d, where)
        return cls(_req(d, "name", where), _req(d, "value", where), d)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "value": self.value}
        _merge(out, self.extra)
        return out


Label = NameValue
Annotation = NameValue
EnvVar = NameValue


def _pairs(v: Any, where: str) -> tuple[NameValue, ...] | None:
    if v is None:
        return None
    return tuple(NameValue.from_dict(x, where) for x in _list(v, where))


def _pairs_out(pairs: tuple[NameValue, ...] | None) -> list[dict[str, Any]] | None:
    return None if pairs is None else [p.to_dict() for p in pairs]


def get_value(pairs: Iterable[NameValue] | None, name: str) -> str | None:
    """The value of the first pair called ``name`` in ``pairs``, else None."""
    for p in pairs or ():
        if p.name == name:
            return p.value
    return None


@attrs.frozen
class EventHandler:
    name: str  # "pre-start" | "post-stop"
    exec: tuple[str, ...]
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EventHandler:
        d = _obj(d, "eventHandler")
        return cls(_req(d, "name", "eventHandler"),
                   tuple(_list(_req(d, "exec", "eventHandler"), "eventHandler exec")), d)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "exec": list(self.exec)}
        _merge(out, self.extra)
        return out


@attrs.frozen
class MountPoint:
    name: str
    path: str
    read_only: bool | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MountPoint:
        d = _obj(d, "mountPoint")
        return cls(_req(d, "name", "mountPoint"), _req(d, "path", "mountPoint"),
                   _pop(d, "readOnly"), d)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "path": self.path}
        _put(out, "readOnly", self.read_only)
        _merge(out, self.extra)
        return out


@attrs.frozen
class Port:
    name: str
    protocol: str
    port: int
    count: int | None = None  # absent means 1
    socket_activated: bool | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Port:
        d = _obj(d, "port")
        return cls(_req(d, "name", "port"), _req(d, "protocol", "port"),
                   _req(d, "port", "port"), _pop(d, "count"),
                   _pop(d, "socketActivated"), d)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "protocol": self.protocol, "port": self.port}
        _put(out, "count", self.count)
        _put(out, "socketActivated", self.socket_activated)
        _merge(out, self.extra)
        return out


@attrs.frozen
class Isolator:
    """``name`` plus ``value`` kept as raw JSON (interpreted by stage1)."""

    name: str
    value: Any = attrs.field(hash=False)
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Isolator:
        d = _obj(d, "isolator")
        return cls(_req(d, "name", "isolator"), _req(d, "value", "isolator"), d)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "value": self.value}
        _merge(out, self.extra)
        return out


def _isolators(v: Any) -> tuple[Isolator, ...] | None:
    return None if v is None else tuple(Isolator.from_dict(x) for x in _list(v, "isolators"))


def _str_map(v: Any, where: str) -> dict[str, str] | None:
    return None if v is None else _obj(v, where)


# ------------------------------------------------------------------------ App


@attrs.frozen
class App:
    """The ``app`` object of an image manifest (or its override in a pod)."""

    user: str
    group: str
    exec: tuple[str, ...] | None = None
    event_handlers: tuple[EventHandler, ...] | None = None
    supplementary_gids: tuple[int, ...] | None = None
    working_directory: str | None = None
    environment: tuple[NameValue, ...] | None = None
    mount_points: tuple[MountPoint, ...] | None = None
    ports: tuple[Port, ...] | None = None
    isolators: tuple[Isolator, ...] | None = None
    user_annotations: dict[str, str] | None = attrs.field(default=None, hash=False)
    user_labels: dict[str, str] | None = attrs.field(default=None, hash=False)
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> App:
        d = _obj(d, "app")
        ex = d.pop("exec", None)  # required, but Go writes a nil exec as null
        eh = _pop(d, "eventHandlers")
        mps = _pop(d, "mountPoints")
        ports = _pop(d, "ports")
        return cls(
            user=_req(d, "user", "app"),
            group=_req(d, "group", "app"),
            exec=_opt_tuple(ex, "app exec"),
            event_handlers=None if eh is None else tuple(
                EventHandler.from_dict(x) for x in _list(eh, "eventHandlers")),
            supplementary_gids=_opt_tuple(_pop(d, "supplementaryGIDs"), "supplementaryGIDs"),
            working_directory=_pop(d, "workingDirectory"),
            environment=_pairs(_pop(d, "environment"), "environment"),
            mount_points=None if mps is None else tuple(
                MountPoint.from_dict(x) for x in _list(mps, "mountPoints")),
            ports=None if ports is None else tuple(
                Port.from_dict(x) for x in _list(ports, "ports")),
            isolators=_isolators(_pop(d, "isolators")),
            user_annotations=_str_map(_pop(d, "userAnnotations"), "userAnnotations"),
            user_labels=_str_map(_pop(d, "userLabels"), "userLabels"),
            extra=d,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["exec"] = None if self.exec is None else list(self.exec)
        _put(out, "eventHandlers", None if self.event_handlers is None
             else [e.to_dict() for e in self.event_handlers])
        out["user"] = self.user
        out["group"] = self.group
        _put(out, "supplementaryGIDs",
             None if self.supplementary_gids is None else list(self.supplementary_gids))
        _put(out, "workingDirectory", self.working_directory)
        _put(out, "environment", _pairs_out(self.environment))
        _put(out, "mountPoints", None if self.mount_points is None
             else [m.to_dict() for m in self.mount_points])
        _put(out, "ports", None if self.ports is None else [p.to_dict() for p in self.ports])
        _put(out, "isolators", None if self.isolators is None
             else [i.to_dict() for i in self.isolators])
        _put(out, "userAnnotations", None if self.user_annotations is None
             else dict(self.user_annotations))
        _put(out, "userLabels", None if self.user_labels is None else dict(self.user_labels))
        _merge(out, self.extra)
        return out

    def env(self, name: str) -> str | None:
        return get_value(self.environment, name)

    def event_handler(self, name: str) -> EventHandler | None:
        for e in self.event_handlers or ():
            if e.name == name:
                return e
        return None


# -------------------------------------------------------------- ImageManifest


@attrs.frozen
class Dependency:
    image_name: str
    image_id: str | None = None
    labels: tuple[NameValue, ...] | None = None
    size: int | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Dependency:
        d = _obj(d, "dependency")
        return cls(_req(d, "imageName", "dependency"), _pop(d, "imageID"),
                   _pairs(_pop(d, "labels"), "dependency labels"), _pop(d, "size"), d)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"imageName": self.image_name}
        _put(out, "imageID", self.image_id)
        _put(out, "labels", _pairs_out(self.labels))
        _put(out, "size", self.size)
        _merge(out, self.extra)
        return out


def _to_json(d: dict[str, Any]) -> bytes:
    try:
        return json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # lone surrogates: keep them as \u escapes
        return json.dumps(d, separators=(",", ":")).encode()


@attrs.frozen
class ImageManifest:
    name: str
    ac_version: str = AC_VERSION
    ac_kind: str = IMAGE_MANIFEST_KIND
    labels: tuple[NameValue, ...] | None = None
    app: App | None = None
    annotations: tuple[NameValue, ...] | None = None
    dependencies: tuple[Dependency, ...] | None = None
    path_whitelist: tuple[str, ...] | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ImageManifest:
        d = _obj(d, "image manifest")
        app = _pop(d, "app")
        deps = _pop(d, "dependencies")
        return cls(
            ac_kind=_req(d, "acKind", "image manifest"),
            ac_version=_req(d, "acVersion", "image manifest"),
            name=_req(d, "name", "image manifest"),
            labels=_pairs(_pop(d, "labels"), "labels"),
            app=None if app is None else App.from_dict(app),
            annotations=_pairs(_pop(d, "annotations"), "annotations"),
            dependencies=None if deps is None else tuple(
                Dependency.from_dict(x) for x in _list(deps, "dependencies")),
            path_whitelist=_opt_tuple(_pop(d, "pathWhitelist"), "pathWhitelist"),
            extra=d,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"acKind": self.ac_kind, "acVersion": self.ac_version,
                               "name": self.name}
        _put(out, "labels", _pairs_out(self.labels))
        _put(out, "app", None if self.app is None else self.app.to_dict())
        _put(out, "annotations", _pairs_out(self.annotations))
        _put(out, "dependencies", None if self.dependencies is None
             else [x.to_dict() for x in self.dependencies])
        _put(out, "pathWhitelist",
             None if self.path_whitelist is None else list(self.path_whitelist))
        _merge(out, self.extra)
        return out

    def to_json(self) -> bytes:
        """Compact JSON in a stable field order (the Go struct order), UTF-8."""
        return _to_json(self.to_dict())

    def label(self, name: str) -> str | None:
        return get_value(self.labels, name)

    def annotation(self, name: str) -> str | None:
        return get_value(self.annotations, name)

    @property
    def version(self) -> str | None:
        return self.label("version")

    @property
    def os(self) -> str | None:
        return self.label("os")

    @property
    def arch(self) -> str | None:
        return self.label("arch")


# ---------------------------------------------------------------- PodManifest


@attrs.frozen
class RuntimeImage:
    id: str
    name: str | None = None
    labels: tuple[NameValue, ...] | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RuntimeImage:
        d = _obj(d, "app image")
        name = _pop(d, "name")
        return cls(_req(d, "id", "app image"), name,
                   _pairs(_pop(d, "labels"), "app image labels"), d)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "name", self.name)
        out["id"] = self.id
        _put(out, "labels", _pairs_out(self.labels))
        _merge(out, self.extra)
        return out


@attrs.frozen
class Volume:
    name: str
    kind: str  # "host" | "empty"
    source: str | None = None
    read_only: bool | None = None
    recursive: bool | None = None
    mode: str | None = None
    uid: int | None = None
    gid: int | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Volume:
        d = _obj(d, "volume")
        return cls(_req(d, "name", "volume"), _req(d, "kind", "volume"),
                   _pop(d, "source"), _pop(d, "readOnly"), _pop(d, "recursive"),
                   _pop(d, "mode"), _pop(d, "uid"), _pop(d, "gid"), d)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        _put(out, "source", self.source)
        _put(out, "readOnly", self.read_only)
        _put(out, "recursive", self.recursive)
        _put(out, "mode", self.mode)
        _put(out, "uid", self.uid)
        _put(out, "gid", self.gid)
        _merge(out, self.extra)
        return out


@attrs.frozen
class Mount:
    volume: str
    path: str
    app_volume: Volume | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Mount:
        d = _obj(d, "mount")
        av = _pop(d, "appVolume")
        return cls(_req(d, "volume", "mount"), _req(d, "path", "mount"),
                   None if av is None else Volume.from_dict(av), d)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"volume": self.volume, "path": self.path}
        _put(out, "appVolume", None if self.app_volume is None else self.app_volume.to_dict())
        _merge(out, self.extra)
        return out


@attrs.frozen
class RuntimeApp:
    name: str
    image: RuntimeImage
    app: App | None = None
    read_only_root_fs: bool | None = None
    mounts: tuple[Mount, ...] | None = None
    annotations: tuple[NameValue, ...] | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RuntimeApp:
        d = _obj(d, "pod app")
        app = _pop(d, "app")
        mounts = _pop(d, "mounts")
        return cls(
            name=_req(d, "name", "pod app"),
            image=RuntimeImage.from_dict(_req(d, "image", "pod app")),
            app=None if app is None else App.from_dict(app),
            read_only_root_fs=_pop(d, "readOnlyRootFS"),
            mounts=None if mounts is None else tuple(
                Mount.from_dict(x) for x in _list(mounts, "mounts")),
            annotations=_pairs(_pop(d, "annotations"), "app annotations"),
            extra=d,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "image": self.image.to_dict()}
        _put(out, "app", None if self.app is None else self.app.to_dict())
        _put(out, "readOnlyRootFS", self.read_only_root_fs)
        _put(out, "mounts", None if self.mounts is None else [m.to_dict() for m in self.mounts])
        _put(out, "annotations", _pairs_out(self.annotations))
        _merge(out, self.extra)
        return out


@attrs.frozen
class ExposedPort:
    """A pod-level port forwarded from the host."""

    name: str
    host_port: int
    host_ip: str | None = None
    pod_port: Port | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExposedPort:
        d = _obj(d, "pod port")
        pp = _pop(d, "podPort")
        return cls(_req(d, "name", "pod port"), _req(d, "hostPort", "pod port"),
                   _pop(d, "hostIP"), None if pp is None else Port.from_dict(pp), d)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "hostPort": self.host_port}
        _put(out, "hostIP", self.host_ip)
        _put(out, "podPort", None if self.pod_port is None else self.pod_port.to_dict())
        _merge(out, self.extra)
        return out


@attrs.frozen
class PodManifest:
    apps: tuple[RuntimeApp, ...] = ()
    ac_version: str = AC_VERSION
    ac_kind: str = POD_MANIFEST_KIND
    volumes: tuple[Volume, ...] | None = None
    isolators: tuple[Isolator, ...] | None = None
    annotations: tuple[NameValue, ...] | None = None
    ports: tuple[ExposedPort, ...] | None = None
    user_annotations: dict[str, str] | None = attrs.field(default=None, hash=False)
    user_labels: dict[str, str] | None = attrs.field(default=None, hash=False)
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PodManifest:
        d = _obj(d, "pod manifest")
        vols = _pop(d, "volumes")
        ports = _pop(d, "ports")
        return cls(
            ac_version=_req(d, "acVersion", "pod manifest"),
            ac_kind=_req(d, "acKind", "pod manifest"),
            apps=tuple(RuntimeApp.from_dict(x)
                       for x in _list(_req(d, "apps", "pod manifest") or [], "apps")),
            volumes=None if vols is None else tuple(
                Volume.from_dict(x) for x in _list(vols, "volumes")),
            isolators=_isolators(_pop(d, "isolators")),
            annotations=_pairs(_pop(d, "annotations"), "annotations"),
            ports=None if ports is None else tuple(
                ExposedPort.from_dict(x) for x in _list(ports, "ports")),
            user_annotations=_str_map(_pop(d, "userAnnotations"), "userAnnotations"),
            user_labels=_str_map(_pop(d, "userLabels"), "userLabels"),
            extra=d,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"acVersion": self.ac_version, "acKind": self.ac_kind,
                               "apps": [a.to_dict() for a in self.apps]}
        _put(out, "volumes", None if self.volumes is None
             else [v.to_dict() for v in self.volumes])
        _put(out, "isolators", None if self.isolators is None
             else [i.to_dict() for i in self.isolators])
        _put(out, "annotations", _pairs_out(self.annotations))
        _put(out, "ports", None if self.ports is None else [p.to_dict() for p in self.ports])
        _put(out, "userAnnotations",
             None if self.user_annotations is None else dict(self.user_annotations))
        _put(out, "userLabels", None if self.user_labels is None else dict(self.user_labels))
        _merge(out, self.extra)
        return out

    def to_json(self) -> bytes:
        return _to_json(self.to_dict())

    def app(self, name: str) -> RuntimeApp | None:
        for a in self.apps:
            if a.name == name:
                return a
        return None

    def annotation(self, name: str) -> str | None:
        return get_value(self.annotations, name)


# ----------------------------------------------------------- semantic checks


def _unique(names: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ManifestError(f"duplicate {what} {_q(n)}")
        seen.add(n)


def check_labels(labels: Iterable[NameValue] | None, where: str = "labels") -> None:
    """appc ``Labels.assertValid``: unique, none called "name", a valid os/arch pair."""
    seen: dict[str, str] = {}
    for lbl in labels or ():
        if lbl.name == "name":
            raise ManifestError(f'{where}: invalid label name "name" (use the image name)')
        if lbl.name in seen:
            raise ManifestError(f"{where}: duplicate label {_q(lbl.name)}")
        seen[lbl.name] = lbl.value
    os_name = seen.get("os")
    if os_name is None:
        return
    archs = VALID_OS_ARCH.get(os_name)
    if archs is None:
        raise ManifestError(
            f"{where}: bad os {_q(os_name)} (must be one of: {', '.join(sorted(VALID_OS_ARCH))})")
    arch = seen.get("arch")
    if arch is not None and arch not in archs:
        raise ManifestError(
            f"{where}: bad arch {_q(arch)} for {os_name} (must be one of: {', '.join(archs)})")


def _check_app(app: App, where: str) -> None:
    env = app.environment or ()
    for e in env:
        if not _ENV_NAME.match(e.name):
            raise ManifestError(f"{where}: invalid environment variable name {_q(e.name)}")
    try:
        _unique((e.name for e in env), "environment variable")
        _unique((h.name for h in app.event_handlers or ()), "eventHandler")
        _unique((m.name for m in app.mount_points or ()), "mountPoint")
        _unique((p.name for p in app.ports or ()), "port")
    except ManifestError as e:
        raise ManifestError(f"{where}: {e}") from None
    for h in app.event_handlers or ():
        if h.name not in ("pre-start", "post-stop"):
            raise ManifestError(f"{where}: unknown eventHandler {_q(h.name)}"
                                " (must be pre-start or post-stop)")
    wd = app.working_directory
    if wd and not posixpath.isabs(wd):
        raise ManifestError(f"{where}: workingDirectory {_q(wd)} must be an absolute path")
    for p in app.ports or ():
        count = p.count or 1  # Go writes an unset count as 0 and reads it as 1
        if not 1 <= p.port <= 65535 or count < 1 or p.port + count > 65536:
            raise ManifestError(f"{where}: port {_q(p.name)}: range must lie within 1-65535")


def check_image_manifest(m: ImageManifest) -> None:
    """The rules of appc ``schema/image.go`` that JSON Schema cannot express."""
    where = f"image manifest {m.name}"
    if m.ac_kind != IMAGE_MANIFEST_KIND:
        raise ManifestError(f"{where}: acKind must be {IMAGE_MANIFEST_KIND}, not {_q(m.ac_kind)}")
    check_labels(m.labels, f"{where}: labels")
    try:
        _unique((a.name for a in m.annotations or ()), "annotation")
    except ManifestError as e:
        raise ManifestError(f"{where}: {e}") from None
    if m.app is not None:
        _check_app(m.app, f"{where}: app")
    for dep in m.dependencies or ():
        check_labels(dep.labels, f"{where}: dependency {dep.image_name} labels")


def check_pod_manifest(m: PodManifest) -> None:
    """The rules of appc ``schema/pod.go`` that JSON Schema cannot express."""
    where = "pod manifest"
    if m.ac_kind != POD_MANIFEST_KIND:
        raise ManifestError(f"{where}: acKind must be {POD_MANIFEST_KIND}, not {_q(m.ac_kind)}")
    try:
        _unique((a.name for a in m.apps), "app")
        _unique((v.name for v in m.volumes or ()), "volume")
        _unique((a.name for a in m.annotations or ()), "annotation")
        _unique((p.name for p in m.ports or ()), "port")
    except ManifestError as e:
        raise ManifestError(f"{where}: {e}") from None
    for v in m.volumes or ():
        _check_volume(v, f"{where}: volume {v.name}")
    for ra in m.apps:
        aw = f"{where}: app {ra.name}"
        check_labels(ra.image.labels, f"{aw}: image labels")
        if ra.app is not None:
            _check_app(ra.app, aw)
        for mnt in ra.mounts or ():
            if mnt.app_volume is not None:
                _check_volume(mnt.app_volume, f"{aw}: mount {mnt.volume}")
        try:
            _unique((a.name for a in ra.annotations or ()), "annotation")
        except ManifestError as e:
            raise ManifestError(f"{aw}: {e}") from None


def _check_volume(v: Volume, where: str) -> None:
    if v.kind == "host":
        if not v.source or not posixpath.isabs(v.source):
            raise ManifestError(f"{where}: a host volume needs an absolute source path")
    elif v.kind == "empty":
        if v.source:
            raise ManifestError(f"{where}: an empty volume takes no source")
    else:
        raise ManifestError(f'{where}: unknown kind {_q(v.kind)} (must be "host" or "empty")')


# ------------------------------------------------------------------- parsing


def _load(raw: bytes, schema: str, what: str, validate: bool) -> Any:
    if validate:
        from libaci.schema import load_json

        return load_json(raw, schema)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{what}: invalid JSON: {e}") from None


def _build(cls: Any, doc: Any, what: str) -> Any:
    try:
        return cls.from_dict(doc)
    except ManifestError as e:
        if str(e).startswith(what):
            raise
        raise ManifestError(f"{what}: {e}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise ManifestError(f"{what}: malformed: {e}") from None


def parse_image_manifest(raw: bytes, *, validate: bool = True) -> ImageManifest:
    """Parse an appc image manifest; with ``validate`` check schema and semantics.

    ``validate=False`` (documents already in the store) only parses JSON and
    does not import jsonschema.
    """
    doc = _load(raw, "appc-image-manifest", "image manifest", validate)
    m: ImageManifest = _build(ImageManifest, doc, "image manifest")
    if validate:
        check_image_manifest(m)
    return m


def parse_pod_manifest(raw: bytes, *, validate: bool = True) -> PodManifest:
    """Parse an appc pod manifest; with ``validate`` check schema and semantics."""
    doc = _load(raw, "appc-pod-manifest", "pod manifest", validate)
    m: PodManifest = _build(PodManifest, doc, "pod manifest")
    if validate:
        check_pod_manifest(m)
    return m
