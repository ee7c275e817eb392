"""Tests for libaci.reference: Docker references, appc names, OCI ref names.

The Docker tables cover the same ground as distribution/reference's
reference_test.go and normalize_test.go (normalization, familiar names,
domains with ports, IPv6, localhost, uppercase, lengths, tags, digests).
"""

from __future__ import annotations

import json

import attrs
import pytest

from libaci.digest import Digest
from libaci.errors import InvalidReferenceError, PodkitError
from libaci.reference import (
    AppcName,
    DockerReference,
    ac_identifier_ok,
    ac_name_ok,
    default_labels,
    is_appc_name,
    is_docker_reference,
    parse_appc_name,
    parse_docker_reference,
    ref_name_ok,
)

HEX = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"
D = "sha256:" + HEX
D512 = "sha512:" + "f" * 128
D384 = "sha384:" + "0123456789abcdef" * 6
HUB = "docker.io"

# --------------------------------------------------------------------------
# Docker: valid references
# --------------------------------------------------------------------------

# input, domain, path, tag, digest, str(), familiar
VALID = [
    # Docker Hub normalization
    ("busybox", HUB, "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", HUB, "library/busybox", "1.36", None,
     "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", HUB, "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", HUB, "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/library/busybox:latest", HUB, "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox", HUB, "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/debian", HUB, "library/debian", "latest", None,
     "docker.io/library/debian:latest", "debian:latest"),
    ("index.docker.io/fooo/bar", HUB, "fooo/bar", "latest", None,
     "docker.io/fooo/bar:latest", "fooo/bar:latest"),
    ("dmcgowan/myapp", HUB, "dmcgowan/myapp", "latest", None,
     "docker.io/dmcgowan/myapp:latest", "dmcgowan/myapp:latest"),
    ("other/library", HUB, "other/library", "latest", None,
     "docker.io/other/library:latest", "other/library:latest"),
    ("library/foo/bar", HUB, "library/foo/bar", "latest", None,
     "docker.io/library/foo/bar:latest", "library/foo/bar:latest"),
    ("store/foo/bar:1", HUB, "store/foo/bar", "1", None,
     "docker.io/store/foo/bar:1", "store/foo/bar:1"),
    ("ubuntu-12.04-base", HUB, "library/ubuntu-12.04-base", "latest", None,
     "docker.io/library/ubuntu-12.04-base:latest", "ubuntu-12.04-base:latest"),
    ("test_com", HUB, "library/test_com", "latest", None,
     "docker.io/library/test_com:latest", "test_com:latest"),
    # path-component separators
    ("docker---rules/docker", HUB, "docker---rules/docker", "latest", None,
     "docker.io/docker---rules/docker:latest", "docker---rules/docker:latest"),
    ("dock__er/docker", HUB, "dock__er/docker", "latest", None,
     "docker.io/dock__er/docker:latest", "dock__er/docker:latest"),
    ("d/docker", HUB, "d/docker", "latest", None,
     "docker.io/d/docker:latest", "d/docker:latest"),
    ("jess/t", HUB, "jess/t", "latest", None, "docker.io/jess/t:latest", "jess/t:latest"),
    ("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", HUB,
     "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "latest", None,
     "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest",
     "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest"),
    # 64 hex is refused bare, but fine with a domain; 63 hex is a plain name
    ("docker.io/" + HEX, HUB, "library/" + HEX, "latest", None,
     f"docker.io/library/{HEX}:latest", f"{HEX}:latest"),
    (HEX[:63], HUB, "library/" + HEX[:63], "latest", None,
     f"docker.io/library/{HEX[:63]}:latest", f"{HEX[:63]}:latest"),
    # tags
    ("lowercase:Uppercase", HUB, "library/lowercase", "Uppercase", None,
     "docker.io/library/lowercase:Uppercase", "lowercase:Uppercase"),
    ("busybox:_under", HUB, "library/busybox", "_under", None,
     "docker.io/library/busybox:_under", "busybox:_under"),
    ("busybox:" + "t" * 128, HUB, "library/busybox", "t" * 128, None,
     "docker.io/library/busybox:" + "t" * 128, "busybox:" + "t" * 128),
    # a single element with ':' is name:tag, never host:port (as in Go)
    ("test.com:5000", HUB, "library/test.com", "5000", None,
     "docker.io/library/test.com:5000", "test.com:5000"),
    ("localhost:5000", HUB, "library/localhost", "5000", None,
     "docker.io/library/localhost:5000", "localhost:5000"),
    ("localhost", HUB, "library/localhost", "latest", None,
     "docker.io/library/localhost:latest", "localhost:latest"),
    ("foo_bar.com:8080", HUB, "library/foo_bar.com", "8080", None,
     "docker.io/library/foo_bar.com:8080", "foo_bar.com:8080"),
    ("foo/foo_bar.com:8080", HUB, "foo/foo_bar.com", "8080", None,
     "docker.io/foo/foo_bar.com:8080", "foo/foo_bar.com:8080"),
    # digests
    ("busybox@" + D, HUB, "library/busybox", None, D,
     "docker.io/library/busybox@" + D, "busybox@" + D),
    ("busybox:latest@" + D, HUB, "library/busybox", "latest", D,
     "docker.io/library/busybox:latest@" + D, "busybox:latest@" + D),
    ("dmcgowan/myapp@" + D, HUB, "dmcgowan/myapp", None, D,
     "docker.io/dmcgowan/myapp@" + D, "dmcgowan/myapp@" + D),
    ("xn--7o8h.com/myimage:xn--7o8h.com@" + D512, "xn--7o8h.com", "myimage", "xn--7o8h.com",
     D512, "xn--7o8h.com/myimage:xn--7o8h.com@" + D512,
     "xn--7o8h.com/myimage:xn--7o8h.com@" + D512),
    ("reg.example/repo@" + D384, "reg.example", "repo", None, D384,
     "reg.example/repo@" + D384, "reg.example/repo@" + D384),
    ("test:5000/repo:tag@" + D, "test:5000", "repo", "tag", D,
     "test:5000/repo:tag@" + D, "test:5000/repo:tag@" + D),
    # other registries, ports, IPs, localhost
    ("quay.io/coreos/etcd:v3.5.0", "quay.io", "coreos/etcd", "v3.5.0", None,
     "quay.io/coreos/etcd:v3.5.0", "quay.io/coreos/etcd:v3.5.0"),
    ("example.com/privatebase", "example.com", "privatebase", "latest", None,
     "example.com/privatebase:latest", "example.com/privatebase:latest"),
    ("example.com:8000/private/moonbase", "example.com:8000", "private/moonbase", "latest",
     None, "example.com:8000/private/moonbase:latest",
     "example.com:8000/private/moonbase:latest"),
    ("127.0.0.1:8000/privatebase", "127.0.0.1:8000", "privatebase", "latest", None,
     "127.0.0.1:8000/privatebase:latest", "127.0.0.1:8000/privatebase:latest"),
    ("192.168.1.1/repo", "192.168.1.1", "repo", "latest", None,
     "192.168.1.1/repo:latest", "192.168.1.1/repo:latest"),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", "5050", None,
     "192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo:5050"),
    ("test-com:8080/foo", "test-com:8080", "foo", "latest", None,
     "test-com:8080/foo:latest", "test-com:8080/foo:latest"),
    ("localhost/foo", "localhost", "foo", "latest", None,
     "localhost/foo:latest", "localhost/foo:latest"),
    ("localhost:5000/a/b:tag", "localhost:5000", "a/b", "tag", None,
     "localhost:5000/a/b:tag", "localhost:5000/a/b:tag"),
    ("host:5000/a/b@" + D, "host:5000", "a/b", None, D,
     "host:5000/a/b@" + D, "host:5000/a/b@" + D),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux",
     "some-long-tag", None, "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
     "sub-dom1.foo.com/bar/baz/quux:some-long-tag"),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io",
     "test.example.com/my-app", "test.example.com", None,
     "b.gcr.io/test.example.com/my-app:test.example.com",
     "b.gcr.io/test.example.com/my-app:test.example.com"),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo", "latest", None,
     "xn--n3h.com:18080/foo:latest", "xn--n3h.com:18080/foo:latest"),
    ("[::1]:5000/repo", "[::1]:5000", "repo", "latest", None,
     "[::1]:5000/repo:latest", "[::1]:5000/repo:latest"),
    ("[2001:db8::1]/repo:tag", "[2001:db8::1]", "repo", "tag", None,
     "[2001:db8::1]/repo:tag", "[2001:db8::1]/repo:tag"),
    ("[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000",
     "library/debian", "latest", None, "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest",
     "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest"),
    # an uppercase first element is taken as a host (splitDockerDomain)
    ("Foo/bar", "Foo", "bar", "latest", None, "Foo/bar:latest", "Foo/bar:latest"),
    ("DOCKER/docker:1", "DOCKER", "docker", "1", None, "DOCKER/docker:1", "DOCKER/docker:1"),
    # looks like a host to splitDockerDomain but not to the grammar: no domain
    ("a_b.com/foo", "", "a_b.com/foo", "latest", None, "a_b.com/foo:latest",
     "a_b.com/foo:latest"),
    # length limits: the path may be 255 characters, the domain does not count
    ("a/" * 127 + "a", HUB, "a/" * 127 + "a", "latest", None,
     "docker.io/" + "a/" * 127 + "a:latest", "a/" * 127 + "a:latest"),
    ("x" * 247, HUB, "library/" + "x" * 247, "latest", None,
     "docker.io/library/" + "x" * 247 + ":latest", "x" * 247 + ":latest"),
    ("example.com/" + "b" * 255, "example.com", "b" * 255, "latest", None,
     "example.com/" + "b" * 255 + ":latest", "example.com/" + "b" * 255 + ":latest"),
]  # fmt: skip


def _id(value: object) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest", "full", "familiar"), VALID, ids=_id
)
def test_docker_valid(
    text: str,
    domain: str,
    path: str,
    tag: str | None,
    digest: str | None,
    full: str,
    familiar: str,
) -> None:
    ref = parse_docker_reference(text)
    assert ref == DockerReference(domain=domain, path=path, tag=tag, digest=digest)
    assert str(ref) == full
    assert ref.familiar == familiar
    assert ref.name == (f"{domain}/{path}" if domain else path)
    assert ref.repository == ref.name
    assert is_docker_reference(text)
    # both the full and the familiar forms parse back to the same reference
    assert parse_docker_reference(full) == ref
    assert parse_docker_reference(familiar) == ref


# --------------------------------------------------------------------------
# Docker: invalid references
# --------------------------------------------------------------------------

NAME_RULE = "repository name must be '/'-separated components"

# input, fragment of the reason
INVALID = [
    ("", "at least one component"),
    (":justtag", "at least one component"),
    ("@" + D, "at least one component"),
    # uppercase repository names
    ("docker/Docker", "repository name must be lowercase"),
    ("Uppercase:tag", "repository name must be lowercase"),
    ("BUSYBOX", "repository name must be lowercase"),
    ("docker.io/docker/Docker", "repository name must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "repository name must be lowercase"),
    ("localhost/Foo", "repository name must be lowercase"),
    # image IDs
    (HEX, "cannot specify 64-byte hexadecimal strings"),
    # name grammar
    ("https://github.com/docker/docker", NAME_RULE),
    ("-docker", NAME_RULE),
    ("-docker/docker", NAME_RULE),
    ("docker-/docker", NAME_RULE),
    ("-docker-/docker", NAME_RULE),
    ("-docker.io/docker/docker", NAME_RULE),
    ("docker///docker", NAME_RULE),
    ("docker.io/docker///docker", NAME_RULE),
    ("docker/", NAME_RULE),
    ("____/____", NAME_RULE),
    ("_docker/_docker", NAME_RULE),
    ("dock..er/docker", NAME_RULE),
    ("dock_.er/docker", NAME_RULE),
    ("dock-.er/docker", NAME_RULE),
    ("dock___er/docker", NAME_RULE),
    ("aa/asdf$$^/aa", NAME_RULE),
    (" busybox", NAME_RULE),
    ("busybox\n", NAME_RULE),
    ("busybox:1:2", NAME_RULE),
    ("example.com:port/repo", NAME_RULE),
    # IPv6 only in brackets, with a path, without zones or embedded IPv4
    ("[2001:db8::1]", NAME_RULE),
    ("[fc00::1]:5000", NAME_RULE),
    ("fc00::1:5000/debian", NAME_RULE),
    ("[fe80::1%eth0]:5000/debian", NAME_RULE),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", NAME_RULE),
    # lengths (the library/ prefix counts for official images)
    ("a/" * 128 + "a:tag", "must not be more than 255 characters"),
    ("x" * 248, "must not be more than 255 characters"),
    ("example.com/" + "b" * 256, "must not be more than 255 characters"),
    (("this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_" * 4).rstrip("_")
     + "/docker",
     "must not be more than 255 characters"),
    # tags
    ("busybox:-foo", 'invalid tag "-foo"'),
    ("busybox:.foo", 'invalid tag ".foo"'),
    ("busybox:tag!", 'invalid tag "tag!"'),
    ("busybox:", 'invalid tag ""'),
    ("busybox:" + "t" * 129, "tag is 129 characters long, the limit is 128"),
    ("example.com:5000/repo:a/b", NAME_RULE),
    # digests
    ("repo@sha256:" + "f" * 34, "sha256 digest must be 64 lowercase hex digits"),
    ("repo@sha256:" + HEX + "0", "sha256 digest must be 64 lowercase hex digits"),
    ("repo@sha256:" + HEX.upper(), "sha256 digest must be 64 lowercase hex digits"),
    ("repo@sha512:" + HEX, "sha512 digest must be 128 lowercase hex digits"),
    ("validname@invaliddigest:" + HEX, 'unsupported digest algorithm "invaliddigest"'),
    ("repo@md5:" + "a" * 32, 'unsupported digest algorithm "md5"'),
    ("repo@sha256:abc", "is not algorithm:hex with at least 32 hex digits"),
    ("repo@sha256:" + "g" * 64, "is not algorithm:hex"),
    ("repo@", "is not algorithm:hex"),
    ("repo@SHA256:" + HEX, 'digest algorithm "SHA256" must be lowercase'),
    ("example.com/repo@Sha256:" + HEX, "must be lowercase"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "why"), INVALID, ids=_id)
def test_docker_invalid(text: str, why: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        parse_docker_reference(text)
    message = str(info.value)
    assert message.startswith(f"invalid reference {json.dumps(text)}: ")
    assert why in message
    assert "\n" not in message
    assert not is_docker_reference(text)


def test_invalid_reference_is_a_usage_error() -> None:
    with pytest.raises(PodkitError) as info:
        parse_docker_reference("docker/Docker")
    assert info.value.exit_status == 2


# --------------------------------------------------------------------------
# Docker: default tag, with_tag, with_digest, model
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "default_tag", "full"),
    [
        ("busybox", None, "docker.io/library/busybox"),
        ("busybox", "edge", "docker.io/library/busybox:edge"),
        ("busybox:1", None, "docker.io/library/busybox:1"),
        ("busybox:1", "edge", "docker.io/library/busybox:1"),
        ("busybox@" + D, "latest", "docker.io/library/busybox@" + D),
        ("quay.io/a/b", None, "quay.io/a/b"),
    ],
    ids=_id,
)
def test_default_tag(text: str, default_tag: str | None, full: str) -> None:
    assert str(parse_docker_reference(text, default_tag=default_tag)) == full


def test_default_tag_must_be_a_tag() -> None:
    with pytest.raises(InvalidReferenceError, match="invalid default tag"):
        parse_docker_reference("busybox", default_tag="-x")


def test_bare_reference_has_no_tag() -> None:
    ref = parse_docker_reference("user/repo", default_tag=None)
    assert ref.tag is None and ref.digest is None
    assert ref.familiar == "user/repo"
    assert ref.familiar_name == "user/repo"


@pytest.mark.parametrize(
    ("text", "tag", "full"),
    [
        ("busybox", "1.36", "docker.io/library/busybox:1.36"),
        ("busybox@" + D, "v1", "docker.io/library/busybox:v1@" + D),
        ("test.com:8000/foo:old", "TAG5", "test.com:8000/foo:TAG5"),
    ],
    ids=_id,
)
def test_with_tag(text: str, tag: str, full: str) -> None:
    ref = parse_docker_reference(text)
    assert str(ref.with_tag(tag)) == full
    assert str(ref) == str(parse_docker_reference(text))  # the original is unchanged


@pytest.mark.parametrize("tag", ["", "-foo", ".x", "a b", "x" * 129])
def test_with_tag_rejects_bad_tags(tag: str) -> None:
    with pytest.raises(InvalidReferenceError, match="tag"):
        parse_docker_reference("busybox").with_tag(tag)


@pytest.mark.parametrize(
    ("text", "digest", "full"),
    [
        ("busybox", D, "docker.io/library/busybox:latest@" + D),
        ("test.com/foo", Digest("sha256", HEX), "test.com/foo:latest@" + D),
        ("quay.io/a/b@" + D512, D, "quay.io/a/b@" + D),
    ],
    ids=_id,
)
def test_with_digest(text: str, digest: object, full: str) -> None:
    assert str(parse_docker_reference(text).with_digest(digest)) == full


@pytest.mark.parametrize("digest", ["foo", "sha256:abc", "md5:" + "a" * 32, "sha256:" + "A" * 64])
def test_with_digest_rejects_bad_digests(digest: str) -> None:
    with pytest.raises(InvalidReferenceError, match="digest"):
        parse_docker_reference("busybox").with_digest(digest)


def test_docker_reference_is_frozen_and_hashable() -> None:
    ref = parse_docker_reference("busybox")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ref.tag = "x"  # type: ignore[misc]
    assert len({ref, parse_docker_reference("docker.io/library/busybox:latest")}) == 1


# --------------------------------------------------------------------------
# appc names
# --------------------------------------------------------------------------

# input, name, labels in order, version, str()
APPC_VALID = [
    ("example.com/app", "example.com/app", [], None, "example.com/app"),
    ("a", "a", [], None, "a"),
    ("example.com/app:v1", "example.com/app", [("version", "v1")], "v1", "example.com/app:v1"),
    ("example.com/app:v1,os=linux,arch=amd64", "example.com/app",
     [("version", "v1"), ("os", "linux"), ("arch", "amd64")], "v1",
     "example.com/app:v1,os=linux,arch=amd64"),
    ("example.com/reduce-worker,channel=alpha,label=value", "example.com/reduce-worker",
     [("channel", "alpha"), ("label", "value")], None,
     "example.com/reduce-worker,channel=alpha,label=value"),
    ("example.com/reduce-worker:1.0.0,label=value", "example.com/reduce-worker",
     [("version", "1.0.0"), ("label", "value")], "1.0.0",
     "example.com/reduce-worker:1.0.0,label=value"),
    # an explicit version label is written back after the colon
    ("example.com/app,os=linux,version=1.0", "example.com/app",
     [("os", "linux"), ("version", "1.0")], "1.0", "example.com/app:1.0,os=linux"),
    ("coreos.com/etcd:v3.5.0-rc.1+git,os=linux", "coreos.com/etcd",
     [("version", "v3.5.0-rc.1+git"), ("os", "linux")], "v3.5.0-rc.1+git",
     "coreos.com/etcd:v3.5.0-rc.1+git,os=linux"),
    ("example.com/a_b~c.d/e-f", "example.com/a_b~c.d/e-f", [], None,
     "example.com/a_b~c.d/e-f"),
    ("example.com/app,example.com/label=x", "example.com/app",
     [("example.com/label", "x")], None, "example.com/app,example.com/label=x"),
    ("example.com/app,key=a=b", "example.com/app", [("key", "a=b")], None,
     "example.com/app,key=a=b"),
    ("example.com/app:latest", "example.com/app", [("version", "latest")], "latest",
     "example.com/app:latest"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "name", "labels", "version", "rendered"), APPC_VALID, ids=_id)
def test_appc_valid(
    text: str, name: str, labels: list[tuple[str, str]], version: str | None, rendered: str
) -> None:
    app = parse_appc_name(text)
    assert app.name == name
    assert app.labels == tuple(labels)
    assert app.labels_dict == dict(labels)
    assert app.version == version
    assert str(app) == rendered
    assert parse_appc_name(rendered) == app
    assert is_appc_name(text)


APPC_INVALID = [
    ("", "the app name is empty"),
    (":v1", "the app name is empty"),
    (",os=linux", "the app name is empty"),
    ("Example.com/app", 'app name "Example.com/app" is not valid'),
    ("-app", "is not valid"),
    ("app-", "is not valid"),
    ("example.com//app", "is not valid"),
    ("example.com/app os=linux", "is not valid"),
    ("example.com/app:", 'label "version" has an empty value'),
    ("example.com/app:v1:v2", "a colon may appear only once"),
    ("example.com/app,os=linux:v1", "a colon may appear only once"),
    ("example.com/app,os", 'label "os" has no value'),
    ("example.com/app,", 'label "" has no value'),
    ("example.com/app:v1,,os=linux", 'label "" has no value'),
    ("example.com/app,os=", 'label "os" has an empty value'),
    ("example.com/app,os=linux,os=darwin", 'label "os" is given more than once'),
    ("example.com/app:v1,version=v2", 'label "version" is given more than once'),
    ("example.com/app,OS=linux", 'label name "OS" is not valid'),
    ("example.com/app,=x", 'label name "" is not valid'),
    ("example.com/app,name=other", 'label name "name" is reserved'),
]


@pytest.mark.parametrize(("text", "why"), APPC_INVALID, ids=_id)
def test_appc_invalid(text: str, why: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        parse_appc_name(text)
    message = str(info.value)
    assert message.startswith(f"invalid appc name {json.dumps(text)}: ")
    assert why in message
    assert not is_appc_name(text)


def test_appc_labels_compare_as_a_mapping_but_keep_their_order() -> None:
    a = parse_appc_name("example.com/app:1,os=linux,arch=amd64")
    b = parse_appc_name("example.com/app,arch=amd64,version=1,os=linux")
    assert a == b
    assert hash(a) == hash(b)
    assert str(a) == "example.com/app:1,os=linux,arch=amd64"
    assert str(b) == "example.com/app:1,arch=amd64,os=linux"
    assert a != parse_appc_name("example.com/app:2,os=linux,arch=amd64")


def test_appc_name_constructor_accepts_a_mapping_and_validates() -> None:
    app = AppcName("example.com/app", {"version": "1", "os": "linux"})
    assert app.labels == (("version", "1"), ("os", "linux"))
    assert str(app) == "example.com/app:1,os=linux"
    with pytest.raises(InvalidReferenceError, match="is not valid"):
        AppcName("Bad/Name")
    with pytest.raises(InvalidReferenceError, match="must not contain"):
        AppcName("example.com/app", {"version": "1:2"})


@pytest.mark.parametrize(
    ("os_name", "machine", "labels"),
    [
        ("Linux", "x86_64", {"os": "linux", "arch": "amd64"}),
        ("linux", "i686", {"os": "linux", "arch": "i386"}),
        ("Linux", "i386", {"os": "linux", "arch": "i386"}),
        ("Linux", "aarch64", {"os": "linux", "arch": "aarch64"}),
        ("Linux", "armv7l", {"os": "linux", "arch": "armv7l"}),
        ("Linux", "armv6l", {"os": "linux", "arch": "armv6l"}),
        ("Linux", "ppc64le", {"os": "linux", "arch": "ppc64le"}),
        ("Linux", "s390x", {"os": "linux", "arch": "s390x"}),
        ("Linux", "riscv64", {"os": "linux", "arch": "riscv64"}),
    ],
)
def test_default_labels(os_name: str, machine: str, labels: dict[str, str]) -> None:
    assert default_labels(os_name, machine) == labels


@pytest.mark.parametrize(
    ("text", "identifier", "name"),
    [
        ("a", True, True),
        ("app-1", True, True),
        ("example.com/app", True, False),
        ("a_b~c", True, False),
        ("a--b", False, False),
        ("a..b", False, False),
        ("", False, False),
        ("-a", False, False),
        ("a/", False, False),
        ("App", False, False),
        ("a b", False, False),
    ],
)
def test_ac_identifier_and_name(text: str, identifier: bool, name: bool) -> None:
    assert ac_identifier_ok(text) is identifier
    assert ac_name_ok(text) is name


# --------------------------------------------------------------------------
# OCI org.opencontainers.image.ref.name
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("latest", True),
        ("v1.0", True),
        ("stable-release", True),
        ("1.0.0+build.1", True),
        ("ABC", True),
        ("a--b", True),
        ("a_b", True),
        ("foo/bar:baz@qux", True),
        ("docker.io/library/busybox:latest", True),
        ("", False),
        ("a---b", False),
        ("a__b", False),
        ("a..b", False),
        ("-a", False),
        ("a-", False),
        ("/a", False),
        ("a/", False),
        ("a//b", False),
        ("a b", False),
        ("a\n", False),
        ("caf\u00e9", False),
    ],
)
def test_ref_name_ok(text: str, ok: bool) -> None:
    assert ref_name_ok(text) is ok
