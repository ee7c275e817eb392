"""Tests for libaci.trust.evaluate: every requirement type, accepted and refused.

sigstore signatures are real (cryptography).  OpenPGP goes through the
``openpgp`` seam: most tests use a transparent fake to exercise the policy
logic, and one test drives real gpg/gpgv through a few-line verifier written
the way stage0 will write it, to prove the seam and gpg_status_fingerprint.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from libaci.errors import TrustError
from libaci.trust import cosignkey, sigstore
from libaci.trust import payload as pl
from libaci.trust import policy as pol
from libaci.trust.errors import InvalidSignatureError
from libaci.trust.evaluate import (
    Evidence,
    KeySource,
    VerifiedSignature,
    decide,
    evaluate,
    key_sources,
)
from libaci.trust.identity import IdentityRule
from libaci.trust.openpgp import OpenPGPVerified, gpg_status_fingerprint
from libaci.trust.scope import ImageName
from libaci.trust.signature import SIGNATURE_ANNOTATION, UntrustedSignature

MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
OTHER_DIGEST = "sha256:" + "0" * 64
REF = "127.0.0.1:5000/test/app:v1"
IMAGE = ImageName.docker(REF)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("keys")
    out: dict[str, Any] = {}
    for name in ("a", "b"):
        key = ec.generate_private_key(ec.SECP256R1())
        pem = cosignkey.public_key_pem(key.public_key())
        (root / f"{name}.pub").write_bytes(pem)
        out[name] = key
        out[f"{name}.pub"] = str(root / f"{name}.pub")
        out[f"{name}.pem"] = pem
    (root / "bad.pub").write_bytes(b"not a key")
    out["bad.pub"] = str(root / "bad.pub")
    out["missing.pub"] = str(root / "missing.pub")
    return out


def sig(key: Any, ref: str = REF, digest: str = DIGEST, **kw: Any) -> UntrustedSignature:
    return sigstore.make_signature(key, ref, digest, creator="test", timestamp=1, **kw)


def sigstore_policy(**fields: Any) -> pol.Policy:
    return pol.Policy(default=(pol.Reject(),), transports={
        "docker": {"127.0.0.1:5000/test": (pol.SigstoreSigned(**fields),)}})


def run(policy: pol.Policy, signatures: Sequence[UntrustedSignature], image: ImageName = IMAGE,
        digest: str = DIGEST, **kw: Any) -> Any:
    return evaluate(policy, image, digest, signatures, **kw)


# --- sigstoreSigned ----------------------------------------------------------------------


def test_sigstore_accepts_a_good_signature(keys: dict[str, Any]) -> None:
    decision = run(sigstore_policy(key_path=keys["a.pub"]), [sig(keys["a"])])
    assert decision and decision.accepted
    fingerprint = cosignkey.key_fingerprint(keys["a"].public_key())
    assert decision.reason == f"sigstore signature by {fingerprint} for {REF}"
    assert decision.scope == 'transports.docker["127.0.0.1:5000/test"]'
    decision.check()


def test_sigstore_refuses_another_key(keys: dict[str, Any]) -> None:
    decision = run(sigstore_policy(key_path=keys["a.pub"]), [sig(keys["b"])])
    assert not decision
    assert decision.reason == (f"signature 1 (new signature): not verified by the key in "
                               f"{keys['a.pub']} (cryptographic signature verification failed)")
    assert isinstance(decision.requirement, pol.SigstoreSigned)
    with pytest.raises(TrustError) as info:
        decision.check()
    assert info.value.exit_status == 3
    assert str(info.value) == (f"docker:{REF} rejected by policy "
                               f'transports.docker["127.0.0.1:5000/test"]: {decision.reason}')


def test_sigstore_refuses_no_signature(keys: dict[str, Any]) -> None:
    decision = run(sigstore_policy(key_path=keys["a.pub"]), [])
    assert not decision
    assert decision.reason == "a sigstore signature is required, but the image has none"


def test_sigstore_refuses_altered_payload_or_signature(keys: dict[str, Any]) -> None:
    good = sig(keys["a"])
    flipped = bytearray(good.blob)
    flipped[20] ^= 0x01
    altered = UntrustedSignature.sigstore(bytes(flipped), dict(good.annotations))
    raw = bytearray(base64.b64decode(good.signature or ""))
    raw[-3] ^= 0x01
    bad_sig = UntrustedSignature.sigstore(
        good.blob, {SIGNATURE_ANNOTATION: base64.b64encode(bytes(raw)).decode()})
    for signature in (altered, bad_sig):
        decision = run(sigstore_policy(key_path=keys["a.pub"]), [signature])
        assert not decision and "verification failed" in decision.reason


def test_sigstore_refuses_digest_and_identity_mismatch(keys: dict[str, Any]) -> None:
    policy = sigstore_policy(key_path=keys["a.pub"])
    decision = run(policy, [sig(keys["a"], digest=OTHER_DIGEST)])
    assert not decision
    assert decision.reason.endswith(f"signed for manifest {OTHER_DIGEST}, not this image's "
                                    f"{DIGEST}")
    decision = run(policy, [sig(keys["a"])], image=ImageName.docker(
        "127.0.0.1:5000/test/app:v2"))
    assert not decision
    assert decision.reason.endswith(f"signed for identity {REF}, which signedIdentity "
                                    "matchRepoDigestOrExact does not accept for "
                                    "127.0.0.1:5000/test/app:v2")
    # a signature copied to another repository is refused the same way
    decision = run(policy, [sig(keys["a"])], image=ImageName.docker(
        "127.0.0.1:5000/test/copy:v1"))
    assert not decision and "does not accept" in decision.reason


def test_signed_identity_variants_through_evaluation(keys: dict[str, Any]) -> None:
    v2 = ImageName.docker("127.0.0.1:5000/test/app:v2")
    by_digest = ImageName.docker(f"127.0.0.1:5000/test/app@{DIGEST}")
    assert run(sigstore_policy(key_path=keys["a.pub"]), [sig(keys["a"])], image=by_digest)
    repo = sigstore_policy(key_path=keys["a.pub"],
                           signed_identity=IdentityRule("matchRepository"))
    assert run(repo, [sig(keys["a"])], image=v2)
    # cosign's own signatures carry no tag: only repository matching accepts them
    untagged = sig(keys["a"], ref="127.0.0.1:5000/test/app")
    assert not run(sigstore_policy(key_path=keys["a.pub"]), [untagged])
    assert run(repo, [untagged])
    exact = sigstore_policy(key_path=keys["a.pub"], signed_identity=IdentityRule(
        "exactReference", docker_reference=REF))
    oci = ImageName.path("oci", "/srv/layout")
    policy = pol.Policy(default=exact.transports["docker"]["127.0.0.1:5000/test"])
    assert run(policy, [sig(keys["a"])], image=oci)
    default_rule = pol.Policy(default=(pol.SigstoreSigned(key_path=keys["a.pub"]),))
    decision = run(default_rule, [sig(keys["a"])], image=oci)
    assert not decision and "needs the image's Docker reference" in decision.reason


def test_one_good_signature_among_bad_ones_is_enough(keys: dict[str, Any]) -> None:
    policy = sigstore_policy(key_path=keys["a.pub"])
    assert run(policy, [sig(keys["b"]), sig(keys["a"], digest=OTHER_DIGEST), sig(keys["a"])])
    decision = run(policy, [sig(keys["b"]), sig(keys["a"], digest=OTHER_DIGEST)])
    assert not decision
    assert decision.reason.startswith("none of the 2 signatures is accepted: signature 1 ")
    assert "; signature 2 (new signature): signed for manifest" in decision.reason


def test_key_sources_variants(keys: dict[str, Any]) -> None:
    good = [sig(keys["a"])]
    assert run(sigstore_policy(key_data=keys["a.pem"]), good)
    assert run(sigstore_policy(key_paths=(keys["b.pub"], keys["a.pub"])), good)
    assert run(sigstore_policy(key_datas=(keys["b.pem"], keys["a.pem"])), good)
    assert not run(sigstore_policy(key_datas=(keys["b.pem"],)), good)
    decision = run(sigstore_policy(key_path=keys["missing.pub"]), good)
    assert not decision and decision.reason == (
        f"sigstoreSigned the key in {keys['missing.pub']}: key file {keys['missing.pub']} "
        "does not exist")
    decision = run(sigstore_policy(key_path=keys["bad.pub"]), good)
    assert not decision and "no PEM 'PUBLIC KEY' block found" in decision.reason


def test_invalid_payloads_are_refused_after_verification(keys: dict[str, Any]) -> None:
    atomic = pl.build_payload(REF, DIGEST, signature_type=pl.ATOMIC_SIGNATURE_TYPE)
    signature = UntrustedSignature.sigstore(
        atomic, {SIGNATURE_ANNOTATION: sigstore.sign_payload(keys["a"], atomic)})
    decision = run(sigstore_policy(key_path=keys["a.pub"]), [signature])
    assert not decision and "unrecognized signature type" in decision.reason
    other = UntrustedSignature.sigstore(b"{}", {}, media_type="application/x-sbom")
    decision = run(sigstore_policy(key_path=keys["a.pub"]), [other])
    assert decision.reason == ("a sigstore signature is required, but the image has none "
                               "(1 other signature ignored)")


def test_unsupported_sigstore_forms_reject(keys: dict[str, Any]) -> None:
    fulcio = sigstore_policy(fulcio={"caPath": "/ca"}, rekor={"rekorPublicKeyPath": "/r"})
    assert "fulcio" in run(fulcio, [sig(keys["a"])]).reason
    rekor = sigstore_policy(key_path=keys["a.pub"], rekor={"rekorPublicKeyPath": "/r"})
    assert "Rekor" in run(rekor, [sig(keys["a"])]).reason
    pki = sigstore_policy(pki={"caRootsPath": "/r"})
    assert "pki" in run(pki, [sig(keys["a"])]).reason


def test_digest_in_another_algorithm_needs_the_manifest(keys: dict[str, Any]) -> None:
    sha512 = "sha512:" + hashlib.sha512(MANIFEST).hexdigest()
    policy = sigstore_policy(key_path=keys["a.pub"])
    assert not run(policy, [sig(keys["a"], digest=sha512)])
    assert run(policy, [sig(keys["a"], digest=sha512)], manifest=MANIFEST)
    assert not run(policy, [sig(keys["a"], digest=sha512)], manifest=MANIFEST + b" ")


# --- simple requirement types -------------------------------------------------------------


def _no_io(path: str) -> bytes:
    raise AssertionError(f"read {path}")


def test_insecure_accept_anything_and_reject(keys: dict[str, Any]) -> None:
    accept = pol.Policy(default=(pol.InsecureAcceptAnything(),))
    decision = run(accept, [], read_file=_no_io)
    assert decision and decision.reason == "insecureAcceptAnything"
    assert decision.scope == "default"
    assert run(accept, [sig(keys["b"])], read_file=_no_io)
    decision = run(pol.Policy(default=(pol.Reject(),)), [sig(keys["a"])], read_file=_no_io)
    assert not decision and "type reject" in decision.reason


def test_all_requirements_must_pass(keys: dict[str, Any]) -> None:
    both = pol.Policy(default=(pol.InsecureAcceptAnything(), pol.Reject()))
    assert not run(both, [])
    two_keys = pol.Policy(default=(pol.SigstoreSigned(key_path=keys["a.pub"]),
                                   pol.SigstoreSigned(key_path=keys["b.pub"])))
    assert not run(two_keys, [sig(keys["a"])])
    assert run(two_keys, [sig(keys["a"]), sig(keys["b"])])


def test_signed_base_layer_rejects() -> None:
    policy = pol.Policy(default=(pol.SignedBaseLayer(IdentityRule("matchRepository")),))
    decision = run(policy, [])
    assert not decision and "signedBaseLayer is not implemented" in decision.reason


def test_empty_requirements_reject() -> None:
    assert not decide((), IMAGE, DIGEST, Evidence())


def test_local_images_use_the_builtin_scope() -> None:
    policy = pol.Policy(default=(pol.Reject(),))
    decision = evaluate(policy, ImageName.local("localhost/built:1"), DIGEST, [])
    assert decision and decision.scope.startswith("built-in podkit scope")


# --- signedBy through the OpenPGP seam -------------------------------------------------------


def fake_message(fingerprint: str, payload: bytes) -> bytes:
    """A stand-in 'OpenPGP message': first byte as gpg's, then the signer and the payload."""
    return b"\xa3" + fingerprint.encode() + b"\n" + payload


def fake_openpgp(message: bytes, keyrings: Sequence[bytes]) -> OpenPGPVerified:
    fingerprint, _, content = message[1:].partition(b"\n")
    if not any(fingerprint in ring.split() for ring in keyrings):
        raise InvalidSignatureError(f"OpenPGP signature refused: key {fingerprint.decode()} "
                                    "is not in the keyring")
    return OpenPGPVerified(content=content, fingerprint=fingerprint.decode())


def gpg_sig(fingerprint: str = "AAAA", ref: str = REF, digest: str = DIGEST) -> UntrustedSignature:
    payload = pl.build_payload(ref, digest, signature_type=pl.ATOMIC_SIGNATURE_TYPE)
    return UntrustedSignature.simple(fake_message(fingerprint, payload), origin="lookaside")


SIGNED_BY = pol.Policy(default=(pol.SignedBy(key_data=b"AAAA CCCC"),))


def test_signed_by_accepts_and_refuses() -> None:
    decision = run(SIGNED_BY, [gpg_sig()], openpgp=fake_openpgp)
    assert decision and decision.reason == f"simple-signing signature by AAAA for {REF}"
    decision = run(SIGNED_BY, [gpg_sig("BBBB")], openpgp=fake_openpgp)
    assert not decision and decision.reason == (
        "signature 1 (lookaside): not verified by the key in keyData (OpenPGP signature "
        "refused: key BBBB is not in the keyring)")
    assert not run(SIGNED_BY, [gpg_sig(digest=OTHER_DIGEST)], openpgp=fake_openpgp)
    assert not run(SIGNED_BY, [gpg_sig(ref="127.0.0.1:5000/test/app:v2")], openpgp=fake_openpgp)
    sigstore_payload = pl.build_payload(REF, DIGEST)
    wrong_type = UntrustedSignature.simple(fake_message("AAAA", sigstore_payload))
    decision = run(SIGNED_BY, [wrong_type], openpgp=fake_openpgp)
    assert not decision and "unrecognized signature type" in decision.reason


def test_signed_by_needs_the_verifier_and_a_simple_signature(keys: dict[str, Any]) -> None:
    decision = run(SIGNED_BY, [gpg_sig()])
    assert not decision and "no OpenPGP verifier (gpgv)" in decision.reason
    decision = run(SIGNED_BY, [sig(keys["a"])], openpgp=fake_openpgp)
    assert decision.reason == ("a OpenPGP simple-signing signature is required, but the image "
                               "has none (1 other signature ignored)")
    x509 = pol.Policy(default=(pol.SignedBy(key_type="X509Certificates", key_path="/x"),))
    assert "keyType X509Certificates is not implemented" in run(x509, [gpg_sig()]).reason


def test_signed_by_key_paths_are_one_keyring(tmp_path: Path) -> None:
    (tmp_path / "one").write_bytes(b"CCCC")
    (tmp_path / "two").write_bytes(b"AAAA")
    policy = pol.Policy(default=(pol.SignedBy(key_paths=(str(tmp_path / "one"),
                                                         str(tmp_path / "two"))),))
    assert run(policy, [gpg_sig()], openpgp=fake_openpgp)
    lonely = pol.Policy(default=(pol.SignedBy(key_paths=()),))
    decision = run(lonely, [gpg_sig()], openpgp=fake_openpgp)
    assert not decision and "lists no keys" in decision.reason


def test_decide_is_pure_over_facts() -> None:
    """The decision needs only facts: no keys are read, no signature is checked."""
    requirement = pol.SignedBy(key_path="/etc/keys/ring.gpg")
    source = KeySource.of(requirement)
    assert source is not None and key_sources([requirement, requirement]) == [source]
    fact = VerifiedSignature(kind="simple-signing", origin="signature 1",
                             verified_by=frozenset({source.id}), key="FPR",
                             docker_reference=REF, manifest_digest=DIGEST)
    assert decide([requirement], IMAGE, DIGEST, Evidence(signatures=(fact,)))
    unverified = VerifiedSignature(kind="simple-signing", origin="signature 1",
                                   failures={source.id: "bad signature"})
    decision = decide([requirement], IMAGE, DIGEST, Evidence(signatures=(unverified,)))
    assert decision.reason == ("signature 1: not verified by the key in /etc/keys/ring.gpg "
                               "(bad signature)")
    broken = Evidence(signatures=(fact,), key_problems={source.id: "unreadable"})
    assert decide([requirement], IMAGE, DIGEST, broken).reason.endswith(": unreadable")


# --- the seam with real gpg -------------------------------------------------------------------


def gpgv_verifier(workdir: Path):  # type: ignore[no-untyped-def]
    """What stage0 does: a keyring from the trusted keys, gpgv, the status parsed by libaci."""

    def verify(message: bytes, keyrings: Sequence[bytes]) -> OpenPGPVerified:
        ring = workdir / "ring.gpg"
        with open(ring, "wb") as f:
            for data in keyrings:
                if data.lstrip().startswith(b"-----BEGIN PGP"):
                    data = subprocess.run(["gpg", "--dearmor"], input=data, check=True,
                                          capture_output=True).stdout
                f.write(data)
        (workdir / "msg").write_bytes(message)
        out = workdir / "out"
        if out.exists():
            out.unlink()
        status = subprocess.run(["gpgv", "--status-fd", "1", "--keyring", str(ring),
                                 "--output", str(out), str(workdir / "msg")],
                                capture_output=True, env={"PATH": os.environ["PATH"],
                                                          "GNUPGHOME": str(workdir)}).stdout
        fingerprint = gpg_status_fingerprint(status)
        return OpenPGPVerified(content=out.read_bytes(), fingerprint=fingerprint)

    return verify


def gpg(home: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["gpg", "--batch", "--homedir", str(home), *args], input=data,
                          check=True, capture_output=True).stdout


@pytest.fixture
def gpg_homes(tmp_path: Path):  # type: ignore[no-untyped-def]
    """GNUPGHOMEs made by the test; their gpg-agents are stopped afterwards."""
    homes: dict[str, Path] = {}
    yield homes
    for home in homes.values():
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       check=False, capture_output=True)


def test_signed_by_with_real_gpg(tmp_path: Path, gpg_homes: dict[str, Path]) -> None:
    assert shutil.which("gpg") and shutil.which("gpgv"), "gnupg is installed by install.sh"
    homes = gpg_homes
    for name in ("signer", "stranger"):
        home = tmp_path / name
        home.mkdir(mode=0o700)
        gpg(home, "--passphrase", "", "--quick-gen-key", f"{name} <{name}@example.com>",
            "ed25519", "sign", "never")
        (tmp_path / f"{name}.gpg").write_bytes(gpg(home, "--export"))
        (tmp_path / f"{name}.asc").write_bytes(gpg(home, "--armor", "--export"))
        homes[name] = home
    payload = pl.build_payload(REF, DIGEST, signature_type=pl.ATOMIC_SIGNATURE_TYPE,
                               creator="podkit test", timestamp=1)
    message = gpg(homes["signer"], "--sign", data=payload)
    signature = UntrustedSignature.simple(message)
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    verifier = gpgv_verifier(work)

    for ring in ("signer.gpg", "signer.asc"):
        policy = pol.Policy(default=(pol.SignedBy(key_path=str(tmp_path / ring)),))
        decision = run(policy, [signature], openpgp=verifier)
        assert decision, decision.reason
    policy = pol.Policy(default=(pol.SignedBy(key_path=str(tmp_path / "stranger.gpg")),))
    decision = run(policy, [signature], openpgp=verifier)
    assert not decision and "the signing key is not trusted" in decision.reason
    altered = bytearray(message)
    altered[len(altered) // 2] ^= 0x01
    good_ring = pol.Policy(default=(pol.SignedBy(key_path=str(tmp_path / "signer.gpg")),))
    assert not run(good_ring, [UntrustedSignature.simple(bytes(altered))], openpgp=verifier)
    assert not run(good_ring, [signature], openpgp=verifier,
                   image=ImageName.docker("127.0.0.1:5000/test/app:v2"))


def test_unsigned_paths_import_no_crypto() -> None:
    """podkit-run evaluates the policy on its hot path: no cryptography, PyNaCl or YAML."""
    import sys

    code = (
        "import sys\n"
        "from libaci.trust import evaluate, policy, scope, lookaside, sigstore, cosignkey\n"
        "p = policy.parse_policy(b'{\"default\":[{\"type\":\"insecureAcceptAnything\"}],"
        "\"transports\":{\"docker\":{\"q.io\":[{\"type\":\"reject\"}]}}}')\n"
        "assert evaluate.evaluate(p, scope.ImageName.docker('busybox'), 'sha256:' + 'a' * 64, [])\n"
        "assert not evaluate.evaluate(p, scope.ImageName.docker('q.io/x'), 'sha256:' + 'a' * 64,"
        " [])\n"
        "print(sorted(m for m in ('cryptography', 'nacl', 'yaml', 'jsonschema', 'requests')"
        " if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
