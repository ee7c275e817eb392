"""Parser nodes to typed instructions and stages, checked as BuildKit checks them.

:func:`parse_instruction` turns one :class:`~libaci.dockerfile.parser.Node`
into an :class:`~libaci.dockerfile.instructions.Instruction` (or a
:class:`~libaci.dockerfile.instructions.Stage` for FROM), following
``frontend/dockerfile/instructions/parse.go`` and ``bflag.go``: the flags
each instruction accepts and their types, argument counts, JSON-only SHELL,
ONBUILD restrictions, heredoc sources, HEALTHCHECK durations.  :func:`load`
parses a whole Dockerfile into its global ARGs and stages, and
:func:`parse_trigger` reads an ONBUILD trigger from an image config.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from libaci.dockerfile import _go
from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.instructions import (
    Add,
    Arg,
    ArgDef,
    Cmd,
    Copy,
    Dockerfile,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    HealthConfig,
    InlineFile,
    Instruction,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    SourceContent,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse_chmod,
)
from libaci.dockerfile.mounts import mount_from
from libaci.dockerfile.parser import Heredoc, Node, ParseResult, chomp_heredoc, parse, parse_heredoc

INSTRUCTIONS = ("add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from",
                "healthcheck", "label", "maintainer", "onbuild", "run", "shell",
                "stopsignal", "user", "volume", "workdir")
STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*\Z")
MINIMUM_DURATION_NS = 1_000_000  # container.MinimumDuration, 1ms
NETWORK_MODES = ("default", "none", "host")
SECURITY_MODES = ("sandbox", "insecure")
_CHECKSUM = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\Z")


# -- flags ----------------------------------------------------------------------

class _Flags:
    """``BFlags``: the flags one instruction accepts, parsed from ``--k=v`` words."""

    def __init__(self, args: Sequence[str]) -> None:
        self.args = args
        self.kinds: dict[str, str] = {}
        self.values: dict[str, object] = {}
        self.used: set[str] = set()

    def add_bool(self, name: str, default: bool = False) -> None:
        self.kinds[name] = "bool"
        self.values[name] = default

    def add_string(self, name: str, default: str = "") -> None:
        self.kinds[name] = "string"
        self.values[name] = default

    def add_strings(self, name: str) -> None:
        self.kinds[name] = "strings"
        self.values[name] = ()

    def parse(self) -> _Flags:
        for raw in self.args:
            if not raw.startswith("--"):
                raise DockerfileError(f"Arg should start with -- : {raw}")
            if raw == "--":
                break
            name, eq, value = raw[2:].partition("=")
            kind = self.kinds.get(name)
            if kind is None:
                raise DockerfileError(f"Unknown flag: {name}")
            if name in self.used and kind != "strings":
                raise DockerfileError(f"Duplicate flag specified: {name}")
            self.used.add(name)
            if kind == "bool":
                if eq and value == "":
                    raise DockerfileError(f"Missing a value on flag: {name}")
                lower = value.lower()
                if lower in ("", "true"):
                    self.values[name] = True
                elif lower == "false":
                    self.values[name] = False
                else:
                    raise DockerfileError(
                        f"Expecting boolean value for flag {name}, not: {value}")
            elif not eq:
                raise DockerfileError(f"Missing a value on flag: {name}")
            elif kind == "string":
                self.values[name] = value
            else:
                self.values[name] = (*self.values[name], value)  # type: ignore[misc]
        return self

    def text(self, name: str) -> str:
        return str(self.values[name])

    def flag(self, name: str) -> bool:
        return bool(self.values[name])

    def items(self, name: str) -> tuple[str, ...]:
        value = self.values[name]
        assert isinstance(value, tuple)
        return value


# -- parsing ----------------------------------------------------------------------

@attrs.frozen
class _Request:
    node: Node
    args: tuple[str, ...]
    flags: tuple[str, ...]

    @property
    def common(self) -> dict[str, Any]:
        return {"name": self.node.keyword, "original": _go.trim_space(self.node.original),
                "line": self.node.start_line, "end_line": self.node.end_line}


def _node_args(node: Node) -> tuple[str, ...]:
    if node.sub is not None:
        return (node.sub.value, *_node_args(node.sub))
    return node.args


def _no_args_error(command: str) -> DockerfileError:
    return DockerfileError(f"{command} requires at least one argument")


def _exactly_one(req: _Request, command: str) -> str:
    if len(req.args) != 1:
        raise DockerfileError(f"{command} requires exactly one argument")
    return req.args[0]


def _kvps(args: tuple[str, ...], command: str) -> tuple[KeyValue, ...]:
    if not args:
        raise _no_args_error(command)
    if len(args) % 3:
        raise DockerfileError(f"Bad input to {command}, too many arguments")
    out = []
    for i in range(0, len(args), 3):
        if not args[i]:
            raise DockerfileError(f"{command} names can not be blank")
        out.append(KeyValue(args[i], args[i + 1], args[i + 2] == ""))
    return tuple(out)


def _sources_and_dest(req: _Request, command: str) -> dict[str, Any]:
    *sources, dest = req.args
    if parse_heredoc(dest) is not None:
        raise DockerfileError(f"{command} cannot accept a heredoc as a destination")
    docs = {h.name: h for h in req.node.heredocs}
    paths: list[str] = []
    contents: list[SourceContent] = []
    for src in sources:
        doc = parse_heredoc(src)
        if doc is None:
            paths.append(src)
            continue
        body = docs.get(doc.name, Heredoc(doc.name)).content
        if doc.chomp:
            body = chomp_heredoc(body)
        contents.append(SourceContent(path=doc.name, data=body, expand=doc.expand))
    return {"sources": tuple(paths), "contents": tuple(contents), "dest": dest}


def _check_flag_value(value: str, check: Callable[[str], object]) -> None:
    """Validate a flag value now unless it holds a variable, expanded later."""
    if value and "$" not in value:
        check(value)


def _check_checksum(value: str) -> None:
    if not _CHECKSUM.match(value):
        raise DockerfileError(f"invalid checksum digest format: {value}")


def _parse_copy(req: _Request) -> Copy:
    if len(req.args) < 2:
        raise DockerfileError("COPY requires at least two arguments, but only one was "
                              "provided. Destination could not be determined")
    f = _Flags(req.flags)
    f.add_strings("exclude")
    f.add_bool("parents")
    f.add_string("chown")
    f.add_string("from")
    f.add_string("chmod")
    f.add_bool("link")
    f.parse()
    _check_flag_value(f.text("chmod"), parse_chmod)
    return Copy(**req.common, **_sources_and_dest(req, "COPY"),
                from_=f.text("from"), chown=f.text("chown"), chmod=f.text("chmod"),
                link=f.flag("link"), parents=f.flag("parents"), excludes=f.items("exclude"))


def _parse_add(req: _Request) -> Add:
    if len(req.args) < 2:
        raise DockerfileError("ADD requires at least two arguments, but only one was "
                              "provided. Destination could not be determined")
    f = _Flags(req.flags)
    f.add_strings("exclude")
    f.add_string("chown")
    f.add_string("chmod")
    f.add_bool("link")
    f.add_bool("keep-git-dir")
    f.add_string("checksum")
    f.add_bool("unpack")
    f.parse()
    _check_flag_value(f.text("chmod"), parse_chmod)
    _check_flag_value(f.text("checksum"), _check_checksum)
    unpack = f.flag("unpack") if "unpack" in f.used else None
    return Add(**req.common, **_sources_and_dest(req, "ADD"),
               chown=f.text("chown"), chmod=f.text("chmod"), link=f.flag("link"),
               keep_git_dir=f.flag("keep-git-dir"), checksum=f.text("checksum"),
               unpack=unpack, excludes=f.items("exclude"))


def _parse_from(req: _Request, index: int) -> Stage:
    args = req.args
    name = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not STAGE_NAME.match(name):
            raise DockerfileError(f"invalid name for build stage: {_go.quote(args[2])}, "
                                  "name can't start with a number or contain symbols")
    elif len(args) != 1:
        raise DockerfileError("FROM requires either one or three arguments")
    f = _Flags(req.flags)
    f.add_string("platform")
    f.parse()
    comment = ""
    prefix = f"{name} " if name else None
    for c in req.node.comments:
        if prefix and c.startswith(prefix):
            comment = c[len(prefix):]
            break
    return Stage(index=index, base_name=args[0], name=name, platform=f.text("platform"),
                 line=req.node.start_line, end_line=req.node.end_line,
                 original=_go.trim_space(req.node.original), comment=comment)


def _parse_onbuild(req: _Request) -> Onbuild:
    if not req.args:
        raise _no_args_error("ONBUILD")
    _Flags(req.flags).parse()
    trigger = _go.trim_space(req.args[0]).upper()
    if trigger == "ONBUILD":
        raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise DockerfileError(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", req.node.original, count=1)
    for doc in req.node.heredocs:
        expression += "\n" + doc.content + doc.name
    return Onbuild(**req.common, expression=expression)


def _shell_dependent(req: _Request, empty_as_none: bool) -> dict[str, Any]:
    files = tuple(InlineFile(h.name, h.content, h.chomp) for h in req.node.heredocs)
    cmd: tuple[str, ...] | None = req.args
    if empty_as_none and not cmd:
        cmd = None
    return {"cmd": cmd, "prepend_shell": not req.node.json, "files": files}


def _parse_run(req: _Request) -> Run:
    f = _Flags(req.flags)
    f.add_strings("mount")
    f.add_string("network", "default")
    f.add_string("security", "sandbox")
    f.add_strings("device")
    f.parse()
    for spec in f.items("mount"):
        mount_from(spec)
    network = f.text("network")
    if network not in NETWORK_MODES:
        raise DockerfileError(f"network mode {_go.quote(network)} not supported")
    security = f.text("security")
    if security not in SECURITY_MODES:
        raise DockerfileError(f"security {_go.quote(security)} is not valid")
    return Run(**req.common, **_shell_dependent(req, False),
               mounts=f.items("mount"), network=network, security=security,
               devices=f.items("device"))


def _duration(f: _Flags, name: str) -> int:
    text = f.text(name)
    if text == "":
        return 0
    try:
        ns = _go.parse_duration(text)
    except ValueError as e:
        raise DockerfileError(str(e)) from None
    if ns == 0:
        return 0
    if ns < MINIMUM_DURATION_NS:
        raise DockerfileError(f'Interval "{name}" cannot be less than 1ms')
    return ns


def _parse_healthcheck(req: _Request) -> Healthcheck:
    if not req.args:
        raise _no_args_error("HEALTHCHECK")
    typ = req.args[0].upper()
    args = req.args[1:]
    if typ == "NONE":
        if args:
            raise DockerfileError("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(**req.common, health=HealthConfig(test=(typ,)))
    f = _Flags(req.flags)
    for name in ("interval", "timeout", "start-period", "start-interval", "retries"):
        f.add_string(name)
    f.parse()
    if typ != "CMD":
        raise DockerfileError(f"Unknown type {_go.quote(typ)} in HEALTHCHECK (try CMD)")
    if not args:
        raise DockerfileError("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *args) if req.node.json else ("CMD-SHELL", *args)
    retries = 0
    if f.text("retries"):
        try:
            retries = int(f.text("retries"), 10)
        except ValueError:
            raise DockerfileError(f'strconv.ParseInt: parsing {_go.quote(f.text("retries"))}: '
                                  "invalid syntax") from None
        if retries < 0:
            raise DockerfileError(f"--retries cannot be negative ({retries})")
    health = HealthConfig(test=test, interval=_duration(f, "interval"),
                          timeout=_duration(f, "timeout"),
                          start_period=_duration(f, "start-period"),
                          start_interval=_duration(f, "start-interval"), retries=retries)
    return Healthcheck(**req.common, health=health)


def _parse_arg(req: _Request) -> Arg:
    if not req.args:
        raise _no_args_error("ARG")
    out = []
    for word in req.args:
        if "=" in word:
            key, value = word.split("=", 1)
            if not key:
                raise DockerfileError("ARG names can not be blank")
            out.append(ArgDef(key, value))
        else:
            out.append(ArgDef(word))
    _Flags(req.flags).parse()
    return Arg(**req.common, args=tuple(out))


def _parse_shell(req: _Request) -> Shell:
    _Flags(req.flags).parse()
    if not req.args:
        raise _no_args_error("SHELL")
    if not req.node.json:
        raise DockerfileError("SHELL requires the arguments to be in JSON form")
    return Shell(**req.common, shell=req.args)


def _parse_volume(req: _Request) -> Volume:
    if not req.args:
        raise _no_args_error("VOLUME")
    _Flags(req.flags).parse()
    volumes = tuple(_go.trim_space(v) for v in req.args)
    if any(v == "" for v in volumes):
        raise DockerfileError("VOLUME specified can not be an empty string")
    return Volume(**req.common, volumes=volumes)


def _simple(req: _Request) -> Instruction:
    k = req.node.keyword
    c = req.common
    if k == "env":
        _Flags(req.flags).parse()
        return Env(**c, pairs=_kvps(req.args, "ENV"))
    if k == "label":
        _Flags(req.flags).parse()
        return Label(**c, pairs=_kvps(req.args, "LABEL"))
    if k == "maintainer":
        value = _exactly_one(req, "MAINTAINER")
        _Flags(req.flags).parse()
        return Maintainer(**c, maintainer=value)
    if k == "workdir":
        value = _exactly_one(req, "WORKDIR")
        _Flags(req.flags).parse()
        return Workdir(**c, path=value)
    if k == "user":
        value = _exactly_one(req, "USER")
        _Flags(req.flags).parse()
        return User(**c, user=value)
    if k == "stopsignal":
        return StopSignal(**c, signal=_exactly_one(req, "STOPSIGNAL"))
    if k == "expose":
        if not req.args:
            raise _no_args_error("EXPOSE")
        _Flags(req.flags).parse()
        return Expose(**c, ports=req.args)
    if k in ("cmd", "entrypoint"):
        _Flags(req.flags).parse()
        cls = Cmd if k == "cmd" else Entrypoint
        return cls(**c, **_shell_dependent(req, k == "entrypoint"))
    raise AssertionError(k)


_PARSERS: dict[str, Callable[[_Request], Instruction]] = {
    "copy": _parse_copy, "add": _parse_add, "onbuild": _parse_onbuild, "run": _parse_run,
    "healthcheck": _parse_healthcheck, "arg": _parse_arg, "shell": _parse_shell,
    "volume": _parse_volume,
}


def _unknown(node: Node) -> DockerfileError:
    message = f"unknown instruction: {node.value}"
    close = difflib.get_close_matches(node.keyword, INSTRUCTIONS, n=1, cutoff=0.6)
    if close:
        message += f" (did you mean {close[0]}?)"
    return DockerfileError(message)


def parse_instruction(node: Node, *, stage_index: int = 0) -> Instruction | Stage:
    """One parser node as a typed instruction, or a :class:`Stage` for FROM."""
    req = _Request(node, _node_args(node), node.flags)
    try:
        if node.keyword == "from":
            return _parse_from(req, stage_index)
        if node.keyword not in INSTRUCTIONS:
            raise _unknown(node)
        return _PARSERS.get(node.keyword, _simple)(req)
    except DockerfileError as e:
        raise e.at(node.start_line or None, node.end_line or None) from None


def parse_command(node: Node) -> Instruction:
    """Like :func:`parse_instruction` but refusing FROM (ONBUILD triggers)."""
    out = parse_instruction(node)
    if isinstance(out, Stage):
        raise DockerfileError("FROM isn't allowed as an ONBUILD trigger",
                              node.start_line or None)
    return out


def parse_trigger(expression: str, line: int | None = None) -> Instruction:
    """An ONBUILD trigger from an image config, parsed as one instruction."""
    try:
        result = parse(expression)
    except DockerfileError as e:
        raise DockerfileError(f"onbuild trigger: {e.message}", line) from None
    if len(result.nodes) != 1:
        raise DockerfileError("onbuild trigger should be a single expression", line)
    node = attrs.evolve(result.nodes[0], start_line=line or 0, end_line=line or 0)
    return parse_command(node)


def from_ast(result: ParseResult, *, filename: str = "Dockerfile") -> Dockerfile:
    """``instructions.Parse``: group the nodes into global ARGs and stages."""
    meta: list[Arg] = []
    stages: list[Stage] = []
    commands: list[Instruction] = []

    def close() -> None:
        if stages:
            stages[-1] = attrs.evolve(stages[-1], commands=tuple(commands))

    try:
        for node in result.nodes:
            item = parse_instruction(node, stage_index=len(stages))
            if isinstance(item, Stage):
                close()
                commands = []
                stages.append(item)
            elif not stages:
                if not isinstance(item, Arg):
                    raise DockerfileError("no build stage in current context", node.start_line)
                meta.append(item)
            else:
                commands.append(item)
        close()
    except DockerfileError as e:
        raise e.named(filename) from None
    if not stages:
        raise DockerfileError("dockerfile contains no stages to build", filename=filename)
    return Dockerfile(meta_args=tuple(meta), stages=tuple(stages),
                      escape_token=result.escape_token, warnings=result.warnings,
                      syntax=result.directive("syntax"), filename=filename)


def load(source: str | bytes, *, filename: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile text into stages; every error names *filename* and a line."""
    return from_ast(parse(source, filename=filename), filename=filename)
