"""The validation boundary: every JSON document podkit reads is checked here.

Schemas live in the ``schemas`` package (one draft 2020-12 file per document
kind, named by its stem, e.g. ``oci-manifest``).  Cross-schema ``$ref``s are
resolved from those files only, through a :mod:`referencing` registry that
has no retriever, so nothing is ever fetched over the network.

jsonschema is slow to import (~40 ms of CPU, far more from a cold page cache),
so a valid document is first recognised by :mod:`libaci.schemacheck`, a small
checker of the keywords these schemas use; jsonschema is imported only for a
document that checker does not accept, and writes the error.  Its validators
are built once per process and cached.

``pattern`` follows ECMA-262 as JSON Schema requires: ``$`` matches only at the
very end of the string.  Python's ``$`` also matches before a final newline,
which would let ``"sha256:<hex>\\n"`` through, so patterns are translated.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from libaci.errors import ManifestError

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator
    from referencing import Registry

MAX_REPR = 120
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def validate(document: object, schema_name: str) -> None:
    """Raise :class:`ManifestError` unless *document* matches schema *schema_name*.

    The message is one line: ``KIND: $.json.path: reason``, for the most
    relevant error (``jsonschema.exceptions.best_match``).
    """
    from libaci.schemacheck import conforms

    if conforms(document, schema_name, load_schema, _ecma_regex):
        return
    validator = _validator(schema_name)
    from jsonschema.exceptions import best_match

    try:
        error = best_match(validator.iter_errors(document))
    except RecursionError:
        raise ManifestError(f"{schema_name}: document is nested too deeply") from None
    if error is not None:
        raise ManifestError(f"{schema_name}: {json_path(error.absolute_path)}: {_reason(error)}")


def load_json(raw: bytes, schema_name: str) -> object:
    """Parse *raw* (UTF-8 JSON), validate it against *schema_name* and return it.

    Digests are computed by the caller over *raw*; the parsed object is never
    re-serialized for that purpose.
    """
    if schema_name not in schema_names():
        raise ValueError(f"unknown schema {schema_name!r}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestError(
            f"{schema_name}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ManifestError(
            f"{schema_name}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except _ConstantError as e:
        raise ManifestError(f"{schema_name}: invalid JSON: {e} is not a JSON value") from None
    except RecursionError:
        raise ManifestError(f"{schema_name}: invalid JSON: nested too deeply") from None
    except ValueError as e:  # e.g. an integer longer than sys.get_int_max_str_digits()
        reason = str(e).split(":", 1)[0]
        raise ManifestError(f"{schema_name}: invalid JSON: {reason}") from None
    validate(document, schema_name)
    return document


@functools.cache
def _schema_dir() -> str:
    """The ``schemas`` package's directory: podkit is installed as files, never zipped
    (importlib.resources would cost another dozen modules at every fetch)."""
    import schemas

    return os.path.dirname(os.path.abspath(schemas.__file__))


@functools.cache
def schema_names() -> frozenset[str]:
    """Stems of the schema files shipped in the ``schemas`` package."""
    return frozenset(n[:-5] for n in os.listdir(_schema_dir()) if n.endswith(".json"))


@functools.cache
def load_schema(schema_name: str) -> dict[str, Any]:
    """The parsed schema document *schema_name* (a stem such as ``oci-index``)."""
    if schema_name not in schema_names():
        raise ValueError(f"unknown schema {schema_name!r}")
    with open(os.path.join(_schema_dir(), f"{schema_name}.json"), encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


def json_path(path: Iterable[str | int]) -> str:
    """``$.layers[0].digest`` for ``["layers", 0, "digest"]``; odd keys are quoted."""
    out = ["$"]
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENTIFIER.match(part):
            out.append(f".{part}")
        else:
            out.append(f"[{json.dumps(part)}]")
    return "".join(out)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= MAX_REPR else text[:MAX_REPR - 3] + "..."


def _reason(error: ValidationError) -> str:
    message = error.message
    full = repr(error.instance)
    if len(full) > MAX_REPR:
        message = message.replace(full, _short(error.instance))
    if len(message) > 3 * MAX_REPR:
        message = message[:3 * MAX_REPR - 3] + "..."
    return message.replace("\n", " ").replace("\r", " ")


class _ConstantError(ValueError):
    pass


def _reject_constant(name: str) -> object:
    raise _ConstantError(name)


@functools.cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """Compile an ECMA-262 pattern: an unescaped ``$`` outside a class is ``\\Z``."""
    out: list[str] = []
    escaped = in_class = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "$":
            out.append(r"\Z")
            continue
        out.append(ch)
    return re.compile("".join(out))


def _pattern(validator: Validator, pattern: str, instance: object,
             schema: dict[str, Any]) -> Iterator[ValidationError]:
    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _without_dialect(schema_name: str) -> dict[str, Any]:
    """The schema minus ``$schema``.

    jsonschema picks the class for a ``$ref``'d document from its ``$schema``,
    which would drop the ECMA ``pattern`` keyword for other files; every file
    is draft 2020-12 (a unit test checks), so the dialect is given explicitly.
    """
    return {k: v for k, v in load_schema(schema_name).items() if k != "$schema"}


@functools.cache
def _registry() -> Registry[Any]:
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    resources = []
    for name in sorted(schema_names()):
        schema = _without_dialect(name)
        resources.append((schema["$id"], DRAFT202012.create_resource(schema)))
    return Registry().with_resources(resources).crawl()


@functools.cache
def _validator_class() -> type[Validator]:
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend

    cls: type[Validator] = extend(Draft202012Validator, validators={"pattern": _pattern})
    return cls


@functools.cache
def _validator(schema_name: str) -> Validator:
    return _validator_class()(_without_dialect(schema_name), registry=_registry())
