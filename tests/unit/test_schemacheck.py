"""libaci.schemacheck against jsonschema: the quick checker never accepts what jsonschema
refuses (and, for podkit's own schemas, agrees with it exactly)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libaci import schema
from libaci.schemacheck import Unsupported, conforms
from tests.unit.test_schema import INVALID, SCHEMA_NAMES, VALID, _with_unknowns

ROOT = Path(__file__).resolve().parents[2]


def quick(doc: object, name: str) -> bool:
    return conforms(doc, name, schema.load_schema, schema._ecma_regex)


def authority(doc: object, name: str) -> bool:
    """jsonschema's verdict, with podkit's ECMA-262 ``pattern``."""
    return next(schema._validator(name).iter_errors(doc), None) is None


def _walk(node: Any) -> list[str]:
    keys: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            keys.append(k)
            keys += _walk(v) if k not in ("properties", "$defs") else \
                [kk for vv in v.values() for kk in _walk(vv)]
    elif isinstance(node, list):
        for v in node:
            keys += _walk(v)
    return keys


@pytest.mark.parametrize("name", sorted(SCHEMA_NAMES))
def test_every_keyword_of_the_schemas_is_handled(name: str) -> None:
    """A keyword the checker does not know would send every document to jsonschema."""
    from libaci.schemacheck import _HANDLED

    assert set(_walk(schema.load_schema(name))) <= _HANDLED


@pytest.mark.parametrize(("name", "doc"), VALID)
def test_valid_documents_conform(name: str, doc: object) -> None:
    assert quick(doc, name)
    assert quick(_with_unknowns(doc), name)


@pytest.mark.parametrize(("name", "doc", "message"), INVALID)
def test_invalid_documents_do_not(name: str, doc: object, message: str) -> None:
    assert not quick(doc, name)
    assert not authority(doc, name)


@pytest.mark.parametrize(("value", "kind", "ok"), [
    (1, "integer", True), (1.0, "integer", True), (1.5, "integer", False),
    (True, "integer", False), (False, "number", False), (0, "boolean", False),
    (None, "null", True), ([], "object", False), ({}, "array", False), ("1", "number", False),
])
def test_types_as_json_schema_reads_them(value: object, kind: str, ok: bool) -> None:
    def load(_: str) -> dict[str, Any]:
        return {"type": kind}

    assert conforms(value, "x", load, schema._ecma_regex) is ok


@pytest.mark.parametrize(("value", "const", "ok"), [
    (1, 1.0, True), (True, 1, False), (0, False, False), ([1, True], [1.0, True], True),
    ({"a": 1}, {"a": 1, "b": 2}, False), ("1", 1, False),
])
def test_const_is_json_equality(value: object, const: object, ok: bool) -> None:
    def load(_: str) -> dict[str, Any]:
        return {"const": const}

    assert conforms(value, "x", load, schema._ecma_regex) is ok
    assert conforms(value, "x", lambda _: {"enum": ["other", const]}, schema._ecma_regex) is ok


def test_pattern_end_is_ecma() -> None:
    ok = "sha256:" + "a" * 64
    doc = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ok, "size": 1}
    assert quick(doc, "oci-descriptor")
    assert not quick({**doc, "digest": ok + "\n"}, "oci-descriptor")


@pytest.mark.parametrize("extra", [{"minItems": 1}, {"format": "uri"},
                                   {"properties": {"a": {"$id": "https://elsewhere/x"}}},
                                   {"$ref": "https://elsewhere/x.json"}, {"type": "decimal"}])
def test_what_it_does_not_know_goes_to_jsonschema(extra: dict[str, Any]) -> None:
    """Unknown keywords, foreign refs: False (never a guess), so jsonschema decides."""
    assert not conforms({"a": 1}, "x", lambda _: {"type": "object", **extra},
                        schema._ecma_regex)
    with pytest.raises(Unsupported):
        from libaci.schemacheck import _Check

        _Check(lambda _: {"type": "object", **extra}, schema._ecma_regex).valid(
            {"a": 1}, {"type": "object", **extra}, "x")


# --- fuzzing: random edits of the valid documents --------------------------------------------

_SCALARS = st.one_of(st.none(), st.booleans(),
                     st.sampled_from([-1, 0, 1, 2, 65535, 65536, 1.0, 0.5, -0.0, 2.0**63]),
                     st.sampled_from(["", "a", "linux", "sha256:" + "a" * 64, "sha256:xyz",
                                      "sha256:" + "a" * 64 + "\n", "/abs", "rel", "0755",
                                      "application/vnd.oci.image.layer.v1.tar+gzip",
                                      "PodManifest", "ImageManifest", "0.8.11", "host",
                                      "empty", "tcp", "name", "x" * 300]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "name", "value"]),
                                                 inner, max_size=2)), max_leaves=6)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def _edited(draw: Any) -> tuple[str, object]:
    param = draw(st.sampled_from(VALID))
    name, doc = param.values
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["set", "delete", "add"]))
        if not path:
            if op == "set":
                doc = draw(_VALUES)
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if op == "delete":
            del parent[last]
        elif op == "add" and isinstance(parent[last], dict):
            parent[last][draw(st.sampled_from(["a", "name", "kind", "size", "digest"]))] = \
                draw(_VALUES)
        elif op == "add" and isinstance(parent[last], list):
            parent[last].append(draw(_VALUES))
        else:
            parent[last] = draw(_VALUES)
    return name, doc


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_edited())
def test_agrees_with_jsonschema_on_edited_documents(case: tuple[str, object]) -> None:
    name, doc = case
    doc = json.loads(json.dumps(doc))  # as a parser would give it
    assert quick(doc, name) == authority(doc, name)


def test_a_valid_document_does_not_import_jsonschema() -> None:
    doc = VALID[2].values[1]  # a manifest
    code = ("import json, sys; from libaci import schema; "
            f"schema.validate(json.loads({json.dumps(json.dumps(doc))}), 'oci-manifest'); "
            "bad = [m for m in ('jsonschema', 'referencing') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
