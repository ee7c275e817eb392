"""Tests for libaci.trust.lookaside: registries.d lookup and the lookaside layout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from libaci.errors import FetchError, UsageError
from libaci.reference import parse_docker_reference
from libaci.trust import lookaside as la
from libaci.trust.errors import LookasideError, RegistriesConfigError
from libaci.trust.signature import decode_signature_blob

HEX = "58365068f231c14545ee9a615192b9758fe9a95d5dcbdcc1dbe6ffd9e42e6bbb"
DIGEST = "sha256:" + HEX
REF = parse_docker_reference("127.0.0.1:33151/test/gpgsigned:v1")

CONFIG = b"""
docker:
  127.0.0.1:33151:
    lookaside: file:///srv/lookaside
    use-sigstore-attachments: true
  127.0.0.1:33151/test/special:
    lookaside: https://sigs.example.com/special
    lookaside-staging: file:///srv/staging
  127.0.0.1:33151/test/attachments-only:
    use-sigstore-attachments: false
  quay.io:
    sigstore: https://old.example.com/sigs      # the old key name
  "*.example.com":
    lookaside: file:///srv/wild
  unknown-scope:
    something-else: 1
default-docker:
  lookaside: file:///srv/default
"""


@pytest.fixture
def config() -> la.RegistriesD:
    return la.parse_registries_d(CONFIG, source="c.yaml")


@pytest.mark.parametrize(("ref", "write", "url"), [
    ("127.0.0.1:33151/test/gpgsigned:v1", False, "file:///srv/lookaside"),
    ("127.0.0.1:33151/test/special:v1", False, "https://sigs.example.com/special"),
    ("127.0.0.1:33151/test/special:v1", True, "file:///srv/staging"),
    ("127.0.0.1:33151/test/gpgsigned:v1", True, "file:///srv/lookaside"),
    # a scope with no URL does not stop the search
    ("127.0.0.1:33151/test/attachments-only:v1", False, "file:///srv/lookaside"),
    ("quay.io/a/b:1", False, "https://old.example.com/sigs"),
    ("registry.example.com/a:1", False, "file:///srv/wild"),
    # host:port does not fall back to the host
    ("127.0.0.1:9999/test/gpgsigned:v1", False, "file:///srv/default"),
    ("busybox", False, "file:///srv/default"),
])
def test_lookaside_lookup(config: la.RegistriesD, ref: str, write: bool, url: str) -> None:
    assert config.lookaside_for(parse_docker_reference(ref), write=write) == url


def test_sigstore_attachments_lookup(config: la.RegistriesD) -> None:
    assert config.use_sigstore_attachments(REF)
    assert not config.use_sigstore_attachments(
        parse_docker_reference("127.0.0.1:33151/test/attachments-only:v1"))
    assert not config.use_sigstore_attachments(parse_docker_reference("quay.io/a:1"))
    assert la.RegistriesD().lookaside_for(REF) is None


@pytest.mark.parametrize(("raw", "message"), [
    (b"docker: [1]", "expected a mapping of scopes"),
    (b"docker:\n  a: {lookaside: 5}", "expected a URL string"),
    (b"docker:\n  a: {use-sigstore-attachments: maybe}", "expected true or false"),
    (b"docker:\n  a: [x]", "expected a mapping"),
    (b"docker:\n  1: {}", "is not a string"),
    (b"- a list", "expected a mapping at the top"),
    (b"docker: {a: [}", "invalid YAML"),
    (b"default-docker: 3", "expected a mapping"),
])
def test_invalid_files(raw: bytes, message: str) -> None:
    with pytest.raises(RegistriesConfigError, match=message) as info:
        la.parse_registries_d(raw, source="c.yaml")
    assert isinstance(info.value, UsageError) and "\n" not in str(info.value)


def test_directory_merge(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_bytes(b"docker:\n  quay.io: {lookaside: file:///a}\n")
    (tmp_path / "b.yaml").write_bytes(b"default-docker: {lookaside: file:///b}\n")
    (tmp_path / "ignored.yml").write_bytes(b"not: [valid")
    (tmp_path / "empty.yaml").write_bytes(b"")
    merged = la.load_registries_d(str(tmp_path))
    assert merged.lookaside_for(parse_docker_reference("quay.io/x")) == "file:///a"
    assert merged.lookaside_for(REF) == "file:///b"
    (tmp_path / "c.yaml").write_bytes(b"docker:\n  quay.io: {lookaside: file:///c}\n")
    with pytest.raises(RegistriesConfigError, match=r'"quay\.io" is defined both in .*a\.yaml '
                                                    r"and .*c\.yaml"):
        la.load_registries_d(str(tmp_path))
    (tmp_path / "c.yaml").write_bytes(b"default-docker: {lookaside: file:///c}\n")
    with pytest.raises(RegistriesConfigError, match="default-docker"):
        la.load_registries_d(str(tmp_path))
    assert la.load_registries_d(str(tmp_path / "missing")) == la.RegistriesD()


def test_signature_url_layout() -> None:
    assert la.signature_url("file:///srv/sigs", REF, DIGEST, 1) == (
        f"file:///srv/sigs/test/gpgsigned@sha256={HEX}/signature-1")
    assert la.signature_url("https://h.example/base/", REF, DIGEST, 12) == (
        f"https://h.example/base/test/gpgsigned@sha256={HEX}/signature-12")
    with pytest.raises(ValueError):
        la.signature_url("file:///x", REF, "latest", 1)
    with pytest.raises(ValueError):
        la.signature_url("file:///x", REF, DIGEST, 0)
    with pytest.raises(LookasideError):
        la.signature_url("/no/scheme", REF, DIGEST, 1)


def test_default_lookaside() -> None:
    assert la.default_lookaside(0, "/root") == "file:///var/lib/containers/sigstore"
    assert la.default_lookaside(1000, "/home/u") == \
        "file:///home/u/.local/share/containers/sigstore"


def test_write_then_read_file_lookaside(tmp_path: Path) -> None:
    base = "file://" + str(tmp_path / "sigs")
    assert la.read_signatures(base, REF, DIGEST) == []
    first = la.write_signature(base, REF, DIGEST, b"\xa3one")
    assert first == str(tmp_path / f"sigs/test/gpgsigned@sha256={HEX}/signature-1")
    assert la.write_signature(base, REF, DIGEST, b"\xa3one") == first  # not twice
    second = la.write_signature(base, REF, DIGEST, b"\xa3two")
    assert second.endswith("/signature-2")
    assert la.read_signatures(base, REF, DIGEST) == [b"\xa3one", b"\xa3two"]
    assert [decode_signature_blob(b).kind for b in la.read_signatures(base, REF, DIGEST)] == [
        "simple-signing", "simple-signing"]
    assert not [n for n in os.listdir(os.path.dirname(first)) if n.startswith(".")]
    # readers stop at the first gap
    os.unlink(first)
    assert la.read_signatures(base, REF, DIGEST) == []


def test_read_signatures_with_a_custom_fetch() -> None:
    seen = []

    def fetch(url: str) -> bytes | None:
        seen.append(url)
        return b"sig" if url.endswith(("-1", "-2")) else None

    assert la.read_signatures("https://h/x", REF, DIGEST, fetch=fetch) == [b"sig", b"sig"]
    assert seen[-1].endswith("/signature-3")
    with pytest.raises(LookasideError, match="more than 128"):
        la.read_signatures("https://h/x", REF, DIGEST, fetch=lambda url: b"x")


def test_file_url_problems(tmp_path: Path) -> None:
    with pytest.raises(LookasideError, match="must not name a host") as info:
        la.read_file_url("file://host/path")
    assert isinstance(info.value, FetchError)
    with pytest.raises(LookasideError, match="only file://"):
        la.read_file_url("https://h/x")
    with pytest.raises(LookasideError):
        la.write_signature("https://h/x", REF, DIGEST, b"x")
    big = tmp_path / "big"
    big.write_bytes(b"x" * (la.MAX_SIGNATURE + 1))
    with pytest.raises(LookasideError, match="larger than"):
        la.read_file_url("file://" + str(big))
    assert la.read_file_url("file://localhost" + str(tmp_path / "none")) is None
