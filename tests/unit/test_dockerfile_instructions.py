"""Tests for libaci.dockerfile.instructions and .mounts: typed, validated instructions."""

from __future__ import annotations

import pytest

from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.instructions import (
    Add,
    Arg,
    ArgDef,
    Chmod,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    HealthConfig,
    InlineFile,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    SourceContent,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse_chmod,
)
from libaci.dockerfile.loader import load, parse_trigger
from libaci.dockerfile.mounts import Mount, csv_fields, mount_from, parse_mount, ram_in_bytes


def commands(text: str) -> tuple:
    return load("FROM scratch\n" + text).stages[0].commands


def one(text: str) -> object:
    (cmd,) = commands(text)
    return cmd


def error(text: str) -> DockerfileError:
    with pytest.raises(DockerfileError) as info:
        load(text, filename="df")
    return info.value


# -- stages --------------------------------------------------------------------

def test_stages_and_meta_args() -> None:
    df = load("ARG A=1\nARG B\n# build compiles it\nFROM busybox AS Build\nRUN a\n"
              "FROM --platform=$BUILDPLATFORM build\nCOPY --from=build /x /y\nFROM scratch\n")
    assert [a.args for a in df.meta_args] == [(ArgDef("A", "1"),), (ArgDef("B"),)]
    assert [(s.index, s.name, s.base_name, s.platform) for s in df.stages] == [
        (0, "build", "busybox", ""), (1, None, "build", "$BUILDPLATFORM"), (2, None, "scratch", "")]
    assert [len(s.commands) for s in df.stages] == [1, 1, 0]
    assert df.stages[0].line == 4
    assert df.stages[0].original == "FROM busybox AS Build"
    assert df.stages[0].comment == "compiles it"
    assert df.stage_by_name("BUILD") is df.stages[0]
    assert df.stages[1].display_name == "stage-1"


def test_syntax_directive_kept() -> None:
    assert load("# syntax=docker/dockerfile:1\nFROM x\n").syntax == "docker/dockerfile:1"


@pytest.mark.parametrize(("text", "message", "line"), [
    ("RUN x\n", "no build stage in current context", 1),
    ("ARG A\n", "dockerfile contains no stages to build", None),
    ("FROM a b\n", "FROM requires either one or three arguments", 1),
    ("FROM a AS b c\n", "FROM requires either one or three arguments", 1),
    ("FROM a AS 1st\n", 'invalid name for build stage: "1st"', 1),
    ("FROM a AS x!\n", "invalid name for build stage", 1),
    ("FROM --platform a\n", "Missing a value on flag: platform", 1),
    ("FROM --platform linux a\n", "FROM requires either one or three arguments", 1),
    ("FROM --weird=1 a\n", "Unknown flag: weird", 1),
    ("FROM a\n\nECHO hi\n", "unknown instruction: ECHO", 3),
    ("FROM a\nCOPI a b\n", "unknown instruction: COPI (did you mean copy?)", 2),
    ("FROM a\nrunn x\n", "unknown instruction: runn (did you mean run?)", 2),
])
def test_stage_errors(text: str, message: str, line: int | None) -> None:
    e = error(text)
    assert message in e.message
    assert e.line == line
    assert str(e).startswith(f"df:{line}:" if line else "df:")


# -- each instruction -------------------------------------------------------------

def test_env_and_label() -> None:
    env = one('ENV A=1 B="two words"\n')
    assert isinstance(env, Env)
    assert env.pairs == (KeyValue("A", "1"), KeyValue("B", '"two words"'))
    legacy = one("ENV A  b c\n")
    assert legacy.pairs == (KeyValue("A", "b c", no_delim=True),)
    label = one("LABEL a=b c=d\n")
    assert isinstance(label, Label)
    assert [str(p) for p in label.pairs] == ["a=b", "c=d"]
    assert env.name == "env" and env.line == 2 and env.original == 'ENV A=1 B="two words"'


@pytest.mark.parametrize(("text", "message"), [
    ("ENV\n", "ENV requires at least one argument"),
    ("ENV =x\n", "ENV names can not be blank"),
    ("LABEL\n", "LABEL requires at least one argument"),
    ("LABEL =x\n", "LABEL names can not be blank"),
    ("ENV --x=1 A=b\n", "Unknown flag: x"),
])
def test_env_label_errors(text: str, message: str) -> None:
    assert message in error("FROM x\n" + text).message


def test_copy() -> None:
    c = one("COPY --from=b --chown=1:2 --chmod=0640 --link --parents --exclude=*.md "
            "--exclude=.git a b/ /dst/\n")
    assert isinstance(c, Copy)
    assert (c.from_, c.chown, c.chmod, c.link, c.parents) == ("b", "1:2", "0640", True, True)
    assert c.excludes == ("*.md", ".git")
    assert (c.sources, c.dest) == (("a", "b/"), "/dst/")
    assert c.chmod_mode() == Chmod(mode=0o640)
    assert one('COPY ["a b", "c"]\n').sources == ("a b",)
    assert one("COPY --link=false a b\n").link is False


def test_add() -> None:
    a = one("ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --chmod=u+x "
            "https://example.com/x.tgz /x/\n")
    assert isinstance(a, Add)
    assert a.checksum == "sha256:abc"
    assert a.keep_git_dir and a.unpack is False
    assert a.chmod_mode() == Chmod(symbolic="u+x")
    assert one("ADD a b\n").unpack is None
    assert one("ADD --unpack a b\n").unpack is True


@pytest.mark.parametrize(("text", "message"), [
    ("COPY a\n", "COPY requires at least two arguments"),
    ("ADD a\n", "ADD requires at least two arguments"),
    ("COPY\n", "COPY requires at least two arguments"),
    ('COPY ["a"]\n', "COPY requires at least two arguments"),
    ("COPY --chmod=999 a b\n", "invalid chmod parameter: '999'"),
    ("COPY --chmod=10000 a b\n", "invalid chmod parameter"),
    ("COPY --chmod=u+q a b\n", "invalid chmod parameter"),
    ("COPY --chown a b\n", "Missing a value on flag: chown"),
    ("COPY --link=maybe a b\n", "Expecting boolean value for flag link, not: maybe"),
    ("COPY --link= a b\n", "Missing a value on flag: link"),
    ("COPY --from=a --from=b x y\n", "Duplicate flag specified: from"),
    ("COPY --checksum=sha256:x a b\n", "Unknown flag: checksum"),
    ("COPY --keep-git-dir a b\n", "Unknown flag: keep-git-dir"),
    ("ADD --from=x a b\n", "Unknown flag: from"),
    ("ADD --parents a b\n", "Unknown flag: parents"),
    ("ADD --checksum=nocolon http://x/y /z\n", "invalid checksum digest format"),
    ("COPY a <<EOF\nx\nEOF\n", "COPY cannot accept a heredoc as a destination"),
])
def test_copy_add_errors(text: str, message: str) -> None:
    assert message in error("FROM x\n" + text).message


def test_chmod_with_variable_checked_later() -> None:
    assert one("COPY --chmod=$MODE a b\n").chmod == "$MODE"


@pytest.mark.parametrize(("text", "expected"), [
    ("0", Chmod(mode=0)), ("755", Chmod(mode=0o755)), ("07777", Chmod(mode=0o7777)),
    ("u+x", Chmod(symbolic="u+x")), ("go-w,a+r", Chmod(symbolic="go-w,a+r")),
    ("=rw", Chmod(symbolic="=rw")), ("u=g", Chmod(symbolic="u=g")),
])
def test_parse_chmod(text: str, expected: Chmod) -> None:
    assert parse_chmod(text) == expected


@pytest.mark.parametrize("text", ["", "8", "017777", "u+y", "x+r", "0o755", "u"])
def test_parse_chmod_bad(text: str) -> None:
    with pytest.raises(DockerfileError):
        parse_chmod(text)


def test_copy_heredoc_sources() -> None:
    c = one("COPY --chmod=755 <<-EOT <<'RAW' plain /dst/\n\techo $A\n\tEOT\n$B\nRAW\n")
    assert c.sources == ("plain",)
    assert c.contents == (SourceContent("EOT", "echo $A\n", True),
                          SourceContent("RAW", "$B\n", False))
    expanded = c.expand_contents(lambda s: s.replace("$A", "1").replace("$B", "2"))
    assert [x.data for x in expanded.contents] == ["echo 1\n", "$B\n"]


def test_run() -> None:
    r = one("RUN --mount=type=cache,target=/c --mount=type=secret,id=s --network=host "
            "--security=insecure make all\n")
    assert isinstance(r, Run)
    assert r.cmd == ("make all",) and r.prepend_shell
    assert r.mounts == ("type=cache,target=/c", "type=secret,id=s")
    assert (r.network, r.security) == ("host", "insecure")
    assert r.mount_sources() == ("", "")
    exec_form = one('RUN ["make", "all"]\n')
    assert exec_form.cmd == ("make", "all") and not exec_form.prepend_shell
    assert one("RUN\n").cmd == ()


def test_run_heredoc_files() -> None:
    r = one("RUN <<-EOF bash\n\techo hi\n\tEOF\n")
    assert r.cmd == ("<<-EOF bash",)
    assert r.files == (InlineFile("EOF", "\techo hi\n", True),)
    assert r.files[0].content() == "echo hi\n"


@pytest.mark.parametrize(("text", "message"), [
    ("RUN --network=bridge x\n", 'network mode "bridge" not supported'),
    ("RUN --security=root x\n", 'security "root" is not valid'),
    ("RUN --mount=type=bind,from=$STAGE x\n", "'from' doesn't support variable expansion"),
    ("RUN --mount='type=bind,\"from' x\n", "failed to parse csv mounts"),
    ("RUN --mount x\n", "Missing a value on flag: mount"),
    ("RUN --chmod=1 x\n", "Unknown flag: chmod"),
])
def test_run_errors(text: str, message: str) -> None:
    assert message in error("FROM x\n" + text).message


def test_cmd_entrypoint_shell() -> None:
    assert one("CMD echo hi\n") == Cmd(name="cmd", original="CMD echo hi", line=2, end_line=2,
                                       cmd=("echo hi",), prepend_shell=True)
    assert one("CMD []\n").cmd == ()
    assert one("ENTRYPOINT []\n").cmd is None
    assert isinstance(one('ENTRYPOINT ["a"]\n'), Entrypoint)
    assert one('SHELL ["/bin/bash", "-c"]\n') == Shell(
        name="shell", original='SHELL ["/bin/bash", "-c"]', line=2, end_line=2,
        shell=("/bin/bash", "-c"))
    assert "SHELL requires the arguments to be in JSON form" in error(
        "FROM x\nSHELL /bin/bash -c\n").message
    assert "SHELL requires at least one argument" in error("FROM x\nSHELL []\n").message


def test_healthcheck() -> None:
    h = one("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=0s "
            "--start-interval=2s --retries=3 CMD curl -f http://x/\n")
    assert isinstance(h, Healthcheck)
    assert h.health == HealthConfig(("CMD-SHELL", "curl -f http://x/"), 90_000_000_000,
                                    500_000_000, 0, 2_000_000_000, 3)
    assert one('HEALTHCHECK CMD ["/bin/check", "-q"]\n').health.test == (
        "CMD", "/bin/check", "-q")
    assert one("HEALTHCHECK none\n").health == HealthConfig(("NONE",))
    assert one("HEALTHCHECK --retries=0 CMD x\n").health.retries == 0


@pytest.mark.parametrize(("text", "message"), [
    ("HEALTHCHECK\n", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK NONE x\n", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CMD\n", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK CONNECT TCP 7000\n", 'Unknown type "CONNECT" in HEALTHCHECK (try CMD)'),
    ("HEALTHCHECK --interval=10 CMD x\n", "missing unit in duration"),
    ("HEALTHCHECK --interval=500us CMD x\n", 'Interval "interval" cannot be less than 1ms'),
    ("HEALTHCHECK --timeout=-1s CMD x\n", "cannot be less than 1ms"),
    ("HEALTHCHECK --retries=-1 CMD x\n", "--retries cannot be negative (-1)"),
    ("HEALTHCHECK --retries=x CMD x\n", "invalid syntax"),
    ("HEALTHCHECK --foo=1 CMD x\n", "Unknown flag: foo"),
])
def test_healthcheck_errors(text: str, message: str) -> None:
    assert message in error("FROM x\n" + text).message


def test_simple_instructions() -> None:
    assert one("WORKDIR /a b\n").path == "/a b"
    assert isinstance(one("WORKDIR x\n"), Workdir)
    assert one("USER app:staff\n") == User(name="user", original="USER app:staff", line=2,
                                           end_line=2, user="app:staff")
    assert one("STOPSIGNAL 9\n") == StopSignal(name="stopsignal", original="STOPSIGNAL 9",
                                               line=2, end_line=2, signal="9")
    assert one("MAINTAINER Me <me@example.com>\n") == Maintainer(
        name="maintainer", original="MAINTAINER Me <me@example.com>", line=2, end_line=2,
        maintainer="Me <me@example.com>")
    assert one("EXPOSE 80 53/udp\n") == Expose(name="expose", original="EXPOSE 80 53/udp",
                                              line=2, end_line=2, ports=("80", "53/udp"))
    assert one('VOLUME ["/a", " /b "]\n') == Volume(name="volume",
                                                   original='VOLUME ["/a", " /b "]', line=2,
                                                   end_line=2, volumes=("/a", "/b"))
    arg = one("ARG A B=1 C=\n")
    assert isinstance(arg, Arg)
    assert arg.args == (ArgDef("A"), ArgDef("B", "1"), ArgDef("C", ""))


@pytest.mark.parametrize(("text", "message"), [
    ("WORKDIR\n", "WORKDIR requires exactly one argument"),
    ("USER\n", "USER requires exactly one argument"),
    ("STOPSIGNAL\n", "STOPSIGNAL requires exactly one argument"),
    ("MAINTAINER\n", "MAINTAINER requires exactly one argument"),
    ("EXPOSE\n", "EXPOSE requires at least one argument"),
    ("VOLUME\n", "VOLUME requires at least one argument"),
    ('VOLUME [""]\n', "VOLUME specified can not be an empty string"),
    ("ARG\n", "ARG requires at least one argument"),
    ("ARG =1\n", "ARG names can not be blank"),
    ("ONBUILD\n", "ONBUILD requires at least one argument"),
    ("ONBUILD ONBUILD RUN x\n", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM x\n", "FROM isn't allowed as an ONBUILD trigger"),
    ("onbuild maintainer x\n", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("USER --x=1 root\n", "Unknown flag: x"),
])
def test_simple_errors(text: str, message: str) -> None:
    assert message in error("FROM x\n" + text).message


def test_onbuild_expression() -> None:
    o = one("onbuild   RUN echo $HOME\n")
    assert isinstance(o, Onbuild)
    assert o.expression == "RUN echo $HOME"
    heredoc = one("ONBUILD COPY <<EOF /x\nhello\nEOF\n")
    assert heredoc.expression == "COPY <<EOF /x\nhello\nEOF"
    trigger = parse_trigger(heredoc.expression, 7)
    assert isinstance(trigger, Copy)
    assert trigger.contents == (SourceContent("EOF", "hello\n", True),)
    assert trigger.line == 7


@pytest.mark.parametrize("expression", ["FROM x", "RUN a\nRUN b", "", "FOO bar"])
def test_bad_triggers(expression: str) -> None:
    with pytest.raises(DockerfileError):
        parse_trigger(expression, 1)


def test_expand_only_expandable_words() -> None:
    def up(s: str) -> str:
        return s.upper()

    c = one("COPY --from=st --chown=u --chmod=$M --exclude=e src dst\n").expand(up)
    assert (c.from_, c.chown, c.chmod, c.excludes, c.sources, c.dest) == (
        "ST", "U", "$M", ("E",), ("SRC",), "DST")
    assert one("ADD --checksum=sha256:ab a b\n").expand(up).checksum == "SHA256:AB"
    assert one("ENV a=b\n").expand(up).pairs == (KeyValue("A", "B"),)
    assert one("LABEL a=b\n").expand(up).pairs == (KeyValue("A", "B"),)
    assert one("WORKDIR w\n").expand(up).path == "W"
    assert one("USER u\n").expand(up).user == "U"
    assert one("VOLUME v\n").expand(up).volumes == ("V",)
    assert one("STOPSIGNAL s\n").expand(up).signal == "S"
    for text in ("RUN r\n", "CMD c\n", "ENTRYPOINT e\n", "EXPOSE p\n", 'SHELL ["s"]\n',
                 "MAINTAINER m\n", "ONBUILD RUN o\n", "HEALTHCHECK CMD h\n", "ARG a=b\n"):
        cmd = one(text)
        assert cmd.expand(up) == cmd


# -- mounts --------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "fields"), [
    ("a,b", ["a", "b"]),
    ('a,"b,c",d', ["a", "b,c", "d"]),
    ('"x""y"', ['x"y']),
    ("a,", ["a", ""]),
    ("", [""]),
])
def test_csv(text: str, fields: list[str]) -> None:
    assert csv_fields(text) == fields


@pytest.mark.parametrize("text", ['a"b', '"ab', '"a"b'])
def test_csv_bad(text: str) -> None:
    with pytest.raises(DockerfileError):
        csv_fields(text)


def test_mount_from() -> None:
    assert mount_from("type=bind,from=build,source=/out") == "build"
    assert mount_from("type=cache,target=/c") == ""
    assert mount_from("FROM=x") == "x"


@pytest.mark.parametrize(("text", "expected"), [
    ("target=/src", Mount(target="/src", read_only=True)),
    ("type=bind,from=b,src=/o,dst=/i,rw", Mount(from_="b", source="/o", target="/i",
                                               read_only=False)),
    ("type=cache,target=/c,id=x,sharing=LOCKED,mode=0700,uid=1,gid=2",
     Mount(type="cache", target="/c", read_only=False, cache_id="x", sharing="locked",
           mode=0o700, uid=1, gid=2)),
    ("type=cache,target=/c,ro", Mount(type="cache", target="/c", read_only=True)),
    ("type=tmpfs,target=/t,size=64m", Mount(type="tmpfs", target="/t", read_only=False,
                                           size_limit=64 << 20)),
    ("type=secret,id=tok,required", Mount(type="secret", cache_id="tok", required=True)),
    ("type=secret,id=tok,env=TOKEN", Mount(type="secret", cache_id="tok", env="TOKEN")),
    ("type=ssh,required=true,mode=0600", Mount(type="ssh", required=True, mode=0o600)),
    ("type=bind,readonly=false", Mount(read_only=False)),
    ("Type=BIND,Target=/x", Mount(target="/x")),
])
def test_parse_mount(text: str, expected: Mount) -> None:
    assert parse_mount(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("type=volume", 'unsupported mount type "volume"'),
    ("type=cache,sharing=all", 'unsupported sharing value "all"'),
    ("type=bind,sharing=shared", "invalid cache sharing set for bind mount"),
    ("type=bind,mode=0700", 'mode not allowed for "bind" type mounts'),
    ("type=tmpfs,uid=1", 'uid not allowed for "tmpfs" type mounts'),
    ("type=cache,size=1m", "unexpected key 'size' for mount type 'cache'"),
    ("type=bind,required", "unexpected key 'required' for mount type 'bind'"),
    ("type=secret", "invalid secret mount. one of source, target required"),
    ("type=secret,id=a,src=b", "both source and id can't be set"),
    ("type=secret,id=a,from=b", "secret mount should not have a from"),
    ("type=cache,mode=999", "invalid value 999 for mode"),
    ("type=cache,uid=-1", "invalid value -1 for uid"),
    ("type=bind,ro=maybe", "invalid value for ro: maybe"),
    ("bogus", "invalid field 'bogus' must be a key=value pair"),
    ("type=bind,colour=red", "unexpected key 'colour' in 'colour=red'"),
    ("type=bind,env=X", "unexpected key 'env' for mount type 'bind'"),
])
def test_parse_mount_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        parse_mount(text)
    assert message in info.value.message


def test_mount_expansion_at_dispatch() -> None:
    run = one("RUN --mount=type=cache,target=$HOME/.cache,id=$ID x\n")
    env = {"$HOME": "/root", "$ID": "pip"}
    (mount,) = run.parsed_mounts(lambda s: env.get(s.split("/")[0], s) +
                                 ("/" + s.split("/", 1)[1] if "/" in s else ""))
    assert mount.target == "/root/.cache" and mount.cache_id == "pip"
    with pytest.raises(DockerfileError) as info:
        one("RUN --mount=type=$T x\n").parsed_mounts(lambda s: "nope")
    assert info.value.line == 2


def test_ram_in_bytes() -> None:
    assert ram_in_bytes("512") == 512
    assert ram_in_bytes("1k") == 1024
    assert ram_in_bytes("1.5GiB") == 3 << 29
    with pytest.raises(ValueError):
        ram_in_bytes("lots")
