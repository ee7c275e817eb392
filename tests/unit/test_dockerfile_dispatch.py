"""Tests for libaci.dockerfile.dispatch: variable scope, image config, history, RUN/COPY specs."""

from __future__ import annotations

import pytest

from libaci.dockerfile.dispatch import (
    DEFAULT_PATH,
    ImageConfig,
    StageState,
    go_duration,
    parse_ports,
    parse_signal,
)
from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.instructions import HealthConfig
from libaci.dockerfile.loader import load
from libaci.dockerfile.mounts import Mount
from libaci.dockerfile.plan import BuildOptions, Platform, plan


def run_stages(text: str, *, build_args: dict[str, str] | None = None,
               base: dict[str, object] | None = None, target: str | None = None
               ) -> tuple[list[StageState], list[list]]:
    """Dispatch every needed stage; stage bases chain, image bases get *base*."""
    p = plan(load(text), BuildOptions(build_args=build_args or {}, target=target,
                                      build_platform=Platform("linux", "amd64")))
    states: dict[int, StageState] = {}
    steps: list[list] = []
    for i in p.order:
        sp = p.stages[i]
        if sp.base.kind == "stage":
            st = StageState(p, i, base=states[sp.base.stage])
        else:
            st = StageState(p, i, base_config=ImageConfig.from_dict(base) if base else None)
        steps.append([st.apply(c) for c in sp.commands])
        states[i] = st
    return [states[i] for i in p.order], steps


def last(text: str, **kw: object) -> tuple[StageState, list]:
    states, steps = run_stages(text, **kw)  # type: ignore[arg-type]
    return states[-1], steps[-1]


# -- environment and ARG scope ----------------------------------------------------

def test_env_pairs_see_the_environment_before_the_instruction() -> None:
    st, steps = last("FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$def\n")
    assert st.env["def"] == "hello" and st.env["ghi"] == "hello"
    assert st.config.env == ("PATH=" + DEFAULT_PATH, "abc=bye", "def=hello", "ghi=hello")
    assert steps[1].history.created_by == "ENV abc=bye def=hello"
    assert steps[1].history.empty_layer


def test_env_replaces_in_place_and_keeps_base_env() -> None:
    st, _ = last("FROM img\nENV B=2 PATH=/x:$PATH\n", base={"Env": ["A=1", "PATH=/bin", "B=0"]})
    assert st.config.env == ("A=1", "PATH=/x:/bin", "B=2")


def test_global_arg_needs_redeclaration() -> None:
    text = ("ARG G=global\nFROM scratch\nENV before=[$G]\nARG G\nENV after=[$G]\n"
            "ARG G=local\nENV again=[$G]\n")
    st, steps = last(text)
    assert (st.env["before"], st.env["after"], st.env["again"]) == ("[]", "[global]", "[local]")
    assert steps[1].history.created_by == "ARG G=global"
    st, _ = last(text, build_args={"G": "cli"})
    assert (st.env["after"], st.env["again"]) == ("[cli]", "[cli]")


def test_arg_defaults_and_unset() -> None:
    st, steps = last("FROM scratch\nARG A B=x${A:-unset} C= D=$B\nENV R=${A-u}|${C-u}|$D\n")
    assert st.env["R"] == "u||xunset"
    assert steps[0].history.created_by == "ARG A B=xunset C= D=xunset"
    assert steps[0].instruction.args[0].value is None
    assert "A" not in st.env


def test_platform_args_must_be_declared() -> None:
    st, _ = last("FROM scratch\nENV X=[$TARGETARCH]\nARG TARGETARCH BUILDPLATFORM\n"
                 "ENV Y=[$TARGETARCH][$BUILDPLATFORM]\n")
    assert st.env["X"] == "[]"
    assert st.env["Y"] == "[amd64][linux/amd64]"


def test_arg_and_env_of_the_same_name() -> None:
    st, _ = last("FROM scratch\nARG V=arg\nENV V=env\nENV R1=$V\nARG V\nENV R2=$V\n",
                 build_args={"V": "cli"})
    assert st.env["R1"] == "env"
    assert st.env["R2"] == "cli"  # a later ARG wins for the build environment...
    assert "V=env" in st.config.env  # ...but never reaches the image config


def test_stage_from_stage_inherits_args_env_and_config() -> None:
    states, steps = run_stages(
        "FROM scratch AS base\nARG VERSION=1.0\nENV E=e\nWORKDIR /w\nUSER app\n"
        "CMD [\"base\"]\nFROM base\nENV V2=$VERSION\nRUN true\n")
    child = states[1]
    assert child.env["V2"] == "1.0"
    assert child.config.working_dir == "/w" and child.config.user == "app"
    assert child.config.cmd == ("base",)
    assert steps[1][1].history.created_by == "RUN |1 VERSION=1.0 /bin/sh -c true # buildkit"
    assert [h.created_by for h in child.history][:2] == ["ARG VERSION=1.0", "ENV E=e"]


def test_unrelated_stage_does_not_inherit() -> None:
    states, _ = run_stages("FROM scratch AS a\nARG X=1\nENV Y=2\nFROM scratch\nENV R=$X$Y\n")
    assert states[-1].env["R"] == ""


def test_expansion_errors_carry_line() -> None:
    with pytest.raises(DockerfileError) as info:
        last('FROM scratch\n\nENV A="${B:?must be set}"\n')
    assert info.value.line == 3
    assert "B: must be set" in info.value.message


# -- metadata instructions ---------------------------------------------------------

def test_workdir() -> None:
    st, steps = last("FROM scratch\nWORKDIR /a/b\nWORKDIR ../c/./d/\nWORKDIR e\nWORKDIR /\n"
                     "ENV D=/x\nWORKDIR $D/y\n")
    assert [s.history.created_by for s in steps[:4]] == [
        "WORKDIR /a/b", "WORKDIR /a/c/d", "WORKDIR /a/c/d/e", "WORKDIR /"]
    assert [s.mkdir for s in steps[:4]] == ["/a/b", "/a/c/d", "/a/c/d/e", None]
    assert [s.history.empty_layer for s in steps[:4]] == [False, False, False, True]
    assert st.config.working_dir == "/x/y"
    with pytest.raises(DockerfileError, match="cannot normalize nothing"):
        last("FROM scratch\nWORKDIR $EMPTY\n")


def test_workdir_from_base_and_user() -> None:
    _, steps = last("FROM img\nUSER 1000\nWORKDIR sub\n", base={"WorkingDir": "/base"})
    assert steps[1].mkdir == "/base/sub" and steps[1].user == "1000"


def test_cmd_entrypoint_and_shell() -> None:
    st, steps = last('FROM img\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\nCMD echo "$HOME"\n'
                     "ENTRYPOINT exec app\n", base={"Cmd": ["base"], "Entrypoint": ["old"]})
    assert st.config.shell == ("/bin/bash", "-o", "pipefail", "-c")
    assert st.config.cmd == ("/bin/bash", "-o", "pipefail", "-c", 'echo "$HOME"')
    assert st.config.entrypoint == ("/bin/bash", "-o", "pipefail", "-c", "exec app")
    assert st.config.args_escaped
    assert steps[0].history.created_by == "SHELL [/bin/bash -o pipefail -c]"
    assert steps[1].history.created_by == (
        'CMD ["/bin/bash" "-o" "pipefail" "-c" "echo \\"$HOME\\""]')


def test_entrypoint_resets_inherited_cmd() -> None:
    st, steps = last('FROM img\nENTRYPOINT ["/app"]\n', base={"Cmd": ["serve"]})
    assert st.config.entrypoint == ("/app",) and st.config.cmd is None
    assert steps[0].history.created_by == 'ENTRYPOINT ["/app"]'
    st, _ = last('FROM img\nCMD ["x"]\nENTRYPOINT ["/app"]\n', base={"Cmd": ["serve"]})
    assert st.config.cmd == ("x",)
    st, _ = last("FROM img\nENTRYPOINT []\n", base={"Entrypoint": ["/old"]})
    assert st.config.entrypoint is None
    st, _ = last("FROM img\nCMD []\n", base={"Cmd": ["x"]})
    assert st.config.cmd == ()


def test_labels_expose_volumes_stopsignal() -> None:
    st, steps = last('FROM img\nENV P=8080 L="a b"\nLABEL one=1 "two"="$L"\nLABEL one=uno\n'
                     "EXPOSE $P 53/UDP 9000-9001 80/tcp\nVOLUME /data $P\nVOLUME [\"/x\"]\n"
                     "STOPSIGNAL SIGQUIT\n", base={"Labels": {"base": "b"}, "Volumes": {"/v": {}}})
    assert dict(st.config.labels) == {"base": "b", "one": "uno", "two": "a b"}
    assert st.config.exposed_ports == ("53/udp", "80/tcp", "8080/tcp", "9000/tcp", "9001/tcp")
    assert st.config.volumes == ("/data", "/v", "/x", "8080")
    assert st.config.stop_signal == "SIGQUIT"
    assert steps[1].history.created_by == "LABEL one=1 two=a b"
    assert steps[3].history.created_by == (
        "EXPOSE map[53/udp:{} 80/tcp:{} 8080/tcp:{} 9000/tcp:{} 9001/tcp:{}]")
    assert steps[4].history.created_by == "VOLUME [/data 8080]"
    assert steps[6].history.created_by == "STOPSIGNAL SIGQUIT"


def test_expose_splits_expanded_words() -> None:
    st, steps = last('FROM scratch\nARG PORTS="80 443/udp"\nEXPOSE $PORTS\n')
    assert st.config.exposed_ports == ("443/udp", "80/tcp")
    assert steps[1].instruction.ports == ("80", "443/udp")


@pytest.mark.parametrize(("text", "message"), [
    ("EXPOSE 80/xyz\n", "invalid proto: xyz"),
    ("EXPOSE http\n", "invalid containerPort: http"),
    ("EXPOSE 70000\n", "invalid containerPort"),
    ("EXPOSE 90-80\n", "invalid range"),
    ("STOPSIGNAL SIGNOPE\n", "invalid signal: SIGNOPE"),
    ("STOPSIGNAL 0\n", "invalid signal: 0"),
    ("ENV E=\nVOLUME $E\n", "VOLUME specified can not be an empty string"),
    ("COPY http://example.com/x /x\n", "source can't be a URL for COPY"),
    ("COPY git@github.com:moby/buildkit.git /x\n", "source can't be a git ref for COPY"),
    ("ADD --checksum=sha256:ab a /x\n", "checksum can't be specified for non-HTTP(S) sources"),
    ("ADD --checksum=sha256:ab http://a/1 http://a/2 /x/\n",
     "checksum can't be specified for multiple sources"),
    ("ARG M=888\nCOPY --chmod=$M a /x\n", "invalid chmod parameter: '888'"),
])
def test_dispatch_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        last("FROM scratch\n" + text)
    assert message in info.value.message
    assert info.value.line == text.count("\n") + 1


def test_stopsignal_forms() -> None:
    for sig in ("9", "SIGKILL", "kill", "RTMIN+3", "SIGRTMAX-1", "-1"):
        parse_signal(sig)


def test_parse_ports() -> None:
    assert parse_ports(["8080", "1.2.3.4:80:81/udp", "7-8/SCTP"]) == (
        "8080/tcp", "81/udp", "7/sctp", "8/sctp")


def test_healthcheck_and_onbuild_and_maintainer() -> None:
    st, steps = last("FROM scratch\nHEALTHCHECK --interval=1m30s --retries=3 CMD check $X\n"
                     "ONBUILD RUN make $X\nMAINTAINER Me\n", base=None)
    assert st.config.healthcheck == HealthConfig(("CMD-SHELL", "check $X"), 90_000_000_000,
                                                 retries=3)
    assert steps[0].history.created_by == (
        'HEALTHCHECK &{["CMD-SHELL" "check $X"] "1m30s" "0s" "0s" "0s" \'\\x03\'}')
    assert st.config.on_build == ("RUN make $X",)
    assert steps[1].history is None
    assert st.author == "Me"
    assert steps[2].history.created_by == "MAINTAINER Me"


def test_onbuild_triggers_are_not_inherited_from_base_config() -> None:
    st, _ = last("FROM img\nENV A=1\n", base={"OnBuild": ["RUN x"]})
    assert st.config.on_build == ()


def test_default_path_added_only_when_missing() -> None:
    st, _ = last("FROM scratch\nENV A=1\n")
    assert st.config.env_value("PATH") == DEFAULT_PATH
    st, _ = last("FROM img\nENV A=1\n", base={"Env": ["PATH=/only"]})
    assert st.config.env_value("PATH") == "/only"


# -- RUN ----------------------------------------------------------------------------

def test_run_spec() -> None:
    _, steps = last("FROM scratch\nARG A=1\nENV E=2\nUSER nobody\nWORKDIR /w\n"
                     "RUN --mount=type=cache,target=/root/.$E,id=c$A --network=none echo $A\n"
                     'RUN ["printf", "%s", "$A"]\n', build_args={"http_proxy": "http://p:3128"})
    run = steps[4].run
    assert run.args == ("/bin/sh", "-c", "echo $A")
    assert run.env == ("PATH=" + DEFAULT_PATH, "A=1", "E=2")
    assert run.mounts == (Mount(type="cache", target="/root/.2", read_only=False,
                                cache_id="c1"),)
    assert (run.network, run.security, run.user, run.workdir) == ("none", "sandbox", "nobody",
                                                                 "/w")
    assert run.proxy_env == ("HTTP_PROXY=http://p:3128", "http_proxy=http://p:3128")
    assert steps[4].history.created_by == "RUN |1 A=1 /bin/sh -c echo $A # buildkit"
    assert not steps[4].history.empty_layer
    assert steps[5].run.args == ("printf", "%s", "$A")
    assert "http_proxy" not in steps[5].history.created_by


def test_run_history_lists_each_arg_once() -> None:
    _, steps = last("FROM scratch\nARG A=1\nARG B\nARG A=2\nRUN x\n")
    assert steps[3].history.created_by == "RUN |2 A=2 B= /bin/sh -c x # buildkit"


def test_run_heredocs() -> None:
    _, steps = last("FROM scratch\nRUN <<EOF\necho $HOME\nEOF\n"
                    "RUN <<'EOT'\n#!/usr/bin/env python3\nprint(1)\nEOT\n"
                    "RUN <<A cat > a && <<B cat > b\nalpha\nA\nbeta\nB\n"
                    'SHELL ["/bin/bash", "-c"]\nRUN <<EOF\nset -e\nEOF\n'
                    "RUN <<-EOF\n\t#!/bin/sh\n\techo tabbed\n\tEOF\n")
    assert steps[0].run.args == ("/bin/sh", "-c", "echo $HOME\n")
    assert steps[0].run.script is None
    shebang = steps[1].run
    assert shebang.args == ("/bin/sh", "-c", "/dev/pipes/EOT")
    assert shebang.script is not None and shebang.script.name == "EOT"
    assert shebang.script.content() == "#!/usr/bin/env python3\nprint(1)\n"
    assert steps[2].run.args == ("/bin/sh", "-c",
                                 "<<A cat > a && <<B cat > b\nalpha\nA\nbeta\nB")
    assert steps[4].run.args == ("/bin/bash", "-c", "set -e\n")
    # BuildKit looks for "#!" before removing the tabs: this one runs as shell text
    assert steps[5].run.args == ("/bin/bash", "-c", "#!/bin/sh\necho tabbed\n")
    assert steps[5].run.script is None


# -- COPY / ADD ------------------------------------------------------------------------

@pytest.mark.parametrize(("workdir", "dest", "expected"), [
    ("/", "/app", "/app"),
    ("/", "/app/", "/app/"),
    ("/w", "rel", "/w/rel"),
    ("/w", "rel/", "/w/rel/"),
    ("/w", ".", "/w/"),
    ("/w", "./", "/w/"),
    ("/w", "../x", "/x"),
    ("/w", "/abs/./x/..", "/abs"),
    ("/w", "sub/.", "/w/sub/."),
    ("/", ".", "/"),
])
def test_copy_destination(workdir: str, dest: str, expected: str) -> None:
    _, steps = last(f"FROM scratch\nWORKDIR {workdir}\nCOPY src {dest}\n")
    assert steps[1].dest == expected


def test_copy_expansion_and_history() -> None:
    _, steps = last("FROM scratch\nARG U=1000 D=/dst\nCOPY --chown=$U:$U --chmod=0644 --link "
                    "a${U} b $D/\nADD --chown=$U https://example.com/f.tgz <<EOT $D/\nx=$U\nEOT\n"
                    "COPY --parents x/./y/ /p/\n")
    copy = steps[1].instruction
    assert (copy.chown, copy.sources, copy.dest) == ("1000:1000", ("a1000", "b"), "/dst/")
    assert steps[1].history.created_by == (
        "COPY --chown=1000:1000 --chmod=0644 a1000 b /dst/ # buildkit")
    assert steps[1].dest == "/dst/"
    add = steps[2].instruction
    assert add.contents[0].data == "x=1000\n"
    assert steps[2].history.created_by == (
        "ADD --chown=1000 https://example.com/f.tgz <<EOT /dst/ # buildkit")
    assert steps[3].history.created_by == "COPY --parents x/./y/ /p/ # buildkit"


def test_copy_heredoc_raw_expansion() -> None:
    _, steps = last("FROM scratch\nENV A=v\nCOPY <<EOF <<'Q' /d/\n\"$A\" '$A' \\$A ${A}x\nEOF\n"
                    "$A\nQ\n")
    contents = steps[1].instruction.contents
    assert contents[0].data == "\"v\" 'v' $A vx\n"
    assert contents[1].data == "$A\n"


# -- config models ---------------------------------------------------------------------

def test_image_config_round_trip() -> None:
    doc = {"Env": ["A=1"], "Cmd": ["c"], "Entrypoint": None, "WorkingDir": "/w",
           "User": "u", "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/v": {}},
           "Labels": {"k": "v"}, "StopSignal": "SIGTERM", "Shell": ["/bin/sh", "-c"],
           "Healthcheck": {"Test": ["CMD", "x"], "Interval": 5, "Retries": 2},
           "OnBuild": ["RUN x"], "ArgsEscaped": True, "Hostname": "keep-me",
           "AttachStdin": False}
    cfg = ImageConfig.from_dict(doc)
    assert cfg.healthcheck == HealthConfig(("CMD", "x"), interval=5, retries=2)
    assert cfg.extra == {"Hostname": "keep-me", "AttachStdin": False}
    out = cfg.to_dict()
    assert out == {k: v for k, v in doc.items() if k != "Entrypoint"}
    assert ImageConfig.from_dict(None) == ImageConfig()


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (1, "1ns"), (1500, "1.5\u00b5s"), (2_000_000, "2ms"), (1_500_000_000, "1.5s"),
    (90_000_000_000, "1m30s"), (3_600_000_000_000, "1h0m0s"), (-5_000_000_000, "-5s"),
])
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


def test_target_stage_arg() -> None:
    st, _ = last("FROM scratch AS one\nARG TARGETSTAGE\nENV T=$TARGETSTAGE\nFROM scratch AS two\n",
                 target="one")
    assert st.env["T"] == "one"
