"""JSON the way Go writes it and the way c/image reads it.

Signature payloads, attachment configs and manifests are hashed and signed,
so podkit must produce the very bytes that skopeo and cosign produce: Go's
``encoding/json`` (maps with sorted keys, structs in field order, compact,
``<``, ``>`` and ``&`` escaped as ``\\u003c``..., U+2028/U+2029 escaped,
UTF-8 otherwise).  :func:`go_marshal` does that; a :class:`Struct` is a dict
written in insertion order, as Go writes a struct.

:func:`load_strict` reads JSON as c/image's paranoid parser does: UTF-8 only,
no duplicate keys at any depth, no NaN/Infinity, nothing after the value.
Every failure raises the error class the caller names, with one line.
"""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal
from typing import Any

from libaci.errors import PodkitError

__all__ = ["Struct", "b64decode", "go_marshal", "load_strict", "shown"]

_HEX = "0123456789abcdef"
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HTML = {"<", ">", "&"}


class Struct(dict):  # type: ignore[type-arg]
    """A JSON object written in insertion order (a Go struct), not sorted."""


def _string(text: str, out: list[str]) -> None:
    out.append('"')
    for ch in text:
        code = ord(ch)
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif code < 0x20 or ch in _HTML:
            out.append("\\u00" + _HEX[code >> 4] + _HEX[code & 0xF])
        elif code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            # A lone surrogate cannot exist in Go; its decoder makes it U+FFFD.
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"JSON cannot represent {value!r}")
    magnitude = abs(value)
    if magnitude == 0 or 1e-6 <= magnitude < 1e21:
        return format(Decimal(repr(value)).normalize(), "f")
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    sign = exponent[0] if exponent[0] in "+-" else "+"
    digits = exponent.lstrip("+-").lstrip("0") or "0"
    # Go: at least two exponent digits, then "e-07" is shortened to "e-7".
    if sign == "+" and len(digits) < 2:
        digits = digits.rjust(2, "0")
    return f"{mantissa}e{sign}{digits}"


def _value(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        _string(value, out)
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, dict):
        keys = list(value) if isinstance(value, Struct) else sorted(value)
        out.append("{")
        for i, key in enumerate(keys):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            if i:
                out.append(",")
            _string(key, out)
            out.append(":")
            _value(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _value(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")


def go_marshal(value: Any) -> bytes:
    """``json.Marshal(value)`` as Go writes it, as UTF-8 bytes (no newline)."""
    out: list[str] = []
    _value(value, out)
    return "".join(out).encode("utf-8")


def b64decode(text: str) -> bytes:
    """Go's ``[]byte`` JSON decoding: standard base64 with padding, CR/LF ignored.

    Raises ValueError (also for characters outside ASCII).
    """
    return base64.b64decode(text.replace("\r", "").replace("\n", "").encode("ascii"),
                            validate=True)


def shown(value: Any, limit: int = 60) -> str:
    """``value`` quoted for a one-line message, cut to about ``limit`` characters."""
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Duplicate(ValueError):
    pass


class _Constant(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Duplicate(key)
        result[key] = value
    return result


def _constant(name: str) -> Any:
    raise _Constant(name)


def _go_number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Range(text)
    return value


class _Range(ValueError):
    pass


def load_strict(raw: bytes, what: str, error: type[PodkitError], *,
                go_numbers: bool = False) -> Any:
    """Parse ``raw`` as one strict JSON value, or raise ``error("WHAT: ...")``.

    ``go_numbers`` reads every number as a float64, as Go does for an
    ``any`` value (so ``-0`` stays negative and huge integers round as in Go);
    a number beyond float64 range is refused, as Go refuses it.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise error(f"{what}: expected bytes, got {type(raw).__name__}")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{what}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    if text.startswith("\ufeff"):
        raise error(f"{what}: invalid JSON: starts with a byte order mark")
    numbers = {"parse_int": _go_number, "parse_float": _go_number} if go_numbers else {}
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, **numbers)
    except _Range as e:
        raise error(f"{what}: invalid JSON: number {shown(str(e))} is out of range") from None
    except _Duplicate as e:
        raise error(f"{what}: duplicate key {shown(str(e))}") from None
    except _Constant as e:
        raise error(f"{what}: invalid JSON: {e} is not a JSON value") from None
    except json.JSONDecodeError as e:
        raise error(f"{what}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise error(f"{what}: invalid JSON: nested too deeply") from None
    except ValueError as e:  # an integer longer than sys.get_int_max_str_digits()
        raise error(f"{what}: invalid JSON: {str(e).split(':', 1)[0]}") from None
