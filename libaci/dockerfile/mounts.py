"""``RUN --mount=...`` specifications, parsed as BuildKit parses them.

A mount is a CSV list of ``key=value`` fields (``type=cache,target=/root/.cache``).
BuildKit reads it twice: once when the Dockerfile is parsed, where only
``from=`` matters (it decides stage dependencies and may not hold a
variable), and again when the RUN is dispatched, with every value expanded.
:func:`mount_from` is the first pass, :func:`parse_mount` the second
(``frontend/dockerfile/instructions/commands_runmount.go``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from libaci.dockerfile import _go
from libaci.dockerfile.errors import DockerfileError

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "mode",
         "uid", "gid", "src", "dst", "ro", "rw", "readwrite", "size", "env", "destination")
_RAM = re.compile(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?\Z")
_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_BOOLS = {"1": True, "t": True, "T": True, "true": True, "TRUE": True, "True": True,
          "0": False, "f": False, "F": False, "false": False, "FALSE": False, "False": False}


@attrs.frozen
class Mount:
    """One ``--mount`` of a RUN, with BuildKit's defaults applied."""

    type: str = "bind"
    from_: str = ""
    source: str = ""
    target: str = ""
    read_only: bool = True
    cache_id: str = ""
    sharing: str = ""
    required: bool = False
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size_limit: int = 0
    env: str | None = None


def csv_fields(text: str) -> list[str]:
    """One record of Go's ``encoding/csv`` (quotes, ``""`` escapes, no bare quotes)."""
    fields: list[str] = []
    i = 0
    n = len(text)
    while True:
        if i < n and text[i] == '"':
            i += 1
            value: list[str] = []
            while True:
                j = text.find('"', i)
                if j < 0:
                    raise DockerfileError(f'failed to parse csv mounts: extraneous or missing " '
                                          f"in quoted-field: {text}")
                value.append(text[i:j])
                i = j + 1
                if i < n and text[i] == '"':
                    value.append('"')
                    i += 1
                    continue
                break
            if i < n and text[i] != ",":
                raise DockerfileError(f'failed to parse csv mounts: extraneous or missing " '
                                      f"in quoted-field: {text}")
            fields.append("".join(value))
        else:
            j = text.find(",", i)
            end = n if j < 0 else j
            field = text[i:end]
            if '"' in field:
                raise DockerfileError(f'failed to parse csv mounts: bare " in non-quoted-field: '
                                      f"{text}")
            fields.append(field)
            i = end
        if i >= n:
            return fields
        i += 1  # the comma
        if i == n:
            fields.append("")
            return fields


def mount_from(spec: str) -> str:
    """The ``from=`` of a mount, checked as at parse time (no variables allowed)."""
    found = ""
    for field in csv_fields(spec):
        key, eq, value = field.partition("=")
        if eq and key.lower() == "from":
            if re.search(r"\$.", value):
                raise DockerfileError("'from' doesn't support variable expansion, "
                                      "define alias stage instead")
            found = value
    return found


def _bool(key: str, value: str) -> bool:
    if value not in _BOOLS:
        raise DockerfileError(f"invalid value for {key}: {value}")
    return _BOOLS[value]


def _uint(key: str, value: str, base: int) -> int:
    try:
        number = int(value, base)
    except ValueError:
        number = -1
    if number < 0 or number >= 1 << 32 or not re.fullmatch(r"[0-9a-fA-F]+", value):
        raise DockerfileError(f"invalid value {value} for {key}")
    return number


def ram_in_bytes(text: str) -> int:
    """go-units ``RAMInBytes``: ``64m`` is 64 MiB."""
    m = _RAM.match(text)
    if m is None:
        raise ValueError(text)
    size = float(m.group(1))
    unit = (m.group(2) or "").lower()
    return int(size * _UNITS.get(unit, 1))


def parse_mount(spec: str, expander: Callable[[str], str] | None = None) -> Mount:
    """A ``--mount`` value as BuildKit reads it at dispatch (values expanded)."""
    fields: dict[str, object] = {"type": "bind"}
    ro_auto = True
    for field in csv_fields(spec):
        key, eq, value = field.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                fields["read_only"] = True
                ro_auto = False
            elif key in ("readwrite", "rw"):
                fields["read_only"] = False
                ro_auto = False
            elif key == "required":
                if fields["type"] not in ("secret", "ssh"):
                    raise DockerfileError(
                        f"unexpected key '{key}' for mount type '{fields['type']}'")
                fields["required"] = True
            else:
                raise DockerfileError(f"invalid field '{field}' must be a key=value pair")
            continue
        if expander is not None:
            value = expander(value)
        typ = fields["type"]
        if key == "type":
            if value.lower() not in MOUNT_TYPES:
                raise DockerfileError(f"unsupported mount type {_go.quote(value)}")
            fields["type"] = value.lower()
        elif key == "from":
            fields["from_"] = value
        elif key in ("source", "src"):
            fields["source"] = value
        elif key in ("target", "dst", "destination"):
            fields["target"] = value
        elif key in ("readonly", "ro"):
            fields["read_only"] = _bool(key, value)
            ro_auto = False
        elif key in ("readwrite", "rw"):
            fields["read_only"] = not _bool(key, value)
            ro_auto = False
        elif key == "required":
            if typ not in ("secret", "ssh"):
                raise DockerfileError(f"unexpected key '{key}' for mount type '{typ}'")
            fields["required"] = _bool(key, value)
        elif key == "size":
            if typ != "tmpfs":
                raise DockerfileError(f"unexpected key '{key}' for mount type '{typ}'")
            try:
                fields["size_limit"] = ram_in_bytes(value)
            except ValueError:
                raise DockerfileError(f"invalid value for {key}: {value}") from None
        elif key == "id":
            fields["cache_id"] = value
        elif key == "sharing":
            if value.lower() not in SHARING_MODES:
                raise DockerfileError(f"unsupported sharing value {_go.quote(value)}")
            fields["sharing"] = value.lower()
        elif key == "mode":
            fields["mode"] = _uint(key, value, 8)
        elif key in ("uid", "gid"):
            fields[key] = _uint(key, value, 10)
        elif key == "env":
            if typ != "secret":
                raise DockerfileError(f"unexpected key '{key}' for mount type '{typ}'")
            fields["env"] = value
        else:
            raise DockerfileError(f"unexpected key '{key}' in '{field}'")
    mount = Mount(**fields)  # type: ignore[arg-type]
    return _validate(mount, ro_auto)


def _validate(m: Mount, ro_auto: bool) -> Mount:
    if m.type not in ("secret", "ssh", "cache"):
        for name in ("mode", "uid", "gid"):
            if getattr(m, name) is not None:
                raise DockerfileError(f"{name} not allowed for {_go.quote(m.type)} type mounts")
    if ro_auto:
        m = attrs.evolve(m, read_only=m.type not in ("cache", "tmpfs"))
    if m.type == "secret":
        if m.from_:
            raise DockerfileError("secret mount should not have a from")
        if m.sharing:
            raise DockerfileError("secret mount should not define sharing")
        if not m.source and not m.target and not m.cache_id and m.env is None:
            raise DockerfileError("invalid secret mount. one of source, target required")
        if m.source and m.cache_id:
            raise DockerfileError("both source and id can't be set")
    if m.sharing and m.type != "cache":
        raise DockerfileError(f"invalid cache sharing set for {m.type} mount")
    return m
