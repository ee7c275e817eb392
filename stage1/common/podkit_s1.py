"""What podkit's own stage1 flavours share: the pod, cgroups, Linux calls, enter.

A stage1 is a separate program behind podkit-stage1(7); it may not import
podkit (it runs under the system's ``python3 -I -S`` for a fast start), so
this module uses the standard library only.  Both flavours (nspawn, fly)
link it into their ``rootfs/``.

Cgroups: a pod gets ``podkit-<uuid>`` below the stage1's own cgroup in
every mounted hierarchy (cgroup v1 controllers, ``name=systemd``, and the v2
tree), so that under a systemd service the pod stays inside the unit's
cgroup, and a sandboxed caller's memory limit still covers the pod.  The
paths go to ``$POD/cgroup`` for stop, enter and gc.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_SET_PDEATHSIG = 1
CGROOT = "/sys/fs/cgroup"
LAST_CAP = 40

CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
        "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
        "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE")

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


class Stage1Error(Exception):
    """A one-line failure of the stage1 itself (exit status 1)."""


def fail(prog: str, msg: str, status: int = 1) -> None:
    print(f"{prog}: {msg}", file=sys.stderr)
    sys.exit(status)


def exit_now(status: int) -> None:
    """End the run entrypoint once the pod is over: flush and ``_exit``.

    Everything is written and closed by then (status file, logs, cgroups
    removed); the interpreter's finalization would only tear down modules and
    threads, 5-15 ms after every pod for nothing.
    """
    for f in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            f.flush()
    os._exit(status)


# -- Linux calls Python 3.11 lacks -----------------------------------------------------
def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    def b(s: str | None) -> bytes | None:
        return None if s is None else os.fsencode(s)

    _check(_libc.mount(b(source), b(target), b(fstype), ctypes.c_ulong(flags), b(data)),
           f"mount {target}")


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(os.fsencode(target), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new: str, old: str) -> None:
    _check(_libc.syscall(ctypes.c_long(155), os.fsencode(new), os.fsencode(old)), "pivot_root")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0),
                       ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl")


def restrict(caps: list[str], no_new_privs: bool) -> None:
    """Shrink the bounding set to ``caps`` and clear the inheritable and ambient sets."""
    keep = {CAPS.index(c) for c in caps if c in CAPS}
    for n in range(LAST_CAP + 1):
        if n not in keep:
            try:
                prctl(PR_CAPBSET_DROP, n)
            except OSError as e:
                if e.errno != 22:  # EINVAL: the kernel does not know this one
                    raise
    _clear_inheritable()
    if no_new_privs:
        prctl(PR_SET_NO_NEW_PRIVS, 1)


def _clear_inheritable() -> None:
    """capset() with the inheritable set emptied (ambient caps need inheritable ones)."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    hdr = Header(0x20080522, 0)
    data = (Data * 2)()
    _check(_libc.syscall(ctypes.c_long(125), ctypes.byref(hdr), data), "capget")
    if data[0].inheritable or data[1].inheritable:
        data[0].inheritable = data[1].inheritable = 0
        _check(_libc.syscall(ctypes.c_long(126), ctypes.byref(hdr), data), "capset")


def exit_code(status: int) -> int:
    """A wait status as a shell would report it: the code, or 128+N for signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


# -- the pod --------------------------------------------------------------------------
class Pod:
    """The pod directory (the current directory) and its manifest."""

    def __init__(self, path: str = ".") -> None:
        self.dir = os.path.abspath(path)
        with open(os.path.join(self.dir, "pod"), "rb") as f:
            self.doc: dict[str, Any] = json.load(f)
        self.app: dict[str, Any] = self.doc["apps"][0]
        self.name: str = self.app["name"]
        self.spec: dict[str, Any] = self.app.get("app") or {}

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    @property
    def rootfs(self) -> str:
        return self.path("apps", self.name, "rootfs")

    def annotation(self, name: str, default: str | None = None) -> str | None:
        for a in self.doc.get("annotations") or ():
            if a.get("name") == name:
                return str(a.get("value"))
        return default

    def isolator(self, name: str) -> Any:
        for i in self.spec.get("isolators") or ():
            if i.get("name") == name:
                return i.get("value")
        return None

    @property
    def caps(self) -> list[str]:
        value = self.isolator("os/linux/capabilities-retain-set") or {}
        return list(value.get("set") or ())

    @property
    def no_new_privs(self) -> bool:
        return self.isolator("os/linux/no-new-privileges") is True

    @property
    def env(self) -> dict[str, str]:
        return {e["name"]: e["value"] for e in self.spec.get("environment") or ()}

    @property
    def stop_signal(self) -> int:
        name = self.annotation("podkit.io/stop-signal", "SIGTERM") or "SIGTERM"
        return int(getattr(signal, name, signal.SIGTERM))

    def volumes(self) -> list[tuple[str, str, bool]]:
        """(host source, path in the pod, read-only) for each mount."""
        vols = {v["name"]: v for v in self.doc.get("volumes") or ()}
        out = []
        for m in self.app.get("mounts") or ():
            v = vols[m["volume"]]
            src = v["source"] if v["kind"] == "host" else self.path("volumes", v["name"])
            out.append((src, m["path"], bool(v.get("readOnly"))))
        return out

    def write(self, name: str, text: str) -> None:
        tmp = self.path(f".{name.replace('/', '_')}.tmp")
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.rename(tmp, self.path(name))

    def write_status(self, code: int) -> None:
        self.write(os.path.join("status", self.name), str(code))


# -- cgroups --------------------------------------------------------------------------
def own_cgroups() -> list[tuple[str, str]]:
    """(mount dir, path) of this process in each mounted hierarchy."""
    out = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls == "":
                for d in (os.path.join(CGROOT, "unified"), CGROOT):
                    if os.path.exists(os.path.join(d, "cgroup.controllers")):
                        out.append((d, path))
                        break
                continue
            name = ctrls.removeprefix("name=")
            if name == "cpuset":  # a child needs cpus and mems set first; not ours to manage
                continue
            d = os.path.join(CGROOT, name)
            if not os.path.isdir(d):
                d = os.path.join(CGROOT, ctrls)
            if os.path.isdir(d):
                out.append((d, path))
    return out


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def create_cgroups(pod: Pod, uuid: str, overhead: int = 0) -> list[str]:
    """``podkit-<uuid>`` in every hierarchy, limits applied; :func:`join` moves a process in.

    The stage1's own process stays outside, so a memory limit never picks the
    supervisor as the OOM victim and it can always record the exit status.
    ``overhead`` processes of the stage1's own that live in the cgroup (nspawn)
    are added to the pids limit, so the app gets the number it asked for.
    """
    made: list[str] = []
    mem = pod.isolator("resource/memory")
    cpu = pod.isolator("resource/cpu")
    pids = pod.annotation("podkit.io/pids-limit")
    limits_done: set[str] = set()
    for mnt, path in own_cgroups():
        d = os.path.join(mnt, path.lstrip("/"), f"podkit-{uuid}")
        os.makedirs(d, exist_ok=True)
        made.append(d)
        files = set(os.listdir(d))
        if mem and "memory.limit_in_bytes" in files:
            _write(os.path.join(d, "memory.limit_in_bytes"), mem["limit"])
            if "memory.memsw.limit_in_bytes" in files:
                _write(os.path.join(d, "memory.memsw.limit_in_bytes"), mem["limit"])
            limits_done.add("memory")
        if mem and "memory.max" in files:
            _write(os.path.join(d, "memory.max"), mem["limit"])
            if "memory.swap.max" in files:
                _write(os.path.join(d, "memory.swap.max"), "0")
            limits_done.add("memory")
        if pids and "pids.max" in files:
            _write(os.path.join(d, "pids.max"), str(int(pids) + overhead))
            limits_done.add("pids")
        if cpu and "cpu.cfs_quota_us" in files:
            _write(os.path.join(d, "cpu.cfs_period_us"), "100000")
            _write(os.path.join(d, "cpu.cfs_quota_us"), str(int(cpu["limit"].rstrip("m")) * 100))
            limits_done.add("cpu")
        if cpu and "cpu.max" in files:
            _write(os.path.join(d, "cpu.max"), f"{int(cpu['limit'].rstrip('m')) * 100} 100000")
            limits_done.add("cpu")
    pod.write("cgroup", "\n".join(made))
    for what, asked in (("memory", mem), ("cpu", cpu), ("pids", pids)):
        if asked and what not in limits_done:
            raise Stage1Error(f"cannot apply the {what} limit: no {what} controller "
                              "available to this process")
    return made


def join(made: list[str]) -> None:
    """Move this process into the pod's cgroups (in a child, before exec)."""
    pid = str(os.getpid())
    for d in made:
        _write(os.path.join(d, "cgroup.procs"), pid)


def leave_cgroups(made: list[str]) -> None:
    """Remove the pod's cgroups once its processes are gone (depth first)."""
    remove_cgroups(made)


def remove_cgroups(made: list[str], patience: float = 2.0) -> bool:
    """rmdir each tree bottom-up (nspawn leaves payload/ and supervisor/ dirs); True if gone.

    A cgroup v1 directory stays busy (EBUSY) until its last task is gone, and
    right after a pod ends its processes may still be on their way out: killed
    by ``stop --force`` or gc, or by the kernel with the pod's PID 1.  Busy
    directories are retried for up to ``patience`` seconds.
    """
    deadline = time.monotonic() + patience
    left = list(made)
    while True:
        busy = []
        for top in left:
            for root, _, _ in sorted(os.walk(top, topdown=False), key=lambda t: -len(t[0])):
                try:
                    os.rmdir(root)
                except FileNotFoundError:
                    pass
                except OSError:
                    busy.append(top)
                    break
        if not busy or time.monotonic() >= deadline:
            return not busy
        left = busy
        time.sleep(0.02)


def cgroup_pids(made: list[str]) -> set[int]:
    pids: set[int] = set()
    for top in made:
        for root, _, files in os.walk(top):
            if "cgroup.procs" in files:
                try:
                    with open(os.path.join(root, "cgroup.procs")) as f:
                        pids.update(int(x) for x in f.read().split())
                except OSError:
                    pass
    return pids


def recorded_cgroups(pod_dir: str = ".") -> list[str]:
    try:
        with open(os.path.join(pod_dir, "cgroup")) as f:
            return [x for x in f.read().split("\n") if x.startswith(CGROOT + "/")
                    and "/podkit-" in x and ".." not in x]
    except OSError:
        return []


def kill_cgroups(made: list[str], sig: int = signal.SIGKILL) -> None:
    for _ in range(50):
        pids = cgroup_pids(made) - {os.getpid()}
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(0.02)


# -- enter ----------------------------------------------------------------------------
NAMESPACES = (("cgroup", CLONE_NEWCGROUP), ("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS),
              ("net", CLONE_NEWNET), ("pid", CLONE_NEWPID), ("mnt", CLONE_NEWNS))


def enter(prog: str, argv: list[str]) -> None:
    """The enter entrypoint: ``--pid=PID --appname=APP -- CMD [ARG...]``."""
    pid, app, cmd = None, None, []
    for i, a in enumerate(argv):
        if a == "--":
            cmd = argv[i + 1:]
            break
        if a.startswith("--pid="):
            pid = int(a[6:])
        elif a.startswith("--appname="):
            app = a[10:]
    if pid is None or not cmd:
        fail(prog, "usage: enter --pid=PID --appname=APP -- CMD [ARG...]", 2)
    pod = Pod()
    if app and app != pod.name:
        fail(prog, f"no app {app} in this pod")
    spec = pod.spec
    # the same cgroup as the app: where the pod's PID 1 is
    with open(f"/proc/{pid}/cgroup") as f:
        target = dict((ln.split(":", 2)[1], ln.rstrip("\n").split(":", 2)[2]) for ln in f)
    for mnt, _ in own_cgroups():
        key = ""
        name = os.path.basename(mnt)
        for k in target:
            if k.removeprefix("name=") == name or (k == "" and name in ("unified", "cgroup")):
                key = k
                break
        if key in target:
            with contextlib.suppress(OSError):
                _write(os.path.join(mnt, target[key].lstrip("/"), "cgroup.procs"),
                       str(os.getpid()))
    fds = []
    for ns, flag in NAMESPACES:
        path = f"/proc/{pid}/ns/{ns}"
        if os.path.exists(path) and os.stat(path).st_ino != os.stat(f"/proc/self/ns/{ns}").st_ino:
            fds.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), flag))
    root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for fd, flag in fds:
        setns(fd, flag)
        os.close(fd)
    os.fchdir(root)
    os.chroot(".")
    os.close(root)
    restrict(pod.caps, pod.no_new_privs)
    child = os.fork()  # a new PID namespace applies to children only
    if child == 0:
        try:
            os.setgroups([int(g) for g in spec.get("supplementaryGIDs") or ()])
            os.setgid(int(spec.get("group", "0")))
            os.setuid(int(spec.get("user", "0")))
            os.chdir(spec.get("workingDirectory") or "/")
            os.execvpe(cmd[0], cmd, pod.env)  # PATH of the app's environment
        except OSError as e:
            print(f"{prog}: {cmd[0]}: {e.strerror}", file=sys.stderr)
            os._exit(127 if e.errno == 2 else 126)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(s, lambda n, _f: os.kill(child, n))
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    sys.exit(exit_code(status))


# -- for stage1s that build the container themselves (stage1/fly) --------------------
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_STRICTATIME = 1 << 24
MNT_DETACH = 0x2
# the devices a pod may open (Docker's default list): null zero full random urandom,
# tty console ptmx, the pod's own pseudo-terminals; mknod of any node stays allowed
DEVICES_ALLOWED = ("c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                   "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm")


def parse_run_args(prog: str, argv: list[str]) -> tuple[dict[str, Any], str]:
    """``run [--debug] --net=host|none [--interactive] [--hostname=NAME] UUID``."""
    opts: dict[str, Any] = {"debug": False, "net": "host", "interactive": False,
                            "hostname": None}
    rest = []
    for a in argv:
        if a == "--debug":
            opts["debug"] = True
        elif a.startswith("--net="):
            opts["net"] = a[6:]
        elif a == "--interactive":
            opts["interactive"] = True
        elif a.startswith("--hostname="):
            opts["hostname"] = a[11:]
        elif a.startswith("--"):
            pass  # options of later interface versions: ignored, as rkt's stage1s did
        else:
            rest.append(a)
    if len(rest) != 1:
        fail(prog, "usage: run [--debug] --net=host|none [--interactive] [--hostname=NAME] UUID",
             2)
    if opts["net"] not in ("host", "none"):
        fail(prog, f"--net={opts['net']}: this stage1 supports host and none")
    return opts, rest[0]


def etc_files(pod: Pod, hostname: str, net: str) -> list[tuple[str, str]]:
    """(file in $POD/stage1-state/etc, path in the pod): hostname, hosts, resolv.conf."""
    d = pod.path("stage1-state", "etc")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "hostname"), "w") as f:
        f.write(hostname + "\n")
    with open(os.path.join(d, "hosts"), "w") as f:
        f.write(f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                f"127.0.1.1\t{hostname}\n")
    out = [("hostname", "/etc/hostname"), ("hosts", "/etc/hosts")]
    if net == "host" and os.path.exists("/etc/resolv.conf"):
        with open("/etc/resolv.conf", "rb") as src, \
                open(os.path.join(d, "resolv.conf"), "wb") as dst:
            dst.write(src.read())
        out.append(("resolv.conf", "/etc/resolv.conf"))
    return [(os.path.join(d, name), target) for name, target in out]


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def loopback_up() -> None:
    """Set IFF_UP on ``lo`` of this process's network namespace (SIOCGIFFLAGS/SIOCSIFFLAGS)."""
    fd = _libc.socket(ctypes.c_int(2), ctypes.c_int(2 | 0o2000000), ctypes.c_int(0))
    if fd < 0:
        _check(-1, "socket")
    try:
        ifr = ctypes.create_string_buffer(b"lo", 40)  # struct ifreq: name[16], short flags
        _check(_libc.ioctl(ctypes.c_int(fd), ctypes.c_ulong(0x8913), ifr), "SIOCGIFFLAGS lo")
        ifr[16:18] = (int.from_bytes(ifr[16:18], "little") | 1).to_bytes(2, "little")
        _check(_libc.ioctl(ctypes.c_int(fd), ctypes.c_ulong(0x8914), ifr), "SIOCSIFFLAGS lo")
    finally:
        os.close(fd)


def restrict_devices(made: list[str], extra: tuple[str, ...] = ()) -> bool:
    """cgroup v1 devices controller: deny all, allow DEVICES_ALLOWED and ``extra``.

    False when the pod has no devices cgroup (cgroup v2 needs a BPF program instead).
    """
    done = False
    for d in made:
        if os.path.exists(os.path.join(d, "devices.deny")):
            _write(os.path.join(d, "devices.deny"), "a")
            for rule in DEVICES_ALLOWED + extra:
                _write(os.path.join(d, "devices.allow"), rule)
            done = True
    return done



def clone_mount(path: str, recursive: bool = False) -> int:
    """open_tree(OPEN_TREE_CLONE): a detached copy of the mount at ``path``, as an fd.

    It can be attached with :func:`attach_mount` after pivot_root, when the
    host's tree is gone, so no path in the pod's image is ever resolved on the host.
    """
    flags = 1 | 0o2000000 | (0x8000 if recursive else 0)  # OPEN_TREE_CLONE|CLOEXEC|AT_RECURSIVE
    fd = _libc.syscall(ctypes.c_long(428), ctypes.c_int(-100), os.fsencode(path),
                       ctypes.c_uint(flags))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"open_tree {path}: {os.strerror(err)}")
    return int(fd)


def attach_mount(fd: int, target: str) -> None:
    """move_mount(2) the detached mount ``fd`` onto ``target``."""
    _check(_libc.syscall(ctypes.c_long(429), ctypes.c_int(fd), b"", ctypes.c_int(-100),
                         os.fsencode(target), ctypes.c_uint(0x4)),  # MOVE_MOUNT_F_EMPTY_PATH
           f"move_mount {target}")


# -- the pod's output: through pipes, to the caller and to $POD/logs/APP.log ----------
LOG_MAX_SIZE = 10 * 1024 * 1024  # bytes in APP.log before it is rotated
LOG_MAX_FILE = 3  # files kept: APP.log, APP.log.1, APP.log.2 (docker's max-file)
PARTIAL_MAX = 16 * 1024  # a line longer than this is logged in pieces (as docker does)
PARTIAL_WAIT = 0.25  # seconds a line without its newline waits before it is logged
KCMP_FILE = 0
_KCMP = {"x86_64": 312, "i386": 349, "i686": 349, "aarch64": 272, "riscv64": 272,
         "ppc64le": 354, "ppc64": 354, "s390x": 343, "armv7l": 378, "armv6l": 378}


def _size(text: str) -> int:
    """``10m``, ``512k``, ``1g`` or bytes (powers of 1024); ValueError when malformed."""
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(t[-1:], 1)
    n = int(float(t[:-1] if mult > 1 else t) * mult)
    if n < 1:
        raise ValueError(text)
    return n


def log_limits(environ: dict[str, str] | None = None) -> tuple[int, int]:
    """(max size, max files) from PODKIT_LOG_MAX_SIZE and PODKIT_LOG_MAX_FILE."""
    env = os.environ if environ is None else environ
    size, files = LOG_MAX_SIZE, LOG_MAX_FILE
    with contextlib.suppress(ValueError, IndexError):
        size = _size(env.get("PODKIT_LOG_MAX_SIZE") or str(LOG_MAX_SIZE))
    with contextlib.suppress(ValueError):
        files = max(1, int(env.get("PODKIT_LOG_MAX_FILE") or LOG_MAX_FILE))
    return size, files


def same_open_file(fd1: int, fd2: int) -> bool:
    """True when two descriptors share one open file description (``2>&1``)."""
    try:
        a, b = os.fstat(fd1), os.fstat(fd2)
    except OSError:
        return False
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
        return False
    nr = _KCMP.get(os.uname().machine)
    if nr is None:
        return True
    pid = os.getpid()
    rc = _libc.syscall(ctypes.c_long(nr), ctypes.c_int(pid), ctypes.c_int(pid),
                       ctypes.c_int(KCMP_FILE), ctypes.c_ulong(fd1), ctypes.c_ulong(fd2))
    return rc <= 0  # 0: the same; an error (no kcmp in this kernel): the same file, say so


def rfc3339nano(ns: int) -> str:
    """UTC, nanoseconds, ``Z``: ``2026-11-28T18:50:21.272000000Z``."""
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


class PodLog:
    """``$POD/logs/APP.log``: what docker's json-file driver writes, one JSON line each.

    ``{"log": "text\\n", "stream": "stdout", "time": "...Z"}``; a line without
    its newline (cut at PARTIAL_MAX, or the end of the stream) has none.
    Bytes that are not UTF-8 are kept as lone surrogates (Python's
    surrogateescape, written as ``\\udcXX``), so that the bytes come back
    exactly.  Rotated at ``max_size``: APP.log -> APP.log.1 -> APP.log.2,
    ``max_file`` files in all.  Written with one write(2) per read of the
    pod's output, no buffering.
    """

    def __init__(self, path: str, max_size: int = LOG_MAX_SIZE,
                 max_file: int = LOG_MAX_FILE) -> None:
        import json.encoder
        import threading

        self.path, self.max_size, self.max_file = path, max_size, max_file
        self._quote = json.encoder.encode_basestring  # the C encoder, ensure_ascii off
        self._lock = threading.Lock()
        os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
        self.fd: int | None = None
        self.size = 0
        self._open()

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                          0o640)
        self.size = os.fstat(self.fd).st_size

    def _rotate(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.max_file > 1:
            for i in range(self.max_file - 1, 0, -1):
                src = self.path if i == 1 else f"{self.path}.{i - 1}"
                with contextlib.suppress(FileNotFoundError):
                    os.rename(src, f"{self.path}.{i}")
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self._open()

    def entry(self, stream: str, data: bytes, stamp: str) -> bytes:
        text = data.decode("utf-8", "surrogateescape")
        return (f'{{"log":{self._quote(text)},"stream":"{stream}","time":"{stamp}"}}\n'
                .encode("utf-8", "backslashreplace"))  # a lone surrogate -> \udcXX in JSON

    def write(self, entries: list[bytes]) -> None:
        """Append whole entries, rotating first when the next one would pass the cap."""
        with self._lock:
            if self.fd is None:
                return
            batch: list[bytes] = []
            pending = 0
            for e in entries:
                if self.size + pending + len(e) > self.max_size and self.size + pending:
                    self._write(b"".join(batch))
                    batch, pending = [], 0
                    self._rotate()
                batch.append(e)
                pending += len(e)
            self._write(b"".join(batch))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self.fd is not None:
            try:
                n = os.write(self.fd, view)
            except OSError:  # disk full, I/O error: the output still reaches the caller
                os.close(self.fd)
                self.fd = None
                return
            view = view[n:]
            self.size += n

    def close(self) -> None:
        with self._lock:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None


class _Tee:
    """One stream: read the pod's pipe, log the lines, write the bytes on unchanged."""

    def __init__(self, stream: str, rfd: int, out: int, log: PodLog) -> None:
        self.stream, self.rfd, self.out, self.log = stream, rfd, out, log
        self.partial = b""
        self.partial_ns = 0  # wall clock time of its first byte
        self.since = 0.0  # monotonic time of the same

    def _lines(self, data: bytes, ns: int) -> list[bytes]:
        """Entries for the complete lines of partial + data; the rest waits in partial."""
        entries = []
        stamps = {ns: rfc3339nano(ns)}
        buf = self.partial + data
        first = self.partial_ns if self.partial else ns  # when the first line began
        if first not in stamps:
            stamps[first] = rfc3339nano(first)
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            entries.append(self.log.entry(self.stream, buf[start:end + 1],
                                          stamps[first if start == 0 else ns]))
            start = end + 1
        rest, rest_ns = buf[start:], first if start == 0 else ns
        while len(rest) > PARTIAL_MAX:
            entries.append(self.log.entry(self.stream, rest[:PARTIAL_MAX], stamps[rest_ns]))
            rest = rest[PARTIAL_MAX:]
        if rest and (start or not self.partial):  # a new partial line: its clock starts
            self.since = time.monotonic()
        self.partial, self.partial_ns = rest, rest_ns
        return entries

    def _flush_partial(self) -> None:
        if self.partial:
            self.log.write([self.log.entry(self.stream, self.partial,
                                           rfc3339nano(self.partial_ns))])
            self.partial = b""

    def _forward(self, data: bytes) -> bool:
        """Write ``data`` to the caller's descriptor; False once the reader is gone."""
        import select

        view = memoryview(data)
        while view and self.out >= 0:
            try:
                view = view[os.write(self.out, view):]
            except BlockingIOError:  # the caller's descriptor is non-blocking
                p = select.poll()
                p.register(self.out, select.POLLOUT)
                p.poll()
            except BrokenPipeError:
                return False
            except OSError:  # closed, a terminal hung up: keep logging, stop writing
                self.out = -1
        return True

    def run(self) -> None:
        import select

        readable = select.poll()
        readable.register(self.rfd, select.POLLIN)
        try:
            while True:
                if self.partial:
                    wait = self.since + PARTIAL_WAIT - time.monotonic()
                    if wait <= 0 or not readable.poll(wait * 1000):
                        self._flush_partial()
                        continue
                try:
                    data = os.read(self.rfd, 65536)
                except OSError:
                    break
                if not data:
                    break
                self.log.write(self._lines(data, time.time_ns()))
                if not self._forward(data):
                    break  # as without us: the app's next write gets SIGPIPE (EPIPE)
        finally:
            self._flush_partial()
            os.close(self.rfd)


class OutputCapture:
    """The pod's standard output and error through pipes, copied to the caller and the log.

    The app's output keeps going where the stage1's own goes (fd 1 and 2, the
    journal under systemd), byte for byte and stream for stream, and is also
    logged in ``$POD/logs/APP.log`` (see :class:`PodLog`).  One thread per
    stream reads its pipe, logs, then writes to the caller's descriptor; a
    slow reader there blocks that thread and, once the pipe is full, the app,
    as it would without the copy.  When fd 1 and 2 are one open file
    (``2>&1``, a terminal, systemd's journal stream) the app gets one pipe
    for both, so their order stays exact; they are logged as stdout.  When
    the caller's reader goes away (EPIPE), the pipe is closed, so that the
    app gets SIGPIPE as it would have.

    Use: create and :meth:`start` before the fork (threads cannot be started
    after an unshare of the PID namespace), :meth:`child` in the child,
    :meth:`forked` in the parent, :meth:`finish` once the pod exited (drains
    the pipes).
    """

    def __init__(self, pod: Pod) -> None:
        import fcntl

        size, files = log_limits()
        self.log = PodLog(pod.path("logs", f"{pod.name}.log"), size, files)
        self.sigpipe = signal.getsignal(signal.SIGPIPE)
        self.merged = same_open_file(1, 2)

        def pipe() -> tuple[int, int]:
            r, w = os.pipe()
            out = []
            for fd in (r, w):  # above 0-2, whatever the caller left closed
                out.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3))
            os.close(r)
            os.close(w)
            return out[0], out[1]

        self.reads: list[tuple[str, int, int]] = []
        r, w_out = pipe()
        self.reads.append(("stdout", r, 1))
        if self.merged:
            w_err = w_out
        else:
            r, w_err = pipe()
            self.reads.append(("stderr", r, 2))
        self.writes = sorted({w_out, w_err})
        self.w_out, self.w_err = w_out, w_err
        self.threads: list[Any] = []

    def child(self) -> None:
        """In the forked child: fd 1 and 2 become the pipes; the SIGPIPE of before."""
        os.dup2(self.w_out, 1)
        os.dup2(self.w_err, 2)
        for _, fd, _ in self.reads:
            os.close(fd)
        for fd in self.writes:
            os.close(fd)
        signal.signal(signal.SIGPIPE, self.sigpipe)

    def start(self) -> None:
        """Copy until the pod's end closes the pipes (threads, from now on)."""
        import threading

        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # EPIPE, never death, for us
        for stream, rfd, out in self.reads:
            t = threading.Thread(target=_Tee(stream, rfd, out, self.log).run, daemon=True,
                                 name=f"podkit-{stream}")
            t.start()
            self.threads.append(t)

    def forked(self) -> None:
        """In the parent, after the fork: only the pod holds the pipes' write ends."""
        for fd in self.writes:
            os.close(fd)
        self.writes = []

    def finish(self) -> None:
        """Wait until everything the pod wrote was copied (the pipes' end)."""
        for t in self.threads:
            t.join()
        self.log.close()
