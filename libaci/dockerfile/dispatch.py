"""Walking a stage: variable scope, expanded instructions and the image config.

:class:`StageState` does, for one stage, everything of BuildKit's
``dispatch`` that needs no filesystem: it keeps the build-time environment
(image ENV plus the ARGs in effect, later definitions winning as in
BuildKit's LLB state), expands each instruction's words with it, applies
metadata instructions (ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME,
STOPSIGNAL, SHELL, CMD, ENTRYPOINT, HEALTHCHECK, ONBUILD, MAINTAINER, ARG)
to the image config, and writes BuildKit's history entries.  For RUN, COPY
and ADD it returns what the build engine needs to execute them: argv,
environment, mounts, resolved destination.

ARG scoping follows BuildKit: a global ARG is visible in a stage only after
a value-less re-declaration; ``--build-arg`` beats defaults; a stage built
``FROM`` another stage inherits its ARGs; the automatic platform ARGs must be
declared too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import attrs

from libaci.dockerfile import _go
from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.instructions import (
    Add,
    Arg,
    ArgDef,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    HealthConfig,
    InlineFile,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
    _Copying,
)
from libaci.dockerfile.mounts import Mount
from libaci.dockerfile.parser import parse_heredoc
from libaci.dockerfile.plan import PROXY_ARGS, BuildPlan
from libaci.dockerfile.shell import Lex
from libaci.dockerfile.sources import source_kind

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ("/bin/sh", "-c")
HISTORY_COMMENT = "buildkit.dockerfile.v0"
PIPES_DIR = "/dev/pipes/"
NON_ENV_ARGS = frozenset({"BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"})
_SIGNAL_NAMES = ("ABRT ALRM BUS CHLD CLD CONT FPE HUP ILL INT IO IOT KILL PIPE POLL PROF PWR "
                 "QUIT SEGV STKFLT STOP SYS TERM TRAP TSTP TTIN TTOU URG USR1 USR2 VTALRM "
                 "WINCH XCPU XFSZ RTMIN RTMAX")
_SIGNALS = frozenset(_SIGNAL_NAMES.split()) | {f"RTMIN+{i}" for i in range(1, 16)} | {
    f"RTMAX-{i}" for i in range(1, 15)}


@attrs.frozen
class ImageConfig:
    """The ``config`` of an image, the fields a Dockerfile can change.

    Unknown fields are kept in ``extra`` so a base image config round-trips.
    """

    env: tuple[str, ...] = ()
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    stop_signal: str = ""
    shell: tuple[str, ...] = ()
    healthcheck: HealthConfig | None = None
    on_build: tuple[str, ...] = ()
    args_escaped: bool = False
    extra: Mapping[str, object] = attrs.field(factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, object] | None) -> ImageConfig:
        d = dict(d or {})

        def strings(key: str) -> tuple[str, ...] | None:
            value = d.pop(key, None)
            return None if value is None else tuple(str(v) for v in value)  # type: ignore[attr-defined]

        hc = d.pop("Healthcheck", None)
        health = None
        if isinstance(hc, dict):
            health = HealthConfig(
                test=tuple(hc.get("Test") or ()), interval=int(hc.get("Interval") or 0),
                timeout=int(hc.get("Timeout") or 0),
                start_period=int(hc.get("StartPeriod") or 0),
                start_interval=int(hc.get("StartInterval") or 0),
                retries=int(hc.get("Retries") or 0))
        labels = d.pop("Labels", None) or {}
        ports = d.pop("ExposedPorts", None) or {}
        volumes = d.pop("Volumes", None) or {}
        return cls(
            env=strings("Env") or (), cmd=strings("Cmd"), entrypoint=strings("Entrypoint"),
            working_dir=str(d.pop("WorkingDir", "") or ""), user=str(d.pop("User", "") or ""),
            exposed_ports=tuple(sorted(ports)), volumes=tuple(sorted(volumes)),
            labels=tuple(labels.items()), stop_signal=str(d.pop("StopSignal", "") or ""),
            shell=strings("Shell") or (), healthcheck=health,
            on_build=strings("OnBuild") or (), args_escaped=bool(d.pop("ArgsEscaped", False)),
            extra=d)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.extra)
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.volumes:
            out["Volumes"] = {v: {} for v in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.args_escaped:
            out["ArgsEscaped"] = True
        if self.on_build:
            out["OnBuild"] = list(self.on_build)
        if self.shell:
            out["Shell"] = list(self.shell)
        if self.healthcheck is not None:
            h = self.healthcheck
            hc: dict[str, object] = {"Test": list(h.test)}
            for key, value in (("Interval", h.interval), ("Timeout", h.timeout),
                               ("StartPeriod", h.start_period),
                               ("StartInterval", h.start_interval), ("Retries", h.retries)):
                if value:
                    hc[key] = value
            out["Healthcheck"] = hc
        return out

    def env_value(self, key: str) -> str | None:
        for item in self.env:
            k, _, v = item.partition("=")
            if k == key:
                return v
        return None


@attrs.frozen
class HistoryEntry:
    """One image history entry as BuildKit writes it."""

    created_by: str
    empty_layer: bool
    comment: str = HISTORY_COMMENT


@attrs.frozen
class RunSpec:
    """Everything needed to execute one RUN."""

    args: tuple[str, ...]
    env: tuple[str, ...]
    mounts: tuple[Mount, ...]
    network: str
    security: str
    user: str
    workdir: str
    proxy_env: tuple[str, ...] = ()
    script: InlineFile | None = None  # a ``#!`` heredoc, mounted read-only at PIPES_DIR


@attrs.frozen
class Step:
    """One dispatched instruction: expanded, with what the engine must do."""

    instruction: Instruction
    history: HistoryEntry | None
    run: RunSpec | None = None
    dest: str | None = None  # COPY/ADD destination, absolute; "/" at the end means a directory
    mkdir: str | None = None  # WORKDIR that has to exist (created as ``user``)
    user: str = ""


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("\u00b5s", 1_000), ("ns", 1)):
            if ns >= size:
                whole, frac = divmod(ns, size)
                digits = f"{frac:0{len(str(size)) - 1}d}".rstrip("0") if size > 1 else ""
                return f"{sign}{whole}{'.' + digits if digits else ''}{unit}"
    secs, frac = divmod(ns, 1_000_000_000)
    fraction = f"{frac:09d}".rstrip("0")
    hours, rem = divmod(secs, 3600)
    minutes, seconds = divmod(rem, 60)
    text = f"{seconds}{'.' + fraction if fraction else ''}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _quote_rune(n: int) -> str:
    """Go's ``%q`` of an int: a quoted character literal."""
    ch = chr(n) if 0 <= n <= 0x10FFFF else "\ufffd"
    if ch == "'":
        return "'\\''"
    body = _go.quote(ch)[1:-1]
    return "'" + ('"' if body == '\\"' else body) + "'"


def _health_history(h: HealthConfig) -> str:
    durations = " ".join(_go.quote(go_duration(d)) for d in
                         (h.interval, h.timeout, h.start_period, h.start_interval))
    return f"HEALTHCHECK &{{{_go.quote_list(list(h.test))} {durations} {_quote_rune(h.retries)}}}"


def _normalize_workdir(current: str, requested: str) -> str:
    if requested == "":
        raise DockerfileError("normalizing workdir: cannot normalize nothing")
    if not requested.startswith("/"):
        requested = "/" + (current or "/") + "/" + requested
    return _go.clean_path(requested)


def _relative_to_workdir(workdir: str, p: str) -> str:
    """``pathRelativeToWorkingDir`` with ``keepSlash``: COPY destinations."""
    orig = p
    if not p.startswith("/"):
        if p in (".", ""):
            p = orig = "./"
        p = (workdir or "/") + "/" + p
    out = _go.clean_path(p)
    if orig.endswith("/") and not out.endswith("/"):
        out += "/"
    elif orig.endswith("/."):
        out = (out if out == "/" else out + "/") + "."
    return out


def parse_signal(text: str) -> None:
    """``signal.ParseSignal``: a number other than 0, or a name with or without SIG."""
    if re.fullmatch(r"[+-]?[0-9]+", text):
        if int(text) == 0:
            raise DockerfileError(f"invalid signal: {text}")
        return
    if text.upper().removeprefix("SIG") not in _SIGNALS:
        raise DockerfileError(f"invalid signal: {text}")


def parse_ports(specs: Sequence[str]) -> tuple[str, ...]:
    """``nat.ParsePortSpecs`` for EXPOSE: ``80``, ``80/udp``, ``8000-8010/tcp``."""
    out: list[str] = []
    for spec in specs:
        container = spec.split(":")[-1]
        port, _, proto = container.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise DockerfileError(f"invalid proto: {proto}")
        start, dash, end = port.partition("-")
        if not re.fullmatch(r"[0-9]+", start) or (dash and not re.fullmatch(r"[0-9]+", end)):
            raise DockerfileError(f"invalid containerPort: {port}")
        first = int(start)
        last = int(end) if dash else first
        if first > 65535 or last > 65535:
            raise DockerfileError(f"invalid containerPort: {port}")
        if last < first:
            raise DockerfileError(f"invalid range specified for container port: {port}")
        for number in range(first, last + 1):
            name = f"{number}/{proto}"
            if name not in out:
                out.append(name)
    return tuple(out)


class StageState:
    """The state of one stage while it is dispatched, one instruction at a time.

    Create it with the base image's config (``ImageConfig.from_dict``) or
    with the finished :class:`StageState` of the base stage, then call
    :meth:`apply` for each command of the :class:`~libaci.dockerfile.plan.StagePlan`.
    ``config``, ``author`` and ``history`` are what the stage's image gets;
    ``history`` holds the entries this Dockerfile adds (a base image's own
    history is the engine's to prepend).
    """

    def __init__(self, plan: BuildPlan, index: int, *, base_config: ImageConfig | None = None,
                 base: StageState | None = None, author: str = "") -> None:
        self.plan = plan
        self.index = index
        self.stage = plan.stages[index]
        self.lex = Lex(plan.dockerfile.escape_token)
        self.global_args = plan.global_env()
        self.build_args = dict(plan.options.build_args)
        self.env: dict[str, str] = {}
        self.args: list[ArgDef] = []
        self.history: list[HistoryEntry] = []
        self.cmd_set = False
        if base is not None:
            self.config = base.config
            self.author = base.author
            self.env = dict(base.env)
            self.args = list(base.args)
            self.history = list(base.history)
        else:
            self.config = base_config or ImageConfig()
            self.author = author
        self.config = attrs.evolve(self.config, on_build=())
        if self.config.env_value("PATH") is None:
            self.config = attrs.evolve(self.config, env=(*self.config.env, "PATH=" + DEFAULT_PATH))
        for item in self.config.env:
            key, _, value = item.partition("=")
            self.env[key] = value
        if self.config.working_dir:
            self.config = attrs.evolve(
                self.config, working_dir=_normalize_workdir("/", self.config.working_dir))

    # -- expansion ------------------------------------------------------------------

    def expand(self, word: str) -> str:
        """*word* expanded with the environment in effect now."""
        return self.lex.process_word(word, self.env)

    def expand_words(self, word: str) -> list[str]:
        return self.lex.process_words(word, self.env)

    def _expand_raw(self, word: str) -> str:
        return Lex("\\", skip_process_quotes=True).process_word(word, self.env)

    @property
    def workdir(self) -> str:
        return self.config.working_dir or "/"

    def _commit(self, text: str, layer: bool = False, buildkit: bool = False) -> HistoryEntry:
        entry = HistoryEntry(text + (" # buildkit" if buildkit else ""), not layer)
        self.history.append(entry)
        return entry

    def _add_env(self, key: str, value: str) -> None:
        env = list(self.config.env)
        for i, item in enumerate(env):
            if item.partition("=")[0] == key:
                env[i] = f"{key}={value}"
                break
        else:
            env.append(f"{key}={value}")
        self.config = attrs.evolve(self.config, env=tuple(env))

    def _with_shell(self, args: Sequence[str]) -> tuple[str, ...]:
        shell = self.config.shell or DEFAULT_SHELL
        return (*shell, " ".join(args))

    # -- dispatch -----------------------------------------------------------------------

    def apply(self, instruction: Instruction) -> Step:
        """Dispatch one instruction; raises :class:`DockerfileError` with its line."""
        try:
            return self._apply(instruction)
        except DockerfileError as e:
            raise e.at(instruction.line or None, instruction.end_line or None).named(
                self.plan.dockerfile.filename) from None

    def _apply(self, c: Instruction) -> Step:
        if isinstance(c, Arg):
            return self._arg(c)
        c = c.expand(self.expand)
        handler = getattr(self, "_do_" + type(c).__name__.lower())
        return handler(c)

    def _do_env(self, c: Env) -> Step:
        for p in c.pairs:
            self.env[p.key] = p.value
            self._add_env(p.key, p.value)
        text = "ENV" + "".join(f" {p}" for p in c.pairs)
        return Step(c, self._commit(text))

    def _do_label(self, c: Label) -> Step:
        labels = dict(self.config.labels)
        for p in c.pairs:
            labels[p.key] = p.value
        self.config = attrs.evolve(self.config, labels=tuple(labels.items()))
        return Step(c, self._commit("LABEL" + "".join(f" {p}" for p in c.pairs)))

    def _do_maintainer(self, c: Maintainer) -> Step:
        self.author = c.maintainer
        return Step(c, self._commit(f"MAINTAINER {c.maintainer}"))

    def _do_workdir(self, c: Workdir) -> Step:
        wd = _normalize_workdir(self.config.working_dir, c.path)
        self.config = attrs.evolve(self.config, working_dir=wd)
        layer = wd != "/"
        return Step(c, self._commit(f"WORKDIR {wd}", layer=layer),
                    mkdir=wd if layer else None, user=self.config.user)

    def _do_user(self, c: User) -> Step:
        self.config = attrs.evolve(self.config, user=c.user)
        return Step(c, self._commit(f"USER {c.user}"))

    def _do_expose(self, c: Expose) -> Step:
        words: list[str] = []
        for port in c.ports:
            words.extend(self.expand_words(port))
        ports = parse_ports(words)
        merged = sorted(set(self.config.exposed_ports) | set(ports))
        self.config = attrs.evolve(self.config, exposed_ports=tuple(merged))
        text = "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in sorted(set(ports))) + "]"
        return Step(attrs.evolve(c, ports=tuple(words)), self._commit(text))

    def _do_volume(self, c: Volume) -> Step:
        if any(v == "" for v in c.volumes):
            raise DockerfileError("VOLUME specified can not be an empty string")
        merged = sorted(set(self.config.volumes) | set(c.volumes))
        self.config = attrs.evolve(self.config, volumes=tuple(merged))
        return Step(c, self._commit("VOLUME [" + " ".join(c.volumes) + "]"))

    def _do_stopsignal(self, c: StopSignal) -> Step:
        parse_signal(c.signal)
        self.config = attrs.evolve(self.config, stop_signal=c.signal)
        return Step(c, self._commit(f"STOPSIGNAL {c.signal}"))

    def _do_shell(self, c: Shell) -> Step:
        self.config = attrs.evolve(self.config, shell=c.shell)
        return Step(c, self._commit("SHELL [" + " ".join(c.shell) + "]"))

    def _do_cmd(self, c: Cmd) -> Step:
        args = tuple(c.cmd or ())
        if c.prepend_shell:
            args = self._with_shell(args)
        self.config = attrs.evolve(self.config, cmd=args, args_escaped=True)
        self.cmd_set = True
        return Step(c, self._commit("CMD " + _go.quote_list(list(args))))

    def _do_entrypoint(self, c: Entrypoint) -> Step:
        args = c.cmd
        if c.prepend_shell:
            args = self._with_shell(args or ())
        self.config = attrs.evolve(self.config, entrypoint=args)
        if not self.cmd_set:
            self.config = attrs.evolve(self.config, cmd=None)
        return Step(c, self._commit("ENTRYPOINT " + _go.quote_list(list(args or ()))))

    def _do_healthcheck(self, c: Healthcheck) -> Step:
        self.config = attrs.evolve(self.config, healthcheck=c.health)
        return Step(c, self._commit(_health_history(c.health)))

    def _do_onbuild(self, c: Onbuild) -> Step:
        self.config = attrs.evolve(self.config, on_build=(*self.config.on_build, c.expression))
        return Step(c, None)

    def _arg(self, c: Arg) -> Step:
        out: list[ArgDef] = []
        for arg in c.args:
            value = arg.value
            if arg.key in self.build_args:
                value = self.build_args[arg.key]
            elif value is not None:
                value = self.expand(value)
            elif arg.key in self.global_args:
                value = self.global_args[arg.key]
            if value is not None and arg.key not in NON_ENV_ARGS:
                self.env[arg.key] = value
            done = ArgDef(arg.key, value)
            self.args.append(done)
            out.append(done)
        expanded = attrs.evolve(c, args=tuple(out))
        return Step(expanded, self._commit("ARG " + " ".join(str(a) for a in out)))

    def run_history_args(self) -> list[str]:
        """``runCommandString``'s ``|N K=V`` prefix: the ARGs in effect, once each."""
        seen: dict[str, str] = {}
        for arg in self.args:
            seen[arg.key] = self.env.get(arg.key, arg.value or "")
        if not seen:
            return []
        return [f"|{len(seen)}"] + [f"{k}={v}" for k, v in seen.items()]

    def _proxy_env(self) -> tuple[str, ...]:
        out: list[str] = []
        for key, value in self.build_args.items():
            if key.lower() in {p.lower() for p in PROXY_ARGS}:
                for name in (key.upper(), key.lower()):
                    item = f"{name}={value}"
                    if item not in out:
                        out.append(item)
        return tuple(out)

    def _do_run(self, c: Run) -> Step:
        args = tuple(c.cmd or ())
        script = None
        if c.files:
            if len(args) != 1 or not c.prepend_shell:
                raise DockerfileError(
                    f"parsing produced an invalid run command: [{' '.join(args)}]")
            if parse_heredoc(args[0]) is not None:
                first = c.files[0]
                if first.data.startswith("#!"):
                    script = first
                    args = (PIPES_DIR + first.name,)
                else:
                    args = (first.content(),)
            else:
                full = args[0]
                for f in c.files:
                    full += "\n" + f.data + f.name
                args = (full,)
        if c.prepend_shell:
            args = self._with_shell(args)
        mounts = c.parsed_mounts(self.expand)
        spec = RunSpec(args=args, env=tuple(f"{k}={v}" for k, v in self.env.items()),
                       mounts=mounts, network=c.network, security=c.security,
                       user=self.config.user, workdir=self.workdir,
                       proxy_env=self._proxy_env(), script=script)
        text = "RUN " + " ".join([*self.run_history_args(), *args])
        return Step(c, self._commit(text, layer=True, buildkit=True), run=spec)

    def _copying(self, c: _Copying, is_add: bool) -> Step:
        c = c.expand_contents(self._expand_raw)
        c.chmod_mode()
        checksum = c.checksum if isinstance(c, Add) else ""
        if checksum:
            if len(c.sources) != 1:
                raise DockerfileError("checksum can't be specified for multiple sources")
            if source_kind(c.sources[0]) != "http":
                raise DockerfileError("checksum can't be specified for non-HTTP(S) sources")
        for src in c.sources:
            kind = source_kind(src)
            if not is_add and kind == "http":
                raise DockerfileError("source can't be a URL for COPY")
            if not is_add and kind == "git":
                raise DockerfileError("source can't be a git ref for COPY")
        words = ["ADD" if is_add else "COPY"]
        if isinstance(c, Copy) and c.parents:
            words.append("--parents")
        if c.chown:
            words.append(f"--chown={c.chown}")
        if c.chmod:
            words.append(f"--chmod={c.chmod}")
        words += list(c.sources) + [f"<<{s.path}" for s in c.contents] + [c.dest]
        dest = _relative_to_workdir(self.workdir, c.dest)
        return Step(c, self._commit(" ".join(words), layer=True, buildkit=True), dest=dest)

    def _do_copy(self, c: Copy) -> Step:
        return self._copying(c, False)

    def _do_add(self, c: Add) -> Step:
        return self._copying(c, True)

    # -- results -------------------------------------------------------------------

    def image_config(self) -> ImageConfig:
        """The config so far (what the stage's image gets when it ends here)."""
        return self.config
