"""podkit-login and podkit-logout: arguments, --get-login and logout, run as commands.

Only the paths that never reach a registry are tested here; checking
credentials against a real registry belongs to the integration tests.  Every
run gets its own HOME and XDG_RUNTIME_DIR, so the machine's own auth files
are never read or written.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess

import pytest
from helpers import TOOLS

SECRET = "pa:ss-w0rd-not-to-print"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Env:
    def __init__(self, root) -> None:  # type: ignore[no-untyped-def]
        self.root = root
        self.home = root / "home"
        self.run = root / "run"
        self.home.mkdir()
        self.run.mkdir()
        self.authfile = self.run / "containers" / "auth.json"
        self.docker = self.home / ".docker" / "config.json"
        self.vars = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(self.home),
                     "XDG_RUNTIME_DIR": str(self.run), "LC_ALL": "C.UTF-8"}

    def __call__(self, verb: str, *args: str, input: str | None = None,
                 **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([os.path.join(TOOLS, f"podkit-{verb}"), *args],
                              input=input if input is not None else "",
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**self.vars, **env})

    def write(self, path, doc) -> str:  # type: ignore[no-untyped-def]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        return str(path)

    def read(self, path) -> dict:  # type: ignore[no-untyped-def]
        return json.loads(path.read_text())


@pytest.fixture
def cli(tmp_path) -> Env:  # type: ignore[no-untyped-def]
    return Env(tmp_path)


def failed(r: subprocess.CompletedProcess, verb: str, status: int, match: str = "") -> str:
    assert r.returncode == status, f"expected {status}, got {r.returncode}: {r.stderr}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"error is not one line: {r.stderr!r}"
    assert lines[0].startswith(f"podkit-{verb}: "), lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert SECRET not in r.stderr and b64("alice:" + SECRET) not in r.stderr
    if match:
        assert match in lines[0], lines[0]
    return lines[0]


# -- podkit-login: arguments -----------------------------------------------------------

def test_login_needs_a_registry(cli):
    failed(cli("login"), "login", 2, "REGISTRY")
    assert not cli.authfile.exists()


@pytest.mark.parametrize("option", [["-p", SECRET], ["--password", SECRET],
                                    [f"--password={SECRET}"]])
def test_login_refuses_a_password_argument(cli, option):
    failed(cli("login", "-u", "alice", *option, "reg:5000"), "login", 2, "--password-stdin")
    assert not cli.authfile.exists()


def test_login_without_terminal_needs_password_stdin(cli):
    msg = failed(cli("login", "-u", "alice", "reg:5000", input=SECRET + "\n"), "login", 2)
    assert "--password-stdin" in msg and "not a terminal" in msg
    failed(cli("login", "reg:5000", input=SECRET + "\n"), "login", 2, "--password-stdin")
    assert not cli.authfile.exists()


def test_login_password_stdin_needs_username(cli):
    failed(cli("login", "--password-stdin", "reg:5000", input=SECRET), "login", 2, "--username")
    assert not cli.authfile.exists()


@pytest.mark.parametrize("args, match", [
    (["-u", "al:ice", "--password-stdin", "reg:5000"], "':'"),
    (["-u", "", "--password-stdin", "reg:5000"], "user name"),
    (["-u", "alice", "--password-stdin", "reg:5000/App:tag"], "reg:5000/App:tag"),
    (["-u", "alice", "--password-stdin", "-reg"], ""),
    (["-u", "alice", "--password-stdin", "--tls-verify=maybe", "reg:5000"], "maybe"),
    (["-u", "alice", "--password-stdin", "--cert-dir", "/nonexistent/certs", "reg:5000"],
     "/nonexistent/certs"),
])
def test_login_bad_arguments(cli, args, match):
    failed(cli("login", *args, input=SECRET), "login", 2, match)
    assert not cli.authfile.exists()


def test_login_empty_password_on_stdin(cli):
    failed(cli("login", "-u", "alice", "--password-stdin", "reg:5000", input="\n"), "login", 2,
           "no password")


def test_login_with_missing_runtime_dir(cli):
    r = cli("login", "-u", "alice", "--password-stdin", "reg:5000", input=SECRET,
            XDG_RUNTIME_DIR=str(cli.root / "gone"))
    failed(r, "login", 6, "XDG_RUNTIME_DIR")


# -- podkit-login --get-login ----------------------------------------------------------

def test_get_login(cli):
    cli.write(cli.authfile, {"auths": {"reg:5000": {"auth": b64("alice:" + SECRET)},
                                       "reg:5000/team": {"auth": b64("bob:" + SECRET)}}})
    r = cli("login", "--get-login", "reg:5000")
    assert (r.returncode, r.stdout, r.stderr) == (0, "alice\n", "")
    assert cli("login", "--get-login", "http://reg:5000/v2/").stdout == "alice\n"
    assert cli("login", "--get-login", "reg:5000/team").stdout == "bob\n"
    assert cli("login", "--get-login", "reg:5000/team/app").stdout == "bob\n"
    assert cli("login", "--get-login", "reg:5000/other").stdout == "alice\n"
    failed(cli("login", "--get-login", "other:5000"), "login", 4, "other:5000")


def test_get_login_from_other_files(cli, tmp_path):
    cli.write(cli.docker, {"auths": {"https://index.docker.io/v1/": {"auth": b64("hub:pw")}}})
    assert cli("login", "--get-login", "docker.io").stdout == "hub\n"
    # as skopeo 1.9.3 does, --authfile and $REGISTRY_AUTH_FILE only replace the first file
    empty = cli.write(tmp_path / "empty.json", "{}")
    assert cli("login", "--get-login", "--authfile", empty, "docker.io").stdout == "hub\n"
    assert cli("login", "--get-login", "docker.io", REGISTRY_AUTH_FILE=empty).stdout == "hub\n"
    other = cli.write(tmp_path / "other.json", {"auths": {"docker.io": {"auth": b64("me:pw")}}})
    assert cli("login", "--get-login", "--authfile", other, "docker.io").stdout == "me\n"
    assert cli("login", "--get-login", "docker.io", REGISTRY_AUTH_FILE=other).stdout == "me\n"
    r = cli("login", "--get-login", "docker.io", DOCKER_CONFIG=str(tmp_path / "nodocker"))
    failed(r, "login", 4)


def test_get_login_through_a_helper(cli, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-fake"
    helper.write_text('#!/bin/sh\n[ "$1" = get ] && [ "$(cat)" = reg:5000 ] || '
                      '{ echo "credentials not found in native keychain"; exit 1; }\n'
                      'echo \'{"ServerURL":"reg:5000","Username":"helped","Secret":"x"}\'\n')
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    cli.write(cli.docker, {"credHelpers": {"reg:5000": "fake", "gone:5000": "nosuch"}})
    path = f"{bindir}{os.pathsep}{cli.vars['PATH']}"
    assert cli("login", "--get-login", "reg:5000", PATH=path).stdout == "helped\n"
    failed(cli("login", "--get-login", "gone:5000", PATH=path), "login", 6,
           "docker-credential-nosuch")


def test_get_login_malformed_file(cli):
    cli.write(cli.authfile, '{"auths": {"reg:5000": {"auth": "' + b64("alice:" + SECRET) + '"')
    msg = failed(cli("login", "--get-login", "reg:5000"), "login", 6, str(cli.authfile))
    assert "alice" not in msg


# -- podkit-logout ---------------------------------------------------------------------

def test_logout(cli):
    other = {"auth": b64("o:p"), "email": "kept"}
    cli.write(cli.authfile, {"auths": {"reg:5000": {"auth": b64("alice:" + SECRET)},
                                       "other:1": other},
                             "credHelpers": {}, "unknown": [1]})
    r = cli("logout", "reg:5000")
    assert (r.returncode, r.stdout) == (0, "")
    assert r.stderr == "Removed login credentials for reg:5000\n"
    assert cli.read(cli.authfile) == {"auths": {"other:1": other}, "credHelpers": {},
                                      "unknown": [1]}
    assert stat.S_IMODE(cli.authfile.stat().st_mode) == 0o600
    before = cli.authfile.read_bytes()
    failed(cli("logout", "reg:5000"), "logout", 4, "not logged in to reg:5000")
    assert cli.authfile.read_bytes() == before
    assert cli("login", "--get-login", "other:1").stdout == "o\n"


def test_logout_authfile_and_env(cli, tmp_path):
    mine = cli.write(tmp_path / "mine.json", {"auths": {"reg": {"auth": b64("a:b")}}})
    assert cli("logout", "--authfile", mine, "reg").returncode == 0
    cli.write(tmp_path / "mine.json", {"auths": {"reg": {"auth": b64("a:b")}}})
    assert cli("logout", "reg", REGISTRY_AUTH_FILE=mine).returncode == 0
    assert json.loads((tmp_path / "mine.json").read_text()) == {"auths": {}}


def test_logout_points_at_other_files(cli):
    cli.write(cli.docker, {"auths": {"reg:5000": {"auth": b64("alice:" + SECRET)}}})
    msg = failed(cli("logout", "reg:5000"), "logout", 4, str(cli.docker))
    assert "docker logout" in msg
    assert not cli.authfile.exists()
    assert cli.read(cli.docker)["auths"]["reg:5000"]  # untouched


def test_logout_all(cli):
    cli.write(cli.authfile, {"auths": {"a": {"auth": b64("a:b")}, "c": {"auth": b64("c:d")}},
                             "credHelpers": {"gcr.io": "gcloud"}})
    r = cli("logout", "--all")
    assert (r.returncode, r.stdout) == (0, "")
    assert "all registries" in r.stderr
    assert cli.read(cli.authfile) == {"auths": {}, "credHelpers": {"gcr.io": "gcloud"}}
    assert cli("logout", "-a").returncode == 0  # nothing left: still fine


@pytest.mark.parametrize("args, match", [
    ([], "REGISTRY"),
    (["--all", "reg"], "--all"),
    (["reg/App:tag"], "reg/App:tag"),
])
def test_logout_bad_arguments(cli, args, match):
    cli.write(cli.authfile, {"auths": {"reg": {"auth": b64("a:b")}}})
    before = cli.authfile.read_bytes()
    failed(cli("logout", *args), "logout", 2, match)
    assert cli.authfile.read_bytes() == before


def test_logout_malformed_file(cli):
    cli.write(cli.authfile, "[" + json.dumps(b64("alice:" + SECRET)))
    before = cli.authfile.read_bytes()
    failed(cli("logout", "reg"), "logout", 6, str(cli.authfile))
    assert cli.authfile.read_bytes() == before
