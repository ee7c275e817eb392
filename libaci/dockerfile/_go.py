"""Small pieces of Go's standard library that BuildKit's parser leans on.

The Dockerfile grammar is defined by BuildKit's Go code, and its edge cases
come from Go library functions: ``unicode.IsSpace`` (which differs from
``str.isspace``), ``strings.TrimSpace``, ``strconv.Quote`` (the format of the
parser test corpus), ``encoding/json`` for exec-form arrays and
``time.ParseDuration`` for HEALTHCHECK options.  They live here so that the
other modules read like the code they follow.
"""

from __future__ import annotations

import json
import re

# unicode.IsSpace: Latin-1 spaces plus the Unicode White_Space property.
_SPACES = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
                    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def is_space(ch: str) -> bool:
    """Go's ``unicode.IsSpace`` for one character."""
    return ch in _SPACES


def trim_left_space(s: str) -> str:
    """Go's ``strings.TrimLeftFunc(s, unicode.IsSpace)``."""
    i = 0
    while i < len(s) and s[i] in _SPACES:
        i += 1
    return s[i:]


def trim_space(s: str) -> str:
    """Go's ``strings.TrimSpace``."""
    s = trim_left_space(s)
    j = len(s)
    while j > 0 and s[j - 1] in _SPACES:
        j -= 1
    return s[:j]


_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r",
            "\t": r"\t", "\v": r"\v", "\\": "\\\\", '"': '\\"'}


def quote(s: str) -> str:
    """Go's ``strconv.Quote``: a double-quoted string with Go escapes.

    Text decoded with ``surrogateescape`` keeps its invalid bytes as lone
    surrogates; they come out as ``\\xNN`` like Go's invalid UTF-8 bytes.
    """
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def quote_list(items: list[str] | tuple[str, ...]) -> str:
    """Go's ``fmt.Sprintf("%q", []string{...})``."""
    return "[" + " ".join(quote(i) for i in items) + "]"


class _NotJSON(ValueError):
    pass


def _reject_constant(name: str) -> object:
    raise _NotJSON(name)


def json_array(text: str) -> list[object] | None:
    """``json.Unmarshal`` of *text* into ``[]interface{}``; None if it fails.

    Python's decoder is stricter or looser than Go's in a few places
    (``NaN``, ``Infinity``); those are refused as Go refuses them.
    """
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    return value


_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
            "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(text: str) -> int:
    """Go's ``time.ParseDuration``, in nanoseconds; ValueError when invalid."""
    s = text
    sign = 1
    if s[:1] in ("-", "+"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"time: invalid duration {quote(text)}")
    total = 0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or m.group(1) in ("", "."):
            if m is None and re.match(r"[0-9.]+", s[pos:]):
                raise ValueError(f"time: missing unit in duration {quote(text)}")
            raise ValueError(f"time: invalid duration {quote(text)}")
        number = m.group(1)
        whole, _, frac = number.partition(".")
        unit = _UNIT_NS[m.group(2)]
        value = int(whole or "0") * unit
        if frac:
            value += int(frac) * unit // (10 ** len(frac))
        total += value
        pos = m.end()
    if total > (1 << 63) - 1:
        raise ValueError(f"time: invalid duration {quote(text)}")
    return sign * total


def clean_path(p: str) -> str:
    """Go's ``path.Clean`` (slash-separated, lexical)."""
    if p == "":
        return "."
    rooted = p.startswith("/")
    parts: list[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."
