"""podkit-build's parts that need no pod: paths inside an image tree, --chmod and
--chown, archives, cache keys, history dates, the watch fingerprint, option parsing."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from libaci.dockerfile.instructions import parse_chmod
from libaci.errors import UsageError
from stage0.build import cache, fsops
from stage0.build.context import Context
from stage0.build.engine import _dated
from stage0.build.errors import BuildError
from stage0.cli.build import parse_build_args, parse_secrets


def test_resolve_stays_inside_the_tree(tmp_path):
    root = str(tmp_path)
    os.makedirs(tmp_path / "usr" / "bin")
    os.symlink("usr/bin", tmp_path / "bin")
    os.symlink("/etc/passwd", tmp_path / "usr" / "abs")  # absolute: the image's, not the host's
    os.symlink("../../../../..", tmp_path / "usr" / "up")
    os.symlink("loop", tmp_path / "loop")
    assert fsops.resolve(root, "/bin/sh") == "/usr/bin/sh"
    assert fsops.resolve(root, "/usr/abs") == "/etc/passwd"
    assert fsops.resolve(root, "/usr/abs", follow_last=False) == "/usr/abs"
    assert fsops.resolve(root, "/usr/up/x") == "/x"
    assert fsops.is_dir(root, "/bin") and not fsops.is_dir(root, "/usr/abs")
    with pytest.raises(BuildError, match="too many levels"):
        fsops.resolve(root, "/loop")
    assert fsops.ensure_dir(root, "/bin/new/deep", (7, 8)) == "/usr/bin/new/deep"
    st = os.stat(tmp_path / "usr" / "bin" / "new")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (7, 8, 0o755)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BuildError, match="not a directory"):
        fsops.ensure_dir(root, "/file/sub")


@pytest.mark.parametrize(("mode", "text", "is_dir", "want"), [
    (0o644, "755", False, 0o755),
    (0o644, "u+x", False, 0o744),
    (0o644, "go-r", False, 0o600),
    (0o600, "a+X", False, 0o600),
    (0o700, "a+X", False, 0o711),
    (0o600, "a+X", True, 0o711),
    (0o640, "o=g", False, 0o644),
    (0o755, "u+s,g=rx,o=", False, 0o4750),
    (0o755, "+t", True, 0o1755),
])
def test_chmod(mode, text, is_dir, want):
    assert fsops.apply_chmod(mode, parse_chmod(text), is_dir) == want


def test_chown_names_come_from_the_image(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n"
                                             "app:x:1001:1002::/home/app:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    layers = [str(tmp_path)]
    assert fsops.chown_ids("app", layers) == (1001, 1002)
    assert fsops.chown_ids("app:staff", layers) == (1001, 50)
    assert fsops.chown_ids("4242", layers) == (4242, 4242)
    assert fsops.chown_ids("4242:7", layers) == (4242, 7)
    with pytest.raises(BuildError, match="unable to find user nobody"):
        fsops.chown_ids("nobody", layers)
    with pytest.raises(BuildError, match="unable to find group wheel"):
        fsops.chown_ids("app:wheel", layers)


def test_archives_are_recognised_by_content(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tf:
        info = tarfile.TarInfo("a")
        tf.addfile(info, io.BytesIO(b""))
    (tmp_path / "plain.txt").write_bytes(buf.getvalue())  # the name does not matter
    (tmp_path / "fake.tar.gz").write_bytes(b"\x1f\x8bnot really gzip" * 100)
    (tmp_path / "small").write_bytes(b"x")
    assert fsops.is_archive(str(tmp_path / "plain.txt"))
    assert not fsops.is_archive(str(tmp_path / "fake.tar.gz"))
    assert not fsops.is_archive(str(tmp_path / "small"))


def test_cache_keys_are_canonical():
    a = cache.key({"op": "run", "args": ["sh", "-c", "x"], "env": ["A=1"]})
    b = cache.key({"env": ["A=1"], "args": ["sh", "-c", "x"], "op": "run"})
    assert a == b and len(a) == 64
    assert cache.key({"op": "run", "env": ["A=2"]}) != cache.key({"op": "run", "env": ["A=1"]})


def test_history_dates_follow_the_layers():
    history = [{"created": None, "created_by": "ENV A=1"},
               {"created": "2020-01-01T00:00:00Z", "created_by": "RUN x"},
               {"created": None, "created_by": "USER u", "empty_layer": True}]
    out = _dated(history, "2030-01-01T00:00:00Z")
    assert [h["created"] for h in out] == ["2020-01-01T00:00:00Z"] * 3
    assert list(out[2]) == ["created", "created_by", "empty_layer"]
    assert _dated([{"created": None, "created_by": "ENV A=1"}],
                  "2030-01-01T00:00:00Z")[0]["created"] == "2030-01-01T00:00:00Z"


def test_the_watch_fingerprint_ignores_what_the_build_cannot_see(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("*.tmp\nbuild/\n!build/keep\n")
    (tmp_path / "a").write_text("1")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "keep").write_text("k")

    def fp() -> object:
        return Context.open(str(tmp_path)).fingerprint()

    first = fp()
    (tmp_path / "x.tmp").write_text("ignored")
    (tmp_path / "build" / "out.o").write_text("ignored")
    assert fp() == first
    (tmp_path / "build" / "keep").write_text("k2")  # re-included by the exception
    second = fp()
    assert second != first
    (tmp_path / "a").write_text("2")
    assert fp() != second
    os.chmod(tmp_path / "Dockerfile", 0o600)
    assert fp() != second


def test_option_values(tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_ENV", "e")
    monkeypatch.delenv("UNSET_ONE", raising=False)
    assert parse_build_args(["A=1", "B=", "FROM_ENV", "UNSET_ONE", "C=x=y"]) == \
        {"A": "1", "B": "", "FROM_ENV": "e", "C": "x=y"}
    (tmp_path / "s").write_bytes(b"file secret")
    monkeypatch.setenv("TOKEN", "env secret")
    assert parse_secrets([f"id=a,src={tmp_path}/s", "id=b,env=TOKEN", "id=TOKEN",
                          f"id=c,source={tmp_path}/s,type=file"]) == \
        {"a": b"file secret", "b": b"env secret", "TOKEN": b"env secret", "c": b"file secret"}
    for bad in ("src=/x", "id=a,bogus=1", "id=a,env=UNSET_ONE", f"id=a,src={tmp_path}/none"):
        with pytest.raises(UsageError):
            parse_secrets([bad])
