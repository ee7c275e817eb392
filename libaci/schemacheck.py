"""A quick yes to "is this document valid?", so that jsonschema is asked only about the rest.

Importing jsonschema and building its validators costs ~40 ms of CPU with a
warm page cache and more than 100 ms from a cold one (dozens of modules to
read): a third of a cold ``podkit-fetch`` of a large image, for documents that
are nearly always valid.  :func:`conforms` implements the JSON Schema 2020-12
keywords podkit's ``schemas/`` use, nothing more, and answers True only when
it is sure; for an invalid document, or a schema keyword it does not know, it
answers False and :func:`libaci.schema.validate` asks jsonschema, which stays
the authority and writes the error message.  So a schema may use any keyword:
the price of a new one is only speed.  The tests check that conforms() never
accepts what jsonschema refuses, on every document they have and on fuzzed
ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

ID_PREFIX = "https://podkit.dev/schemas/"
# keywords that assert nothing (in 2020-12 without format assertion)
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "$comment", "title", "description",
                          "default", "examples", "deprecated", "readOnly", "writeOnly",
                          "contentEncoding", "contentMediaType"})
_HANDLED = frozenset({"type", "$ref", "properties", "additionalProperties", "required",
                      "items", "pattern", "const", "enum", "minimum", "maximum", "minLength",
                      "allOf", "not", "if", "then", "else"}) | _ANNOTATIONS
_UNBOOL = object()


class Unsupported(Exception):
    """The schema uses something this checker does not implement: ask jsonschema."""


Loader = Callable[[str], dict[str, Any]]


def conforms(document: object, schema_name: str, load: Loader,
             pattern: Callable[[str], re.Pattern[str]]) -> bool:
    """True when ``document`` is valid against schema ``schema_name``; False when it is
    not, or when this checker cannot tell.

    ``load(stem)`` returns a parsed schema file; ``pattern(p)`` compiles a
    pattern as ECMA-262 reads it (see :func:`libaci.schema._ecma_regex`).
    """
    try:
        return _Check(load, pattern).valid(document, load(schema_name), schema_name)
    except (Unsupported, RecursionError):
        return False


class _Check:
    def __init__(self, load: Loader, pattern: Callable[[str], re.Pattern[str]]) -> None:
        self.load = load
        self.pattern = pattern

    def valid(self, x: object, schema: object, base: str) -> bool:
        if schema is True:
            return True
        if schema is False:
            return False
        if not isinstance(schema, dict):
            raise Unsupported("schema is not an object")
        for key in schema:
            if key not in _HANDLED:
                raise Unsupported(key)
        if "$id" in schema and schema["$id"] != ID_PREFIX + base + ".json":
            raise Unsupported("embedded $id")
        t = schema.get("type")
        if t is not None and not any(_is_type(x, one) for one in
                                     (t if isinstance(t, list) else [t])):
            return False
        if "const" in schema and not _equal(x, schema["const"]):
            return False
        if "enum" in schema and not any(_equal(x, e) for e in schema["enum"]):
            return False
        if isinstance(x, str):
            if "pattern" in schema and not self.pattern(schema["pattern"]).search(x):
                return False
            if "minLength" in schema and len(x) < schema["minLength"]:
                return False
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            if "minimum" in schema and x < schema["minimum"]:
                return False
            if "maximum" in schema and x > schema["maximum"]:
                return False
        elif isinstance(x, dict):
            props = schema.get("properties", {})
            if any(k not in x for k in schema.get("required", ())):
                return False
            for k, v in x.items():
                if k in props:
                    if not self.valid(v, props[k], base):
                        return False
                elif "additionalProperties" in schema and \
                        not self.valid(v, schema["additionalProperties"], base):
                    return False
        elif isinstance(x, list) and "items" in schema and \
                not all(self.valid(v, schema["items"], base) for v in x):
            return False
        if "$ref" in schema:
            target, target_base = self.resolve(schema["$ref"], base)
            if not self.valid(x, target, target_base):
                return False
        if "allOf" in schema and not all(self.valid(x, s, base) for s in schema["allOf"]):
            return False
        if "not" in schema and self.valid(x, schema["not"], base):
            return False
        if "if" in schema:
            branch = "then" if self.valid(x, schema["if"], base) else "else"
            if branch in schema and not self.valid(x, schema[branch], base):
                return False
        return True

    def resolve(self, ref: str, base: str) -> tuple[object, str]:
        """The subschema ``ref`` names (``#/$defs/x``, or ``https://podkit.dev/schemas/
        NAME.json`` with an optional fragment) and the file it is in."""
        where, _, fragment = ref.partition("#")
        if where:
            if not where.startswith(ID_PREFIX) or not where.endswith(".json"):
                raise Unsupported(ref)
            base = where[len(ID_PREFIX):-5]
        doc: object = self.load(base)
        if fragment:
            if not fragment.startswith("/"):
                raise Unsupported(ref)
            for part in fragment[1:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(doc, dict) or part not in doc or "%" in part:
                    raise Unsupported(ref)
                doc = doc[part]
        return doc, base


def _is_type(x: object, name: str) -> bool:
    if name == "string":
        return isinstance(x, str)
    if name == "object":
        return isinstance(x, dict)
    if name == "array":
        return isinstance(x, list)
    if name == "boolean":
        return isinstance(x, bool)
    if name == "null":
        return x is None
    if isinstance(x, bool):
        return False
    if name == "integer":
        return isinstance(x, int) or (isinstance(x, float) and x.is_integer())
    if name == "number":
        return isinstance(x, (int, float))
    raise Unsupported(f"type {name!r}")


def _equal(a: object, b: object) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1 (as jsonschema's ``equal``)."""
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return _unbool(a) == _unbool(b)


def _unbool(x: object) -> object:
    if x is True:
        return (_UNBOOL, True)
    if x is False:
        return (_UNBOOL, False)
    return x
