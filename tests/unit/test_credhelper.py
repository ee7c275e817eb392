"""Tests for stage0.credhelper against a fake docker-credential-fake on PATH."""

from __future__ import annotations

import json
import os
import stat

import pytest

from libaci.errors import AuthError
from libaci.registry.credentials import Credential, HelperRef
from stage0 import credhelper

SECRET = "s3cret-helper-pw"

FAKE = r"""#!/bin/sh
# docker-credential-fake: answers by server URL; logs "ACTION INPUT" lines
input=$(cat)
printf '%s %s\n' "$1" "$input" >> "$FAKE_LOG"
case "$1" in
get)
    case "$input" in
    reg:5000) printf '{"ServerURL":"reg:5000","Username":"alice","Secret":"%s"}\n' "$FAKE_SECRET" ;;
    tok.example)
        printf '{"ServerURL":"tok.example","Username":"<token>","Secret":"rt-%s"}' "$FAKE_SECRET" ;;
    https://index.docker.io/v1/)
        echo '{"ServerURL":"https://index.docker.io/v1/","Username":"hub","Secret":"hubpw"}' ;;
    empty.example) echo '{"ServerURL":"empty.example","Username":"","Secret":""}' ;;
    garbage.example) printf 'Secret=%s\n' "$FAKE_SECRET" ;;
    broken.example) echo "keychain is locked"; exit 1 ;;
    echo.example) echo "cannot use $FAKE_SECRET here" >&2; exit 3 ;;
    slow.example) sleep 5 ;;
    *) echo "credentials not found in native keychain"; exit 1 ;;
    esac ;;
store)
    case "$input" in
    *fail.example*) echo "cannot store $input"; exit 1 ;;
    esac
    printf '%s' "$input" > "$FAKE_STORED" ;;
erase)
    case "$input" in
    reg:5000|docker.io) ;;
    *) echo "credentials not found in native keychain"; exit 1 ;;
    esac ;;
*) echo "unknown action $1"; exit 1 ;;
esac
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "docker-credential-fake"
    exe.write_text(FAKE)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    log = tmp_path / "log"
    log.write_text("")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', os.defpath)}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_SECRET", SECRET)
    monkeypatch.setenv("FAKE_STORED", str(tmp_path / "stored.json"))
    return tmp_path


def calls(fake) -> list[str]:  # type: ignore[no-untyped-def]
    return (fake / "log").read_text().splitlines()


def test_passes_through_credentials_and_none():
    c = Credential("a", "b")
    assert credhelper.resolve(c, "reg") is c
    assert credhelper.resolve(None, "reg") is None


def test_get(fake):
    assert credhelper.resolve(HelperRef("fake"), "reg:5000") == Credential("alice", SECRET)
    assert calls(fake) == ["get reg:5000"]  # the server URL on stdin, no newline


def test_identity_token(fake):
    assert credhelper.resolve(HelperRef("fake"), "tok.example") == \
        Credential("", "", identity_token="rt-" + SECRET)


def test_not_found_is_none(fake):
    assert credhelper.resolve(HelperRef("fake"), "nothing.example") is None
    assert credhelper.resolve(HelperRef("fake"), "empty.example") is None


def test_docker_hub_asks_docker_s_url_first(fake):
    assert credhelper.resolve(HelperRef("fake"), "docker.io") == Credential("hub", "hubpw")
    assert calls(fake) == ["get https://index.docker.io/v1/"]


def test_docker_hub_falls_back_to_podman_s_key(fake):
    (fake / "bin" / "docker-credential-fake").write_text(
        FAKE.replace("https://index.docker.io/v1/)", "docker.io)"))
    assert credhelper.resolve(HelperRef("fake"), "index.docker.io") == Credential("hub", "hubpw")
    assert calls(fake) == ["get https://index.docker.io/v1/", "get docker.io"]


def test_missing_helper(fake):
    with pytest.raises(AuthError) as e:
        credhelper.resolve(HelperRef("nosuch", source="/home/u/.docker/config.json"), "reg")
    msg = str(e.value)
    assert "docker-credential-nosuch" in msg and "/home/u/.docker/config.json" in msg
    assert "\n" not in msg and e.value.exit_status == 6


@pytest.mark.parametrize("name", ["../fake", "/bin/sh", "", ".x"])
def test_bad_helper_names(fake, name):
    with pytest.raises(AuthError, match="invalid credential helper name"):
        credhelper.resolve(HelperRef(name), "reg:5000")
    assert calls(fake) == []


def test_helper_failure_is_one_line(fake):
    with pytest.raises(AuthError, match=r"docker-credential-fake get failed \(exit status 1\): "
                                        r"keychain is locked$"):
        credhelper.resolve(HelperRef("fake"), "broken.example")


def test_secrets_never_in_messages(fake):
    # an answer that is not the JSON document is never quoted: it may hold the secret
    with pytest.raises(AuthError) as e:
        credhelper.resolve(HelperRef("fake"), "garbage.example")
    assert SECRET not in str(e.value) and "\n" not in str(e.value)
    # a failing store that repeats what it was given is not quoted either
    with pytest.raises(AuthError) as e:
        credhelper.store("fake", "fail.example", Credential("alice", SECRET))
    assert SECRET not in str(e.value) and "withheld" in str(e.value)


def test_message_from_stderr(fake):
    with pytest.raises(AuthError, match=r"get failed \(exit status 3\): cannot use .* here$"):
        credhelper.resolve(HelperRef("fake"), "echo.example")


def test_timeout(fake):
    with pytest.raises(AuthError, match=r"did not answer within 0\.5 s"):
        credhelper.get("fake", "slow.example", timeout=0.5)


def test_not_executable(fake):
    (fake / "bin" / "docker-credential-fake").chmod(0o644)
    with pytest.raises(AuthError) as e:
        credhelper.resolve(HelperRef("fake"), "reg:5000")
    assert "docker-credential-fake" in str(e.value)


def test_store_and_erase(fake):
    credhelper.store("fake", "reg:5000", Credential("alice", SECRET))
    assert json.loads((fake / "stored.json").read_text()) == \
        {"ServerURL": "reg:5000", "Username": "alice", "Secret": SECRET}
    credhelper.store("fake", "docker.io", Credential("", "", "tok"))
    assert json.loads((fake / "stored.json").read_text()) == \
        {"ServerURL": "https://index.docker.io/v1/", "Username": "<token>", "Secret": "tok"}
    assert credhelper.erase("fake", "reg:5000") is True
    assert credhelper.erase("fake", "other") is False
    assert credhelper.erase("fake", "docker.io") is True  # as podman stored it
