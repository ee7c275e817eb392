"""From an image and podkit-run's options to the pod manifest a stage1 reads.

The pod manifest is appc's PodManifest (``$POD/pod``): one app, its exec
line, user, environment, working directory, mount points and isolators, all
resolved here in stage0 so that every stage1 applies the same decisions.
The image's own settings come first (OCI/Docker config: Entrypoint, Cmd,
Env, WorkingDir, User, StopSignal; appc: the app section), then the
command line, as ``docker run`` and ``rkt run`` order them.  What appc has
no field for travels as annotations named ``podkit.io/...``, documented in
podkit-stage1(7).
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Any

import attrs

from libaci import appc
from libaci.errors import UsageError
from stage0.userdb import resolve

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Docker's default capability set (moby oci/caps/defaults.go), also rkt's appc default
DEFAULT_CAPS = ("CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
                "CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP",
                "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT")
ALL_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
            "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
            "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
            "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
            "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
            "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
            "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
            "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
            "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE")
SIGNALS = ("HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV",
           "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN",
           "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS")
ANN = "podkit.io/"
_APPNAME = re.compile(r"[^a-z0-9-]+")


@attrs.frozen
class RunOptions:
    """What podkit-run and podkit-prepare were asked for, checked for syntax."""

    args: tuple[str, ...] | None = None  # after "--": replaces Cmd (appc: exec args)
    exec: str | None = None  # replaces the Entrypoint (docker run --entrypoint)
    name: str | None = None
    env: tuple[str, ...] = ()  # K=V, in order; later wins
    env_files: tuple[str, ...] = ()
    user: str | None = None
    group: str | None = None
    working_dir: str | None = None
    hostname: str | None = None
    volumes: tuple[str, ...] = ()
    mounts: tuple[str, ...] = ()
    readonly_rootfs: bool = False
    caps_retain: tuple[str, ...] | None = None
    caps_remove: tuple[str, ...] = ()
    no_new_privileges: bool = False
    memory: str | None = None
    cpu: str | None = None
    pids_limit: int | None = None
    net: str = "host"
    interactive: bool = False
    ready: str = "pod"  # when the pod counts as ready (sd_notify READY=1): pod | app


# -- parsing of option values --------------------------------------------------------
def parse_memory(text: str) -> int:
    """Bytes from ``512m``/``1g``/``128Mi``/``1048576`` (k/m/g are binary, as docker has it)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?", text.strip().lower())
    if not m:
        raise UsageError(f"--memory: {text!r} is not a size (like 512m, 1g or 128Mi)")
    unit = (m.group(2) or "b").rstrip("b").rstrip("i") or "b"
    n = int(float(m.group(1)) * {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30,
                                 "t": 1 << 40}[unit])
    if n < 4 << 20:
        raise UsageError(f"--memory: {text!r} is below the minimum of 4m")
    return n


def parse_cpu(text: str) -> int:
    """Millicores from ``500m`` (Kubernetes) or ``1.5`` (docker --cpus)."""
    t = text.strip()
    try:
        milli = int(t[:-1]) if t.endswith("m") else round(float(t) * 1000)
    except ValueError:
        raise UsageError(f"--cpu: {text!r} is not a CPU amount (like 500m or 1.5)") from None
    if milli < 10:
        raise UsageError(f"--cpu: {text!r} is below the minimum of 10m")
    return milli


def parse_caps(text: str, opt: str) -> tuple[str, ...]:
    out = []
    for word in text.replace(" ", "").split(","):
        if not word:
            continue
        cap = word.upper() if word.upper().startswith("CAP_") else "CAP_" + word.upper()
        if cap not in ALL_CAPS:
            raise UsageError(f"{opt}: unknown capability {word!r}")
        out.append(cap)
    return tuple(out)


def parse_signal(text: str) -> str:
    t = text.strip().upper().removeprefix("SIG")
    if t.isdigit():
        n = int(t)
        if 1 <= n <= len(SIGNALS):
            return "SIG" + SIGNALS[n - 1]
    elif t in SIGNALS:
        return "SIG" + t
    raise UsageError(f"unknown stop signal {text!r}")


def _env_pair(text: str, where: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name):
        raise UsageError(f"{where}: {text!r} is not NAME=VALUE")
    return name, value


def read_env_file(path: str) -> list[tuple[str, str]]:
    """``K=V`` lines; blank lines and ``#``/``;`` comments skipped (rkt's format)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise UsageError(f"--set-env-file: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--set-env-file: cannot read {path}: {e}") from None
    return [_env_pair(ln.strip(), f"--set-env-file {path}") for ln in lines
            if ln.strip() and not ln.lstrip().startswith(("#", ";"))]


def parse_volume(text: str, index: int) -> tuple[appc.Volume, appc.Mount | None]:
    """rkt's ``NAME,kind=host,source=PATH[,readOnly=true]`` / ``NAME,kind=empty[,...]``,
    or docker's ``/host/path:/in/pod[:ro]`` (a host volume mounted at once)."""
    if "kind=" not in text and ":" in text and text.startswith("/"):
        src, _, rest = text.partition(":")
        target, _, flags = rest.partition(":")
        if not target.startswith("/") or flags not in ("", "ro", "rw"):
            raise UsageError(f"--volume: {text!r} is not /HOST:/POD[:ro]")
        src = os.path.abspath(src)
        if not os.path.exists(src):
            raise UsageError(f"--volume: {src} does not exist")
        name = f"vol{index}"
        vol = appc.Volume(name, "host", source=src, read_only=flags == "ro")
        return vol, appc.Mount(name, os.path.normpath(target))
    name, *fields = text.split(",")
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name):
        raise UsageError(f"--volume: {name!r} is not a volume name (lower case, digits, -)")
    kv: dict[str, str] = {}
    for f in fields:
        k, sep, v = f.partition("=")
        if not sep or k not in ("kind", "source", "readOnly", "recursive", "mode", "uid", "gid"):
            raise UsageError(f"--volume: bad field {f!r} in {text!r}")
        kv[k] = v
    kind = kv.get("kind")
    if kind not in ("host", "empty"):
        raise UsageError(f"--volume: {text!r} needs kind=host or kind=empty")

    def flag(k: str) -> bool | None:
        if k not in kv:
            return None
        if kv[k] not in ("true", "false"):
            raise UsageError(f"--volume: {k}={kv[k]} is not true or false")
        return kv[k] == "true"

    if kind == "host":
        src = kv.get("source", "")
        if not src.startswith("/"):
            raise UsageError(f"--volume: {text!r} needs source=/ABSOLUTE/PATH")
        if not os.path.exists(src):
            raise UsageError(f"--volume: {src} does not exist")
        return appc.Volume(name, "host", source=src, read_only=flag("readOnly"),
                           recursive=flag("recursive")), None
    for k in ("uid", "gid"):
        if k in kv and not kv[k].isdigit():
            raise UsageError(f"--volume: {k}={kv[k]} is not a number")
    if "mode" in kv and not re.fullmatch(r"0?[0-7]{3,4}", kv["mode"]):
        raise UsageError(f"--volume: mode={kv['mode']} is not an octal mode")
    return appc.Volume(name, "empty", read_only=flag("readOnly"), mode=kv.get("mode", "0755"),
                       uid=int(kv.get("uid", "0")), gid=int(kv.get("gid", "0"))), None


def parse_mount(text: str) -> appc.Mount:
    kv = dict(f.partition("=")[::2] for f in text.split(","))
    if set(kv) != {"volume", "target"} or not kv["target"].startswith("/"):
        raise UsageError(f"--mount: {text!r} is not volume=NAME,target=/PATH")
    return appc.Mount(kv["volume"], os.path.normpath(kv["target"]))


def app_name(image_name: str | None) -> str:
    """An appc app name from an image name: ``docker.io/library/nginx:1`` -> ``nginx``."""
    base = (image_name or "").rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0].lower()
    base = _APPNAME.sub("-", base).strip("-")
    return base or "app"


# -- the manifest --------------------------------------------------------------------
@attrs.frozen
class ImageApp:
    """What the image says about running it, whatever its format."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    user: str = ""
    group: str = ""
    stop_signal: str = "SIGTERM"
    mount_points: tuple[appc.MountPoint, ...] = ()
    isolators: tuple[appc.Isolator, ...] = ()


def from_oci_config(config: dict[str, Any]) -> ImageApp:
    c = config.get("config") or {}
    env = []
    for e in c.get("Env") or ():
        k, _, v = str(e).partition("=")
        if k:
            env.append((k, v))
    user, _, group = str(c.get("User") or "").partition(":")
    return ImageApp(
        entrypoint=tuple(c.get("Entrypoint") or ()), cmd=tuple(c.get("Cmd") or ()),
        env=tuple(env), working_dir=str(c.get("WorkingDir") or ""), user=user, group=group,
        stop_signal=parse_signal(c["StopSignal"]) if c.get("StopSignal") else "SIGTERM")


def from_appc_app(app: appc.App | None) -> ImageApp:
    if app is None:
        return ImageApp()
    exec_ = tuple(app.exec or ())
    return ImageApp(  # exec[0] stays; arguments after -- replace exec[1:]
        entrypoint=exec_[:1], cmd=exec_[1:],
        env=tuple((e.name, e.value) for e in app.environment or ()),
        working_dir=app.working_directory or "", user=app.user, group=app.group,
        mount_points=tuple(app.mount_points or ()), isolators=tuple(app.isolators or ()))


def build_manifest(*, image_name: str | None, image_id: str, image: ImageApp, layers: list[str],
                   opts: RunOptions, uuid: str) -> appc.PodManifest:
    """The PodManifest for one app; raises UsageError/NotFoundError on bad input."""
    if opts.exec is not None:
        argv = [opts.exec, *(opts.args or ())]
    else:
        argv = [*image.entrypoint, *(opts.args if opts.args is not None else image.cmd)]
    if not argv:
        raise UsageError("the image defines no command; give one after --, or --exec")
    ident = resolve(layers, opts.user if opts.user is not None else (image.user or None),
                    opts.group if opts.group is not None else (image.group or None))
    hostname = opts.hostname or uuid.replace("-", "")[:12]
    env: dict[str, str] = {"PATH": DEFAULT_PATH}
    env.update(image.env)
    for path in opts.env_files:
        env.update(read_env_file(path))
    for text in opts.env:
        k, v = _env_pair(text, "--set-env")
        env[k] = v
    env.setdefault("HOME", ident.home or "/")
    env.setdefault("HOSTNAME", hostname)
    if opts.interactive:
        env.setdefault("TERM", os.environ.get("TERM") or "xterm")
    workdir = opts.working_dir or image.working_dir or "/"
    if not workdir.startswith("/"):
        raise UsageError(f"--working-dir: {workdir!r} is not an absolute path")

    caps = set(opts.caps_retain if opts.caps_retain is not None else DEFAULT_CAPS)
    caps -= set(opts.caps_remove)
    isolators = [i for i in image.isolators
                 if i.name not in ("resource/memory", "resource/cpu",
                                   "os/linux/capabilities-retain-set",
                                   "os/linux/capabilities-remove-set")]
    isolators.append(appc.Isolator("os/linux/capabilities-retain-set",
                                   {"set": sorted(caps, key=ALL_CAPS.index)}))
    if opts.no_new_privileges:
        isolators.append(appc.Isolator("os/linux/no-new-privileges", True))
    if opts.memory is not None:
        isolators.append(appc.Isolator("resource/memory",
                                       {"limit": str(parse_memory(opts.memory))}))
    if opts.cpu is not None:
        isolators.append(appc.Isolator("resource/cpu", {"limit": f"{parse_cpu(opts.cpu)}m"}))

    volumes, mounts = [], []
    for i, text in enumerate(opts.volumes):
        vol, mount = parse_volume(text, i)
        volumes.append(vol)
        if mount is not None:
            mounts.append(mount)
    mounts.extend(parse_mount(m) for m in opts.mounts)
    names = {v.name for v in volumes}
    if len(names) != len(volumes):
        raise UsageError("--volume: two volumes have the same name")
    for m in mounts:
        if m.volume not in names:
            raise UsageError(f"--mount: no --volume named {m.volume!r}")
    for mp in image.mount_points:  # appc mount points without a volume: empty ones
        if mp.name not in names:
            volumes.append(appc.Volume(mp.name, "empty", mode="0755", uid=0, gid=0))
            mounts.append(appc.Mount(mp.name, mp.path))
            names.add(mp.name)

    annotations = [appc.NameValue(ANN + "stop-signal", image.stop_signal),
                   appc.NameValue(ANN + "hostname", hostname),
                   appc.NameValue(ANN + "net", opts.net),
                   appc.NameValue(ANN + "command", shlex.join(argv))]
    if opts.pids_limit is not None:
        annotations.append(appc.NameValue(ANN + "pids-limit", str(opts.pids_limit)))
    if opts.interactive:
        annotations.append(appc.NameValue(ANN + "interactive", "true"))
    annotations.append(appc.NameValue(ANN + "ready", opts.ready))
    app = appc.App(
        user=str(ident.uid), group=str(ident.gid), exec=tuple(argv),
        # the primary group too, as containerd and runc do since CVE-2023-25173: a group
        # that a file grants access to must not be lost when the process drops privileges
        supplementary_gids=tuple(dict.fromkeys((ident.gid, *ident.groups))),
        working_directory=workdir,
        environment=tuple(appc.NameValue(k, v) for k, v in env.items()),
        isolators=tuple(isolators))
    runtime = appc.RuntimeApp(
        name=opts.name or app_name(image_name),
        image=appc.RuntimeImage(name=image_name, id=image_id),
        app=app, read_only_root_fs=opts.readonly_rootfs or None,
        mounts=tuple(mounts) or None)
    return appc.PodManifest(apps=(runtime,), volumes=tuple(volumes) or None,
                            annotations=tuple(annotations))

