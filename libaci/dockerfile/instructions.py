"""Typed Dockerfile instructions and build stages: the model.

What a Dockerfile means once parsed: one frozen class per instruction, with
BuildKit's fields (``COPY --from --chown --chmod --link --parents --exclude``,
``ADD --checksum --keep-git-dir --unpack``, ``RUN --mount --network
--security``, HEALTHCHECK durations ...), :class:`Stage` for a FROM and its
instructions and :class:`Dockerfile` for the whole file.
:mod:`libaci.dockerfile.loader` builds them from the parser's nodes.

Instructions are frozen; :meth:`Instruction.expand` returns a copy with the
words BuildKit expands (it is given the expander, see
:mod:`libaci.dockerfile.dispatch`), so the unexpanded form stays available.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.mounts import Mount, mount_from, parse_mount
from libaci.dockerfile.parser import ParseWarning, chomp_heredoc

Expander = Callable[[str], str]

_SYMBOLIC_MODE = re.compile(r"[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+\Z")

@attrs.frozen
class KeyValue:
    """One ``key=value`` of ENV or LABEL; ``no_delim`` for the legacy ``KEY value``."""

    key: str
    value: str
    no_delim: bool = False

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


@attrs.frozen
class ArgDef:
    """One ARG declaration: a name and an optional default."""

    key: str
    value: str | None = None

    def __str__(self) -> str:
        return self.key if self.value is None else f"{self.key}={self.value}"


@attrs.frozen
class SourceContent:
    """A COPY/ADD source given inline as a heredoc (``COPY <<EOF /dest``)."""

    path: str
    data: str
    expand: bool


@attrs.frozen
class InlineFile:
    """A heredoc body attached to RUN (or CMD/ENTRYPOINT) text."""

    name: str
    data: str
    chomp: bool = False

    def content(self) -> str:
        """The body with leading tabs removed when the heredoc was ``<<-``."""
        return chomp_heredoc(self.data) if self.chomp else self.data


@attrs.frozen
class HealthConfig:
    """HEALTHCHECK as it goes into the image config; durations in nanoseconds."""

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@attrs.frozen
class Chmod:
    """A ``--chmod`` value: octal bits, or the symbolic form of newer BuildKit."""

    mode: int | None = None
    symbolic: str | None = None


def parse_chmod(text: str) -> Chmod:
    """``--chmod``: octal up to 07777, or a symbolic mode such as ``u+x,go=r``."""
    if re.fullmatch(r"[0-7]+", text):
        mode = int(text, 8)
        if mode <= 0o7777:
            return Chmod(mode=mode)
    elif text and all(_SYMBOLIC_MODE.match(part) for part in text.split(",")):
        return Chmod(symbolic=text)
    raise DockerfileError(f"invalid chmod parameter: '{text}'. "
                          "it should be octal string and between 0 and 07777")


# -- instructions -------------------------------------------------------------

@attrs.frozen(kw_only=True)
class Instruction:
    """What every instruction has: its name, source text and lines."""

    name: str
    original: str = ""
    line: int = 0
    end_line: int = 0

    def expand(self, expander: Expander) -> Instruction:
        """A copy with BuildKit's expanded words replaced (none by default)."""
        return self


@attrs.frozen(kw_only=True)
class Env(Instruction):
    pairs: tuple[KeyValue, ...]

    def expand(self, expander: Expander) -> Env:
        return attrs.evolve(self, pairs=tuple(
            KeyValue(expander(p.key), expander(p.value), p.no_delim) for p in self.pairs))


@attrs.frozen(kw_only=True)
class Label(Instruction):
    pairs: tuple[KeyValue, ...]

    def expand(self, expander: Expander) -> Label:
        return attrs.evolve(self, pairs=tuple(
            KeyValue(expander(p.key), expander(p.value), p.no_delim) for p in self.pairs))


@attrs.frozen(kw_only=True)
class Maintainer(Instruction):
    maintainer: str


@attrs.frozen(kw_only=True)
class _Copying(Instruction):
    sources: tuple[str, ...]
    contents: tuple[SourceContent, ...] = ()
    dest: str
    chown: str = ""
    chmod: str = ""
    link: bool = False
    excludes: tuple[str, ...] = ()

    def expand(self, expander: Expander) -> _Copying:
        return attrs.evolve(
            self, sources=tuple(expander(s) for s in self.sources), dest=expander(self.dest),
            chown=expander(self.chown), chmod=expander(self.chmod),
            excludes=tuple(expander(e) for e in self.excludes))

    def expand_contents(self, expander: Expander) -> _Copying:
        """Heredoc sources expanded (``ExpandRaw``) unless their name was quoted."""
        return attrs.evolve(self, contents=tuple(
            attrs.evolve(c, data=expander(c.data)) if c.expand else c for c in self.contents))

    def chmod_mode(self) -> Chmod | None:
        return parse_chmod(self.chmod) if self.chmod else None


@attrs.frozen(kw_only=True)
class Copy(_Copying):
    from_: str = ""
    parents: bool = False

    def expand(self, expander: Expander) -> Copy:
        out = super().expand(expander)
        assert isinstance(out, Copy)
        return attrs.evolve(out, from_=expander(self.from_))


@attrs.frozen(kw_only=True)
class Add(_Copying):
    checksum: str = ""
    keep_git_dir: bool = False
    unpack: bool | None = None

    def expand(self, expander: Expander) -> Add:
        out = super().expand(expander)
        assert isinstance(out, Add)
        return attrs.evolve(out, checksum=expander(self.checksum))


@attrs.frozen(kw_only=True)
class Onbuild(Instruction):
    expression: str


@attrs.frozen(kw_only=True)
class Workdir(Instruction):
    path: str

    def expand(self, expander: Expander) -> Workdir:
        return attrs.evolve(self, path=expander(self.path))


@attrs.frozen(kw_only=True)
class _ShellDependent(Instruction):
    cmd: tuple[str, ...] | None
    prepend_shell: bool
    files: tuple[InlineFile, ...] = ()


@attrs.frozen(kw_only=True)
class Run(_ShellDependent):
    mounts: tuple[str, ...] = ()
    network: str = "default"
    security: str = "sandbox"
    devices: tuple[str, ...] = ()

    def mount_sources(self) -> tuple[str, ...]:
        """The ``from=`` of each ``--mount`` (``""`` when it has none)."""
        return tuple(mount_from(m) for m in self.mounts)

    def parsed_mounts(self, expander: Expander | None = None) -> tuple[Mount, ...]:
        """The mounts, with values expanded as BuildKit does at dispatch."""
        try:
            return tuple(parse_mount(m, expander) for m in self.mounts)
        except DockerfileError as e:
            raise e.at(self.line or None, self.end_line or None) from None


@attrs.frozen(kw_only=True)
class Cmd(_ShellDependent):
    pass


@attrs.frozen(kw_only=True)
class Entrypoint(_ShellDependent):
    pass


@attrs.frozen(kw_only=True)
class Healthcheck(Instruction):
    health: HealthConfig


@attrs.frozen(kw_only=True)
class Expose(Instruction):
    ports: tuple[str, ...]


@attrs.frozen(kw_only=True)
class User(Instruction):
    user: str

    def expand(self, expander: Expander) -> User:
        return attrs.evolve(self, user=expander(self.user))


@attrs.frozen(kw_only=True)
class Volume(Instruction):
    volumes: tuple[str, ...]

    def expand(self, expander: Expander) -> Volume:
        return attrs.evolve(self, volumes=tuple(expander(v) for v in self.volumes))


@attrs.frozen(kw_only=True)
class StopSignal(Instruction):
    signal: str

    def expand(self, expander: Expander) -> StopSignal:
        return attrs.evolve(self, signal=expander(self.signal))


@attrs.frozen(kw_only=True)
class Arg(Instruction):
    args: tuple[ArgDef, ...]


@attrs.frozen(kw_only=True)
class Shell(Instruction):
    shell: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Stage:
    """A FROM and the instructions up to the next FROM."""

    index: int
    base_name: str
    name: str | None = None
    platform: str = ""
    commands: tuple[Instruction, ...] = ()
    line: int = 0
    end_line: int = 0
    original: str = ""
    comment: str = ""

    @property
    def display_name(self) -> str:
        return self.name or f"stage-{self.index}"


@attrs.frozen
class Dockerfile:
    """A parsed Dockerfile: global ARGs (before the first FROM) and stages."""

    meta_args: tuple[Arg, ...]
    stages: tuple[Stage, ...]
    escape_token: str = "\\"
    warnings: tuple[ParseWarning, ...] = ()
    syntax: str | None = None
    filename: str = "Dockerfile"

    def stage_by_name(self, name: str) -> Stage | None:
        for stage in self.stages:
            if stage.name is not None and stage.name == name.lower():
                return stage
        return None
