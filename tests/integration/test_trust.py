"""Signing, verification and trust end to end, against the real registry and peers.

podkit-keygen, -sign, -verify and -trust, and the policy that podkit-fetch and
podkit-run enforce, checked with real tools as oracles: a Python decoder written
here for cosign key files, skopeo ``--sign-by`` (gpg) for OpenPGP simple signing
and a lookaside directory, ``skopeo inspect`` for the sigstore attachment, gpg
for appc ``.asc`` files served over HTTPS.  Every test has its own configuration
directory (PODKIT_CONFIG_DIR) and policy; none touches /etc/podkit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import types

import pytest
from helpers import store_state

from integration.test_aci_http import Site, discovery_page, host_labels, make_aci
from integration.test_aci_http import ca as ca  # fixtures
from integration.test_aci_http import disco as disco

SIG_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


# -- keys ------------------------------------------------------------------------------

def _gpg(home: str, *args: str, input: bytes | None = None) -> bytes:
    r = subprocess.run(["gpg", "--homedir", home, "--batch", "--no-tty", *args], input=input,
                       capture_output=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


@pytest.fixture(scope="session")
def gnupg(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A GNUPGHOME with two unprotected ed25519 keys, ``signer`` and ``other``, and their
    public keys exported (``.gpg`` binary, ``.asc`` armored)."""
    home = str(tmp_path_factory.mktemp("gnupg"))
    os.chmod(home, 0o700)
    keys = {}
    for who in ("signer", "other"):
        _gpg(home, "--gen-key", input=(
            "%no-protection\nKey-Type: EDDSA\nKey-Curve: ed25519\n"
            f"Name-Real: podkit {who}\nName-Email: {who}@example.com\nExpire-Date: 0\n"
            "%commit\n").encode())
        listing = _gpg(home, "--with-colons", "--list-keys", f"{who}@example.com").decode()
        fpr = next(line.split(":")[9] for line in listing.splitlines()
                   if line.startswith("fpr:"))
        pub = os.path.join(home, f"{who}.gpg")
        asc = os.path.join(home, f"{who}.asc")
        with open(pub, "wb") as f:
            f.write(_gpg(home, "--export", fpr))
        with open(asc, "wb") as f:
            f.write(_gpg(home, "--export", "--armor", fpr))
        keys[who] = types.SimpleNamespace(fpr=fpr, pub=pub, asc=asc)
    yield types.SimpleNamespace(home=home, **keys)
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], check=False,
                   capture_output=True)


@pytest.fixture
def config(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A configuration directory of this test's own, no PODKIT_POLICY: podkit's defaults."""
    d = tmp_path / "config"
    d.mkdir()
    monkeypatch.setenv("PODKIT_CONFIG_DIR", str(d))
    monkeypatch.delenv("PODKIT_POLICY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return d


def write_policy(path, doc) -> str:  # type: ignore[no-untyped-def]
    path.write_text(json.dumps(doc))
    return str(path)


def sigstore_policy(tmp_path, scope: str, pub: str, name: str = "policy.json") -> str:  # type: ignore[no-untyped-def]
    return write_policy(tmp_path / name, {
        "default": [{"type": "reject"}],
        "transports": {"docker": {scope: [{"type": "sigstoreSigned", "keyPath": pub}]}}})


def gpg_policy(tmp_path, scope: str, keyring: str, name: str = "gpg-policy.json") -> str:  # type: ignore[no-untyped-def]
    return write_policy(tmp_path / name, {
        "default": [{"type": "reject"}],
        "transports": {"docker": {scope: [{"type": "signedBy", "keyType": "GPGKeys",
                                           "keyPath": keyring}]}}})


@pytest.fixture
def cosign(podkit, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Two podkit-keygen key pairs: ``.k1`` and ``.k2`` are prefixes (PREFIX.key, .pub)."""
    monkeypatch.setenv("COSIGN_PASSWORD", "correct horse")
    out = {}
    for name in ("k1", "k2"):
        prefix = str(tmp_path / name)
        assert podkit.ok("keygen", "--output", prefix, store=False).strip() == prefix + ".pub"
        out[name] = prefix
    return types.SimpleNamespace(**out)


def independent_decode(pem: bytes, passphrase: bytes) -> bytes:
    """The PKCS#8 DER in a cosign key file, by the documented recipe (not podkit's code)."""
    import nacl.secret

    body = b"".join(pem.strip().splitlines()[1:-1])
    doc = json.loads(base64.b64decode(body))
    assert doc["kdf"]["name"] == "scrypt"
    assert doc["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert doc["cipher"]["name"] == "nacl/secretbox"
    key = hashlib.scrypt(passphrase, salt=base64.b64decode(doc["kdf"]["salt"]), n=32768, r=8,
                         p=1, dklen=32, maxmem=64 << 20)
    return nacl.secret.SecretBox(key).decrypt(base64.b64decode(doc["ciphertext"]),
                                              base64.b64decode(doc["cipher"]["nonce"]))


# -- podkit-keygen -------------------------------------------------------------------------

def test_keygen_writes_the_cosign_format(podkit, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    pw = tmp_path / "pw"
    pw.write_bytes(b"s3cret\nsecond line ignored\n")
    prefix = str(tmp_path / "team")
    assert podkit.ok("keygen", "-o", prefix, "--passphrase-file", str(pw),
                     store=False).strip() == prefix + ".pub"
    pem = (tmp_path / "team.key").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n")
    assert oct(os.stat(prefix + ".key").st_mode & 0o777) == "0o600"
    key = serialization.load_der_private_key(independent_decode(pem, b"s3cret"), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    pub = serialization.load_pem_public_key((tmp_path / "team.pub").read_bytes())
    assert pub.public_numbers() == key.public_key().public_numbers()
    # never overwritten; no passphrase source without a terminal is a usage error
    before = store_state(str(tmp_path))
    podkit.fail("keygen", "-o", prefix, "--passphrase-file", str(pw), store=False, status=5,
                match="team.key exists")
    podkit.fail("keygen", "-o", str(tmp_path / "other"), store=False, status=2,
                match="COSIGN_PASSWORD")
    assert store_state(str(tmp_path)) == before
    monkeypatch.setenv("COSIGN_PASSWORD", "")  # an empty passphrase is allowed, as in cosign
    podkit.ok("keygen", "-o", str(tmp_path / "empty"), store=False)
    independent_decode((tmp_path / "empty.key").read_bytes(), b"")


# -- the secure default ----------------------------------------------------------------------

def test_unsigned_remote_image_is_refused_by_default(podkit, store, config, registry, images,
                                                     repo):
    registry.push_with_skopeo(f"oci:{images['layout']}:tiny", f"{repo}:1")
    src = registry.docker(f"{repo}:1")
    r = podkit.fail("fetch", src, status=3, match="rejected by the built-in policy")
    line = r.stderr.strip()
    assert f"podkit-trust --scope {registry.addr}/{repo} --sigstore-key" in line
    assert "--insecure-options=image" in line
    assert not os.path.exists(os.path.join(store, "index.json")) or \
        json.load(open(os.path.join(store, "index.json")))["manifests"] == []
    # the switch skips the check, with a warning
    r = podkit("fetch", "--insecure-options=image", src)
    assert r.returncode == 0, r.stderr
    assert "warning: not verifying the signatures" in r.stderr
    # local sources are accepted by the default policy
    podkit.ok("fetch", f"oci:{images['layout']}:tiny")
    # a policy file that is malformed refuses everything, local images too
    (config / "policy.json").write_text('{"default": [{"type": "insecureAcceptAnything"}], '
                                        '"bogus": 1}')
    podkit.fail("fetch", f"oci:{images['layout']}:tiny", status=2, match="unknown key")


def test_run_of_an_unsigned_remote_image(podkit, config, registry, images, repo):
    registry.push_with_skopeo(f"oci:{images['layout']}:tiny", f"{repo}:1")
    src = registry.docker(f"{repo}:1")
    r = podkit.fail("run", "--stage1=fly", src, "--", "true", status=3)
    assert f"podkit-trust --scope {registry.addr}/{repo}" in r.stderr
    assert "--insecure-options=image" in r.stderr
    r = podkit("run", "--stage1=fly", "--insecure-options=image", src, "--", "sh", "-c",
               "echo ran")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ran\n"
    assert "warning: not verifying" in r.stderr


# -- sigstore: podkit-sign, the registry attachment, podkit-verify --------------------------------

def test_sign_then_fetch_and_verify(podkit, store, config, registry, images, repo, cosign,
                                    tmp_path):
    digest = registry.push_with_skopeo(f"oci:{images['layout']}:tiny", f"{repo}:1")
    dest = registry.docker(f"{repo}:1")
    # by digest, before the image is in the store
    assert podkit.ok("sign", digest, dest, "--key", cosign.k1 + ".key").strip() == digest
    tag = digest.replace(":", "-") + ".sig"
    # skopeo sees the attachment, as cosign and skopeo write it
    raw = json.loads(registry.inspect_raw(f"{repo}:{tag}"))
    assert raw["mediaType"] == OCI_MANIFEST
    [layer] = raw["layers"]
    assert layer["mediaType"] == PAYLOAD_TYPE and SIG_ANNOTATION in layer["annotations"]
    shown = json.loads(registry.skopeo("inspect", *registry.tls_args(),
                                       registry.docker(f"{repo}:{tag}")).stdout)
    assert shown["Layers"] == [layer["digest"]]
    payload = json.loads(registry.request("GET", f"/v2/{repo}/blobs/{layer['digest']}").content)
    assert payload["critical"] == {"identity": {"docker-reference": f"{registry.addr}/{repo}:1"},
                                   "image": {"docker-manifest-digest": digest},
                                   "type": "cosign container image signature"}

    policy = sigstore_policy(tmp_path, f"{registry.addr}/{repo}", cosign.k1 + ".pub")
    image = podkit.ok("fetch", "--policy", policy, dest).strip()
    assert image == digest
    kept = os.path.join(store, "signatures", "sha256", digest.split(":")[1], "signature-1")
    assert open(kept, "rb").read().startswith(b"\x00sigstore-json\n")
    assert podkit.ok("verify", "--policy", policy, image) == image + "\n"
    # offline: the kept signature is enough (the registry is not asked)
    mark = registry.mark()
    assert podkit.ok("verify", "--policy", policy, input=image + "\n") == image + "\n"
    assert registry.count("GET", ".*", since=mark) == 0
    # another key does not verify it; the reason and the fix are on one line
    other = sigstore_policy(tmp_path, f"{registry.addr}/{repo}", cosign.k2 + ".pub", "o.json")
    r = podkit.fail("verify", "--policy", other, image, status=3,
                    match="not verified by the key in")
    assert "podkit-trust --scope" in r.stderr and "--sigstore-key SIGNER.pub" in r.stderr
    assert r.stdout == ""
    # a second signature is merged into the same attachment; both keys then pass
    podkit.ok("sign", image, dest, "--key", cosign.k2 + ".key")
    raw = json.loads(registry.inspect_raw(f"{repo}:{tag}"))
    assert len(raw["layers"]) == 2
    fresh = podkit.store + "-2"
    r = podkit("fetch", "--store", fresh, "--policy", other, dest)
    assert r.returncode == 0, r.stderr


def test_podkit_trust_scope_writes_the_policy(podkit, config, registry, images, repo, cosign,
                                              gnupg):
    digest = registry.push_with_skopeo(f"oci:{images['layout']}:tiny", f"{repo}:1")
    dest = registry.docker(f"{repo}:1")
    podkit.ok("sign", digest, dest, "--key", cosign.k1 + ".key")
    scope = f"{registry.addr}/{repo}"
    # without a terminal the fingerprint cannot be confirmed
    podkit.fail("trust", "--scope", scope, "--sigstore-key", cosign.k1 + ".pub", status=2,
                match="--skip-fingerprint-review")
    assert not (config / "policy.json").exists()
    out = podkit.ok("trust", "--scope", scope, "--sigstore-key", cosign.k1 + ".pub",
                    "--skip-fingerprint-review")
    assert out.startswith("sha256:")
    doc = json.loads((config / "policy.json").read_text())
    assert doc["default"] == [{"type": "reject"}]
    [req] = doc["transports"]["docker"][scope]
    assert req["type"] == "sigstoreSigned" and "keyData" in req
    assert podkit.ok("fetch", dest).strip() == digest
    # skopeo 1.9 parses what podkit wrote (the same strict format): it refuses the image
    # as the policy says, not the file
    r = registry.skopeo("--policy", str(config / "policy.json"), "copy",
                        f"oci:{images['layout']}:tiny", f"dir:{config}/out", check=False)
    assert r.returncode != 0 and "rejected by policy" in r.stderr, r.stderr
    # more keys: a second sigstore key joins the first, a GPG key adds a requirement
    podkit.ok("trust", "--scope", scope, "--sigstore-key", cosign.k2 + ".pub",
              "--skip-fingerprint-review")
    podkit.ok("trust", "--scope", scope, "--sigstore-key", cosign.k2 + ".pub",
              "--skip-fingerprint-review")
    doc = json.loads((config / "policy.json").read_text())
    [req] = doc["transports"]["docker"][scope]
    assert len(req["keyDatas"]) == 2
    out = podkit.ok("trust", "--scope", f"{registry.addr}/other", "--gpg-key",
                    gnupg.signer.asc, "--skip-fingerprint-review")
    assert out.strip() == gnupg.signer.fpr
    doc = json.loads((config / "policy.json").read_text())
    [req] = doc["transports"]["docker"][f"{registry.addr}/other"]
    assert req["type"] == "signedBy" and req["keyType"] == "GPGKeys" and "keyData" in req
    # bad input: nothing changes
    before = (config / "policy.json").read_bytes()
    podkit.fail("trust", "--scope", "https://x", "--sigstore-key", cosign.k1 + ".pub",
                "--skip-fingerprint-review", status=2)
    podkit.fail("trust", "--scope", scope, "--sigstore-key", cosign.k1 + ".key",
                "--skip-fingerprint-review", status=2, match="PEM")
    podkit.fail("trust", "--scope", scope, "--sigstore-key", "/nonexistent.pub",
                "--skip-fingerprint-review", status=4)
    assert (config / "policy.json").read_bytes() == before


def _registry_client(registry):  # type: ignore[no-untyped-def]
    from libaci.registry.client import Registry

    return Registry(registry.addr)


def test_flipped_bits_in_the_attachment_are_refused(podkit, config, registry, images, repo,
                                                    cosign, tmp_path):
    import io

    from libaci.digest import Digest
    from libaci.oci import Descriptor

    digest = registry.push_with_skopeo(f"oci:{images['layout']}:tiny", f"{repo}:1")
    dest = registry.docker(f"{repo}:1")
    podkit.ok("sign", digest, dest, "--key", cosign.k1 + ".key")
    policy = sigstore_policy(tmp_path, f"{registry.addr}/{repo}", cosign.k1 + ".pub")
    tag = digest.replace(":", "-") + ".sig"
    client = _registry_client(registry)
    _, good = client.get_manifest(repo, tag)

    def fetch_fails(match: str) -> None:
        fresh = str(tmp_path / f"store-{os.urandom(3).hex()}")
        r = podkit("fetch", "--store", fresh, "--policy", policy, dest)
        assert r.returncode == 3, r.stderr
        assert match in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr

    # one bit of the signature
    doc = json.loads(good)
    sig = bytearray(base64.b64decode(doc["layers"][0]["annotations"][SIG_ANNOTATION]))
    sig[len(sig) // 2] ^= 0x01
    doc["layers"][0]["annotations"][SIG_ANNOTATION] = base64.b64encode(sig).decode()
    client.put_manifest(repo, tag, json.dumps(doc).encode(), OCI_MANIFEST)
    fetch_fails("cryptographic signature verification failed")
    # one bit of the payload (a new blob, so that digests still match)
    doc = json.loads(good)
    layer = doc["layers"][0]
    with client.open_blob(repo, Descriptor(PAYLOAD_TYPE, Digest.parse(layer["digest"]),
                                           layer["size"])) as f:
        payload = bytearray(f.read())
    payload[payload.index(b"sha256:") + 10] ^= 0x01
    new = Digest.of_bytes(bytes(payload))
    client.upload(repo, io.BytesIO(bytes(payload)), new, len(payload))
    layer["digest"] = str(new)
    client.put_manifest(repo, tag, json.dumps(doc).encode(), OCI_MANIFEST)
    fetch_fails("cryptographic signature verification failed")
    # the good attachment again: accepted; then a flipped bit in the store's copy
    client.put_manifest(repo, tag, good, OCI_MANIFEST)
    image = podkit.ok("fetch", "--policy", policy, dest).strip()
    from libaci.trust.signature import decode_signature_blob, encode_signature_blob

    kept = os.path.join(podkit.store, "signatures", "sha256", digest.split(":")[1],
                        "signature-1")
    sig_obj = decode_signature_blob(open(kept, "rb").read())
    flipped = bytearray(sig_obj.blob)
    flipped[5] ^= 0x04
    import attrs

    with open(kept, "wb") as f:
        f.write(encode_signature_blob(attrs.evolve(sig_obj, blob=bytes(flipped))))
    podkit.fail("verify", "--policy", policy, image, status=3,
                match="cryptographic signature verification failed")
    # an altered manifest in the store
    with open(kept, "wb") as f:
        f.write(encode_signature_blob(sig_obj))
    assert podkit.ok("verify", "--policy", policy, image).strip() == image
    blob = os.path.join(podkit.store, "blobs", "sha256", digest.split(":")[1])
    data = bytearray(open(blob, "rb").read())
    data[-2] ^= 0x01
    os.chmod(blob, 0o644)
    with open(blob, "wb") as f:
        f.write(bytes(data))
    podkit.fail("verify", "--policy", policy, image, status=3, match="altered")


def test_signatures_go_with_the_image(podkit, store, config, registry, images, repo, cosign,
                                      tmp_path):
    digest = registry.push_with_skopeo(f"oci:{images['layout']}:tiny", f"{repo}:1")
    dest = registry.docker(f"{repo}:1")
    podkit.ok("sign", digest, dest, "--key", cosign.k1 + ".key")
    policy = sigstore_policy(tmp_path, f"{registry.addr}/{repo}", cosign.k1 + ".pub")
    image = podkit.ok("fetch", "--policy", policy, dest).strip()
    kept = os.path.join(store, "signatures", "sha256", digest.split(":")[1])
    assert os.listdir(kept) == ["signature-1"]
    # a warm re-fetch checks again, from the kept signature: no .sig request
    mark = registry.mark()
    assert podkit.ok("fetch", "--policy", policy, dest).strip() == image
    assert registry.count("GET", r".*\.sig$", since=mark) == 0
    podkit.ok("rmi", image)
    podkit.ok("gc")
    assert not os.path.exists(kept)


# -- OpenPGP simple signing: skopeo --sign-by and a lookaside ------------------------------------

def _lookaside(tmp_path, registry):  # type: ignore[no-untyped-def]
    look = tmp_path / "lookaside"
    look.mkdir()
    regd = tmp_path / "registries.d"
    regd.mkdir()
    (regd / "test.yaml").write_text(f"docker:\n  {registry.addr}:\n"
                                    f"    lookaside: file://{look}\n")
    return str(look), str(regd)


def test_skopeo_gpg_signatures(podkit, store, config, registry, images, repo, gnupg, tmp_path,
                               monkeypatch):
    monkeypatch.setenv("GNUPGHOME", gnupg.home)
    look, regd = _lookaside(tmp_path, registry)
    src = f"oci:{images['layout']}:tiny"
    registry.skopeo("--registries.d", regd, "copy", "-q", *registry.tls_args("dest"),
                    "--sign-by", gnupg.signer.fpr, src, registry.docker(f"{repo}:1"))
    digest = registry.push_with_skopeo(src, f"{repo}:1")  # the same manifest, unsigned copy
    assert os.path.isfile(f"{look}/{repo}@sha256={digest.split(':')[1]}/signature-1")
    scope = f"{registry.addr}/{repo}"
    good = gpg_policy(tmp_path, scope, gnupg.signer.pub)
    other = gpg_policy(tmp_path, scope, gnupg.other.asc, "other.json")
    dest = registry.docker(f"{repo}:1")
    # at fetch: accepted with the signer's key (binary keyring), refused with another
    r = podkit("fetch", "--store", store + "-x", "--policy", other, "--registries-dir", regd,
               dest)
    assert r.returncode == 3 and "not trusted (not in the keyring)" in r.stderr, r.stderr
    assert "--gpg-key SIGNER.gpg" in r.stderr
    image = podkit.ok("fetch", "--policy", good, "--registries-dir", regd, dest).strip()
    assert image == digest
    # the signature was kept: podkit-verify needs neither the lookaside nor the registry
    os.rename(look, look + ".gone")
    assert podkit.ok("verify", "--policy", good, image).strip() == image
    podkit.fail("verify", "--policy", other, image, status=3, match="not in the keyring")
    os.rename(look + ".gone", look)

    # identity: the signature names :1; the same manifest under :2 is not accepted
    registry.push_with_skopeo(src, f"{repo}:2")
    r = podkit("fetch", "--store", store + "-y", "--policy", good, "--registries-dir", regd,
               registry.docker(f"{repo}:2"))
    assert r.returncode == 3, r.stderr
    assert f"signed for identity {registry.addr}/{repo}:1" in r.stderr
    # ... unless the policy accepts any tag of the repository
    doc = json.loads(open(good).read())
    doc["transports"]["docker"][scope][0]["signedIdentity"] = {"type": "matchRepository"}
    lenient = write_policy(tmp_path / "lenient.json", doc)
    podkit.ok("fetch", "--store", store + "-y", "--policy", lenient, "--registries-dir", regd,
              registry.docker(f"{repo}:2"))

    # an altered manifest: another image whose lookaside holds the first one's signature
    other_digest = registry.push_with_skopeo(f"oci:{images['layout']}:multi", f"{repo}:3")
    moved = f"{look}/{repo}@sha256={other_digest.split(':')[1]}"
    os.makedirs(moved)
    with open(f"{look}/{repo}@sha256={digest.split(':')[1]}/signature-1", "rb") as f, \
            open(f"{moved}/signature-1", "wb") as g:
        g.write(f.read())
    r = podkit("fetch", "--store", store + "-z", "--policy", lenient, "--registries-dir", regd,
               registry.docker(f"{repo}:3"))
    assert r.returncode == 3, r.stderr
    assert f"signed for manifest {digest}, not this image's {other_digest}" in r.stderr


def test_podkit_sign_gpg_is_read_by_skopeo(podkit, store, config, registry, images, repo,
                                           gnupg, tmp_path, monkeypatch):
    monkeypatch.setenv("GNUPGHOME", gnupg.home)
    look, regd = _lookaside(tmp_path, registry)
    digest = registry.push_with_skopeo(f"oci:{images['layout']}:tiny", f"{repo}:1")
    dest = registry.docker(f"{repo}:1")
    assert podkit.ok("sign", digest, dest, "--gpg-key", gnupg.signer.fpr,
                     "--registries-dir", regd).strip() == digest
    assert os.path.isfile(f"{look}/{repo}@sha256={digest.split(':')[1]}/signature-1")
    # skopeo accepts it under signedBy, and refuses it with another key
    for keyring, ok in ((gnupg.signer.pub, True), (gnupg.other.pub, False)):
        policy = gpg_policy(tmp_path, f"{registry.addr}/{repo}", keyring, f"p{ok}.json")
        r = registry.skopeo("--policy", policy, "--registries.d", regd, "copy", "-q",
                            *registry.tls_args("src"), dest, f"dir:{tmp_path}/out-{ok}",
                            check=False)
        assert (r.returncode == 0) == ok, r.stderr
    # --lookaside DIR instead of registries.d
    elsewhere = tmp_path / "elsewhere"
    podkit.ok("sign", digest, dest, "--gpg-key", gnupg.signer.fpr, "--lookaside",
              str(elsewhere))
    assert (elsewhere / f"{repo}@sha256={digest.split(':')[1]}" / "signature-1").is_file()
    podkit.fail("sign", digest, dest, "--gpg-key", "NO-SUCH-KEY", "--lookaside",
                str(elsewhere), status=2, match="gpg cannot sign")


def test_sign_and_verify_bad_input(podkit, store, config, registry, images, repo, cosign,
                                   tmp_path, monkeypatch):
    image = podkit.ok("fetch", f"oci:{images['layout']}:tiny").strip()
    before = store_state(store)
    dest = registry.docker(f"{repo}:1")
    podkit.fail("sign", image, "oci:/tmp/x", "--key", cosign.k1 + ".key", status=2,
                match="docker://")
    podkit.fail("sign", image, dest, status=2)  # no key
    podkit.fail("sign", image, dest, "--key", cosign.k1 + ".key", status=4,
                match="push it first: podkit-push")
    monkeypatch.setenv("COSIGN_PASSWORD", "wrong")
    podkit.fail("sign", image, dest, "--key", cosign.k1 + ".key", status=6,
                match="wrong passphrase")
    podkit.fail("sign", "nosuchimage", dest, "--key", cosign.k1 + ".key", status=4)
    podkit.fail("verify", "nosuchimage", status=4, match="nosuchimage")
    podkit.fail("verify", "--policy", str(tmp_path / "none.json"), image, status=4,
                match="does not exist")
    assert store_state(store) == before
    # oci: images are local: accepted by the default policy
    assert podkit.ok("verify", image).strip() == image


# -- appc: .asc over https and the trust store -----------------------------------------------------

@pytest.fixture
def aci_site(ca, gnupg, tmp_path_factory):  # type: ignore[no-untyped-def]
    """An HTTPS site with an ACI (example.com/app:v1) signed by ``signer`` (good), by
    ``other`` (bad), and unsigned."""
    work = str(tmp_path_factory.mktemp("trust-acis"))
    aci = make_aci(work, "example.com/app", "v1")
    path = os.path.join(work, "app.aci")
    with open(path, "wb") as f:
        f.write(aci)

    def asc(who: str) -> bytes:
        return _gpg(gnupg.home, "--local-user", who, "--armor", "--detach-sign", "--output",
                    "-", path)

    tls = ca.issue(ca.certs, stem="trust-site", hosts=("127.0.0.1",))
    site = Site("127.0.0.1", 0, tls)
    site.add("/good.aci", aci)
    site.add("/good.aci.asc", asc(gnupg.signer.fpr))
    site.add("/bad.aci", aci)
    site.add("/bad.aci.asc", asc(gnupg.other.fpr))
    site.add("/none.aci", aci)
    site.aci = aci
    yield site
    site.stop()


def test_podkit_trust_prefix_without_a_terminal(podkit, config, gnupg):
    podkit.fail("trust", "--prefix", "example.com/app", gnupg.signer.asc, status=2,
                match="--skip-fingerprint-review")
    assert not (config / "trustedkeys").exists()
    podkit.fail("trust", gnupg.signer.asc, status=2, match="--root")
    podkit.fail("trust", "--prefix", "https://example.com", gnupg.signer.asc, status=2)
    r = podkit("trust", "--prefix", "example.com/app", gnupg.signer.asc,
               "--skip-fingerprint-review")
    assert r.returncode == 0, r.stderr
    assert r.stdout == gnupg.signer.fpr + "\n"
    assert f"GPG key fingerprint is: {gnupg.signer.fpr}" in r.stderr
    assert "podkit signer <signer@example.com>" in r.stderr
    stored = config / "trustedkeys" / "prefix.d" / "example.com" / "app" / gnupg.signer.fpr.lower()
    assert stored.read_bytes() == open(gnupg.signer.asc, "rb").read()
    out = podkit.ok("trust", "--root", gnupg.other.pub, "--skip-fingerprint-review")
    assert out.strip() == gnupg.other.fpr
    assert (config / "trustedkeys" / "root.d" / gnupg.other.fpr.lower()).is_file()


def test_appc_signatures_over_https(podkit, store, config, ca, aci_site, gnupg, tmp_path):
    cert = ["--cert-dir", ca.cert_dir]
    strict = write_policy(tmp_path / "strict.json", {"default": [{"type": "reject"}]})
    url = aci_site.url("/good.aci")
    # no key trusted for the name yet
    r = podkit.fail("fetch", "--policy", strict, *cert, url, status=3,
                    match="no key is trusted")
    assert "podkit-trust --prefix example.com/app" in r.stderr
    podkit.ok("trust", "--prefix", "example.com", gnupg.signer.asc, "--skip-fingerprint-review")
    image = podkit.ok("fetch", "--policy", strict, *cert, url).strip()
    assert image == "sha512-" + hashlib.sha512(aci_site.aci).hexdigest()
    assert aci_site.count("/good.aci.asc") == 2  # once per fetch
    kept = os.path.join(store, "signatures", "sha512", image[7:])
    assert sorted(os.listdir(kept)) == ["aci.asc", "aci.json"]
    assert podkit.ok("verify", "--policy", strict, image).strip() == image

    before = store_state(store)
    r = podkit.fail("fetch", "--store", store, "--policy", strict, *cert,
                    aci_site.url("/bad.aci"), status=3, store=False)
    assert "not trusted (not in the keyring)" in r.stderr
    r = podkit.fail("fetch", "--store", store, "--policy", strict, *cert,
                    aci_site.url("/none.aci"), status=3, store=False, match="not signed")
    assert "--insecure-options=image" in r.stderr
    assert aci_site.count("/none.aci.asc") == 1
    assert store_state(store) == before
    r = podkit("fetch", "--policy", strict, "--insecure-options=image", *cert,
               aci_site.url("/none.aci"))
    assert r.returncode == 0 and "warning: not verifying" in r.stderr, r.stderr

    # a trusted key for another prefix does not count; root.d keys count for every name
    (config / "trustedkeys" / "prefix.d" / "example.com" /
     gnupg.signer.fpr.lower()).unlink()
    podkit.fail("verify", "--policy", strict, image, status=3, match="no key is trusted")
    podkit.ok("trust", "--prefix", "other.example", gnupg.signer.asc,
              "--skip-fingerprint-review")
    podkit.fail("verify", "--policy", strict, image, status=3, match="no key is trusted")
    podkit.ok("trust", "--root", gnupg.signer.pub, "--skip-fingerprint-review")
    assert podkit.ok("verify", "--policy", strict, image).strip() == image
    # a policy may accept unsigned appc images by name prefix
    lenient = write_policy(tmp_path / "lenient.json", {
        "default": [{"type": "reject"}],
        "transports": {"appc": {"example.com/app": [{"type": "insecureAcceptAnything"}]}}})
    podkit.ok("fetch", "--store", str(tmp_path / "s2"), "--policy", lenient, *cert,
              aci_site.url("/none.aci"), store=False)


def test_appc_signature_deferred_with_202(podkit, config, ca, aci_site, gnupg, tmp_path):
    import gzip

    cert = ["--cert-dir", ca.cert_dir]
    strict = write_policy(tmp_path / "strict.json", {"default": [{"type": "reject"}]})
    podkit.ok("trust", "--prefix", "example.com/app", gnupg.signer.pub,
              "--skip-fingerprint-review")
    # served gzipped: the signature is over the bytes as served
    gz = gzip.compress(aci_site.aci, mtime=0)
    path = tmp_path / "app.aci.gz"
    path.write_bytes(gz)
    asc = _gpg(gnupg.home, "--local-user", gnupg.signer.fpr, "--armor", "--detach-sign",
               "--output", "-", str(path))
    aci_site.add("/later.aci", gz)
    aci_site.add("/later.aci.asc", asc, fail=[202])
    image = podkit.ok("fetch", "--policy", strict, *cert, aci_site.url("/later.aci")).strip()
    assert aci_site.count("/later.aci.asc", 202) == 1
    assert aci_site.count("/later.aci.asc", 200) == 1
    # the compressed bytes are gone: podkit-verify checks that the signer is still trusted
    assert podkit.ok("verify", "--policy", strict, image).strip() == image
    os.unlink(config / "trustedkeys" / "prefix.d" / "example.com" / "app" /
              gnupg.signer.fpr.lower())
    podkit.fail("verify", "--policy", strict, image, status=3, match="no key is trusted")


def test_an_image_picked_from_an_index_is_signed_by_the_index(podkit, store, config, registry,
                                                              registry_images, cosign,
                                                              tmp_path):
    multi = registry_images["multiarch"]
    dest = "docker://" + multi["ref"]
    podkit.ok("sign", multi["digest"], dest, "--key", cosign.k1 + ".key")
    policy = sigstore_policy(tmp_path, f"{registry.addr}/{multi['repo']}", cosign.k1 + ".pub")
    image = podkit.ok("fetch", "--policy", policy, dest).strip()
    assert image != multi["digest"]  # the platform's manifest ...
    kept = os.path.join(store, "signatures", "sha256", multi["digest"].split(":")[1])
    assert os.listdir(kept) == ["signature-1"]  # ... verified through the index's digest
    assert podkit.ok("verify", "--policy", policy, image).strip() == image
    # a signature of the platform's manifest itself counts too
    other = sigstore_policy(tmp_path, f"{registry.addr}/{multi['repo']}", cosign.k2 + ".pub",
                            "k2.json")
    podkit.fail("verify", "--policy", other, image, status=3, match="not verified by")
    podkit.ok("sign", image, dest, "--key", cosign.k2 + ".key")
    assert podkit.ok("verify", "--policy", other, image).strip() == image


def test_keys_by_appc_discovery_then_a_signed_image_by_name(podkit, config, disco, ca, gnupg,
                                                            tmp_path):
    cert = ["--cert-dir", ca.cert_dir]
    name = f"{disco.host}/app"
    labels = host_labels()
    tar = make_aci(str(tmp_path), name, "v1", labels)
    (tmp_path / "app.aci").write_bytes(tar)
    asc = _gpg(gnupg.home, "--local-user", gnupg.signer.fpr, "--armor", "--detach-sign",
               "--output", "-", str(tmp_path / "app.aci"))
    template = f"https://{disco.host}/images/{{name}}-{{version}}-{{os}}-{{arch}}.{{ext}}"
    disco.add("/app", discovery_page(name, template, keys=f"https://{disco.host}/keys.asc"))
    path = f"/images/{name}-v1-{labels['os']}-{labels['arch']}.aci"
    disco.add(path, tar)
    disco.add(path + ".asc", asc)
    disco.add("/keys.asc", open(gnupg.signer.asc, "rb").read())
    strict = write_policy(tmp_path / "strict.json", {"default": [{"type": "reject"}]})
    podkit.fail("fetch", "--policy", strict, *cert, f"appc:{name}:v1", status=3,
                match=f"podkit-trust --prefix {name}")
    r = podkit("trust", "--prefix", name, "--skip-fingerprint-review", *cert)
    assert r.returncode == 0, r.stderr
    assert r.stdout == gnupg.signer.fpr + "\n"
    assert f"https://{disco.host}/keys.asc" in r.stderr
    image = podkit.ok("fetch", "--policy", strict, *cert, f"appc:{name}:v1").strip()
    assert image == "sha512-" + hashlib.sha512(tar).hexdigest()
    assert podkit.ok("verify", "--policy", strict, image).strip() == image
