"""podkit-build against buildah 1.28 as the oracle (../shared/reference/dockerfile.md).

Each context under tests/data/build is built once by each tool (module-scoped):
podkit-build into a store of this module, buildah with ``bud --isolation chroot
--no-cache --timestamp 0`` into a throw-away vfs store, pushed to an OCI layout
and unpacked by umoci.  Then the flattened trees (paths, types, modes, owners,
contents, hardlinks, link targets; not mtimes) and the config fields a
Dockerfile sets must be equal.  The contexts, by area of issue 6:

* ``lang``: parser directives, the escape char, continuations, comments, JSON
  against shell forms, invalid JSON;
* ``lines``: a BOM, CRLF, continuations (empty lines in them, at the end of
  the file, escaped escapes), legacy ENV, empty exec forms;
* ``heredoc``: RUN and COPY heredocs;
* ``vars``: variable substitution with every modifier, quoting, ARG scoping
  (global, per stage, TARGET*/BUILD*, a proxy arg), multi-stage with
  ``--target``;
* ``meta`` and ``meta-child``: ENV LABEL EXPOSE VOLUME STOPSIGNAL HEALTHCHECK
  SHELL ONBUILD USER WORKDIR MAINTAINER, CMD and ENTRYPOINT (buildah with
  ``--format docker``: Healthcheck, OnBuild and Shell exist only there);
* ``copy``: COPY and ADD with --from, --chown, --chmod, globs and the
  trailing-slash rules, local archives, .dockerignore with ``!`` and ``**``,
  multi-stage with ``--target``;
* ``ignore``: ``build.Dockerfile.dockerignore`` next to ``-f build.Dockerfile``
  (buildah gets it with ``--ignorefile``);
* ``rules`` and ``multistage`` (shared with test_build.py).

Where buildah 1.28 is known to be wrong, podkit must do what BuildKit does, and
the Dockerfile says so where it happens, with two markers that only the oracle
reads (to podkit they are comments): ``#oracle> TEXT`` is a line the oracle
gets instead, and the lines between ``#podkit{`` and ``#podkit}`` are left out
for it.  So the oracle builds the same effects written the way it understands
them (heredocs spelled as RUNs, modifiers it lacks as their BuildKit values),
and the comparison still covers the whole tree and config.  Differences in the
result that no rewrite can avoid (VOLUME directories, COPY onto a symlink) are
listed per test (``only_ours``, ``only_theirs``, ``differ``) with the reason,
and podkit's side is asserted as BuildKit has it.  Outside the Dockerfiles:

* buildah 1.28 reads ``# escape`` only as the first line: the oracle gets the
  directives with ``escape`` first (``oracle_dockerfile``);
* buildah leaves the mount points of its RUN containers in the image: empty
  ``/dev``, ``/proc``, ``/sys`` and empty ``/etc/hosts``, ``/etc/hostname``,
  ``/etc/resolv.conf`` (buildah issues 4242, 3808, 2478); podkit leaves them
  out as BuildKit does.  They are ignored only while they are empty;
* BuildKit sets ``ArgsEscaped: true`` with CMD; buildah does not.

Images also travel both ways: podkit's are read by skopeo and umoci, and
buildah's build further FROM in podkit.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import shutil
import stat
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import pytest
from helpers import TOOLS, Podkit, diff_trees, snapshot, umoci_rootfs

from integration.test_build import DATA, build_ok, multistage_context

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("systemd-nspawn") is None
    or shutil.which("buildah") is None,
    reason="RUN pods (and buildah's chroot isolation) need root; buildah is the oracle")

FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels",
          "Volumes", "StopSignal")
DOCKER_FIELDS = ("Healthcheck", "OnBuild", "Shell")  # Docker-format configs only
PLACEHOLDER_DIRS = {"dev", "proc", "sys"}
PLACEHOLDER_FILES = {"etc/hosts", "etc/hostname", "etc/resolv.conf"}


def oracle_dockerfile(text: str) -> str:
    """The Dockerfile as buildah 1.28 gets it (the module docstring has the markers)."""
    lines = text.splitlines(keepends=True)
    top = 0
    while top < len(lines) and lines[top].replace(" ", "").lower().startswith(
            ("#syntax=", "#escape=")):
        top += 1
    lines[:top] = sorted(lines[:top], key=lambda line: "escape" not in line.lower())
    out, skip = [], False
    for line in lines:
        if line.startswith("#podkit{"):
            skip = True
        elif line.startswith("#podkit}"):
            skip = False
        elif line.startswith("#oracle> "):
            out.append(line[len("#oracle> "):])
        elif not skip:
            out.append(line)
    assert not skip, "#podkit{ without #podkit}"
    return "".join(out)


def test_oracle_dockerfile_markers():
    text = ("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n#oracle> RUN a\n#podkit{\n"
            "RUN <<EOF\na\nEOF\n#podkit}\nRUN b\n")
    assert oracle_dockerfile(text) == ("# escape=`\n# syntax=docker/dockerfile:1\nFROM x\n"
                                       "RUN a\nRUN b\n")


@attrs.frozen
class Image:
    """One tool's image of one context: its rootfs and config."""

    root: str
    config: dict[str, Any]  # the image config's "config"
    docker: dict[str, Any] | None = None  # buildah --format docker: the Docker config
    ref: str = ""  # podkit: the image ID; buildah: the OCI layout


@attrs.frozen
class Pair:
    ours: Image
    theirs: Image


class Buildah:
    """buildah with a throw-away store (vfs), the test busybox as docker.io/library/busybox."""

    def __init__(self, work: str, layout: str) -> None:
        self.base = ["buildah", "--root", os.path.join(work, "root"), "--runroot",
                     os.path.join(work, "runroot"), "--storage-driver", "vfs"]
        self.work = work
        self.layout = os.path.join(work, "layout")
        image = self.sh("pull", "-q", f"oci:{layout}:tiny").strip()
        self.sh("tag", image, "docker.io/library/busybox:latest")

    def sh(self, *args: str) -> str:
        r = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=300,
                           check=False)
        assert r.returncode == 0, f"buildah {args}: {r.stderr}"
        return r.stdout

    def build(self, ctx: str, tag: str, *args: str, fmt: str = "oci",
              names: Iterable[str] = (), dockerfile_name: str = "Dockerfile") -> Image:
        dockerfile = os.path.join(self.work, f"{tag}.Dockerfile")
        with open(os.path.join(ctx, dockerfile_name)) as f, open(dockerfile, "w") as out:
            out.write(oracle_dockerfile(f.read()))
        self.sh("bud", "--isolation", "chroot", "--no-cache", "--timestamp", "0",
                "--identity-label=false", "--format", fmt, "-q", "-f", dockerfile, *args,
                "-t", f"oracle:{tag}", ctx)
        for name in names:
            self.sh("tag", f"oracle:{tag}", name)
        docker = None
        if fmt == "docker":
            docker = json.loads(self.sh("inspect", "--type", "image",
                                        f"oracle:{tag}"))["Docker"]
            docker = {**docker["config"], "author": docker.get("author")}
        self.sh("push", "-q", f"oracle:{tag}", f"oci:{self.layout}:{tag}")
        config = json.loads(subprocess.run(
            ["skopeo", "inspect", "--config", f"oci:{self.layout}:{tag}"], capture_output=True,
            text=True, check=True).stdout)["config"]
        root = umoci_rootfs(self.layout, tag, os.path.join(self.work, f"unpacked-{tag}"))
        return Image(root, config, docker, self.layout)


class Builds:
    """Each context built once per tool, both tools at the same time."""

    def __init__(self, podkit: Podkit, buildah: Buildah, work: str) -> None:
        self.podkit, self.buildah, self.work = podkit, buildah, work
        self.done: dict[str, Pair] = {}

    def __call__(self, tag: str, ctx: str, *args: str, fmt: str = "oci",
                 names: Iterable[str] = (), dockerfile: str = "Dockerfile",
                 oracle_args: Iterable[str] = ()) -> Pair:
        if tag not in self.done:
            theirs: list[Image] = []
            errors: list[BaseException] = []

            def oracle() -> None:
                try:
                    theirs.append(self.buildah.build(ctx, tag, *args, *oracle_args, fmt=fmt,
                                                     names=names, dockerfile_name=dockerfile))
                except BaseException as e:  # re-raised below
                    errors.append(e)

            t = threading.Thread(target=oracle)
            t.start()
            try:
                named = [a for name in names for a in ("-t", name)]
                image_id = build_ok(self.podkit.store, "-q", *named, *args, "-f",
                                    os.path.join(ctx, dockerfile), ctx)
            finally:
                t.join()
            if errors:
                raise errors[0]
            root = os.path.join(self.work, f"ours-{tag}")
            self.podkit.ok("render", image_id, root)
            doc = json.loads(self.podkit.ok("inspect", image_id))["Config"]
            config = {**doc["config"], "author": doc.get("author")}
            self.done[tag] = Pair(Image(root, config, ref=image_id), theirs[0])
        return self.done[tag]


@pytest.fixture(scope="module")
def buildah(images, tmp_path_factory):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("buildah")
    yield Buildah(str(work), images["layout"])
    subprocess.run(["buildah", "--root", str(work / "root"), "--runroot", str(work / "runroot"),
                    "--storage-driver", "vfs", "rm", "--all"], capture_output=True, check=False)


@pytest.fixture(scope="module")
def mpodkit(images, tmp_path_factory) -> Podkit:  # type: ignore[no-untyped-def]
    """A store for this module, with the test busybox named busybox."""
    pk = Podkit(str(tmp_path_factory.mktemp("store")))
    pk.ok("fetch", f"oci:{images['layout']}:tiny", "--name", "busybox")
    return pk


@pytest.fixture(scope="module")
def builds(mpodkit, buildah, tmp_path_factory) -> Builds:  # type: ignore[no-untyped-def]
    return Builds(mpodkit, buildah, str(tmp_path_factory.mktemp("roots")))


def without_placeholders(theirs: dict[str, tuple], ours: dict[str, tuple],
                         root: str) -> dict[str, tuple]:
    out = {}
    for path, entry in theirs.items():
        full = os.path.join(root, path)
        if path not in ours and path in PLACEHOLDER_DIRS and stat.S_ISDIR(entry[0]) \
                and not os.listdir(full):
            continue
        if path not in ours and path in PLACEHOLDER_FILES and stat.S_ISREG(entry[0]) \
                and entry[4] == 0:
            continue
        out[path] = entry
    return out


def assert_agree(pair: Pair, *, only_ours: Iterable[str] = (), only_theirs: Iterable[str] = (),
                 differ: Iterable[str] = (), docker: bool = False) -> dict[str, tuple]:
    """Trees and config equal, but for the paths listed (each must be where it is said
    to be, and different where it is said to differ; a path only buildah has must be a
    directory holding nothing else); podkit's tree."""
    a = snapshot(pair.ours.root, mtimes=False)
    b = without_placeholders(snapshot(pair.theirs.root, mtimes=False), a, pair.theirs.root)
    only_ours, only_theirs, differ = set(only_ours), set(only_theirs), set(differ)
    for path in only_ours:
        assert path in a and path not in b, path
    for path in only_theirs:
        assert path in b and path not in a, path
        if not stat.S_ISDIR(b[path][0]):
            continue
        assert set(os.listdir(os.path.join(pair.theirs.root, path))) <= \
            {os.path.basename(p) for p in only_theirs if os.path.dirname(p) == path}, path
    for path in differ:
        assert path in a and path in b and a[path] != b[path], path
    skip = only_ours | only_theirs | differ
    assert diff_trees({k: v for k, v in a.items() if k not in skip},
                      {k: v for k, v in b.items() if k not in skip}) == []
    ours, theirs = pair.ours.config, pair.theirs.config
    for field in FIELDS:
        assert ours.get(field) == theirs.get(field), field
    assert ours.get("ArgsEscaped") in (None, True) and "ArgsEscaped" not in theirs
    if docker:
        assert pair.theirs.docker is not None
        for field in (*DOCKER_FIELDS, "author"):  # buildah writes "OnBuild": [] for none
            assert (ours.get(field) or None) == (pair.theirs.docker.get(field) or None), field
    return a


def read(root: str, rel: str) -> str:
    with open(os.path.join(root, rel)) as f:
        return f.read()


def mode(root: str, rel: str) -> tuple[int, int, int]:
    st = os.lstat(os.path.join(root, rel))
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


# -- the parser, heredocs ---------------------------------------------------------------------

def test_parser_forms_agree_with_buildah(builds):
    pair = builds("lang", os.path.join(DATA, "lang"))
    assert_agree(pair)
    root, cfg = pair.ours.root, pair.ours.config
    expect = {"continued.txt": "hello world\n", "joined.txt": "onetwo\n",
              "commented.txt": "a b\n", "hash.txt": "a # not a comment\n",
              "json.txt": "json \\ form \u00e9\n", "notjson.txt": "not json: shell form\n",
              "lower.txt": "lower case\n", "backslash.txt": "back\\slash\n"}
    for rel, text in expect.items():
        assert read(root, rel) == text, rel
    # BuildKit keeps backslashes under `# escape=`` (buildah drops them)
    assert "WINPATH=C:\\path\\to\\dir" in cfg["Env"] and "SP=a b" in cfg["Env"]
    assert cfg["WorkingDir"] == "/C:\\not\\a\\drive"
    assert os.path.isdir(os.path.join(root, "C:\\not\\a\\drive"))
    assert cfg["Volumes"] == {"/data": {}, "/quoted": {}, "[/not-json]": {}}
    assert cfg["Entrypoint"] == ["/bin/echo", "entry \u00e9"]
    assert cfg["Cmd"] == ["/bin/sh", "-c", "echo shell     form"]


def test_heredocs_agree_with_buildah_spelled_without(builds):
    pair = builds("heredoc", os.path.join(DATA, "heredoc"))
    assert_agree(pair)
    root = pair.ours.root
    expect = {"hd1": "heredoc\n", "hd2": "chomped world\n", "two": "one\n",
              "three": "two world\n", "motd": "hello world\n", "raw": "hello $WHO\n",
              "script": "script /dev/pipes/EOF\n", "quoted": "not a heredoc: <<EOF\n"}
    for rel, text in expect.items():
        assert read(root, rel) == text, rel
    assert mode(root, "usr/local/bin/s.sh") == (0, 0, 0o755)
    assert not os.path.lexists(os.path.join(root, "dev"))  # /dev/pipes left no trace


def test_line_endings_and_continuations_agree_with_buildah(builds, tmp_path_factory):
    with open(os.path.join(DATA, "lines", "Dockerfile"), "rb") as f:
        text = f.read()
    ctx = tmp_path_factory.mktemp("lines")
    (ctx / "Dockerfile").write_bytes(b"\xef\xbb\xbf" + text.replace(b"\n", b"\r\n"))
    pair = builds("lines", str(ctx))
    assert_agree(pair)
    root, cfg = pair.ours.root, pair.ours.config
    expect = {"crlf.txt": "crlf joined\n", "nosep.txt": "helloworld\n", "emptyline.txt": "a b\n",
              "blankline.txt": "c d\n", "lone.txt": "e f\n", "end.txt": "end\n"}
    for rel, text2 in expect.items():
        assert read(root, rel) == text2, rel
    assert cfg["Env"][1:] == ["T1=trailing\\backslash\\", "T2=legacy value  with  spaces"]
    assert "Entrypoint" not in cfg and "Cmd" not in cfg  # [] and [] are left out


# -- variables and ARGs ------------------------------------------------------------------------

def test_variables_and_arg_scoping_agree_with_buildah(builds):
    pair = builds("vars", os.path.join(DATA, "vars"), "--target", "second",
                  "--build-arg", "FROMCLI=cli",
                  "--build-arg", "HTTP_PROXY=http://proxy.example:3128")
    assert_agree(pair)
    root, cfg = pair.ours.root, pair.ours.config
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert {k: env[k] for k in ("DEF1", "DEF2", "DEF3", "ALT1", "ALT2", "ALT3", "NEST")} == {
        "DEF1": "default", "DEF2": "default", "DEF3": "value", "ALT1": "alt", "ALT2": "",
        "ALT3": "", "NEST": "value"}
    assert [env[f"Q{i}"] for i in range(1, 9)] == [
        "single $SET", "double value", "un$SET", "tab\\tkept", "abctdef", "its", "a b",
        "value/xvalue"]
    assert (env["DIGIT"], env["LITERAL"], env["def"], env["CLI"]) == ("x", "$.", "hello", "cli")
    assert env["SPECIAL"] == "[]"  # $$: a special parameter, never set (buildah: "[$$]")
    # BuildKit's colon-less and pattern modifiers (written out for the oracle)
    assert [env[f"CL{i}"] for i in range(1, 7)] == ["default", "", "alt", "alt", "", "value"]
    assert [env[f"P{i}"] for i in range(1, 9)] == [
        "nana", "", "banan", "b", "bonana", "bonono", "banana", "Xnana"]
    # ENV over an earlier ARG; a later ARG over an ENV in the build state only
    assert (env["ARGFIRST"], env["ENVFIRST"]) == ("from-env", "from-env")
    assert (env["SEEN1"], env["SEEN2"]) == ("from-env", "from-arg")
    assert cfg["Labels"] == {"before-redeclare": "[]", "after-redeclare": "[g1]", "l1": "user",
                             "l2": "1000", "l3": "8080"}
    assert (cfg["User"], cfg["WorkingDir"], cfg["StopSignal"]) == ("user:1000", "/work/user",
                                                                   "SIGTERM")
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "8080/udp": {}}
    assert cfg["Volumes"] == {"/vol": {}, "[/work]": {}}
    assert mode(root, "opt/Dockerfile")[:2] == (1000, 1000)
    assert read(root, "opt/args-copy.txt") == read(root, "args.txt")
    assert not any(k in env for k in ("SET", "GLOBAL", "HTTP_PROXY", "TARGETARCH"))
    assert read(root, "args.txt") == (
        "set=value unset=unset empty=[] cli=cli arg-first=from-env env-first=from-arg "
        "proxy=http://proxy.example:3128 target=amd64\n")
    assert read(root, "inherited.txt") == "inherited=[value] global=[g1]\n"  # BuildKit only
    history = json.loads(builds.podkit.ok("inspect", pair.ours.ref))["Config"]["history"]
    assert not any("proxy.example" in h.get("created_by", "") for h in history)


def test_run_supplementary_groups_hold_the_primary_gid(builds, tmp_path_factory):
    ctx = tmp_path_factory.mktemp("groups")
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nUSER user\nRUN grep ^Groups: /proc/self/status > /tmp/groups\n"
        "USER user:root\nRUN grep ^Groups: /proc/self/status >> /tmp/groups\n")
    pair = builds("groups", str(ctx))
    assert read(pair.theirs.root, "tmp/groups").split() == ["Groups:", "1000", "Groups:", "0"]
    assert read(pair.ours.root, "tmp/groups").split() == ["Groups:", "1000", "Groups:", "0"]


# -- metadata instructions, ONBUILD -------------------------------------------------------------

def test_metadata_instructions_agree_with_buildah(builds):
    pair = builds("meta", os.path.join(DATA, "meta"), fmt="docker", names=["meta-parent:1"])
    # buildah: VOLUME paths made as directories, later changes under them dropped
    volumes = {"only_ours": ["data/f", "vol/f"], "only_theirs": ["quoted", "json1", "json two"]}
    assert_agree(pair, docker=True, **volumes)
    root, cfg = pair.ours.root, pair.ours.config
    assert read(root, "vol/f") == read(root, "data/f") == "kept\n"
    assert read(root, "shell.txt") == "shell ok\n"  # SHELL for RUN
    assert read(root, "home/user/made-as-user/uid.txt") == "1000\n1000\n"
    assert read(root, "tmp/unknown-uid.txt") == "4242\n0\n"  # an unknown uid: gid 0
    assert mode(root, "home/user/made-as-user") == (1000, 1000, 0o755)  # WORKDIR as USER
    assert mode(root, "x/y") == (0, 0, 0o755) and os.path.isdir(os.path.join(root, "rel"))
    assert cfg["author"] == "someone@example.com"
    assert cfg["Shell"] == ["/bin/sh", "-ec"]
    assert cfg["Cmd"] == ["/bin/sh", "-ec", "echo hi"]  # the SHELL, not /bin/sh -c
    assert cfg["ExposedPorts"] == {p: {} for p in (
        "80/tcp", "443/udp", "8080/tcp", "9000/tcp", "9001/tcp", "53/udp")}
    assert cfg["Healthcheck"] == {  # the last one, Go durations in ns
        "Test": ["CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"],
        "Interval": 3_723_000_000_000, "Timeout": 150_000_000_000}
    assert cfg["OnBuild"] == ["RUN echo triggered > /tmp/from-trigger", "ENV TRIGGERED=yes",
                              "COPY trigger.txt /tmp/copied-by-trigger"]
    assert "ONE=TWO= THREE=world" in cfg["Env"] and "C=single $A" in cfg["Env"]
    assert cfg["Labels"] == {"version": "2", "quoted key": "quoted value",
                             "multi": "line one line two"}

    child = builds("meta-child", os.path.join(DATA, "meta-child"), fmt="docker")
    assert_agree(child, docker=True, **volumes)  # the parent's differences, inherited
    assert read(child.ours.root, "tmp/seen") == "triggered\nyes\n"
    assert read(child.ours.root, "tmp/copied-by-trigger") == "copied by a trigger\n"
    ccfg = child.ours.config
    assert "OnBuild" not in ccfg and "Cmd" not in ccfg  # not passed on; reset by ENTRYPOINT
    assert "TRIGGERED=yes" in ccfg["Env"] and ccfg["User"] == "1000"


# -- COPY and ADD -----------------------------------------------------------------------------

def _archive(path: str, compress: Callable[[bytes], bytes] = lambda b: b) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644,
                owner: int = 0, link: str = "") -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid, ti.mtime, ti.linkname = \
                kind, mode, owner, owner + 1 if owner else 0, 1600000000, link
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("pkg", tarfile.DIRTYPE, mode=0o750, owner=42)
        add("pkg/data.txt", data=b"packed\n", mode=0o640, owner=42)
        add("pkg/setuid", data=b"#!/bin/sh\n", mode=0o4755)
        add("pkg/link", tarfile.SYMTYPE, mode=0o777, link="data.txt")
        add("pkg/hard", tarfile.LNKTYPE, mode=0o640, owner=42, link="pkg/data.txt")
    with open(path, "wb") as f:
        f.write(compress(buf.getvalue()))


def copy_context(dest: str) -> str:
    """tests/data/build/copy with what git cannot keep (see its Dockerfile)."""
    shutil.copytree(os.path.join(DATA, "copy"), dest)
    os.chmod(os.path.join(dest, "src", "two.txt"), 0o600)
    os.chmod(os.path.join(dest, "src", "sub"), 0o750)
    os.chown(os.path.join(dest, "src", "one.txt"), 1234, 1234)
    os.link(os.path.join(dest, "src", "h1"), os.path.join(dest, "src", "h2"))
    os.symlink("one.txt", os.path.join(dest, "src", "link-to-one"))
    os.symlink("src/two.txt", os.path.join(dest, "top-link"))
    os.symlink("../nowhere", os.path.join(dest, "src", "sub", "dangling"))
    os.symlink("real.txt", os.path.join(dest, "links", "file-link"))
    os.symlink("../made-by-copy/new.txt", os.path.join(dest, "links", "dangling"))
    _archive(os.path.join(dest, "plain.tar"))
    _archive(os.path.join(dest, "archive.tar.gz"), lambda b: gzip.compress(b, mtime=0))
    _archive(os.path.join(dest, "archive.tbz"), bz2.compress)
    _archive(os.path.join(dest, "archive.tar.xz"), lzma.compress)
    with open(os.path.join(dest, "fake.tar.gz"), "wb") as f:
        f.write(b"not really an archive\n")
    with tarfile.open(os.path.join(dest, "dotted.tar"), "w", format=tarfile.GNU_FORMAT) as tf:
        for name, kind, mode, data in (
                ("./", tarfile.DIRTYPE, 0o755, b""), ("./etc/", tarfile.DIRTYPE, 0o700, b""),
                ("./etc/added.conf", tarfile.REGTYPE, 0o644, b"added\n"),
                ("./tmp/added", tarfile.REGTYPE, 0o644, b"added\n"),
                ("./data/c", tarfile.REGTYPE, 0o600, b"replaced\n"),
                ("./run/fifo2", tarfile.FIFOTYPE, 0o640, b"")):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime, ti.size = kind, mode, 1600000000, len(data)
            tf.addfile(ti, io.BytesIO(data) if data else None)
    return dest


def test_copy_and_add_agree_with_buildah(builds, tmp_path_factory):
    ctx = copy_context(str(tmp_path_factory.mktemp("copy") / "ctx"))
    pair = builds("copy", ctx, "--target", "final")
    # onto existing symlinks (see the Dockerfile): buildah replaces /dest/file-link and
    # makes /made-by-copy/new.txt a directory holding one.txt
    tree = assert_agree(pair, differ=["dest/file-link", "dest/real.txt", "made-by-copy/new.txt"],
                        only_theirs=["made-by-copy/new.txt/one.txt"])
    root = pair.ours.root
    assert os.readlink(os.path.join(root, "dest/file-link")) == "real.txt"
    assert read(root, "dest/real.txt") == "one\n"  # written through the link
    assert os.readlink(os.path.join(root, "dest/dangling")) == "../made-by-copy/new.txt"
    assert read(root, "made-by-copy/new.txt") == "one\n"
    assert mode(root, "made-by-copy") == (0, 0, 0o755)
    files = {rel for rel, e in tree.items() if not stat.S_ISDIR(e[0])}
    assert {"as-file", "data/one.txt", "newdir/one.txt", "w/rel/one.txt", "w/rel-file",
            "data/three.md", "data/deep/d.txt", "glob-q/q1.cfg", "glob-q/q2.cfg",
            "json form/with space.txt", "linked/one.txt", "x/add-file", "x/fake/fake.tar.gz",
            "x/not-extracted/archive.tar.gz"} <= files
    assert sorted(os.listdir(os.path.join(root, "glob-class"))) == ["one.txt", "two.txt"]
    assert sorted(os.listdir(os.path.join(root, "several"))) == [
        "dangling", "deep", "nested.log", "one.txt", "three.md", "two.txt"]
    assert mode(root, "copied/one.txt") == (0, 0, 0o644)  # owners 0:0
    assert mode(root, "copied/two.txt") == (0, 0, 0o600) and mode(root, "copied/sub")[2] == 0o750
    h1, h2 = (os.lstat(os.path.join(root, "copied", h)) for h in ("h1", "h2"))
    assert h1.st_ino == h2.st_ino  # a hardlink within one COPY stays one
    assert os.readlink(os.path.join(root, "copied/link-to-one")) == "one.txt"
    assert os.readlink(os.path.join(root, "copied/sub/dangling")) == "../nowhere"
    assert read(root, "followed") == "one\n" and read(root, "followed2") == "two\n"
    assert mode(root, "own") == mode(root, "own/byname") == (1000, 1000, 0o755)
    assert mode(root, "own/byname/one.txt") == (1000, 1000, 0o644)
    assert mode(root, "own/byid/deep/d.txt")[:2] == (1000, 1000)
    assert mode(root, "own/mixed/two.txt") == (1000, 0, 0o600)
    assert mode(root, "own/number/two.txt") == (4242, 4242, 0o600)
    assert mode(root, "mode/one.txt")[2] == mode(root, "mode/two.txt")[2] == 0o750
    assert mode(root, "both/deep/d.txt") == (1000, 1000, 0o600)
    assert mode(root, "symbolic")[2] == 0o744  # u+x,go=r
    assert read(root, "from-name/made.txt") == "made\n"
    assert mode(root, "from-name/sub") == (1000, 1000, 0o700)  # --from keeps owners
    assert os.readlink(os.path.join(root, "from-name/rel-link")) == "made.txt"
    assert read(root, "from-index.txt") == read(root, "from-link.txt") == "made\n"
    assert read(root, "from-image-passwd").startswith("root:x:0:0:")
    for kind in ("plain", "gz", "bz2", "xz"):
        pkg = f"x/{kind}/pkg"
        assert mode(root, pkg) == (42, 43, 0o750), kind
        assert mode(root, f"{pkg}/data.txt") == (42, 43, 0o640)
        assert mode(root, f"{pkg}/setuid") == (0, 0, 0o4755)
        assert os.readlink(os.path.join(root, f"{pkg}/link")) == "data.txt"
        assert os.lstat(os.path.join(root, f"{pkg}/hard")).st_ino == \
            os.lstat(os.path.join(root, f"{pkg}/data.txt")).st_ino
    assert mode(root, "etc") == (0, 0, 0o700) and mode(root, "tmp") == (0, 0, 0o1777)
    assert os.lstat(os.path.join(root, "etc")).st_mtime == 1600000000
    assert read(root, "data/c") == "replaced\n" and mode(root, "data/c")[2] == 0o600
    assert stat.S_ISFIFO(os.lstat(os.path.join(root, "run/fifo2")).st_mode)
    # .dockerignore: ** and an exception below it, a directory and an exception in it,
    # an anchored name, a pattern cleaned to b.txt, *.log only at the top
    in_ctx = {rel[4:] for rel in tree if rel.startswith("ctx/")}
    assert {"keep/a/b/x.tmp", "secret/public.txt", "logs/root.log", "src/sub/nested.log",
            "with space.txt", "top-link", "Dockerfile", ".dockerignore"} <= in_ctx
    assert not {"top.tmp", "src/t.tmp", "secret/s.txt", "anchored.txt", "b.txt",
                "root.log"} & in_ctx


def test_dockerfile_ignore_file_agrees_with_buildah(builds):
    ctx = os.path.join(DATA, "ignore")
    pair = builds("ignore", ctx, dockerfile="build.Dockerfile",
                  oracle_args=["--ignorefile", os.path.join(ctx, "build.Dockerfile.dockerignore")])
    tree = assert_agree(pair)
    files = sorted(rel[4:] for rel, e in tree.items()
                   if rel.startswith("ctx/") and not stat.S_ISDIR(e[0]))
    assert files == [".dockerignore", "README.md", "build.Dockerfile",
                     "build.Dockerfile.dockerignore", "build/keep.txt", "docs/api/index.md",
                     "src/a/b/deep.py", "src/main.py", "vendor/x/lib.go"]


# -- the contexts test_build.py uses ------------------------------------------------------------

def test_copy_rules_agree_with_buildah(builds):
    pair = builds("rules", os.path.join(DATA, "rules"))
    assert_agree(pair)
    root = pair.ours.root
    expect = {
        "dest-file": "one\n", "dest-dir/f1": "one\n", "other/deep/relative-to-workdir": "one\n",
        "merged/keep/pre": "pre\n", "merged/d.txt": "d\n", "merged/nested/n.txt": "n\n",
        "spaced/with space.txt": "two\n", "tree/a/x.txt": "a\n", "logs/keep.log": "keep\n",
        "data/n.txt": "n\n", "home/user/env.txt": "two words\n",
    }
    for path, text in expect.items():
        assert read(root, path) == text, path
    assert os.readlink(os.path.join(root, "tree/dangling")) == "dangling-target"
    assert not os.path.exists(os.path.join(root, "tree/b"))  # .dockerignore
    assert os.listdir(os.path.join(root, "logs")) == ["keep.log"]  # ... with its exception
    assert not os.path.lexists(os.path.join(root, "data/a"))  # a whiteout
    assert os.readlink(os.path.join(root, "data/link")) == "/dest-file"
    assert stat.S_IMODE(os.lstat(os.path.join(root, "chmodded")).st_mode) == 0o600
    cfg = pair.ours.config
    assert cfg["Env"][-3:] == ["A=2", "B=two words", "C=1x"]
    assert cfg["Cmd"] == ["/bin/sh", "-c", 'echo "shell form"']
    assert cfg["WorkingDir"] == "/other/deep"
    r = subprocess.run([os.path.join(TOOLS, "podkit-run"), "--store", builds.podkit.store,
                        pair.ours.ref], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == "shell form\n", r.stderr


def test_multistage_agrees_with_buildah(builds, tmp_path_factory):
    ctx = multistage_context(tmp_path_factory.mktemp("multistage"))
    assert_agree(builds("builder", ctx, "--target", "builder"))
    pair = builds("final", ctx)
    assert_agree(pair)
    podkit, tmp = builds.podkit, tmp_path_factory.mktemp("travel")

    # podkit's image, exported, is read by skopeo and unpacked by umoci as rendered
    out = str(tmp / "exported")
    podkit.ok("export", pair.ours.ref, f"oci:{out}:final")
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{out}:final"],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["Digest"] == pair.ours.ref
    unpacked = umoci_rootfs(out, "final", str(tmp / "umoci"))
    assert diff_trees(snapshot(pair.ours.root, mtimes=False),
                      snapshot(unpacked, mtimes=False)) == []

    # buildah's image builds further FROM in podkit
    theirs = podkit.ok("fetch", f"oci:{pair.theirs.ref}:final", "--name",
                       "from-buildah:1").strip()
    assert theirs.startswith("sha256:")
    child = tmp / "child"
    child.mkdir()
    (child / "Dockerfile").write_text("FROM from-buildah:1\nUSER root\n"
                                      "RUN cat /srv/build.txt /srv/combined.txt > /both\n")
    image_id = build_ok(podkit.store, "-q", str(child))
    podkit.ok("render", image_id, str(tmp / "child-root"))
    assert read(str(tmp / "child-root"), "both") == "version=1.0 mode=build\nalpha\nbeta\n"
