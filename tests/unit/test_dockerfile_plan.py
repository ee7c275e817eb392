"""Tests for libaci.dockerfile.plan: stages, global ARGs, --target, needed stages."""

from __future__ import annotations

import pytest

from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.instructions import Run
from libaci.dockerfile.loader import load
from libaci.dockerfile.plan import (
    BuildOptions,
    Platform,
    default_args,
    host_platform,
    parse_platform,
    plan,
)

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")


def make(text: str, **options: object) -> object:
    opts = BuildOptions(**{"build_platform": AMD64, **options})  # type: ignore[arg-type]
    return plan(load(text, filename="df"), opts)


MULTI = """\
ARG GO=1.22
FROM golang:${GO} AS build
RUN go build
FROM build AS test
RUN go test
FROM busybox AS unrelated
RUN true
FROM alpine AS assets
RUN make assets
FROM scratch
COPY --from=build /app /app
COPY --from=3 /assets /assets
COPY --from=nginx:1.25 /etc/nginx /etc/nginx
"""


def test_needed_stages_default_target() -> None:
    p = make(MULTI)
    assert p.target == 4
    assert p.order == (0, 3, 4)
    assert [s.needed for s in p.stages] == [True, False, False, True, True]
    assert p.images == ("docker.io/library/golang:1.22", "docker.io/library/alpine:latest",
                        "docker.io/library/nginx:1.25")
    final = p.stages[4]
    assert final.base.kind == "scratch"
    assert [(d.kind, d.via, d.name, d.stage, d.reference) for d in final.dependencies] == [
        ("stage", "copy", "build", 0, None), ("stage", "copy", "3", 3, None),
        ("image", "copy", "nginx:1.25", None, "docker.io/library/nginx:1.25")]


def test_target_selects_stage_and_its_bases() -> None:
    p = make(MULTI, target="TEST")
    assert p.target == 1
    assert p.order == (0, 1)
    assert p.stages[1].base.kind == "stage" and p.stages[1].base.stage == 0
    assert p.images == ("docker.io/library/golang:1.22",)


def test_unknown_target() -> None:
    with pytest.raises(DockerfileError) as info:
        make(MULTI, target="nope")
    assert str(info.value) == "df: target stage 'nope' could not be found"


def test_global_args_in_from() -> None:
    p = make("ARG IMAGE=busybox\nARG TAG\nFROM ${IMAGE}:${TAG:-1.36} AS a\nFROM $IMAGE\n",
             build_args={"TAG": "1.35"})
    assert p.stages[0].base.name == "busybox:1.35"
    assert p.stages[1].base.reference == "docker.io/library/busybox:latest"
    env = p.global_env()
    assert env["IMAGE"] == "busybox" and env["TAG"] == "1.35"


def test_global_arg_defaults_see_earlier_ones() -> None:
    p = make("ARG A=x\nARG B=${A}y\nARG A=z\nFROM img-$A-$B\n")
    assert p.stages[0].base.name == "img-z-xy"


def test_build_arg_is_not_expanded() -> None:
    p = make("ARG A\nARG B=x$A\nFROM busybox\n", build_args={"A": "-$HOME"})
    assert p.global_env()["A"] == "-$HOME"
    assert p.global_env()["B"] == "x-$HOME"


def test_automatic_platform_args() -> None:
    p = make("FROM --platform=$BUILDPLATFORM busybox AS b\n"
             "FROM --platform=${TARGETOS}/arm64 busybox\n",
             target_platform=Platform("linux", "arm", "v7"))
    env = p.global_env()
    assert env["BUILDPLATFORM"] == "linux/amd64"
    assert env["TARGETPLATFORM"] == "linux/arm/v7"
    assert (env["TARGETOS"], env["TARGETARCH"], env["TARGETVARIANT"]) == ("linux", "arm", "v7")
    assert env["TARGETSTAGE"] == ""
    assert p.stages[0].platform == AMD64
    assert p.stages[1].platform == ARM64


def test_default_args_overrides_and_target_stage() -> None:
    args = default_args(BuildOptions(build_args={"TARGETARCH": "riscv64"}, build_platform=ARM64),
                        "final")
    assert args["TARGETPLATFORM"] == "linux/arm64"
    assert args["TARGETARCH"] == "riscv64"
    assert args["TARGETSTAGE"] == "final"
    assert args["BUILDOSVERSION"] == ""


def test_stage_reference_is_case_sensitive_lookup() -> None:
    # stage names are lowercased; FROM looks the expanded name up as written
    p = make("FROM busybox AS base\nFROM base\n")
    assert p.stages[1].base.kind == "stage"
    with pytest.raises(DockerfileError, match="failed to parse stage name 'Base'"):
        make("FROM busybox AS base\nFROM Base\n")


def test_from_stage_defined_later_is_an_image() -> None:
    p = make("FROM later\nFROM busybox AS later\n")
    assert p.stages[0].base.kind == "image"
    assert p.stages[0].base.reference == "docker.io/library/later:latest"


def test_self_named_stage_is_an_image() -> None:
    p = make("FROM busybox AS busybox\n")
    assert p.stages[0].base.kind == "image"


def test_blank_base_name() -> None:
    with pytest.raises(DockerfileError) as info:
        make("ARG X\nFROM ${X}\n")
    assert str(info.value) == "df:2: base name (${X}) should not be blank"


@pytest.mark.parametrize(("text", "message"), [
    ("FROM Busybox\n", "failed to parse stage name 'Busybox'"),
    ("FROM busybox\nFROM scratch\nCOPY --from=Bad:Ref / /\n", "failed to parse stage name"),
    ("FROM --platform=$NOPE busybox\n", "empty platform value from expression $NOPE"),
    ("FROM --platform=linux/amd64/v2/x busybox\n", "failed to parse platform"),
    ("FROM --platform=${X busybox\n", "failed to process arguments for platform"),
    ("FROM busybox\nCOPY --from=5 / /\n", "invalid stage index 5"),
    ("FROM busybox\nCOPY --from=-1 / /\n", "invalid stage index -1"),
    ("FROM busybox AS a\nCOPY --from=a / /\n", "circular dependency detected on stage: a"),
    ("FROM busybox AS a\nCOPY --from=b / /\nFROM busybox AS b\nCOPY --from=a / /\n",
     "circular dependency detected on stage: a"),
    ("FROM busybox AS a\nRUN --mount=from=b,target=/b x\nFROM a AS b\n",
     "circular dependency detected"),
    ("FROM scratch AS a\nCOPY --from=b / /\nFROM scratch AS b\nFROM a\n",
     "cannot copy from stage 'b', it needs to be defined before current stage 'a'"),
    ("FROM scratch AS a\nRUN --mount=from=b,target=/b x\nFROM scratch AS b\nFROM a\n",
     "cannot mount from stage 'b'"),
])
def test_plan_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        make(text)
    assert message in info.value.message
    assert info.value.line is not None


def test_later_stage_reference_in_unneeded_stage_is_fine() -> None:
    p = make("FROM scratch AS a\nCOPY --from=b / /\nFROM scratch AS b\nFROM scratch\n")
    assert p.order == (2,)


def test_run_mount_dependencies() -> None:
    p = make("FROM busybox AS tools\nFROM busybox\n"
             "RUN --mount=type=bind,from=tools,target=/t --mount=type=cache,target=/c "
             "--mount=from=alpine:3,target=/a x\n")
    deps = p.stages[1].dependencies
    assert [(d.kind, d.via, d.stage, d.reference) for d in deps] == [
        ("stage", "mount", 0, None), ("image", "mount", None, "docker.io/library/alpine:3")]
    assert p.order == (0, 1)


def test_copy_from_scratch_and_index() -> None:
    p = make("FROM busybox\nFROM scratch\nCOPY --from=scratch / /\nCOPY --from=0 /a /a\n")
    assert [(d.kind, d.name) for d in p.stages[1].dependencies] == [
        ("image", "scratch"), ("stage", "0")]
    assert p.images == ("docker.io/library/busybox:latest",)


def test_onbuild_of_base_stage_runs_in_child() -> None:
    p = make("FROM busybox AS base\nONBUILD RUN echo child\nONBUILD COPY --from=helper /x /x\n"
             "FROM busybox AS helper\nFROM base\nRUN echo own\n")
    child = p.stages[2]
    assert child.onbuild_count == 2
    assert [c.original for c in child.commands] == [
        "RUN echo child", "COPY --from=helper /x /x", "RUN echo own"]
    assert p.order == (0, 1, 2)


def test_image_triggers() -> None:
    p = make("FROM busybox AS helper\nFROM python:3-onbuild\nRUN own\n")
    assert p.order == (1,)
    p2 = p.with_image_triggers(1, ["COPY --from=helper /x /x", "RUN pip install ."])
    assert p2.order == (0, 1)
    assert p2.stages[1].onbuild_count == 2
    assert isinstance(p2.stages[1].commands[1], Run)
    p3 = p2.with_image_triggers(0, ["RUN x"])
    assert p3.stages[0].onbuild_count == 1
    assert p3.stages[1].onbuild_count == 2
    with pytest.raises(DockerfileError, match="onbuild trigger should be a single expression"):
        p.with_image_triggers(1, ["RUN a\nRUN b"])


def test_unused_build_args_and_warnings() -> None:
    p = make("ARG G\nFROM busybox AS a\nARG USED\nFROM busybox AS a\nFROM scratch\n",
             build_args={"G": "1", "USED": "2", "HTTP_PROXY": "p", "TARGETARCH": "x",
                         "NOBODY": "3"})
    assert p.unused_build_args() == ("USED", "NOBODY")
    assert any("duplicate stage name 'a'" in w for w in p.warnings)


def test_stage_lookup() -> None:
    p = make(MULTI)
    assert p.stage("ASSETS").index == 3
    assert p.stage(4).display_name == "stage-4"
    with pytest.raises(DockerfileError):
        p.stage("missing")


@pytest.mark.parametrize(("text", "expected"), [
    ("linux/amd64", Platform("linux", "amd64")),
    ("linux/x86_64", Platform("linux", "amd64")),
    ("linux/aarch64", Platform("linux", "arm64")),
    ("linux/arm64/v8", Platform("linux", "arm64")),
    ("linux/arm", Platform("linux", "arm", "v7")),
    ("linux/arm/v6", Platform("linux", "arm", "v6")),
    ("linux/armhf", Platform("linux", "arm", "v7")),
    ("Linux/ARM64", Platform("linux", "arm64")),
    ("arm64", Platform("linux", "arm64")),
    ("windows/amd64", Platform("windows", "amd64")),
])
def test_parse_platform(text: str, expected: Platform) -> None:
    assert parse_platform(text) == expected


@pytest.mark.parametrize("text", ["", "*", "a/b/c/d", "nonsense"])
def test_parse_platform_bad(text: str) -> None:
    with pytest.raises(DockerfileError):
        parse_platform(text)


def test_host_platform_is_linux() -> None:
    assert host_platform().os == "linux"
    assert str(Platform("linux", "arm", "v7")) == "linux/arm/v7"
