"""Tests for libaci.dockerfile.parser: BuildKit's Dockerfile parser semantics.

The data-driven cases in tests/data/dockerfile/ are podkit's own, written to
cover the same ground as BuildKit's parser corpus (testfiles/*/Dockerfile
and result, testfiles-negative): continuation and indentation, escaped
escapes, the escape directive and where it stops being one, ENV/LABEL/ARG
forms, builder flags and ``--``, HEALTHCHECK, JSON and invalid-JSON forms,
ADD/COPY lists, ONBUILD, case-insensitive keywords, CRLF and BOM, heredocs.
Each ``result`` is the expected ``Dump()``; a case without one must fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from libaci.dockerfile import _go
from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.parser import (
    Heredoc,
    chomp_heredoc,
    extract_builder_flags,
    heredocs_from_line,
    parse,
    parse_heredoc,
    parse_words,
    split_command,
)
from libaci.errors import UsageError

DATA = Path(__file__).parent.parent / "data" / "dockerfile"
CASES = sorted(p.name for p in DATA.iterdir() if p.is_dir())
POSITIVE = [c for c in CASES if (DATA / c / "result").exists()]
NEGATIVE = [c for c in CASES if not (DATA / c / "result").exists()]


def test_corpus_present() -> None:
    assert len(POSITIVE) >= 25
    assert len(NEGATIVE) >= 10


@pytest.mark.parametrize("case", POSITIVE)
def test_dump_matches_result(case: str) -> None:
    source = (DATA / case / "Dockerfile").read_bytes()
    expected = (DATA / case / "result").read_text(encoding="utf-8")
    assert parse(source).dump() == expected


@pytest.mark.parametrize("case", NEGATIVE)
def test_negative_cases_fail(case: str) -> None:
    source = (DATA / case / "Dockerfile").read_bytes()
    with pytest.raises(DockerfileError) as info:
        parse(source, filename=f"{case}/Dockerfile")
    message = str(info.value)
    assert message.startswith(f"{case}/Dockerfile")
    assert "\n" not in message


def test_error_is_a_usage_error_with_line() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("FROM busybox\n\nCMD [\"a\", 1]\n", filename="Containerfile")
    e = info.value
    assert isinstance(e, UsageError)
    assert e.exit_status == 2
    assert e.line == 3
    assert str(e) == ("Containerfile:3: when using JSON array syntax, arrays must be "
                      "comprised of strings only")


def test_error_spanning_continuation_reports_first_line() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("FROM busybox\nENV A=1 \\\n    B\n")
    assert (info.value.line, info.value.end_line) == (2, 3)


def test_legacy_dump_without_separators() -> None:
    result = parse("FROM x\nENV A b\nLABEL c=d e=f\n")
    assert result.dump(kv_separators=False) == (
        '(from "x")\n(env "A" "b")\n(label "c" "d" "e" "f")\n')


def test_line_numbers() -> None:
    text = ("# escape=\\\n\n\nFROM busybox\n\n# comment\n\nENV GOPATH \\\n/go\n\n"
            "RUN a \\\n  && b \\\n\n\n  && c \\\n# c\n  && d\n\n\n")
    nodes = parse(text).nodes
    assert [(n.start_line, n.end_line) for n in nodes] == [(4, 4), (8, 9), (11, 17)]


def test_empty_continuation_lines_warn() -> None:
    text = ("FROM alpine\nRUN valid \\\n    continuation\nRUN something \\\n\n    following \\\n\n"
            "    more\nRUN non-indented \\\n# comment\n   after\nRUN another \\\n   \n    thing\n")
    result = parse(text)
    assert [n.dump() for n in result.nodes[1:]] == [
        'run "valid     continuation"', 'run "something     following     more"',
        'run "non-indented    after"', 'run "another     thing"']
    shorts = [w.short for w in result.warnings]
    assert len(shorts) == 2
    assert "RUN something     following     more" in shorts[0]
    assert "RUN another     thing" in shorts[1]
    assert result.warnings[0].url.endswith("no-empty-continuation/")


def test_directives_recorded() -> None:
    result = parse("# syntax=docker/dockerfile:1.7\n# check=error=true\n#escape=`\nFROM x\n")
    assert result.escape_token == "`"
    assert result.directive("syntax") == "docker/dockerfile:1.7"
    assert result.directive("check") == "error=true"
    assert [d.line for d in result.directives] == [1, 2, 3]


def test_directive_after_instruction_is_a_comment() -> None:
    result = parse("FROM x\n# escape=`\nRUN a \\\nb\n")
    assert result.escape_token == "\\"
    assert result.nodes[1].dump() == 'run "a b"'


def test_line_too_long() -> None:
    long = "a" * 65536
    with pytest.raises(DockerfileError, match="max allowed size of 65535"):
        parse(f"FROM x\nLABEL test={long}\n")
    parse("FROM x\nRUN " + "a" * (65535 - 4) + "\n")


def test_invalid_utf8_survives() -> None:
    result = parse(b"FROM x\nRUN echo \xff\xfe\n")
    assert result.nodes[1].dump() == 'run "echo \\xff\\xfe"'


def test_keyword_case_kept_in_value() -> None:
    node = parse("FrOm x\n").nodes[0]
    assert node.value == "FrOm"
    assert node.keyword == "from"
    assert node.dump() == 'from "x"'


def test_original_and_flags() -> None:
    node = parse("FROM x\n  COPY --from=a  --chown=1  src dst  \n").nodes[1]
    assert node.flags == ("--from=a", "--chown=1")
    assert node.args == ("src", "dst")
    assert node.original == "COPY --from=a  --chown=1  src dst  "
    assert not node.json


def test_json_attribute() -> None:
    nodes = parse('FROM x\nRUN ["a"]\nRUN a\nHEALTHCHECK CMD ["b"]\n').nodes
    assert [n.json for n in nodes] == [False, True, False, True]


def test_comments_attached_to_instruction() -> None:
    nodes = parse("# top\nFROM x\n# one\n# two\nRUN a\n#\n# after empty\nRUN b\n").nodes
    assert nodes[0].comments == ("top",)
    assert nodes[1].comments == ("one", "two")
    assert nodes[2].comments == ("after empty",)


# -- heredocs ------------------------------------------------------------------

def test_heredoc_bodies() -> None:
    text = ("FROM x\nRUN <<EOF\n# not a comment\nFROM y\nEOF\n"
            "RUN 3<<'NOEXP' cat\n$HOME\nNOEXP\n"
            "RUN <<-TABS\n\tindented\n\t\tmore\n\tTABS\n"
            "COPY <<a <<\"b\" /d/\nA $X\na\nB $X\nb\n"
            "RUN --mount=type=cache,target=/c <<M\nm\nM\nENV after=1\n")
    nodes = parse(text).nodes
    assert [n.keyword for n in nodes] == ["from", "run", "run", "run", "copy", "run", "env"]
    assert nodes[1].heredocs == (Heredoc("EOF", 0, True, False, "# not a comment\nFROM y\n"),)
    assert nodes[2].heredocs == (Heredoc("NOEXP", 3, False, False, "$HOME\n"),)
    assert nodes[3].heredocs == (Heredoc("TABS", 0, True, True, "\tindented\n\t\tmore\n"),)
    assert [(h.name, h.expand, h.content) for h in nodes[4].heredocs] == [
        ("a", True, "A $X\n"), ("b", False, "B $X\n")]
    assert nodes[5].heredocs[0].content == "m\n"
    assert (nodes[1].start_line, nodes[1].end_line) == (2, 5)


def test_heredoc_terminators_swap() -> None:
    nodes = parse("FROM x\nCOPY <<X <<Y /d/\nY\nX\nX\nY\n").nodes
    assert [(h.name, h.content) for h in nodes[1].heredocs] == [("X", "Y\n"), ("Y", "X\n")]


def test_heredoc_not_in_json_or_other_instructions() -> None:
    text = 'FROM x\nRUN ["<<EOF"]\nENV a=<<EOF\nRUN "<<EOF"\nRUN echo <<EOF\nhi\nEOF\n'
    nodes = parse(text).nodes
    assert [len(n.heredocs) for n in nodes] == [0, 0, 0, 0, 1]


def test_heredoc_in_onbuild() -> None:
    node = parse("FROM x\nONBUILD RUN <<EOF\necho hi\nEOF\n").nodes[1]
    assert node.dump() == 'onbuild (run "<<EOF")'
    assert node.heredocs[0].content == "echo hi\n"


def test_heredoc_crlf_terminator() -> None:
    node = parse("FROM x\r\nRUN <<EOF\r\nline\r\nEOF\r\n").nodes[1]
    assert node.heredocs[0].content == "line\r\n"


@pytest.mark.parametrize(("word", "name", "expand", "chomp", "fd"), [
    ("<<EOF", "EOF", True, False, 0),
    ("<<'EOF'", "EOF", False, False, 0),
    ('<<"EOF"', "EOF", False, False, 0),
    ("<<-EOF", "EOF", True, True, 0),
    ("<<-'EOF'", "EOF", False, True, 0),
    ("<<- EOF", "EOF", True, True, 0),
    ("<< -EOF", "-EOF", True, False, 0),
    ("12<<EOF", "EOF", True, False, 12),
    ("<<E'O'F", "EOF", False, False, 0),
])
def test_parse_heredoc(word: str, name: str, expand: bool, chomp: bool, fd: int) -> None:
    doc = parse_heredoc(word)
    assert doc is not None
    assert (doc.name, doc.expand, doc.chomp, doc.file_descriptor) == (name, expand, chomp, fd)


@pytest.mark.parametrize("word", ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "a<<EOF", "<<a b"])
def test_not_a_heredoc(word: str) -> None:
    assert parse_heredoc(word) is None


@pytest.mark.parametrize("word", ["<<'EOF", '<<"EOF', "<<EOF'", '<<EOF"'])
def test_bad_heredoc_quotes(word: str) -> None:
    with pytest.raises(DockerfileError):
        parse_heredoc(word)


@pytest.mark.parametrize(("line", "names"), [
    ("RUN <<EOF", ["EOF"]),
    ("RUN <<-EOF", ["EOF"]),
    ("RUN <<'EOF'", ["EOF"]),
    ("RUN 4<<EOF", ["EOF"]),
    ("RUN <<EOF <<EOF2", ["EOF", "EOF2"]),
    ("RUN cat <<A > a && cat <<B > b", ["A", "B"]),
    ("RUN '<<EOF'", []),
    ('RUN "<<EOF"', []),
    ("RUN \\<<EOF", []),
])
def test_heredocs_from_line(line: str, names: list[str]) -> None:
    assert [h.name for h in heredocs_from_line(line)] == names


def test_chomp() -> None:
    assert chomp_heredoc("\thello\n\t\tworld\n  keep\n") == "hello\nworld\n  keep\n"


# -- pieces ----------------------------------------------------------------------

@pytest.mark.parametrize(("rest", "words"), [
    ("foo", ["foo"]),
    ("foo bar", ["foo", "bar"]),
    ("foo\\ bar", ["foo\\ bar"]),
    ("foo=bar", ["foo=bar"]),
    ("foo bar 'abc xyz'", ["foo", "bar", "'abc xyz'"]),
    ('foo bar "abc xyz"', ["foo", "bar", '"abc xyz"']),
    ("àöû", ["àöû"]),
    ('föo bàr "âbc xÿz"', ["föo", "bàr", '"âbc xÿz"']),
    ('a="b c" d', ['a="b c"', "d"]),
    ("a='unterminated", ["a='unterminated"]),
    ("''", ["''"]),
    ("a\\", ["a"]),
])
def test_parse_words(rest: str, words: list[str]) -> None:
    assert parse_words(rest, "\\") == words


def test_parse_words_backtick_escape() -> None:
    assert parse_words("a` b c", "`") == ["a` b", "c"]
    assert parse_words("a\\ b", "`") == ["a\\", "b"]


@pytest.mark.parametrize(("line", "cmd", "flags", "rest"), [
    ("RUN a b", "RUN", (), "a b"),
    ("  copy   --from=x   a b  ", "copy", ("--from=x",), "a b"),
    ("COPY --a=1 --b -- --c d", "COPY", ("--a=1", "--b"), "--c d"),
    ("COPY --a='x y' --b=\"p\\\"q\" z", "COPY", ("--a=x y", '--b=p"q'), "z"),
    ("CMD --x", "CMD", ("--x",), ""),
    ("CMD --", "CMD", (), ""),
    ("RUN -x --y", "RUN", (), "-x --y"),
    ("RUN\t--mount=type=secret,id=a\tcat", "RUN", ("--mount=type=secret,id=a",), "cat"),
    ("ONBUILD", "ONBUILD", (), ""),
    ("COPY --a='x y", "COPY", ("--a=x y",), ""),
    ("COPY --a --", "COPY", ("--a",), ""),
    ("COPY --a=\\", "COPY", ("--a=",), ""),
])
def test_split_command(line: str, cmd: str, flags: tuple[str, ...], rest: str) -> None:
    assert split_command(line) == (cmd, flags, rest)


def test_extract_flags_bytes() -> None:
    # BuildKit walks bytes: U+00A0 is C2 A0, and A0 counts as a space there
    rest, flags = extract_builder_flags("--a=x\u00a0y z")
    assert flags == ("--a=x\udcc2",)
    assert rest == "y z"


def test_go_quote() -> None:
    assert _go.quote('a"b\\c\n\t\x00\x7f\u2603\u200b\U0001F433') == \
        '"a\\"b\\\\c\\n\\t\\x00\\x7f\u2603\\u200b\U0001F433"'
    assert _go.quote_list(["--a=1", 'b"']) == '["--a=1" "b\\""]'
