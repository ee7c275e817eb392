"""Variable expansion and word splitting, as BuildKit's shell lexer does them.

A port of ``frontend/dockerfile/shell/lex.go``.  It is not a shell: it
knows quotes (``'...'`` literal, ``"..."`` expanding), the escape token
(``\\`` or the backtick chosen by ``# escape=``), ``$name``, ``${name}`` and
the modifiers BuildKit accepts: ``${v:-w} ${v-w} ${v:+w} ${v+w} ${v:?m}
${v?m}`` and the newer ``${v#p} ${v##p} ${v%p} ${v%%p} ${v/p/r} ${v//p/r}``
(patterns with ``*`` and ``?``).  Anything else is an error, as in BuildKit.

The builder expands the arguments of ADD, COPY, ENV, EXPOSE, FROM, LABEL,
STOPSIGNAL, USER, VOLUME, WORKDIR, ARG defaults and several flag values;
RUN, CMD and ENTRYPOINT text goes to the shell untouched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from libaci.dockerfile import _go
from libaci.dockerfile.errors import DockerfileError

_SPECIAL_PARAMS = frozenset("@*#?-$!0")


@attrs.frozen
class Expansion:
    """The result of expanding a word: text, words and the variables used."""

    result: str
    words: tuple[str, ...]
    matched: frozenset[str]
    unmatched: frozenset[str]


class _Words:
    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if _go.is_space(ch) and self.in_word:
            if self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        elif not _go.is_space(ch):
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.word += s
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _ShellWord:
    """One expansion in progress (``shellWord``)."""

    def __init__(self, lex: Lex, text: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.text = text
        self.pos = 0
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.matches: set[str] = set()
        self.nonmatches: set[str] = set()

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        if self.pos >= len(self.text):
            return ""
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matches.add(name)
            return self.env[name], True
        self.nonmatches.add(name)
        return "", False

    def _until(self, stop: str, raw_escapes: bool, missing: str) -> str:
        """The word up to ``stop``; at the end of input, "syntax error: ``missing``"."""
        try:
            word, _ = self.process_stop_on(stop, raw_escapes)
        except DockerfileError:
            if self.peek() == "":
                raise DockerfileError(f"syntax error: {missing}") from None
            raise
        return word

    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._process_stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _process_stop_on(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        escape = self.lex.escape
        while self.peek() != "":
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.get_words()
            if ch == "$":
                tmp = self.process_dollar()
                result.append(tmp)
                words.add_string(tmp)
            elif ch in ("'", '"') and not self.lex.skip_process_quotes:
                tmp = self.process_single_quote() if ch == "'" else self.process_double_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            else:
                ch = self.next()
                if ch == escape:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self.next()
                    if ch == "":
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise DockerfileError(
                f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get_words()

    def process_single_quote(self) -> str:
        result: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            result.append(ch)
        while True:
            ch = self.next()
            if ch == "":
                raise DockerfileError(
                    "unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    result.append(ch)
                return "".join(result)
            result.append(ch)

    def process_double_quote(self) -> str:
        result: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            result.append(ch)
        escape = self.lex.escape
        while True:
            peek = self.peek()
            if peek == "":
                raise DockerfileError(
                    "unexpected end of statement while looking for matching double-quote")
            if peek == '"':
                ch = self.next()
                if self.lex.raw_quotes:
                    result.append(ch)
                return "".join(result)
            if peek == "$":
                result.append(self.process_dollar())
                continue
            ch = self.next()
            if ch == escape:
                if self.raw_escapes:
                    result.append(ch)
                nxt = self.peek()
                if nxt == "":
                    continue
                if nxt in ('"', "$", escape):
                    ch = self.next()
            result.append(ch)

    def process_name(self) -> str:
        name: list[str] = []
        while self.peek() != "":
            ch = self.peek()
            if not name and ch.isdecimal():
                while self.peek() != "" and self.peek().isdecimal():
                    name.append(self.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            name.append(self.next())
        return "".join(name)

    def process_dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.process_name()
            if name == "":
                return "$"
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value
        self.next()
        peek = self.peek()
        if peek == "":
            raise DockerfileError("syntax error: missing '}'")
        if peek in ("{", "}", ":"):
            raise DockerfileError("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == "":
            raise DockerfileError("syntax error: missing '}'")
        if ch in (":", "+", "-", "?", "#", "%"):
            return self._modifier(name, ch)
        if ch == "/":
            return self._substitute(name)
        raise DockerfileError(f"unsupported modifier ({ch}) in substitution")

    def _modifier(self, name: str, ch: str) -> str:
        mods = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            mods += ch
            if ch not in ("+", "-", "?"):
                if ch == "":
                    raise DockerfileError("syntax error: missing '}'")
                raise DockerfileError(f"unsupported modifier ({mods}) in substitution")
        pattern = ch in ("#", "%")
        word = self._until("}", pattern, "missing '}'")
        value, found = self.get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${" + name + mods + word + "}"
        if ch == "-":
            return word if not found or (null_is_unset and value == "") else value
        if ch == "+":
            return "" if not found or (null_is_unset and value == "") else word
        if ch == "?":
            if not found:
                raise DockerfileError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise DockerfileError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = False
        if word[:1] == ch:
            greedy = True
            word = word[1:]
        if ch == "%":
            return _trim_suffix(word, value, greedy)
        return _trim_prefix(word, value, greedy)

    def _substitute(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        pattern = self._until("/", True, "missing '/' in ${}")
        replacement = self._until("}", True, "missing '}'")
        value, found = self.get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _shell_pattern(pattern, greedy=True, anchored=False)
        if replace_all:
            return regex.sub(lambda m: _go_expand(replacement, m), value)
        m = regex.search(value)
        if m is None:
            return value
        return value[:m.start()] + _go_expand(replacement, m) + value[m.end():]


def _go_expand(template: str, m: re.Match[str]) -> str:
    """Go's ``Regexp.Expand`` of a replacement (``$0``, ``${0}``, ``$$``)."""
    out: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch != "$" or i + 1 >= len(template):
            out.append(ch)
            i += 1
            continue
        rest = template[i + 1:]
        if rest[0] == "$":
            out.append("$")
            i += 2
            continue
        brace = re.match(r"\{([A-Za-z0-9_]+)\}", rest)
        plain = re.match(r"[A-Za-z0-9_]+", rest)
        hit = brace or plain
        if hit is None:
            out.append("$")
            i += 1
            continue
        name = brace.group(1) if brace else hit.group(0)
        if name.isdigit() and int(name) == 0:
            out.append(m.group(0))
        i += 1 + hit.end()
    return "".join(out)


def _shell_pattern(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """``convertShellPatternToRegex``: ``*`` and ``?`` wildcards, no brackets."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/"):
                continue
            if nxt not in ("*", "?", "\\"):
                shown = nxt or "%!c(int32=-1)"
                raise DockerfileError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'")
            out.append("\\" + nxt)
            i += 1
            continue
        out.append(re.escape(tok) if tok in "[]{}.+()|^$" else tok)
    return re.compile("".join(out), re.DOTALL if False else 0)


def _trim_prefix(word: str, value: str, greedy: bool) -> str:
    m = _shell_pattern(word, greedy=greedy, anchored=True).search(value)
    return value[m.end():] if m else value


def _reverse_pattern(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            out.append("\\" + pattern[i + 1])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(reversed(out))


def _trim_suffix(word: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(word), value[::-1], greedy)[::-1]


@attrs.frozen
class Lex:
    """A configured lexer (``shell.Lex``): escape token and quote handling.

    ``raw_quotes`` keeps quotes in the output, ``raw_escapes`` keeps escape
    characters, ``skip_process_quotes`` treats quotes as ordinary characters
    and ``skip_unset_env`` leaves references to unset variables as written.
    """

    escape: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_process_quotes: bool = False
    skip_unset_env: bool = False

    def expand(self, word: str, env: Mapping[str, str]) -> Expansion:
        """Expand *word*: the text, the split words, the variables it used."""
        sw = _ShellWord(self, word, env)
        try:
            result, words = sw.process_stop_on("", sw.raw_escapes)
        except DockerfileError as e:
            raise DockerfileError(f"failed to process {_go.quote(word)}: {e.message}") from None
        return Expansion(result, tuple(words), frozenset(sw.matches), frozenset(sw.nonmatches))

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """``ProcessWord``: one word in, one string out."""
        return self.expand(word, env).result

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """``ProcessWords``: expanded, then split on blanks outside quotes."""
        return list(self.expand(word, env).words)
