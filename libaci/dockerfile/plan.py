"""Which stages a build needs, what each starts from, and the global ARGs.

This is the part of BuildKit's ``dockerfile2llb.toDispatchState`` that runs
before any image is touched: the automatic platform ARGs
(``TARGETPLATFORM``, ``BUILDARCH`` ...), the global ARGs before the first
FROM with ``--build-arg`` overrides, FROM lines expanded with them, each
stage's base (``scratch``, an earlier stage by name, or an image), the
dependencies added by ``COPY --from`` and ``RUN --mount=from=``, circular
dependency checks, ``--target`` and the set of stages reachable from it.
Only those are built, in file order.

ONBUILD triggers of a base *stage* are prepended to the stage that uses it
here; triggers found in a base *image* config are added with
:meth:`BuildPlan.with_image_triggers` once the image is known.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

import attrs

from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.instructions import (
    Arg,
    Copy,
    Dockerfile,
    Instruction,
    Onbuild,
    Run,
    Stage,
)
from libaci.dockerfile.loader import parse_trigger
from libaci.dockerfile.shell import Lex
from libaci.errors import InvalidReferenceError
from libaci.reference import parse_docker_reference

SCRATCH = "scratch"
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
              "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
PLATFORM_ARGS = ("BUILDPLATFORM", "BUILDOS", "BUILDOSVERSION", "BUILDARCH", "BUILDVARIANT",
                 "TARGETPLATFORM", "TARGETOS", "TARGETOSVERSION", "TARGETARCH",
                 "TARGETVARIANT", "TARGETSTAGE")
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386",
                 "i686": "386", "armhf": "arm", "armel": "arm", "armv7l": "arm",
                 "armv6l": "arm"}
_UNAME_VARIANT = {"armhf": "v7", "armel": "v6", "armv7l": "v7", "armv6l": "v6"}
_KNOWN_OS = frozenset({"aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios",
                       "js", "linux", "netbsd", "openbsd", "plan9", "solaris", "wasip1",
                       "windows"})
_KNOWN_ARCH = frozenset({"386", "amd64", "arm", "arm64", "loong64", "mips", "mips64",
                         "mips64le", "mipsle", "ppc64", "ppc64le", "riscv64", "s390x", "wasm",
                         "sparc64"})


@attrs.frozen
class Platform:
    """An OCI platform as containerd's ``platforms`` package normalises it."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


def parse_platform(text: str, *, default_os: str = "linux") -> Platform:
    """``platforms.Parse``: ``linux/arm64``, ``linux/arm/v7``, ``amd64`` ..."""
    if "*" in text or not text:
        raise DockerfileError(f'"{text}": invalid platform specifier')
    parts = text.lower().split("/")
    if len(parts) > 3:
        raise DockerfileError(f'"{text}": cannot parse platform specifier')
    if len(parts) == 1:
        part = parts[0]
        if part in _KNOWN_OS:
            return _normalize(Platform(part, host_platform().architecture))
        arch = _ARCH_ALIASES.get(part, part)
        if arch not in _KNOWN_ARCH:
            raise DockerfileError(f'"{text}": unknown operating system or architecture')
        return _normalize(Platform(default_os, arch, _UNAME_VARIANT.get(part, "")))
    os_name, arch = parts[0], parts[1]
    variant = parts[2] if len(parts) == 3 else _UNAME_VARIANT.get(arch, "")
    return _normalize(Platform(os_name, _ARCH_ALIASES.get(arch, arch), variant))


def _normalize(p: Platform) -> Platform:
    variant = p.variant
    if p.architecture == "arm64" and variant in ("8", "v8"):
        variant = ""
    elif p.architecture == "arm" and variant == "":
        variant = "v7"
    elif p.architecture == "arm" and variant in ("5", "6", "7", "8"):
        variant = "v" + variant
    elif p.architecture == "amd64" and variant == "v1":
        variant = ""
    return attrs.evolve(p, variant=variant)


def host_platform() -> Platform:
    """The platform of this machine (``linux/amd64`` and the like)."""
    machine = os.uname().machine.lower()
    arch = _ARCH_ALIASES.get(machine, machine)
    return _normalize(Platform("linux", arch, _UNAME_VARIANT.get(machine, "")))


@attrs.frozen
class BuildOptions:
    """What the command line adds: ``--build-arg``, ``--target``, ``--platform``."""

    build_args: Mapping[str, str] = attrs.field(factory=dict, converter=dict)
    target: str | None = None
    target_platform: Platform | None = None
    build_platform: Platform | None = None


@attrs.frozen
class StageBase:
    """What a stage starts from: ``scratch``, an earlier stage, or an image."""

    kind: str  # "scratch", "stage" or "image"
    name: str  # the base name after ARG expansion
    stage: int | None = None
    reference: str | None = None  # normalised image reference (docker.io/library/x:latest)


@attrs.frozen
class Dependency:
    """A stage or image another stage copies or mounts from."""

    kind: str  # "stage" or "image"
    via: str  # "copy" or "mount"
    name: str
    stage: int | None = None
    reference: str | None = None
    line: int = 0


@attrs.frozen
class StagePlan:
    """One stage as the build will run it."""

    index: int
    name: str | None
    base: StageBase
    platform: Platform | None
    commands: tuple[Instruction, ...]
    dependencies: tuple[Dependency, ...]
    needed: bool
    line: int = 0
    onbuild_count: int = 0  # leading commands that are ONBUILD triggers

    @property
    def display_name(self) -> str:
        return self.name or f"stage-{self.index}"


@attrs.frozen
class BuildPlan:
    """Stages, their order and dependencies, the target and the global ARGs."""

    dockerfile: Dockerfile
    options: BuildOptions
    stages: tuple[StagePlan, ...]
    target: int
    global_args: tuple[tuple[str, str], ...]
    warnings: tuple[str, ...] = ()
    image_triggers: tuple[tuple[int, tuple[Instruction, ...]], ...] = ()

    @property
    def order(self) -> tuple[int, ...]:
        """Indices of the stages to build, in file order."""
        return tuple(s.index for s in self.stages if s.needed)

    @property
    def images(self) -> tuple[str, ...]:
        """Image references the needed stages start from or copy from, once each."""
        seen: list[str] = []
        for s in self.stages:
            if not s.needed:
                continue
            refs = [s.base.reference] + [d.reference for d in s.dependencies]
            for ref in refs:
                if ref and ref not in seen:
                    seen.append(ref)
        return tuple(seen)

    def global_env(self) -> dict[str, str]:
        return dict(self.global_args)

    def stage(self, key: int | str) -> StagePlan:
        if isinstance(key, int):
            return self.stages[key]
        for s in self.stages:
            if s.name == key.lower():
                return s
        raise DockerfileError(f"stage {key!r} not found", filename=self.dockerfile.filename)

    def unused_build_args(self) -> tuple[str, ...]:
        """``--build-arg`` names no ARG in the needed stages (or before FROM) declares."""
        declared = set(PROXY_ARGS) | set(PLATFORM_ARGS)
        for arg in self.dockerfile.meta_args:
            declared.update(a.key for a in arg.args)
        for s in self.stages:
            if s.needed:
                for c in s.commands:
                    if isinstance(c, Arg):
                        declared.update(a.key for a in c.args)
        return tuple(k for k in self.options.build_args if k not in declared)

    def with_image_triggers(self, index: int, triggers: Iterable[str]) -> BuildPlan:
        """The plan after the base image of stage *index* turned out to have
        ONBUILD triggers: they run first in that stage and may add
        dependencies."""
        stage = self.stages[index]
        parsed = tuple(parse_trigger(t, stage.line) for t in triggers)
        if not parsed or stage.base.kind != "image":
            return self
        overrides = dict(self.image_triggers)
        overrides[index] = parsed
        return _plan(self.dockerfile, self.options, overrides)


def default_args(options: BuildOptions, target_name: str) -> dict[str, str]:
    """The automatic platform ARGs (``defaultArgs``), build-arg overrides applied."""
    bp = options.build_platform or host_platform()
    tp = options.target_platform or bp
    values = {
        "BUILDPLATFORM": str(bp), "BUILDOS": bp.os, "BUILDOSVERSION": bp.os_version,
        "BUILDARCH": bp.architecture, "BUILDVARIANT": bp.variant,
        "TARGETPLATFORM": str(tp), "TARGETOS": tp.os, "TARGETOSVERSION": tp.os_version,
        "TARGETARCH": tp.architecture, "TARGETVARIANT": tp.variant,
        "TARGETSTAGE": target_name,
    }
    for key in values:
        if key in options.build_args:
            values[key] = options.build_args[key]
    return values


def meta_args(dockerfile: Dockerfile, options: BuildOptions,
              base: Mapping[str, str]) -> dict[str, str]:
    """``buildMetaArgs``: the ARGs before the first FROM, expanded in order."""
    lex = Lex(dockerfile.escape_token)
    env = dict(base)
    for cmd in dockerfile.meta_args:
        for arg in cmd.args:
            if arg.key in options.build_args:
                env[arg.key] = options.build_args[arg.key]
            elif arg.value is not None:
                try:
                    env[arg.key] = lex.process_word(arg.value, env)
                except DockerfileError as e:
                    raise e.at(cmd.line).named(dockerfile.filename) from None
    return env


def _image_reference(name: str, line: int, filename: str) -> str:
    try:
        return str(parse_docker_reference(name))
    except InvalidReferenceError as e:
        raise DockerfileError(f"failed to parse stage name {name!r}: {e}", line,
                              filename=filename) from None


def plan(dockerfile: Dockerfile, options: BuildOptions | None = None) -> BuildPlan:
    """Plan a build: bases, dependencies, target and the stages it needs."""
    return _plan(dockerfile, options or BuildOptions(), {})


def _plan(dockerfile: Dockerfile, options: BuildOptions,
          image_triggers: Mapping[int, tuple[Instruction, ...]]) -> BuildPlan:
    fn = dockerfile.filename
    stages = dockerfile.stages
    target_name = options.target or stages[-1].name or ""
    env = meta_args(dockerfile, options, default_args(options, target_name))
    lex = Lex(dockerfile.escape_token)
    warnings: list[str] = []
    by_name: dict[str, int] = {}
    bases: list[StageBase] = []
    platforms: list[Platform | None] = []
    seen_names: set[str] = set()
    for st in stages:
        try:
            base_name = lex.process_word(st.base_name, env)
        except DockerfileError as e:
            raise e.at(st.line).named(fn) from None
        if base_name == "":
            raise DockerfileError(f"base name ({st.base_name}) should not be blank", st.line,
                                  filename=fn)
        if base_name in by_name:
            bases.append(StageBase("stage", base_name, stage=by_name[base_name]))
        elif base_name == SCRATCH:
            bases.append(StageBase("scratch", base_name))
        else:
            bases.append(StageBase("image", base_name,
                                   reference=_image_reference(base_name, st.line, fn)))
        platforms.append(_stage_platform(st, lex, env, fn))
        if st.name:
            if st.name in seen_names:
                warnings.append(f"{fn}:{st.line}: duplicate stage name {st.name!r}")
            if st.name in ("context", "scratch"):
                warnings.append(f"{fn}:{st.line}: stage name {st.name!r} is reserved")
            seen_names.add(st.name)
            by_name[st.name] = st.index

    if options.target:
        if options.target.lower() not in by_name:
            raise DockerfileError(f"target stage {options.target!r} could not be found",
                                  filename=fn)
        target = by_name[options.target.lower()]
    else:
        target = len(stages) - 1

    commands: list[tuple[Instruction, ...]] = []
    counts: list[int] = []
    for st, base in zip(stages, bases, strict=True):
        triggers: tuple[Instruction, ...] = image_triggers.get(st.index, ())
        if base.kind == "stage" and base.stage is not None:
            triggers = tuple(parse_trigger(c.expression, st.line)
                             for c in stages[base.stage].commands if isinstance(c, Onbuild))
        commands.append(triggers + st.commands)
        counts.append(len(triggers))

    deps = [_dependencies(cmds, by_name, len(stages), fn) for cmds in commands]
    _check_cycles(stages, bases, deps, fn)
    needed = _reachable(target, bases, deps)
    for i in sorted(needed):
        for dep in deps[i]:
            if dep.kind == "stage" and dep.stage is not None and dep.stage >= i:
                verb = "copy from" if dep.via == "copy" else "mount from"
                raise DockerfileError(
                    f"cannot {verb} stage {dep.name!r}, it needs to be defined before "
                    f"current stage {stages[i].display_name!r}", dep.line, filename=fn)
    out = tuple(
        StagePlan(index=st.index, name=st.name, base=bases[st.index],
                  platform=platforms[st.index], commands=commands[st.index],
                  dependencies=deps[st.index], needed=st.index in needed, line=st.line,
                  onbuild_count=counts[st.index])
        for st in stages)
    return BuildPlan(dockerfile=dockerfile, options=options, stages=out, target=target,
                     global_args=tuple(env.items()), warnings=tuple(warnings),
                     image_triggers=tuple(sorted(image_triggers.items())))


def _stage_platform(st: Stage, lex: Lex, env: Mapping[str, str], fn: str) -> Platform | None:
    if not st.platform:
        return None
    try:
        value = lex.process_word(st.platform, env)
    except DockerfileError as e:
        raise DockerfileError(f"failed to process arguments for platform {st.platform}: "
                              f"{e.message}", st.line, filename=fn) from None
    if value == "":
        raise DockerfileError(f"empty platform value from expression {st.platform}", st.line,
                              filename=fn)
    try:
        return parse_platform(value)
    except DockerfileError as e:
        raise DockerfileError(f"failed to parse platform {st.platform}: {e.message}", st.line,
                              filename=fn) from None


def _dependencies(commands: Iterable[Instruction], by_name: Mapping[str, int], count: int,
                  fn: str) -> tuple[Dependency, ...]:
    out: list[Dependency] = []
    for cmd in commands:
        names: list[tuple[str, str]] = []
        if isinstance(cmd, Copy) and cmd.from_:
            names.append(("copy", cmd.from_))
        elif isinstance(cmd, Run):
            names.extend(("mount", src or SCRATCH) for src in cmd.mount_sources())
        for via, name in names:
            if via == "copy" and re.fullmatch(r"[+-]?[0-9]+", name):
                index = int(name)
                if not 0 <= index < count:
                    raise DockerfileError(f"invalid stage index {index}", cmd.line, filename=fn)
                out.append(Dependency("stage", via, name, stage=index, line=cmd.line))
            elif name.lower() in by_name:
                out.append(Dependency("stage", via, name, stage=by_name[name.lower()],
                                      line=cmd.line))
            elif name == SCRATCH:
                if via == "copy":
                    out.append(Dependency("image", via, name, line=cmd.line))
            else:
                out.append(Dependency("image", via, name,
                                      reference=_image_reference(name, cmd.line, fn),
                                      line=cmd.line))
    return tuple(out)


def _edges(i: int, bases: list[StageBase], deps: list[tuple[Dependency, ...]]) -> list[int]:
    out = [d.stage for d in deps[i] if d.kind == "stage" and d.stage is not None]
    if bases[i].stage is not None:
        out.append(bases[i].stage)
    return out


def _check_cycles(stages: tuple[Stage, ...], bases: list[StageBase],
                  deps: list[tuple[Dependency, ...]], fn: str) -> None:
    state: dict[int, int] = {}

    def visit(i: int) -> bool:
        state[i] = 1
        for j in _edges(i, bases, deps):
            if state.get(j) == 1 or (j not in state and visit(j)):
                return True
        state[i] = 2
        return False

    for st in stages:
        if st.index not in state and visit(st.index):
            raise DockerfileError(
                f"circular dependency detected on stage: {st.display_name}", st.line,
                filename=fn)


def _reachable(target: int, bases: list[StageBase],
               deps: list[tuple[Dependency, ...]]) -> set[int]:
    seen: set[int] = set()
    todo = [target]
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        todo.extend(_edges(i, bases, deps))
    return seen
