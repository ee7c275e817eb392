"""Tests for libaci.trust.policy, .scope and .identity: parsing, scopes, signedIdentity."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from libaci.errors import NotFoundError, UsageError
from libaci.reference import parse_docker_reference
from libaci.trust import identity as idn
from libaci.trust import policy as pol
from libaci.trust.errors import PolicyFormatError
from libaci.trust.identity import IdentityRule, identity_matches
from libaci.trust.scope import ImageName, docker_namespaces, path_scope_problem

REFERENCE_POLICY = b"""{"default":[{"type":"reject"}],
 "transports":{
  "docker":{
    "127.0.0.1:33151/test/gpgsigned":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k/pubring.gpg"}],
    "127.0.0.1:33151/test":[{"type":"sigstoreSigned","keyPath":"/k/cosign.pub","signedIdentity":{"type":"matchRepoDigestOrExact"}}]},
  "oci":{"":[{"type":"insecureAcceptAnything"}]},
  "dir":{"":[{"type":"insecureAcceptAnything"}]}}}"""
HEX = "58365068f231c14545ee9a615192b9758fe9a95d5dcbdcc1dbe6ffd9e42e6bbb"
KEYDATA = base64.b64encode(b"key bytes").decode()


def parse(doc: Any) -> pol.Policy:
    return pol.parse_policy(json.dumps(doc).encode(), source="p.json")


def with_req(req: dict[str, Any]) -> dict[str, Any]:
    return {"default": [req]}


# --- parsing --------------------------------------------------------------------------------


def test_reference_policy_parses() -> None:
    policy = pol.parse_policy(REFERENCE_POLICY)
    assert policy.default == (pol.Reject(),)
    docker = policy.transports["docker"]
    assert docker["127.0.0.1:33151/test/gpgsigned"] == (
        pol.SignedBy(key_type="GPGKeys", key_path="/k/pubring.gpg"),)
    assert docker["127.0.0.1:33151/test"] == (pol.SigstoreSigned(
        key_path="/k/cosign.pub",
        signed_identity=IdentityRule(idn.MATCH_REPO_DIGEST_OR_EXACT)),)
    assert policy.transports["oci"][""] == (pol.InsecureAcceptAnything(),)


@pytest.mark.parametrize("req", [
    {"type": "insecureAcceptAnything"},
    {"type": "reject"},
    {"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/a"},
    {"type": "signedBy", "keyType": "GPGKeys", "keyPaths": ["/a", "/b"]},
    {"type": "signedBy", "keyType": "GPGKeys", "keyData": KEYDATA,
     "signedIdentity": {"type": "matchExact"}},
    {"type": "signedBy", "keyType": "X509Certificates", "keyPath": "/a"},
    {"type": "sigstoreSigned", "keyPath": "/a.pub"},
    {"type": "sigstoreSigned", "keyPaths": ["/a.pub"]},
    {"type": "sigstoreSigned", "keyData": KEYDATA, "signedIdentity": {"type": "matchRepository"}},
    {"type": "sigstoreSigned", "keyDatas": [KEYDATA, KEYDATA]},
    {"type": "sigstoreSigned", "keyPath": "/a.pub", "rekorPublicKeyPath": "/r.pub"},
    {"type": "sigstoreSigned", "fulcio": {"caPath": "/ca", "oidcIssuer": "https://i",
                                          "subjectEmail": "a@b"},
     "rekorPublicKeyData": KEYDATA},
    {"type": "sigstoreSigned", "pki": {"caRootsPath": "/r", "subjectEmail": "a@b"}},
    {"type": "signedBaseLayer", "baseLayerIdentity": {"type": "exactRepository",
                                                      "dockerRepository": "busybox"}},
    {"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/a",
     "signedIdentity": {"type": "exactReference", "dockerReference": "quay.io/a/b:1"}},
    {"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/a",
     "signedIdentity": {"type": "remapIdentity", "prefix": "mirror.local:5000/ns",
                        "signedPrefix": "docker.io/library"}},
])
def test_every_requirement_round_trips(req: dict[str, Any]) -> None:
    policy = parse(with_req(req))
    assert policy.default[0].to_dict() == req
    again = pol.parse_policy(pol.dump_policy(policy))
    assert again == policy and again.to_dict() == {"default": [req]}
    assert pol.Policy.from_dict(policy.to_dict()) == policy


@pytest.mark.parametrize(("doc", "message"), [
    ({}, "the default policy is missing"),
    ({"default": []}, "default: the list of requirements must not be empty"),
    ({"default": None}, "expected a list"),
    ({"default": [{"type": "reject"}], "extra": 1}, 'unknown key "extra"'),
    (with_req({"type": "reject", "x": 1}), r'default\[0\]: unknown key "x"'),
    (with_req({"type": "rejekt"}), 'unknown policy requirement type "rejekt"'),
    (with_req({"typ": "reject"}), "missing or not a string"),
    (with_req({"type": "signedBy", "keyPath": "/a"}), 'unrecognized keyType value ""'),
    (with_req({"type": "signedBy", "keyType": "PGP", "keyPath": "/a"}), "unrecognized keyType"),
    (with_req({"type": "signedBy", "keyType": "GPGKeys"}), "got none of them"),
    (with_req({"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/a", "keyData": KEYDATA}),
     "got keyPath and keyData"),
    (with_req({"type": "signedBy", "keyType": "GPGKeys", "keyPath": ""}), "must not be empty"),
    (with_req({"type": "signedBy", "keyType": "GPGKeys", "keyPath": 5}), "expected a string"),
    (with_req({"type": "signedBy", "keyType": "GPGKeys", "keyData": "%%"}), "not valid base64"),
    (with_req({"type": "signedBy", "keyType": "GPGKeys", "keyData": "\u0100AAA"}),
     "not valid base64"),
    (with_req({"type": "signedBy", "keyType": "GPGKeys", "keyPaths": "/a"}), "list of strings"),
    (with_req({"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/a",
               "signedIdentity": {"type": "matchEverything"}}), "unknown policy reference match"),
    (with_req({"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/a",
               "signedIdentity": {"type": "matchExact", "x": 1}}), 'unknown key "x"'),
    (with_req({"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/a",
               "signedIdentity": {"type": "exactReference", "dockerReference": "quay.io/a"}}),
     "neither a tag nor a digest"),
    (with_req({"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/a",
               "signedIdentity": {"type": "exactReference"}}), 'key "dockerReference" missing'),
    (with_req({"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/a",
               "signedIdentity": {"type": "exactRepository", "dockerRepository": "Bad"}}),
     "dockerRepository"),
    (with_req({"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/a",
               "signedIdentity": {"type": "remapIdentity", "prefix": "quay.io/ns:tag",
                                  "signedPrefix": "quay.io"}}),
     "prefix \"quay.io/ns:tag\" is not valid"),
    (with_req({"type": "sigstoreSigned"}), "exactly one of keyPath"),
    (with_req({"type": "sigstoreSigned", "keyType": "GPGKeys", "keyPath": "/a"}),
     'unknown key "keyType"'),
    (with_req({"type": "sigstoreSigned", "keyPaths": []}), "contains no entries"),
    (with_req({"type": "sigstoreSigned", "fulcio": {"caPath": "/c"}}), "rekorPublicKey"),
    (with_req({"type": "sigstoreSigned", "fulcio": {"caPth": "/c"},
               "rekorPublicKeyPath": "/r"}), 'unknown key "caPth"'),
    (with_req({"type": "sigstoreSigned", "keyPath": "/a", "rekorPublicKeyPath": "/r",
               "rekorPublicKeyData": KEYDATA}), "at most one"),
    (with_req({"type": "signedBaseLayer"}), 'key "baseLayerIdentity" missing'),
    ({"default": [{"type": "reject"}], "transports": {"docker": {"x": []}}}, "must not be empty"),
    ({"default": [{"type": "reject"}], "transports": {"docker": []}}, "expected a JSON object"),
    ({"default": [{"type": "reject"}], "transports": {"oci": {"rel/path": [{"type": "reject"}]}}},
     "must be an absolute path"),
    ({"default": [{"type": "reject"}], "transports": {"dir": {"/": [{"type": "reject"}]}}},
     'use the default ""'),
    ({"default": [{"type": "reject"}], "transports": {"dir": {"/a/../b": [{"type": "reject"}]}}},
     "perhaps try /b"),
    ({"default": [{"type": "reject"}],
      "transports": {"docker-daemon": {"x": [{"type": "reject"}]}}}, "only the default"),
    ([], "expected a JSON object"),
])
def test_invalid_policies_refuse_the_whole_file(doc: Any, message: str) -> None:
    with pytest.raises(PolicyFormatError, match=message) as info:
        parse(doc)
    assert str(info.value).startswith("invalid policy in p.json: ")
    assert "\n" not in str(info.value)
    assert isinstance(info.value, UsageError)


@pytest.mark.parametrize("raw", [
    b'{"default":[{"type":"reject"}],"default":[{"type":"reject"}]}',
    b'{"default":[{"type":"reject","type":"reject"}]}',
    b'{"default":[{"type":"reject"}],"transports":{"docker":{"a":[{"type":"reject"}],'
    b'"a":[{"type":"insecureAcceptAnything"}]}}}',
])
def test_duplicate_keys_refuse_the_whole_file(raw: bytes) -> None:
    with pytest.raises(PolicyFormatError, match="duplicate key"):
        pol.parse_policy(raw)


def test_unknown_transports_are_kept_and_any_docker_scope_is_allowed() -> None:
    policy = parse({"default": [{"type": "reject"}], "transports": {
        "atomic": {"x": [{"type": "reject"}]},
        "docker": {"*.example.com": [{"type": "reject"}], "anything goes": [{"type": "reject"}]}}})
    assert set(policy.transports) == {"atomic", "docker"}


def test_load_policy_and_find_policy_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "policy.json"
    path.write_bytes(REFERENCE_POLICY)
    assert pol.load_policy(str(path)) == pol.parse_policy(REFERENCE_POLICY)
    with pytest.raises(NotFoundError):
        pol.load_policy(str(tmp_path / "missing.json"))
    path.write_bytes(b"{")
    with pytest.raises(PolicyFormatError, match=str(path)):
        pol.load_policy(str(path))
    home = tmp_path / "home"
    assert pol.find_policy_file(str(home)) == pol.SYSTEM_POLICY_PATH
    user = home / ".config/podkit/policy.json"
    user.parent.mkdir(parents=True)
    user.write_text("{}")
    assert pol.find_policy_file(str(home)) == str(user)
    assert pol.find_policy_file(None, system_path="/x") == "/x"


def test_with_scope() -> None:
    policy = pol.parse_policy(REFERENCE_POLICY)
    req = pol.SigstoreSigned(key_path="/k/new.pub")
    new = policy.with_scope("docker", "quay.io/team", [req])
    assert new.transports["docker"]["quay.io/team"] == (req,)
    assert "quay.io/team" not in policy.transports["docker"]  # the original is unchanged
    assert pol.parse_policy(pol.dump_policy(new)) == new
    with pytest.raises(ValueError):
        policy.with_scope("oci", "relative", [req])
    with pytest.raises(ValueError):
        policy.with_scope("docker", "x", [])


# --- scopes ---------------------------------------------------------------------------------


def test_docker_namespaces_match_c_image() -> None:
    ref = parse_docker_reference("a.b.example.com:5000/ns/sub/repo:tag")
    assert docker_namespaces(ref) == (
        "a.b.example.com:5000/ns/sub/repo", "a.b.example.com:5000/ns/sub",
        "a.b.example.com:5000/ns", "a.b.example.com:5000",
        "*.b.example.com", "*.example.com", "*.com")
    image = ImageName.docker("busybox")
    assert image.identity == "docker.io/library/busybox:latest"
    assert image.namespaces == ("docker.io/library/busybox", "docker.io/library", "docker.io",
                                "*.io")
    assert ImageName.docker(f"quay.io/a/b:1@sha256:{HEX}").identity == f"quay.io/a/b@sha256:{HEX}"


SCOPED = {
    "default": [{"type": "reject"}],
    "transports": {"docker": {
        "": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/any"}],
        "example.com:5000": [{"type": "sigstoreSigned", "keyPath": "/port"}],
        "example.com": [{"type": "sigstoreSigned", "keyPath": "/host"}],
        "*.example.com": [{"type": "sigstoreSigned", "keyPath": "/wild"}],
        "example.com/ns": [{"type": "sigstoreSigned", "keyPath": "/ns"}],
        "example.com/ns/app": [{"type": "sigstoreSigned", "keyPath": "/app"}],
        "example.com/ns/app:v1": [{"type": "sigstoreSigned", "keyPath": "/v1"}],
        f"example.com/ns/app@sha256:{HEX}": [{"type": "sigstoreSigned", "keyPath": "/digest"}],
    }, "oci": {
        "/srv/images": [{"type": "insecureAcceptAnything"}],
    }, "podkit": {
        "localhost/trusted": [{"type": "insecureAcceptAnything"}],
    }}}


@pytest.mark.parametrize(("image", "scope", "key"), [
    (ImageName.docker("example.com/ns/app:v1"), 'transports.docker["example.com/ns/app:v1"]',
     "/v1"),
    (ImageName.docker(f"example.com/ns/app@sha256:{HEX}"),
     f'transports.docker["example.com/ns/app@sha256:{HEX}"]', "/digest"),
    (ImageName.docker("example.com/ns/app:v2"), 'transports.docker["example.com/ns/app"]',
     "/app"),
    (ImageName.docker("example.com/ns/other"), 'transports.docker["example.com/ns"]', "/ns"),
    (ImageName.docker("example.com/x"), 'transports.docker["example.com"]', "/host"),
    (ImageName.docker("example.com:5000/x"), 'transports.docker["example.com:5000"]', "/port"),
    (ImageName.docker("example.com:6000/x"), 'transports.docker[""]', "/any"),
    (ImageName.docker("reg.example.com/x"), 'transports.docker["*.example.com"]', "/wild"),
    (ImageName.docker("a.reg.example.com:443/x"), 'transports.docker["*.example.com"]', "/wild"),
    (ImageName.docker("quay.io/x"), 'transports.docker[""]', "/any"),
])
def test_most_specific_docker_scope_wins(image: ImageName, scope: str, key: str) -> None:
    found, reqs = parse(SCOPED).requirements_for(image)
    assert found == scope
    assert [getattr(r, "key_path", None) for r in reqs] == [key]


def test_other_transport_scopes() -> None:
    policy = parse(SCOPED)
    assert policy.requirements_for(ImageName.path("oci", "/srv/images/app"))[0] == \
        'transports.oci["/srv/images"]'
    assert policy.requirements_for(ImageName.path("oci", "/srv/other"))[0] == "default"
    assert policy.requirements_for(ImageName.path("dir", "/srv/images"))[0] == "default"
    assert policy.requirements_for(ImageName.local("localhost/trusted:1"))[0] == \
        'transports.podkit["localhost/trusted"]'
    assert policy.requirements_for(ImageName.local("localhost/other"))[0] == "default"
    assert policy.requirements_for(ImageName.local())[0] == "default"
    # no podkit section at all: locally built images are accepted by the built-in scope
    scope, reqs = pol.parse_policy(REFERENCE_POLICY).requirements_for(ImageName.local("x"))
    assert reqs == (pol.InsecureAcceptAnything(),) and scope.startswith("built-in")
    with pytest.raises(ValueError):
        ImageName.path("oci", "relative")


@pytest.mark.parametrize(("scope", "ok"), [
    ("/a/b", True), ("a/b", False), ("/", False), ("/a/", False), ("/a//b", False),
    ("//a", False), ("/a/./b", False),
])
def test_path_scopes(scope: str, ok: bool) -> None:
    assert (path_scope_problem(scope) is None) == ok


# --- signedIdentity -------------------------------------------------------------------------

TAGGED = parse_docker_reference("quay.io/ns/app:v1")
BY_DIGEST = parse_docker_reference(f"quay.io/ns/app@sha256:{HEX}")
MIRRORED = parse_docker_reference("mirror.local:5000/quay/ns/app:v1")
EXACT_REF = IdentityRule(idn.EXACT_REFERENCE, docker_reference="quay.io/ns/app:v1")
EXACT_REPO = IdentityRule(idn.EXACT_REPOSITORY, docker_repository="quay.io/ns/app")
REMAP = IdentityRule(idn.REMAP_IDENTITY, prefix="mirror.local:5000/quay",
                     signed_prefix="quay.io")


@pytest.mark.parametrize(("rule", "image", "claimed", "expected"), [
    (IdentityRule(idn.MATCH_EXACT), TAGGED, "quay.io/ns/app:v1", True),
    (IdentityRule(idn.MATCH_EXACT), TAGGED, "quay.io/ns/app:v2", False),
    (IdentityRule(idn.MATCH_EXACT), TAGGED, "quay.io/ns/app", False),
    (IdentityRule(idn.MATCH_EXACT), BY_DIGEST, f"quay.io/ns/app@sha256:{HEX}", True),
    (IdentityRule(idn.MATCH_EXACT), BY_DIGEST, "quay.io/ns/app:v1", False),
    (IdentityRule(), TAGGED, "quay.io/ns/app:v1", True),
    (IdentityRule(), TAGGED, "quay.io/ns/app:v2", False),
    (IdentityRule(), TAGGED, "quay.io/other/app:v1", False),
    (IdentityRule(), BY_DIGEST, "quay.io/ns/app:v1", True),
    (IdentityRule(), BY_DIGEST, "quay.io/ns/app", False),
    (IdentityRule(), BY_DIGEST, "quay.io/ns/other:v1", False),
    (IdentityRule(), parse_docker_reference("busybox"), "docker.io/library/busybox:latest", True),
    (IdentityRule(), parse_docker_reference("busybox"), "busybox:latest", True),
    (IdentityRule(), parse_docker_reference("busybox", default_tag=None), "busybox:latest",
     False),
    (IdentityRule(), TAGGED, "not a reference!", False),
    (IdentityRule(idn.MATCH_REPOSITORY), TAGGED, "quay.io/ns/app:v9", True),
    (IdentityRule(idn.MATCH_REPOSITORY), TAGGED, "quay.io/ns/app", True),
    (IdentityRule(idn.MATCH_REPOSITORY), BY_DIGEST, "quay.io/ns/app:v9", True),
    (IdentityRule(idn.MATCH_REPOSITORY), TAGGED, "quay.io/ns/app2:v1", False),
    (EXACT_REF, MIRRORED, "quay.io/ns/app:v1", True),
    (EXACT_REF, None, "quay.io/ns/app:v1", True),
    (EXACT_REF, TAGGED, "quay.io/ns/app:v2", False),
    (EXACT_REF, TAGGED, "quay.io/ns/app", False),
    (EXACT_REPO, MIRRORED, "quay.io/ns/app:anything", True),
    (EXACT_REPO, None, "quay.io/ns/app", True),
    (EXACT_REPO, TAGGED, "quay.io/ns/other:v1", False),
    (REMAP, MIRRORED, "quay.io/ns/app:v1", True),
    (REMAP, MIRRORED, "quay.io/ns/app:v2", False),
    (REMAP, MIRRORED, "mirror.local:5000/quay/ns/app:v1", False),
    (REMAP, TAGGED, "quay.io/ns/app:v1", True),  # no prefix match: as matchRepoDigestOrExact
    (REMAP, parse_docker_reference("mirror.local:5000/quayx/app:v1"), "quay.io/x/app:v1", False),
    (IdentityRule(idn.REMAP_IDENTITY, prefix="mirror.local:5000/quay",
                  signed_prefix="index.docker.io"),
     MIRRORED, "docker.io/ns/app:v1", False),  # rewritten name is not canonical
    (IdentityRule(idn.REMAP_IDENTITY, prefix="mirror.local:5000/quay", signed_prefix="docker.io"),
     MIRRORED, "docker.io/ns/app:v1", True),
    (IdentityRule(idn.MATCH_EXACT), None, "quay.io/ns/app:v1", False),
    (IdentityRule(), None, "quay.io/ns/app:v1", False),
    (IdentityRule(idn.MATCH_REPOSITORY), None, "quay.io/ns/app:v1", False),
    (REMAP, None, "quay.io/ns/app:v1", False),
])
def test_identity_matching(rule: IdentityRule, image: Any, claimed: str, expected: bool) -> None:
    assert identity_matches(rule, image, claimed) is expected


def test_remap_prefix_validation() -> None:
    assert idn.remap_prefix_ok("quay.io")
    assert idn.remap_prefix_ok("localhost:5000/ns")
    assert idn.remap_prefix_ok("[::1]:5000")
    assert idn.remap_prefix_ok("ns/repo")  # c/image cannot tell a short name from a host
    assert not idn.remap_prefix_ok("quay.io/ns:tag")
    assert not idn.remap_prefix_ok("quay.io/UPPER")
    assert not idn.remap_prefix_ok("")
