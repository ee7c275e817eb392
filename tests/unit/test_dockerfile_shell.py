"""Tests for libaci.dockerfile.shell: BuildKit's variable expansion.

The tables cover the ground of BuildKit's shell/envVarTest and lex_test.go
(quotes, escapes, names, every modifier, pattern removal and substitution,
errors), written for podkit.
"""

from __future__ import annotations

import pytest

from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.shell import Lex

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": "", "A": "x y"}

WORD_CASES = [
    # plain text, quotes, escapes
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ("he\\'llo", "he'llo"),
    ("abc\\tdef", "abctdef"),
    ('"abc\\tdef"', "abc\\tdef"),
    ("'abc\\tdef'", "abc\\tdef"),
    ("hello\\", "hello"),
    ("hello\\\\", "hello\\"),
    ('"hel\'lo"', "hel'lo"),
    ("'hello\\'", "hello\\"),
    ('"\'\'"', "''"),
    ("'it''s'", "its"),
    ('"a\\"b"', 'a"b'),
    ('"a\\$b"', "a$b"),
    ('"a\\\\b"', "a\\b"),
    ("a\\ b", "a b"),
    # names
    ("$.", "$."),
    ("$", "$"),
    ("$1", ""),
    ("he$1x", "hex"),
    ("he$12x", "hex"),
    ("he$.x", "he$.x"),
    ("he$pwd.", "he."),
    ("he$PWD", "he/home"),
    ("he$PWD_", "he"),
    ("he\\$PWD", "he$PWD"),
    ("he\\\\$PWD", "he\\/home"),
    ("he\\${}", "he${}"),
    ("he${hi}xx", "hexx"),
    ("he${PWD}", "he/home"),
    ("$@$#$?", ""),
    ("$KOREAN", "한국어"),
    ("안녕$KOREAN", "안녕한국어"),
    ("'he${XX}'", "he${XX}"),
    ('"he${PWD}"', "he/home"),
    ('"he\'$PWD\'"', "he'/home'"),
    ("'$PWD'", "$PWD"),
    ("'\\$PWD'", "\\$PWD"),
    ('"$A"', "x y"),
    # ${v:-w} ${v-w}
    ("he${XXX:-000}xx", "he000xx"),
    ("he${PWD:-000}xx", "he/homexx"),
    ("he${XXX:-$PWD}xx", "he/homexx"),
    ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
    ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
    ("he${NULL:-def}xx", "hedefxx"),
    ("he${NULL-def}xx", "hexx"),
    ("he${XXX-def}xx", "hedefxx"),
    ("he${XXX:-\\$PWD:}xx", "he$PWD:xx"),
    ("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"),
    ("${XXX:-'quoted }'}", "quoted }"),
    # ${v:+w} ${v+w}
    ("he${XXX:+${PWD}}xx", "hexx"),
    ("he${PWD:+${XXX}}xx", "hexx"),
    ("he${PWD:+${SHELL}}xx", "hebashxx"),
    ("he${PWD:+${PWD}:}xx", "he/home:xx"),
    ("he${NULL:+yes}xx", "hexx"),
    ("he${NULL+yes}xx", "heyesxx"),
    ("he${XXX+yes}xx", "hexx"),
    # ${v?m} ${v:?m} when set
    ("${PWD?msg}", "/home"),
    ("${NULL?msg}", ""),
    ("${PWD:?msg}", "/home"),
]


@pytest.mark.parametrize(("word", "expected"), WORD_CASES)
def test_process_word(word: str, expected: str) -> None:
    assert Lex().process_word(word, ENV) == expected


@pytest.mark.parametrize("word", [
    "he'llo", '"hello', "'hello", '"hello\\"', "he${}", "he${}xx", "he${.}", "he${PWD",
    "he${XXX:YYY}", "he${PWD:=000}xx", "${PWD=x}", "${:x}", "${{x}}", "${NULL:?}",
    "${XXX?}", "${XXX:?}", "${XXX?gone}", "${PWD:#x}", "${PWD:%%x}", "${PWD//x}", "${PWD//}",
    "${PWD#\\x}", "${PWD#x\\}", "${PWD/a/b", "${#PWD}",
])
def test_errors(word: str) -> None:
    with pytest.raises(DockerfileError):
        Lex().process_word(word, ENV)


def test_error_message_names_the_word_and_variable() -> None:
    with pytest.raises(DockerfileError) as info:
        Lex().process_word("${NAME:?is required$SUFFIX}", {"SUFFIX": "!"})
    assert info.value.message == (
        'failed to process "${NAME:?is required$SUFFIX}": NAME: is required!')
    with pytest.raises(DockerfileError, match="NAME: is not allowed to be empty"):
        Lex().process_word("${NAME:?}", {"NAME": ""})
    with pytest.raises(DockerfileError, match="NAME: is not allowed to be unset"):
        Lex().process_word("${NAME?}", {})


@pytest.mark.parametrize(("word", "env", "expected"), [
    ("${V#*/}", {"V": "a/b/c"}, "b/c"),
    ("${V##*/}", {"V": "a/b/c"}, "c"),
    ("${V%/*}", {"V": "a/b/c"}, "a/b"),
    ("${V%%/*}", {"V": "a/b/c"}, "a"),
    ("${V#a}", {"V": "aab"}, "ab"),
    ("${V#}", {"V": "aab"}, "aab"),
    ("${V##}", {"V": "aab"}, "aab"),
    ("${V%}", {"V": "aab"}, "aab"),
    ("${V#*}", {"V": "aab"}, "aab"),
    ("${V##*}", {"V": "aab"}, ""),
    ("${V#?}", {"V": "aab"}, "ab"),
    ("${V#\\*}", {"V": "*x"}, "x"),
    ("${V%%\\**}", {"V": "ab**"}, "ab"),
    ("${V#$P}", {"V": "pre-x", "P": "pre-"}, "x"),
    ("${V#.}", {"V": "abc"}, "abc"),
    ("${V#()[]{\\}^$.|}", {"V": "()[]{}^$.|y"}, "y"),
    ("${V%.tar.*}", {"V": "f.tar.gz"}, "f"),
    ("${V%x}", {}, ""),
    ("${V/a/b}", {"V": "aaa"}, "baa"),
    ("${V//a/b}", {"V": "aaa"}, "bbb"),
    ("${V//a/}", {"V": "banana"}, "bnn"),
    ("${V/?/X}", {"V": "abc"}, "Xbc"),
    ("${V/b*/X}", {"V": "abcbd"}, "aX"),
    ("${V//\\//-}", {"V": "/a/b"}, "-a-b"),
    ("${V/$N/$R}", {"V": "http://host", "N": "http://", "R": "https://"}, "https://host"),
    ("${V/x/$$}", {"V": "axb"}, "ab"),  # $$ is the (unset) special parameter
    ("${V//$E/-}", {"V": "ab", "E": ""}, "-a-b-"),
    ("${V///}", {"V": "ab"}, "ab"),
    ("${V/a/b}", {}, ""),
])
def test_pattern_modifiers(word: str, env: dict[str, str], expected: str) -> None:
    assert Lex().process_word(word, env) == expected


@pytest.mark.parametrize(("word", "words"), [
    ("a b  c", ["a", "b", "c"]),
    ("  lead trail  ", ["lead", "trail"]),
    ("'a b' c", ["a b", "c"]),
    ('"a b"c d', ["a bc", "d"]),
    ("a\\ b c", ["a b", "c"]),
    ("$A", ["x", "y"]),
    ('"$A"', ["x y"]),
    ("pre$A", ["prex", "y"]),
    ("${NULL}", []),
    ("''", []),
    ("8000-8001/tcp $PORTS", ["8000-8001/tcp", "80", "443"]),
])
def test_process_words(word: str, words: list[str]) -> None:
    env = {**ENV, "PORTS": "80 443"}
    assert Lex().process_words(word, env) == words


def test_backtick_escape() -> None:
    lex = Lex("`")
    assert lex.process_word("C:\\path\\to\\dir", {}) == "C:\\path\\to\\dir"
    assert lex.process_word("a` b", {}) == "a b"
    assert lex.process_word('"x`"y"', {}) == 'x"y'
    assert lex.process_word("`$A", {"A": "v"}) == "$A"
    assert lex.process_word('Q=x`"y', {}) == 'Q=x"y'
    assert lex.process_word("a\\ b", {}) == "a\\ b"


def test_expansion_reports_variables() -> None:
    result = Lex().expand("${A}-${B:-x}-$C", {"A": "1", "C": ""})
    assert result.result == "1-x-"
    assert result.matched == {"A", "C"}
    assert result.unmatched == {"B"}


def test_raw_and_skip_options() -> None:
    raw = Lex(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    assert raw.process_words("RUN 'a b' \"c\" \\d $X ${Y} $Z", {"Z": "z"}) == [
        "RUN", "'a b'", '"c"', "\\d", "$X", "${Y}", "z"]
    assert Lex(skip_unset_env=True).process_word("${X:-d} ${X#p} ${X/a/b}", {}) == \
        "${X:-d} ${X#p} ${X/a/b}"
    skip = Lex(skip_process_quotes=True)
    assert skip.process_word("echo \"$A\" '$A' \\$A\n", {"A": "v"}) == "echo \"v\" 'v' $A\n"
