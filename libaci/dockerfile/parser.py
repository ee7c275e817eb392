"""Dockerfile text to an AST, exactly as BuildKit's parser reads it.

This follows ``frontend/dockerfile/parser`` of moby/buildkit: parser
directives (``syntax``, ``escape``, ``check``) only at the top, line
continuation with the escape character (comment and empty lines inside a
continuation are skipped, the empty ones with a warning), comments, heredocs
for RUN/COPY/ADD (and ONBUILD wrapping them), builder flags (``--x=y``
before the arguments) and the per-instruction argument forms (JSON exec
form, whitespace lists, ``key=value`` pairs, ONBUILD nesting).

The result is a tuple of :class:`Node`, one per instruction, which
:meth:`Node.dump` prints in the S-expression format of BuildKit's parser
test corpus (``testfiles/*/result``), so the parser can be checked against
it.  Arguments are kept raw (quotes included) as BuildKit keeps them: the
variable expansion of :mod:`libaci.dockerfile.shell` removes them later.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from libaci.dockerfile import _go
from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.shell import Lex

DEFAULT_ESCAPE = "\\"
MAX_LINE = 65536  # bufio.MaxScanTokenSize: the longest line BuildKit reads

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_HEREDOC = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
VALID_DIRECTIVES = ("syntax", "escape", "check")
HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})
EMPTY_CONTINUATION_URL = "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/"


@attrs.frozen
class Heredoc:
    """A here-document attached to an instruction (``<<EOF`` ... ``EOF``)."""

    name: str
    file_descriptor: int = 0
    expand: bool = True
    chomp: bool = False
    content: str = ""


@attrs.frozen
class Directive:
    """A parser directive from the top of the file (``# escape=`` and friends)."""

    name: str
    value: str
    line: int


@attrs.frozen
class ParseWarning:
    """Something BuildKit accepts but warns about (empty continuation lines)."""

    short: str
    detail: str
    url: str
    line: int


@attrs.frozen
class Node:
    """One instruction: its keyword as written, flags, arguments.

    ``args`` are the argument nodes of BuildKit's linked list (ENV and LABEL
    come in ``key, value, separator`` triples, separator ``=`` or ``""`` for
    the legacy ``KEY value`` form); ``sub`` is the nested instruction of an
    ONBUILD; ``json`` says the arguments were an exec-form JSON array.
    """

    value: str
    args: tuple[str, ...] = ()
    sub: Node | None = None
    flags: tuple[str, ...] = ()
    json: bool = False
    heredocs: tuple[Heredoc, ...] = ()
    original: str = ""
    start_line: int = 0
    end_line: int = 0
    comments: tuple[str, ...] = ()

    @property
    def keyword(self) -> str:
        """The instruction name, lowercased (instructions are case-insensitive)."""
        return self.value.lower()

    def dump(self, *, kv_separators: bool = True) -> str:
        """The node as BuildKit's ``Node.Dump()`` prints it.

        ``kv_separators=False`` drops the third element of ENV/LABEL triples,
        the format of the corpus before BuildKit recorded the separator.
        """
        out = self.keyword
        if self.flags:
            out += " " + _go.quote_list(self.flags)
        args = self.args
        if not kv_separators and self.keyword in ("env", "label"):
            args = tuple(a for i, a in enumerate(args) if i % 3 != 2)
        for arg in args:
            out += " " + _go.quote(arg)
        if self.sub is not None:
            out += " (" + self.sub.dump(kv_separators=kv_separators) + ")"
        return _go.trim_space(out)

    def can_contain_heredoc(self) -> bool:
        node = self.sub if self.keyword == "onbuild" and self.sub is not None else self
        return node.keyword in HEREDOC_INSTRUCTIONS and not node.json


@attrs.frozen
class ParseResult:
    """A parsed Dockerfile: its instructions, escape character and warnings."""

    nodes: tuple[Node, ...]
    escape_token: str = DEFAULT_ESCAPE
    warnings: tuple[ParseWarning, ...] = ()
    directives: tuple[Directive, ...] = ()

    def dump(self, *, kv_separators: bool = True) -> str:
        """All instructions, one S-expression a line, like a corpus ``result`` file."""
        return "".join(f"({n.dump(kv_separators=kv_separators)})\n" for n in self.nodes)

    def directive(self, name: str) -> str | None:
        for d in self.directives:
            if d.name == name:
                return d.value
        return None


class _Directives:
    """Directive scanning state: the escape token and which keys were seen."""

    def __init__(self) -> None:
        self.done = False
        self.seen: list[Directive] = []
        self.line = 0
        self.set_escape(DEFAULT_ESCAPE)

    def set_escape(self, token: str) -> None:
        if token not in ("`", "\\"):
            raise DockerfileError(f"invalid escape token '{token}' does not match ` or \\")
        self.escape = token
        e = re.escape(token)
        self.continuation = re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")

    def parse_line(self, line: str) -> bool:
        """``DirectiveParser.ParseLine``: true if *line* was a directive."""
        self.line += 1
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        m = _DIRECTIVE.match(_go.trim_left_space(line[1:]))
        if m is None or m.group(1).lower() not in VALID_DIRECTIVES:
            self.done = True
            return False
        key = m.group(1).lower()
        if any(d.name == key for d in self.seen):
            raise DockerfileError(f"only one {key} parser directive can be used", self.line)
        self.seen.append(Directive(key, m.group(2), self.line))
        if key == "escape":
            try:
                self.set_escape(m.group(2))
            except DockerfileError as e:
                raise e.at(self.line) from None
        return True


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return _go.trim_left_space(line).startswith("#")


def _trim_continuation(line: str, d: _Directives) -> tuple[str, bool]:
    if d.continuation.search(line):
        return d.continuation.sub(lambda m: m.group(1) or "", line, count=1), False
    return line, True


def _process_line(d: _Directives, token: str, strip_left: bool) -> tuple[str, bool]:
    token = _trim_newline(token)
    if strip_left:
        token = _go.trim_left_space(token)
    directive = d.parse_line(token)
    return ("" if _is_comment(token) else token), directive


def _scan_lines(text: str) -> list[str]:
    """Lines with their ``\\n`` kept, like BuildKit's ``scanLines``."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    for number, line in enumerate(lines, 1):
        size = len(line.encode("utf-8", "surrogateescape"))
        if size > MAX_LINE or (size == MAX_LINE and not line.endswith("\n")):
            raise DockerfileError(
                f"dockerfile line greater than max allowed size of {MAX_LINE - 1}", number)
    return lines


# -- splitting the command and its flags ------------------------------------

def split_command(line: str) -> tuple[str, tuple[str, ...], str]:
    """``splitCommand``: the keyword, the builder flags and the rest."""
    parts = _WHITESPACE.split(_go.trim_space(line), maxsplit=1)
    cmd = parts[0]
    flags: tuple[str, ...] = ()
    rest = ""
    if len(parts) == 2:
        rest, flags = extract_builder_flags(parts[1])
    return cmd, flags, _go.trim_space(rest)


def extract_builder_flags(line: str) -> tuple[str, tuple[str, ...]]:
    """``extractBuilderFlags``: leading ``--flag`` words, quotes and ``\\`` processed.

    BuildKit walks the UTF-8 bytes one at a time, so this does too.
    """
    raw = line.encode("utf-8", "surrogateescape").decode("latin-1")

    def back(s: str) -> str:
        return s.encode("latin-1").decode("utf-8", "surrogateescape")

    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    word: list[str] = []
    quote = ""
    blank_ok = False
    ch = ""
    pos = 0
    n = len(raw)
    while pos <= n:
        if pos != n:
            ch = raw[pos]
        if phase == in_spaces:
            if pos == n:
                break
            if _go.is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or raw[pos + 1] != "-":
                return back(raw[pos:]), tuple(back(w) for w in words)
            phase = in_word
        if phase in (in_word, in_quote) and pos == n:
            if "".join(word) != "--" and (blank_ok or word):
                words.append("".join(word))
            break
        if phase == in_word:
            if _go.is_space(ch):
                phase = in_spaces
                if "".join(word) == "--":
                    return back(raw[pos:]), tuple(back(w) for w in words)
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = raw[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = raw[pos]
        word.append(ch)
        pos += 1
    return "", tuple(back(w) for w in words)


# -- the line parsers ---------------------------------------------------------

@attrs.frozen
class _Args:
    args: tuple[str, ...] = ()
    sub: Node | None = None
    json: bool = False


def parse_words(rest: str, escape: str) -> list[str]:
    """``parseWords``: split on blanks, quotes and escapes kept in the words."""
    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    quote = ""
    blank_ok = False
    word: list[str] = []
    ch = ""
    pos = 0
    n = len(rest)
    while pos <= n:
        if pos != n:
            ch = rest[pos]
        if phase == in_spaces:
            if pos == n:
                break
            if _go.is_space(ch):
                pos += 1
                continue
            phase = in_word
        if phase in (in_word, in_quote) and pos == n:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == in_word:
            if _go.is_space(ch):
                phase = in_spaces
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
        if ch == escape and quote != "'":
            if pos + 1 >= n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            word.append(ch)
            ch = rest[pos]
        word.append(ch)
        pos += 1
    return words


def _parse_ignore(rest: str, d: _Directives) -> _Args:
    return _Args(("",))


def _parse_sub_command(rest: str, d: _Directives) -> _Args:
    if rest == "":
        return _Args()
    return _Args(sub=_node_from_line(rest, d, ()))


def _parse_name_val(rest: str, key: str, d: _Directives) -> _Args:
    words = parse_words(rest, d.escape)
    if not words:
        return _Args()
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise DockerfileError(f"{key} must have two arguments")
        return _Args((parts[0], parts[1], ""))
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise DockerfileError(f"Syntax error - can't find = in {_go.quote(word)}. "
                                  "Must be of the form: name=value")
        k, v = word.split("=", 1)
        out += [k, v, "="]
    return _Args(tuple(out))


def _parse_env(rest: str, d: _Directives) -> _Args:
    return _parse_name_val(rest, "ENV", d)


def _parse_label(rest: str, d: _Directives) -> _Args:
    return _parse_name_val(rest, "LABEL", d)


def _parse_name_or_name_val(rest: str, d: _Directives) -> _Args:
    return _Args(tuple(parse_words(rest, d.escape)))


def _parse_strings_whitespace_delimited(rest: str, d: _Directives) -> _Args:
    if rest == "":
        return _Args()
    return _Args(tuple(_WHITESPACE.split(rest)))


def _parse_string(rest: str, d: _Directives) -> _Args:
    if rest == "":
        return _Args()
    return _Args((rest,))


class _NotStringArray(DockerfileError):
    pass


def _parse_json(rest: str) -> _Args | None:
    rest = _go.trim_left_space(rest)
    if not rest.startswith("["):
        return None
    items = _go.json_array(rest)
    if items is None:
        return None
    if not all(isinstance(i, str) for i in items):
        raise _NotStringArray(
            "when using JSON array syntax, arrays must be comprised of strings only")
    return _Args(tuple(str(i) for i in items), json=True)


def _parse_maybe_json(rest: str, d: _Directives) -> _Args:
    if rest == "":
        return _Args()
    parsed = _parse_json(rest)
    return parsed if parsed is not None else _Args((rest,))


def _parse_maybe_json_to_list(rest: str, d: _Directives) -> _Args:
    parsed = _parse_json(rest)
    return parsed if parsed is not None else _parse_strings_whitespace_delimited(rest, d)


def _parse_health_config(rest: str, d: _Directives) -> _Args:
    # BuildKit looks at single bytes here (unicode.IsSpace(rune(rest[i])))
    raw = rest.encode("utf-8", "surrogateescape")
    sep = 0
    while sep < len(raw) and not _go.is_space(chr(raw[sep])):
        sep += 1
    nxt = sep
    while nxt < len(raw) and _go.is_space(chr(raw[nxt])):
        nxt += 1
    if sep == 0:
        return _Args()
    typ = raw[:sep].decode("utf-8", "surrogateescape")
    cmd = _parse_maybe_json(raw[nxt:].decode("utf-8", "surrogateescape"), d)
    return _Args((typ, *cmd.args), json=cmd.json)


_DISPATCH: dict[str, Callable[[str, _Directives], _Args]] = {
    "add": _parse_maybe_json_to_list,
    "arg": _parse_name_or_name_val,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list,
    "entrypoint": _parse_maybe_json,
    "env": _parse_env,
    "expose": _parse_strings_whitespace_delimited,
    "from": _parse_strings_whitespace_delimited,
    "healthcheck": _parse_health_config,
    "label": _parse_label,
    "maintainer": _parse_string,
    "onbuild": _parse_sub_command,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_to_list,
    "workdir": _parse_string,
}


def _node_from_line(line: str, d: _Directives, comments: tuple[str, ...]) -> Node:
    cmd, flags, rest = split_command(line)
    parsed = _DISPATCH.get(cmd.lower(), _parse_ignore)(rest, d)
    return Node(value=cmd, args=parsed.args, sub=parsed.sub, flags=flags, json=parsed.json,
                original=line, comments=comments)


# -- heredocs -----------------------------------------------------------------

def parse_heredoc(word: str) -> Heredoc | None:
    """``ParseHeredoc``: the heredoc a word such as ``<<-"EOF"`` opens, if any."""
    m = _HEREDOC.match(word)
    if m is None or m.group(3) == "":
        return None
    fd = int(m.group(1)) if m.group(1) else 0
    rest = m.group(3)
    lex = Lex("\\", skip_unset_env=True)
    words = lex.process_words(rest, {})
    if len(words) != 1:
        return None
    raw = Lex("\\", skip_unset_env=True, raw_quotes=True).process_words(rest, {})
    if len(raw) != len(words):
        raise DockerfileError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=words[0], file_descriptor=fd, expand=quotes == raw_quotes,
                   chomp=m.group(2) == "-")


def heredocs_from_line(line: str) -> list[Heredoc]:
    """``heredocsFromLine``: the heredocs an instruction line opens, in order."""
    lex = Lex("\\", raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lex.process_words(line, {})
    except DockerfileError:
        words = []
    docs = []
    for word in words:
        doc = parse_heredoc(word)
        if doc is not None:
            docs.append(doc)
    return docs


def chomp_heredoc(content: str) -> str:
    """Leading tabs removed from every line, as ``<<-`` asks."""
    return _LEADING_TABS.sub("", content)


# -- the parser -----------------------------------------------------------------

def decode(source: str | bytes) -> str:
    """Dockerfile bytes as text; invalid UTF-8 survives as surrogate escapes."""
    if isinstance(source, bytes):
        return source.decode("utf-8", "surrogateescape")
    return source


def parse(source: str | bytes, *, filename: str = "Dockerfile") -> ParseResult:
    """Parse a Dockerfile; raises :class:`DockerfileError` with file and line."""
    try:
        return _parse(decode(source))
    except DockerfileError as e:
        raise e.named(filename) from None


def _parse(text: str) -> ParseResult:
    lines = _scan_lines(text)
    d = _Directives()
    nodes: list[Node] = []
    warnings: list[ParseWarning] = []
    comments: list[str] = []
    current = 0
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        if current == 0:
            raw = raw.removeprefix("\ufeff")
        if _is_comment(raw):
            comment = _go.trim_space(raw[1:])
            if comment == "":
                comments = []
            else:
                comments.append(comment)
        text, directive = _process_line(d, raw, True)
        if directive and comments:
            comments.pop()
        current += 1
        start = current
        text, eol = _trim_continuation(text, d)
        if eol and text == "":
            continue
        buf = [text]
        empty_continuation = False
        while not eol and i < len(lines):
            raw = lines[i]
            i += 1
            text, _ = _process_line(d, raw, False)
            current += 1
            if _is_comment(raw):
                continue
            if _go.trim_left_space(_trim_newline(text)) == "":
                empty_continuation = True
                continue
            text, eol = _trim_continuation(text, d)
            buf.append(text)
        line = "".join(buf)
        if empty_continuation:
            warnings.append(ParseWarning(
                short="Empty continuation line found in: " + line,
                detail="Empty continuation lines will become errors in a future release",
                url=EMPTY_CONTINUATION_URL, line=current))
        try:
            node = _node_from_line(line, d, tuple(comments))
        except DockerfileError as e:
            raise e.at(start, current) from None
        if node.can_contain_heredoc() and "<<" in line:
            try:
                docs = heredocs_from_line(line)
            except DockerfileError as e:
                raise e.at(start, current) from None
            filled = []
            for doc in docs:
                body: list[str] = []
                terminated = False
                while i < len(lines):
                    raw = lines[i]
                    i += 1
                    current += 1
                    end = _trim_newline(raw)
                    if doc.chomp:
                        end = end.lstrip("\t")
                    if end == doc.name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    raise DockerfileError("unterminated heredoc", start, end_line=current)
                filled.append(attrs.evolve(doc, content="".join(body)))
            node = attrs.evolve(node, heredocs=tuple(filled))
        sub = node.sub
        if sub is not None:
            sub = attrs.evolve(sub, start_line=start, end_line=current)
        nodes.append(attrs.evolve(node, sub=sub, start_line=start, end_line=current))
        comments = []
    if not nodes:
        raise DockerfileError("file with no instructions", current or None)
    return ParseResult(nodes=tuple(nodes), escape_token=d.escape, warnings=tuple(warnings),
                       directives=tuple(d.seen))
