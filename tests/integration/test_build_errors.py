"""podkit-build with bad Dockerfiles: one line on stderr naming FILE:LINE of the step at
fault (and, for a failing RUN, the step's output before it), and no image, named or
half-named, left behind.

test_build.py has the first examples of each kind; here each kind of issue 6's list
(unknown instruction, bad JSON, missing stage, missing file in COPY, failing RUN)
is built with ``-t`` over a name that already names an image, which must keep
naming it, and the kinds that test_build.py leaves out are added: errors after
continuations, a missing stage named by index, missing files in ADD, in
``COPY --from`` and in a ``RUN --mount``, the ``-f`` file's own name, and failures
inside a stage that another one needs, which BuildKit reports at the failing step.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from helpers import Podkit

from integration.test_build import build, build_ok

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("systemd-nspawn") is None,
    reason="RUN pods need root and systemd-nspawn")

RUN_FAILED = 'RUN failed: process "/bin/sh -c {}" did not complete successfully: exit code: {}'


@pytest.fixture(scope="module")
def mpodkit(images, tmp_path_factory) -> Podkit:  # type: ignore[no-untyped-def]
    """A store with the test busybox and ``keep:1``, an image built from it."""
    pk = Podkit(str(tmp_path_factory.mktemp("store")))
    pk.ok("fetch", f"oci:{images['layout']}:tiny", "--name", "busybox")
    ctx = tmp_path_factory.mktemp("keep")
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo kept > /kept\n")
    build_ok(pk.store, "-q", "-t", "keep:1", str(ctx))
    return pk


def names(pk: Podkit) -> list[tuple[str, list[str]]]:
    return sorted((i["id"], sorted(i["names"]))
                  for i in json.loads(pk.ok("images", "--json", "-a")))


def assert_nothing_left(pk: Podkit, before: list[tuple[str, list[str]]]) -> None:
    assert names(pk) == before  # keep:1 still names its image; no new:1, no unnamed image
    for where in os.listdir(os.path.join(pk.store, "pods")):
        assert os.listdir(os.path.join(pk.store, "pods", where)) == [], where
    assert os.listdir(os.path.join(pk.store, "tmp")) in ([], ["verified"])


def context(tmp_path, dockerfile: str, name: str = "Dockerfile") -> str:  # type: ignore[no-untyped-def]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / name).write_text(dockerfile)
    (ctx / "present.txt").write_text("here\n")
    return str(ctx)


@pytest.mark.parametrize(("dockerfile", "status", "error"), [
    pytest.param("FROM busybox\nRUN true\nFROOM x\n", 2,
                 "Dockerfile:3: unknown instruction: FROOM", id="unknown-instruction"),
    pytest.param("FROM busybox\nRUN echo a \\\n  b\n# a comment\nECHO x\n", 2,
                 "Dockerfile:5: unknown instruction: ECHO", id="unknown-after-continuation"),
    pytest.param('FROM busybox\nENV A=1\nCMD ["a", ["nested"]]\n', 2,
                 "Dockerfile:3: ", id="bad-json"),
    pytest.param("FROM busybox\nRUN true\nCOPY --from=5 /x /x\n", 2,
                 "Dockerfile:3: invalid stage index 5", id="missing-stage-index"),
    pytest.param("FROM busybox AS a\nFROM busybox\nCOPY --from=a /missing /x\n", 2,
                 'Dockerfile:3: COPY failed: "/missing": not found in stage a',
                 id="missing-file-in-stage"),
    pytest.param("FROM busybox\nCOPY present.txt missing.txt /x/\n", 2,
                 'Dockerfile:2: COPY failed: "/missing.txt": not found in the build context',
                 id="missing-file-in-copy"),
    pytest.param("FROM busybox\nADD missing.tar /\n", 2,
                 'Dockerfile:2: ADD failed: "/missing.tar": not found in the build context',
                 id="missing-file-in-add"),
    pytest.param("FROM busybox\nRUN --mount=type=bind,source=nope,target=/m true\n", 1,
                 "Dockerfile:2: [stage-0 2/2] RUN --mount=type=bind,source=nope,target=/m true: "
                 "RUN --mount source 'nope': not found in the build context",
                 id="missing-file-in-mount"),
    pytest.param("FROM busybox AS a\nUSER ghost\nRUN true\nFROM busybox\nCOPY --from=a /x /x\n",
                 4, "Dockerfile:3: [a 3/3] RUN true: user 'ghost' is not in the image's",
                 id="unknown-user-in-a-needed-stage"),
])
def test_bad_dockerfiles_fail_on_one_line_with_file_and_line(mpodkit, tmp_path, dockerfile,
                                                             status, error):
    before = names(mpodkit)
    ctx = context(tmp_path, dockerfile)
    r = mpodkit.fail("build", "-q", "-t", "keep:1", "-t", "new:1", ctx, status=status,
                     match=error)
    assert r.stderr.startswith(f"podkit-build: {error}"), r.stderr  # where it is, first
    assert_nothing_left(mpodkit, before)


def test_errors_name_the_dockerfile_given_with_f(mpodkit, tmp_path):
    before = names(mpodkit)
    ctx = context(tmp_path, "FROM busybox\nRUN true\nFROOM x\n", name="other.Dockerfile")
    mpodkit.fail("build", "-q", "-t", "keep:1", "-f", os.path.join(ctx, "other.Dockerfile"), ctx,
                 status=2, match="other.Dockerfile:3: unknown instruction: FROOM")
    # a missing target stage has no line (BuildKit names none either)
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM busybox AS a\nRUN true\n")
    r = mpodkit.fail("build", "-q", "-t", "keep:1", "--target", "nope", ctx, status=2,
                     match="target stage")
    assert "'nope'" in r.stderr
    assert_nothing_left(mpodkit, before)


@pytest.mark.parametrize(("dockerfile", "line", "label", "code"), [
    pytest.param("FROM busybox\nRUN echo made > /made\nRUN echo out && exit 3\n", 3,
                 "stage-0 3/3", 3, id="final-stage"),
    pytest.param("FROM busybox AS a\nRUN echo out && exit 4\nFROM busybox\n"
                 "COPY --from=a /x /x\n", 2, "a 2/2", 4, id="stage-for-copy-from"),
    pytest.param("FROM busybox AS a\nRUN echo out && exit 5\nFROM a\nRUN true\n", 2,
                 "a 2/2", 5, id="stage-for-from"),
    pytest.param("FROM busybox AS a\nRUN echo out && exit 6\nFROM busybox\n"
                 "RUN --mount=type=bind,from=a,target=/m true\n", 2, "a 2/2", 6,
                 id="stage-for-mount"),
])
def test_a_failing_run_is_reported_at_its_own_line_after_its_output(mpodkit, tmp_path,
                                                                     dockerfile, line, label,
                                                                     code):
    before = names(mpodkit)
    ctx = context(tmp_path, dockerfile)
    r = build(mpodkit.store, "-q", "-t", "keep:1", "-t", "new:1", ctx)
    assert r.returncode == 1 and r.stdout == "", r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[-1] == (f"podkit-build: Dockerfile:{line}: [{label}] "
                         + RUN_FAILED.format(f"echo out && exit {code}", code))
    assert "out" in lines[-2]  # the step's output, also when quiet
    assert "Traceback" not in r.stderr
    assert_nothing_left(mpodkit, before)


def test_empty_continuation_lines_warn_with_file_and_line(mpodkit, tmp_path):
    ctx = context(tmp_path, "FROM busybox\nLABEL a=1 \\\n\n  b=2\n")
    r = build(mpodkit.store, "-q", ctx)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ("podkit-build: warning: Dockerfile:4: Empty continuation line found in: "
                        "LABEL a=1   b=2\n")
