"""Tests for libaci.registry.credentials: where auth files are, lookup, atomic writes.

The lookup rules follow containers/image 5.23 ``pkg/docker/config/config.go``
(as skopeo 1.9.3 on Debian 12 behaves) plus Docker's ``credsStore``; every
file is built in tmp_path and found through an explicit environment.
"""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from libaci.errors import AuthError, PodkitError, UsageError
from libaci.registry.credentials import (
    Credential,
    HelperRef,
    auth_file_for_write,
    auth_files_for_read,
    configured_helper,
    lookup,
    lookup_with_source,
    parse_auth_key,
    remove_all_credentials,
    remove_credential,
    store_credential,
)

SECRET = "s3cr:et:pw"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def entry(user: str, password: str, **extra: str) -> dict:
    return {"auth": b64(f"{user}:{password}"), **extra}


def write(path, doc) -> str:  # type: ignore[no-untyped-def]
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
    return path


@pytest.fixture
def env(tmp_path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    run = tmp_path / "run"
    home.mkdir()
    run.mkdir()
    return {"HOME": str(home), "XDG_RUNTIME_DIR": str(run)}


def paths(env: dict[str, str]) -> dict[str, str]:
    home = env["HOME"]
    return {
        "runtime": os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"),
        "config": os.path.join(home, ".config", "containers", "auth.json"),
        "docker": os.path.join(home, ".docker", "config.json"),
        "legacy": os.path.join(home, ".dockercfg"),
    }


# -- where the files are ---------------------------------------------------------------

def test_read_order(env):
    p = paths(env)
    assert auth_files_for_read(env) == [p["runtime"], p["config"], p["docker"], p["legacy"]]


def test_read_order_with_overrides(env, tmp_path):
    env = {**env, "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "DOCKER_CONFIG": str(tmp_path / "dk"),
           "REGISTRY_AUTH_FILE": str(tmp_path / "mine.json")}
    assert auth_files_for_read(env) == [
        str(tmp_path / "mine.json"),
        str(tmp_path / "cfg" / "containers" / "auth.json"),
        str(tmp_path / "dk" / "config.json"),
        os.path.join(env["HOME"], ".dockercfg"),
    ]
    # --authfile beats $REGISTRY_AUTH_FILE; the other files are still read (c/image 5.23)
    assert auth_files_for_read(env, authfile="/x/a.json")[0] == "/x/a.json"
    assert auth_file_for_write(env, authfile="/x/a.json") == "/x/a.json"
    assert auth_file_for_write(env) == str(tmp_path / "mine.json")


def test_without_xdg_runtime_dir_the_per_uid_file(env):
    env = {"HOME": env["HOME"]}
    expected = f"/run/containers/{os.getuid()}/auth.json"
    assert auth_files_for_read(env)[0] == expected
    assert auth_file_for_write(env) == expected


def test_missing_xdg_runtime_dir(env, tmp_path):
    env = {**env, "XDG_RUNTIME_DIR": str(tmp_path / "nope")}
    # reading skips it (c/image warns and goes on, so public pulls work) ...
    assert auth_files_for_read(env) == list(paths(env).values())[1:]
    # ... writing refuses it
    with pytest.raises(AuthError, match=r"XDG_RUNTIME_DIR does not exist"):
        auth_file_for_write(env)


def test_same_file_listed_once(env):
    p = paths(env)
    env = {**env, "REGISTRY_AUTH_FILE": p["docker"]}
    assert auth_files_for_read(env) == [p["docker"], p["config"], p["legacy"]]


# -- lookup ----------------------------------------------------------------------------

def test_nothing_anywhere(env):
    assert lookup("reg:5000", "a/b", env=env) is None


def test_first_file_wins(env):
    p = paths(env)
    write(p["docker"], {"auths": {"reg:5000": entry("docker", "pw")}})
    assert lookup("reg:5000", env=env) == Credential("docker", "pw")
    write(p["config"], {"auths": {"reg:5000": entry("config", "pw")}})
    assert lookup("reg:5000", env=env) == Credential("config", "pw")
    write(p["runtime"], {"auths": {"reg:5000": entry("runtime", "pw")}})
    assert lookup_with_source("reg:5000", env=env) == (p["runtime"], Credential("runtime", "pw"))
    assert lookup("other:5000", env=env) is None


def test_explicit_files(env, tmp_path):
    a = write(tmp_path / "a.json", {"auths": {"reg": entry("a", "pw")}})
    assert lookup("reg", env=env, files=[a]) == Credential("a", "pw")
    assert lookup("reg", env=env, files=[str(tmp_path / "missing.json")]) is None


def test_password_with_colons_and_nul_padding(env):
    p = paths(env)
    write(p["runtime"], {"auths": {"reg": {"auth": b64("alice:" + SECRET + "\x00\x00")}}})
    assert lookup("reg", env=env) == Credential("alice", SECRET)


def test_namespaced_keys_most_specific_first(env):
    p = paths(env)
    write(p["runtime"], {"auths": {
        "reg/team/app": entry("app", "pw"),
        "reg/team": entry("team", "pw"),
        "reg": entry("host", "pw"),
    }})
    assert lookup("reg", "team/app", env=env).username == "app"
    assert lookup("reg", "team/other", env=env).username == "team"
    assert lookup("reg", "team", env=env).username == "team"
    assert lookup("reg", "elsewhere/x", env=env).username == "host"
    assert lookup("reg", None, env=env).username == "host"
    # a namespace in the registry argument itself
    assert lookup("reg/team", env=env).username == "team"
    # "reg/te" is not a parent of "reg/team/app"
    assert lookup("reg", "te", env=env).username == "host"


def test_namespaced_key_does_not_match_the_bare_host(env):
    p = paths(env)
    write(p["runtime"], {"auths": {"reg/team": entry("team", "pw")}})
    assert lookup("reg", env=env) is None
    assert lookup("reg", "other/x", env=env) is None


def test_legacy_file_has_no_namespaces_and_no_auths_level(env):
    p = paths(env)
    write(p["legacy"], {"https://reg/v1/": entry("legacy", "pw", email="a@b")})
    assert lookup("reg", "team/app", env=env) == Credential("legacy", "pw")
    # legacy keys are cut to their host (c/image normalizeAuthFileKey), namespaces or not
    write(p["legacy"], {"reg/team": entry("legacy", "pw")})
    assert lookup("reg", "other/app", env=env) == Credential("legacy", "pw")
    # and an "auths" level is just a strange host name there
    write(p["legacy"], {"auths": {"reg": entry("legacy", "pw")}})
    assert lookup("reg", env=env) is None


@pytest.mark.parametrize("key", ["https://reg:5000/v1/", "http://reg:5000", "https://reg:5000"])
def test_url_keys_are_normalised(env, key):
    write(paths(env)["docker"], {"auths": {key: entry("old", "pw")}})
    assert lookup("reg:5000", "a/b", env=env) == Credential("old", "pw")


def test_exact_key_beats_normalised_one(env):
    write(paths(env)["docker"], {"auths": {"https://reg/v1/": entry("url", "pw"),
                                           "reg": entry("exact", "pw")}})
    assert lookup("reg", env=env).username == "exact"


@pytest.mark.parametrize("key", ["https://index.docker.io/v1/", "docker.io", "index.docker.io",
                                 "registry-1.docker.io"])
@pytest.mark.parametrize("registry", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_aliases(env, key, registry):
    write(paths(env)["docker"], {"auths": {key: entry("hub", "pw")}})
    assert lookup(registry, "library/busybox", env=env) == Credential("hub", "pw")


def test_docker_hub_namespaced_key(env):
    write(paths(env)["runtime"], {"auths": {"docker.io/library": entry("lib", "pw")}})
    assert lookup("registry-1.docker.io", "library/busybox", env=env).username == "lib"


def test_identity_tokens(env):
    p = paths(env)
    write(p["docker"], {"auths": {
        "a": {"auth": b64("bob:"), "identitytoken": "tok-a"},
        "b": {"identitytoken": "tok-b"},
    }})
    a = lookup("a", env=env)
    assert a == Credential("bob", "", "tok-a")
    assert lookup("b", env=env) == Credential("", "", "tok-b")


@pytest.mark.parametrize("bad", [{}, {"auth": ""}, {"auth": b64("nocolon")}, {"auth": b64(":pw")},
                                 {"auth": b64("user:")}, None])
def test_unusable_entries_fall_through_to_the_next_file(env, bad):
    p = paths(env)
    write(p["runtime"], {"auths": {"reg": bad}})
    write(p["docker"], {"auths": {"reg": entry("docker", "pw")}})
    assert lookup("reg", env=env) == Credential("docker", "pw")


def test_unusable_specific_key_hides_less_specific_keys_of_its_file(env):
    # c/image: the first key that exists answers for its file
    p = paths(env)
    write(p["runtime"], {"auths": {"reg/team": {}, "reg": entry("host", "pw")}})
    assert lookup("reg", "team/app", env=env) is None
    write(p["docker"], {"auths": {"reg": entry("docker", "pw")}})
    assert lookup("reg", "team/app", env=env).username == "docker"


def test_cred_helpers_come_first(env):
    p = paths(env)
    write(p["docker"], {"auths": {"reg": entry("inline", "pw")},
                        "credHelpers": {"reg": "pass", "other": "secretservice"}})
    found = lookup_with_source("reg", "team/app", env=env)
    assert found == (p["docker"], HelperRef("pass"))
    assert found[1].source == p["docker"]
    assert lookup("third", env=env) is None


def test_cred_helpers_in_an_earlier_file_win(env):
    p = paths(env)
    write(p["runtime"], {"auths": {}, "credHelpers": {"reg": "first"}})
    write(p["docker"], {"auths": {"reg": entry("inline", "pw")}})
    assert lookup("reg", env=env) == HelperRef("first")


def test_cred_helper_keys_for_docker_hub(env):
    write(paths(env)["docker"], {"credHelpers": {"https://index.docker.io/v1/": "desktop"}})
    assert lookup("docker.io", "library/busybox", env=env) == HelperRef("desktop")


def test_creds_store_is_the_default_helper(env):
    p = paths(env)
    write(p["docker"], {"auths": {"reg": {}, "inline": entry("inline", "pw")},
                        "credsStore": "desktop", "credHelpers": {"special": "pass"}})
    assert lookup("reg", env=env) == HelperRef("desktop")       # Docker's {} marker
    assert lookup("unknown", env=env) == HelperRef("desktop")
    assert lookup("special", env=env) == HelperRef("pass")
    assert lookup("inline", env=env) == Credential("inline", "pw")


def test_creds_store_of_a_later_file_does_not_hide_an_earlier_credential(env):
    p = paths(env)
    write(p["config"], {"auths": {"reg": entry("podman", "pw")}})
    write(p["docker"], {"credsStore": "desktop"})
    assert lookup("reg", env=env) == Credential("podman", "pw")


def test_empty_file_is_empty(env):
    write(paths(env)["runtime"], "  \n")
    assert lookup("reg", env=env) is None


# -- malformed files -------------------------------------------------------------------

@pytest.mark.parametrize("content", [
    '{"auths": {"reg": {"auth": "' + b64("alice:" + SECRET) + '"',            # truncated
    "[]",
    '{"auths": []}',
    '{"auths": {"reg": "' + b64("alice:" + SECRET) + '"}}',
    '{"auths": {"reg": {"auth": 12}}}',
    '{"auths": {"reg": {"auth": "' + b64("alice:" + SECRET)[:-2] + '!!"}}}',   # bad base64
    '{"auths": {"reg": {"auth": "' + SECRET + '"}}}',                         # not base64
    '{"credHelpers": ["' + SECRET + '"]}',
    '{"credsStore": 7}',
    b"\xff\xfe" + SECRET.encode(),
])
def test_malformed_file(env, content):
    path = paths(env)["runtime"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(AuthError) as e:
        lookup("reg", env=env)
    msg = str(e.value)
    assert msg.startswith(path + ": ") and "\n" not in msg
    assert SECRET not in msg and b64("alice:" + SECRET) not in msg and "alice" not in msg
    assert e.value.exit_status == 6 and isinstance(e.value, PodkitError)


def test_unreadable_file(env, tmp_path):
    d = write(tmp_path / "dir" / "x", "{}")
    with pytest.raises(AuthError, match="cannot read"):
        lookup("reg", env=env, files=[os.path.dirname(d)])


def test_credential_repr_hides_secrets():
    c = Credential("alice", SECRET, "tok-" + SECRET)
    for text in (repr(c), str(c), f"{c}", repr([c])):
        assert SECRET not in text and "alice" in text
    assert "identity_token=None" in repr(Credential("a", "b"))


# -- keys from the command line --------------------------------------------------------

@pytest.mark.parametrize("text, key, host", [
    ("reg:5000", "reg:5000", "reg:5000"),
    ("127.0.0.1:5000", "127.0.0.1:5000", "127.0.0.1:5000"),
    ("localhost", "localhost", "localhost"),
    ("registry", "registry", "registry"),
    ("[::1]:5000", "[::1]:5000", "[::1]:5000"),
    ("https://reg.example.com/v2/", "reg.example.com", "reg.example.com"),
    ("http://reg:5000", "reg:5000", "reg:5000"),
    ("quay.io/team", "quay.io/team", "quay.io"),
    ("quay.io/team/app", "quay.io/team/app", "quay.io"),
    ("index.docker.io", "docker.io", "docker.io"),
    ("registry-1.docker.io/alice", "docker.io/library/alice", "docker.io"),
    ("docker.io/alice/app", "docker.io/alice/app", "docker.io"),
])
def test_parse_auth_key(text, key, host):
    assert parse_auth_key(text) == (key, host)


@pytest.mark.parametrize("text", ["", "reg:5000/Team", "reg/app:tag", "reg/app@sha256:" + "0" * 64,
                                  "-reg", "reg:port", "reg//x", "a b", "reg/"])
def test_parse_auth_key_rejects(text):
    with pytest.raises(UsageError):
        parse_auth_key(text)


# -- writing ---------------------------------------------------------------------------

def test_store_creates_file_and_directories(tmp_path):
    path = str(tmp_path / "new" / "containers" / "auth.json")
    store_credential("reg:5000", Credential("alice", SECRET), path=path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for d in (tmp_path / "new", tmp_path / "new" / "containers"):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    with open(path) as f:
        doc = json.load(f)
    assert doc == {"auths": {"reg:5000": {"auth": b64("alice:" + SECRET)}}}
    assert lookup("reg:5000", env={"HOME": str(tmp_path)}, files=[path]) == \
        Credential("alice", SECRET)
    assert [n for n in os.listdir(os.path.dirname(path))] == ["auth.json"]  # no temp files


def test_store_keeps_other_entries_and_unknown_fields(tmp_path):
    path = write(tmp_path / "auth.json", {
        "auths": {"other": {"auth": b64("o:p")}, "reg": {"auth": b64("old:x"),
                                                         "identitytoken": "stale", "email": "e"}},
        "credHelpers": {"gcr.io": "gcloud"},
        "HttpHeaders": {"X-Meta": "1"},
    })
    os.chmod(path, 0o644)
    store_credential("reg", Credential("new", "pw"), path=path)
    with open(path) as f:
        doc = json.load(f)
    assert doc == {
        "auths": {"other": {"auth": b64("o:p")}, "reg": {"auth": b64("new:pw"), "email": "e"}},
        "credHelpers": {"gcr.io": "gcloud"},
        "HttpHeaders": {"X-Meta": "1"},
    }
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_store_is_atomic_replacement(tmp_path):
    path = write(tmp_path / "auth.json", {"auths": {}})
    before = os.stat(path).st_ino
    store_credential("reg", Credential("a", "b"), path=path)
    assert os.stat(path).st_ino != before  # renamed into place, not rewritten in place


def test_store_through_a_symlink_keeps_the_link(tmp_path):
    real = write(tmp_path / "real" / "auth.json", {"auths": {}})
    link = tmp_path / "link.json"
    link.symlink_to(real)
    store_credential("reg", Credential("a", "b"), path=str(link))
    assert link.is_symlink()
    assert lookup("reg", env={}, files=[real]) == Credential("a", "b")


def test_store_identity_token(tmp_path):
    path = str(tmp_path / "auth.json")
    store_credential("reg", Credential("", "", "tok"), path=path)
    with open(path) as f:
        assert json.load(f) == {"auths": {"reg": {"identitytoken": "tok"}}}
    assert lookup("reg", env={}, files=[path]) == Credential("", "", "tok")


def test_store_refuses(tmp_path):
    with pytest.raises(UsageError):
        store_credential("reg", Credential("a:b", "pw"), path=str(tmp_path / "a.json"))
    with pytest.raises(AuthError, match="legacy"):
        store_credential("reg", Credential("a", "pw"), path=str(tmp_path / ".dockercfg"))
    bad = write(tmp_path / "bad.json", '{"auths": [')
    with pytest.raises(AuthError):
        store_credential("reg", Credential("a", "pw"), path=bad)
    with open(bad) as f:
        assert f.read() == '{"auths": ['  # left alone
    assert not os.path.exists(tmp_path / "a.json")


def test_remove(tmp_path):
    path = write(tmp_path / "auth.json", {
        "auths": {"reg": entry("a", "b"), "https://reg/v1/": entry("c", "d"),
                  "reg/team": entry("t", "t"), "other": entry("o", "o")},
        "extra": True,
    })
    assert remove_credential("reg", path=path) is True
    with open(path) as f:
        doc = json.load(f)
    assert doc == {"auths": {"reg/team": entry("t", "t"), "other": entry("o", "o")},
                   "extra": True}
    assert remove_credential("reg", path=path) is False
    assert remove_credential("reg/team", path=path) is True
    assert remove_credential("reg/team", path=path) is False
    with open(path) as f:
        assert json.load(f)["auths"] == {"other": entry("o", "o")}


def test_remove_docker_hub_aliases(tmp_path):
    path = write(tmp_path / "auth.json", {"auths": {"https://index.docker.io/v1/": entry("a", "b"),
                                                    "docker.io": entry("c", "d")}})
    assert remove_credential("index.docker.io", path=path) is True
    with open(path) as f:
        assert json.load(f)["auths"] == {}


def test_remove_from_missing_file_creates_nothing(tmp_path):
    path = tmp_path / "sub" / "auth.json"
    assert remove_credential("reg", path=str(path)) is False
    assert remove_all_credentials(path=str(path)) == 0
    assert not (tmp_path / "sub").exists()


def test_remove_all(tmp_path):
    path = write(tmp_path / "auth.json", {"auths": {"a": entry("a", "b"), "c": entry("c", "d")},
                                          "credHelpers": {"gcr.io": "gcloud"}})
    assert remove_all_credentials(path=path) == 2
    with open(path) as f:
        assert json.load(f) == {"auths": {}, "credHelpers": {"gcr.io": "gcloud"}}
    assert remove_all_credentials(path=path) == 0


def test_configured_helper(tmp_path):
    path = write(tmp_path / "auth.json", {"credHelpers": {"reg": "pass"}})
    assert configured_helper("reg", path=path) == "pass"
    assert configured_helper("reg/team", path=path) == "pass"
    assert configured_helper("other", path=path) is None
    assert configured_helper("reg", path=str(tmp_path / "missing.json")) is None
