"""stage0's side of trust: which policy, the appc trust store, refusals, kept signatures."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libaci.digest import Digest
from libaci.errors import NotFoundError, PodkitError, TrustError, UsageError
from libaci.oci import Descriptor
from libaci.store import ANN_INDEX, ANN_SOURCE, Store
from libaci.trust import policy as pol
from libaci.trust.errors import KeyFormatError
from libaci.trust.scope import ImageName
from libaci.trust.signature import UntrustedSignature
from stage0 import gpg, trust
from stage0.cli.trust import check_scope
from stage0.truststore import TrustStore, check_prefix

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def env(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PODKIT_CONFIG_DIR", str(tmp_path / "etc"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PODKIT_POLICY", raising=False)
    return tmp_path


# -- which policy ---------------------------------------------------------------------------

def test_policy_file_order(env, monkeypatch):
    assert trust.policy_path() == str(env / "etc" / "policy.json")
    user = env / "home" / ".config" / "podkit" / "policy.json"
    user.parent.mkdir(parents=True)
    user.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    assert trust.policy_path() == str(user)
    monkeypatch.setenv("PODKIT_POLICY", "/x/env.json")
    assert trust.policy_path() == "/x/env.json"
    assert trust.policy_path("/x/opt.json") == "/x/opt.json"


def test_missing_policy_is_the_secure_default_unless_named(env, monkeypatch):
    loaded = trust.load_policy()
    assert loaded.builtin and loaded.policy == pol.SECURE_DEFAULT
    assert "does not exist" in loaded.where("default")
    with pytest.raises(NotFoundError):
        trust.load_policy(str(env / "nope.json"))
    monkeypatch.setenv("PODKIT_POLICY", str(env / "nope.json"))
    with pytest.raises(NotFoundError):
        trust.load_policy()


def test_registries_dir(env):
    assert trust.registries_dir() == "/etc/containers/registries.d"
    user = env / "home" / ".config" / "containers" / "registries.d"
    user.mkdir(parents=True)
    assert trust.registries_dir() == str(user)
    assert trust.registries_dir("/r") == "/r"


# -- scopes ----------------------------------------------------------------------------------

def test_image_for_source(tmp_path):
    docker = trust.image_for_source("docker://127.0.0.1:5000/a/b:1")
    assert docker is not None and docker.transport == "docker"
    assert docker.identity == "127.0.0.1:5000/a/b:1"
    layout = tmp_path / "lay"
    layout.mkdir()
    os.symlink(layout, tmp_path / "link")
    oci = trust.image_for_source(f"oci:{tmp_path}/link:tag")
    assert oci is not None and oci.transport == "oci" and oci.identity == str(layout)
    assert trust.image_for_source("https://example.com/x.aci") is None
    assert trust.image_for_source("/srv/x.aci") is None


def test_local_transports_are_accepted_without_a_section():
    image = ImageName.path("oci", "/srv/layout")
    scope, reqs = trust.requirements(pol.SECURE_DEFAULT, image)
    assert reqs == (pol.InsecureAcceptAnything(),) and "built-in oci scope" in scope
    strict = pol.Policy(default=(pol.Reject(),),
                        transports={"oci": {"/srv": (pol.Reject(),)}})
    assert trust.requirements(strict, image)[1] == (pol.Reject(),)
    assert trust.requirements(pol.SECURE_DEFAULT, ImageName.local("localhost/app:1"))[1] == \
        (pol.InsecureAcceptAnything(),)
    assert trust.requirements(pol.SECURE_DEFAULT, ImageName.docker("busybox"))[1] == \
        (pol.Reject(),)


def test_appc_requirements_by_name_prefix():
    assert trust.appc_requirements(pol.SECURE_DEFAULT, "example.com/app") is None
    p = pol.parse_policy(json.dumps({
        "default": [{"type": "insecureAcceptAnything"}],
        "transports": {"appc": {"example.com": [{"type": "reject"}],
                                "example.com/app": [{"type": "insecureAcceptAnything"}]}},
    }).encode())
    scope, reqs = trust.appc_requirements(p, "example.com/app") or ("", ())
    assert reqs == (pol.InsecureAcceptAnything(),) and "example.com/app" in scope
    assert trust.appc_requirements(p, "example.com/other")[1] == (pol.Reject(),)  # type: ignore[index]
    assert trust.appc_requirements(p, "other.org/app") is None  # the trust store decides


def test_fix_names_the_command():
    image = ImageName.docker("127.0.0.1:5000/team/app:1")
    loaded = trust.PolicyInForce(pol.SECURE_DEFAULT, "/etc/podkit/policy.json", builtin=True)
    text = trust._fix(image, DIGEST, pol.Reject(), None, loaded)
    assert "podkit-trust --scope 127.0.0.1:5000/team/app --sigstore-key KEY.pub" in text
    assert "--insecure-options=image" in text
    from libaci.trust.evaluate import Evidence

    sig = pol.SigstoreSigned(key_path="/k.pub")
    text = trust._fix(image, DIGEST, sig, Evidence(), loaded)
    assert f"podkit-sign {DIGEST} docker://127.0.0.1:5000/team/app:1 --key" in text


def test_enforcer_refuses_remote_and_accepts_local(env, tmp_path):
    store = Store(str(tmp_path / "store"))
    enforcer = trust.Enforcer(store)
    enforcer.verify(f"oci:{tmp_path}:x", Digest.parse(DIGEST), b"{}")
    enforcer.verify("/srv/app.aci", Digest.parse(DIGEST), b"{}")
    with pytest.raises(TrustError) as e:
        enforcer.verify("docker://127.0.0.1:5000/team/app:1", Digest.parse(DIGEST), b"{}")
    assert "rejected by the built-in policy" in str(e.value)
    assert "podkit-trust --scope 127.0.0.1:5000/team/app" in str(e.value)


# -- the appc trust store ----------------------------------------------------------------------

def _key(d, name: str, data: bytes = b"key") -> None:  # type: ignore[no-untyped-def]
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def test_trust_store_prefixes_root_and_masking(tmp_path):
    local, system = tmp_path / "local", tmp_path / "system"
    _key(local / "prefix.d" / "example.com" / "app", "aaaa")
    _key(local / "prefix.d" / "example.com", "bbbb")
    _key(local / "prefix.d" / "example.com" / "ap", "cccc")  # a string prefix, as in rkt
    _key(local / "prefix.d" / "other.org", "dddd")
    _key(system / "root.d", "eeee")
    _key(system / "prefix.d" / "example.com", "ffff")
    _key(local / "prefix.d" / "example.com", "ffff", b"")  # masks the system's
    store = TrustStore(str(local), str(system))
    got = {k.fingerprint for k in store.keys_for("example.com/app")}
    assert got == {"AAAA", "BBBB", "CCCC", "EEEE"}
    assert {k.fingerprint for k in store.keys_for("other.org/x")} == {"DDDD", "EEEE"}
    assert {k.fingerprint for k in store.keys_for("example.com/bar")} == {"BBBB", "EEEE"}
    path = store.add("example.com/app", "ABCD", b"new")
    assert path == str(local / "prefix.d" / "example.com" / "app" / "abcd")
    assert store.add(None, "ABCD", b"new") == str(local / "root.d" / "abcd")


@pytest.mark.parametrize("bad", ["", "https://example.com", "Example.com", "a/../b", "/abs",
                                 "a b"])
def test_bad_prefixes(bad):
    with pytest.raises(UsageError):
        check_prefix(bad)


def test_prefixes_and_scopes():
    assert check_prefix("example.com/app/") == "example.com/app"
    for good in ("reg.example.com", "127.0.0.1:5000", "*.example.com", "127.0.0.1:5000/team",
                 "docker.io/library/busybox"):
        assert check_scope(good) == good
    for bad in ("https://x", "busybox", "*.example.com/x", "Reg.example.com/A"):
        with pytest.raises(UsageError):
            check_scope(bad)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_scope_and_prefix_checks_only_raise_usage_errors(text):
    for check in (check_scope, check_prefix):
        with contextlib.suppress(UsageError):
            check(text)


# -- OpenPGP armor --------------------------------------------------------------------------------

def _armor(data: bytes, headers: str = "Version: test\nComment: x\n") -> bytes:
    body = base64.b64encode(data).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")[1:]).decode()
    return ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n" + headers + "\n" + "\n".join(lines)
            + f"\n={crc}\n-----END PGP PUBLIC KEY BLOCK-----\n").encode()


def test_dearmor():
    data = bytes(range(256)) * 3
    assert gpg.dearmor(_armor(data)) == data
    assert gpg.dearmor(_armor(data, headers="")) == data
    assert gpg.dearmor(_armor(b"one") + b"\n" + _armor(b"two")) == b"onetwo"
    assert gpg.dearmor(b"\x99\x01binary") == b"\x99\x01binary"
    with pytest.raises(KeyFormatError):
        gpg.dearmor(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!\n"
                    b"-----END PGP PUBLIC KEY BLOCK-----\n")
    with pytest.raises(KeyFormatError):
        gpg.dearmor(b"-----BEGIN PGP nothing that ends")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_dearmor_fuzz(data):
    for blob in (data, b"-----BEGIN PGP X-----\n" + data + b"\n-----END PGP X-----\n"):
        with contextlib.suppress(KeyFormatError):
            gpg.dearmor(blob)


# -- signatures kept in the store ------------------------------------------------------------

def _sig(n: int) -> UntrustedSignature:
    return UntrustedSignature.sigstore(f"payload {n}".encode(),
                                       {"dev.cosignproject.cosign/signature": f"c2ln{n}"})


def test_keep_and_read_back_in_order_without_duplicates(tmp_path):
    from libaci.sources import signatures

    store = Store(str(tmp_path / "store"))
    store.ensure()
    assert signatures.stored(store, DIGEST) == []
    assert signatures.keep(store, DIGEST, [_sig(1), _sig(2)]) == 2
    assert signatures.keep(store, DIGEST, [_sig(2), _sig(3), _sig(1)]) == 1
    assert signatures.stored(store, DIGEST) == [_sig(1), _sig(2), _sig(3)]
    base = signatures.signature_dir(store, DIGEST)
    assert sorted(os.listdir(base)) == ["signature-1", "signature-2", "signature-3"]
    simple = UntrustedSignature.simple(b"\xa3\x01openpgp")
    signatures.keep(store, DIGEST, [simple])
    assert open(os.path.join(base, "signature-4"), "rb").read() == b"\xa3\x01openpgp"
    with open(os.path.join(base, "signature-2"), "wb") as f:
        f.write(b"garbage")
    with pytest.raises(PodkitError):
        signatures.stored(store, DIGEST)


def test_gc_keeps_the_signatures_of_images_and_their_index(tmp_path):
    from libaci import gc
    from libaci.sources import signatures

    store = Store(str(tmp_path / "store"))
    store.ensure()
    index, manifest, orphan = ("sha256:" + c * 64 for c in "123")
    for d in (index, manifest, orphan):
        signatures.keep(store, d, [_sig(1)])
    desc = Descriptor("application/vnd.oci.image.manifest.v1+json", Digest.parse(manifest), 2,
                      annotations={ANN_INDEX: index, ANN_SOURCE: "docker://x/y:1"})
    store.add_image(desc, ["x/y:1"])
    result = gc.collect(store)
    assert result.signatures == [orphan]
    assert os.path.isdir(signatures.signature_dir(store, index))
    assert os.path.isdir(signatures.signature_dir(store, manifest))
    assert not os.path.exists(signatures.signature_dir(store, orphan))
