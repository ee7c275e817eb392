"""The registry fixtures themselves (tests/regkit.py), with skopeo as the client."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import time

import pytest
import regkit
import requests

pytestmark = pytest.mark.integration


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_kinds(raw: bytes) -> list[str]:
    return [ly["mediaType"] for ly in json.loads(raw)["layers"]]


# --- plain registry ---------------------------------------------------------------------

def test_plain_registry_answers(registry):
    assert re.fullmatch(r"127\.0\.0\.1:\d+", registry.addr)
    assert registry.url == f"http://{registry.addr}"
    assert registry.startup_seconds < 2
    r = requests.get(registry.url + "/v2/", timeout=5)
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert registry.count("GET", r"^/v2/$", status=200) >= 1
    assert os.path.exists(registry.log_file)


def test_registry_starts_fast_and_stops_by_pid(tmp_path):
    reg = regkit.Registry(str(tmp_path / "r"))
    t0 = time.monotonic()
    reg.start()
    assert time.monotonic() - t0 < 2
    pid = reg.proc.pid
    assert os.path.exists(f"/proc/{pid}")
    reg.stop()
    assert not os.path.exists(f"/proc/{pid}")
    assert not reg.running
    reg.stop()  # idempotent


def test_registry_images(registry, registry_images, images):
    assert set(registry_images) == {"tiny", "multi", "multi-docker", "multi-plain",
                                    "multi-zstd", "multiarch"}
    raws = {}
    for name, info in registry_images.items():
        assert info["ref"] == f"{registry.addr}/test/{name}:1"
        raw = registry.inspect_raw(f"test/{name}:1")
        assert sha(raw) == info["digest"], name
        raws[name] = raw
    # pushed byte for byte from the layout (--preserve-digests), except the conversion
    with open(os.path.join(images["layout"], "index.json")) as f:
        layout = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
                  for m in json.load(f)["manifests"]}
    for name in ("tiny", "multi", "multi-plain", "multi-zstd", "multiarch"):
        assert registry_images[name]["digest"] == layout[name], name
    assert json.loads(raws["multi-docker"])["mediaType"] == regkit.DOCKER_MANIFEST
    assert layer_kinds(raws["multi-docker"]) == [
        "application/vnd.docker.image.rootfs.diff.tar.gzip"] * 3
    assert layer_kinds(raws["multi"]) == ["application/vnd.oci.image.layer.v1.tar+gzip"] * 3
    assert layer_kinds(raws["multi-plain"]) == ["application/vnd.oci.image.layer.v1.tar"] * 3
    assert layer_kinds(raws["multi-zstd"]) == ["application/vnd.oci.image.layer.v1.tar+zstd"] * 3
    index = json.loads(raws["multiarch"])
    assert index["mediaType"] == regkit.OCI_INDEX
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    for m in index["manifests"]:  # --all pushed the children too
        r = registry.manifest("test/multiarch", m["digest"])
        assert r.status_code == 200 and sha(r.content) == m["digest"]


def test_pull_back_with_skopeo(registry, registry_images, tmp_path):
    dest = f"oci:{tmp_path}/out:x"
    registry.pull_with_skopeo("test/multi:1", dest)
    with open(tmp_path / "out" / "index.json") as f:
        assert json.load(f)["manifests"][0]["digest"] == registry_images["multi"]["digest"]


def test_access_log_counts_uploads(registry, repo):
    blob = os.urandom(1000)
    digest = sha(blob)
    mark = registry.mark()
    r = registry.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202
    r = registry.request("PATCH", r.headers["Location"], data=blob,
                         headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202
    sep = "&" if "?" in r.headers["Location"] else "?"
    r = registry.request("PUT", f"{r.headers['Location']}{sep}digest={digest}")
    assert r.status_code == 201
    log = registry.access_log(since=mark)
    assert [(ln.method, ln.status) for ln in log] == [("POST", 202), ("PATCH", 202),
                                                      ("PUT", 201)]
    assert log[1].path.startswith(f"/v2/{repo}/blobs/uploads/")
    assert "_state=" in log[1].uri
    assert registry.count("PATCH", rf"^/v2/{repo}/blobs/uploads/", since=mark) == 1
    assert registry.count("PUT", rf"^/v2/{repo}/blobs/uploads/.*digest=", since=mark) == 1
    assert registry.count("PUT", rf"^/v2/{repo}/", since=mark, status=400) == 0


def test_unchanged_push_uploads_nothing(registry, images, repo):
    src = f"oci:{images['layout']}:tiny"
    first = registry.push_with_skopeo(src, f"{repo}:1")
    assert registry.count("PUT", rf"^/v2/{repo}/manifests/1$", status=201) == 1
    mark = registry.mark()
    again = registry.push_with_skopeo(src, f"{repo}:1")
    assert again == first
    assert registry.count("HEAD", rf"^/v2/{repo}/blobs/", since=mark, status=200) >= 2
    assert registry.count("POST", rf"^/v2/{repo}/blobs/uploads/", since=mark) == 0
    assert registry.count("PATCH", r"/blobs/uploads/", since=mark) == 0
    assert registry.count("PUT", r"/v2/.*/blobs/uploads/", since=mark) == 0
    assert registry.count("PUT", rf"^/v2/{repo}/manifests/1$", since=mark) == 1


def test_repo_fixture_is_unique(repo, request):
    assert re.fullmatch(r"test/[a-z0-9]+(?:-[a-z0-9]+)*-\d+", repo)
    assert regkit.unique_repo(request.node.name) != repo


# --- TLS + htpasswd -----------------------------------------------------------------------

def test_tls_registry_with_creds_and_cert_dir(tls_registry, images, repo):
    reg = tls_registry
    assert reg.url == f"https://{reg.addr}"
    assert (reg.user, reg.password) == ("alice", "wonderland")
    assert os.path.exists(os.path.join(reg.cert_dir, "ca.crt"))
    with open(reg.ca_file) as f:
        assert f.read().startswith("-----BEGIN CERTIFICATE-----")
    digest = reg.push_with_skopeo(f"oci:{images['layout']}:tiny", f"{repo}:1")
    out = reg.skopeo("inspect", "--cert-dir", reg.cert_dir, "--creds", "alice:wonderland",
                     reg.docker(f"{repo}:1")).stdout
    assert json.loads(out)["Digest"] == digest
    # requests, verifying against the CA; the certificate names localhost too
    r = requests.get(f"https://localhost:{reg.port}/v2/", verify=reg.ca_file,
                     auth=("alice", "wonderland"), timeout=5)
    assert r.status_code == 200
    assert reg.manifest(repo, "1", creds=True).status_code == 200


def test_tls_registry_refuses_bad_creds_and_unknown_ca(tls_registry, images, repo):
    reg = tls_registry
    reg.push_with_skopeo(f"oci:{images['layout']}:tiny", f"{repo}:1")
    target = reg.docker(f"{repo}:1")
    wrong = reg.skopeo("inspect", "--raw", "--cert-dir", reg.cert_dir,
                       "--creds", "alice:queen-of-hearts", target, check=False)
    assert wrong.returncode != 0
    assert re.search(r"unauthorized|authentication required", wrong.stderr, re.I)
    anon = reg.skopeo("inspect", "--raw", "--cert-dir", reg.cert_dir, "--no-creds", target,
                      check=False)
    assert anon.returncode != 0
    no_ca = reg.skopeo("inspect", "--raw", "--creds", "alice:wonderland", target, check=False)
    assert no_ca.returncode != 0 and "x509" in no_ca.stderr
    r = reg.request("GET", "/v2/")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic ")
    assert reg.request("GET", "/v2/", creds="alice:nope").status_code == 401


# --- token auth ---------------------------------------------------------------------------

def test_token_key_id_format(token_registry):
    kid = token_registry.token.key_id
    assert re.fullmatch(r"[A-Z2-7]{4}(?::[A-Z2-7]{4}){11}", kid)


def test_token_registry_anonymous_pull_push_needs_alice(token_registry, images, repo):
    reg, tok = token_registry, token_registry.token
    src = f"oci:{images['layout']}:tiny"
    n = len(tok.requests)
    anon = reg.skopeo("copy", "--dest-tls-verify=false", "--dest-no-creds", src,
                      reg.docker(f"{repo}:1"), check=False)
    assert anon.returncode != 0
    assert re.search(r"unauthorized|authentication required|denied", anon.stderr, re.I)
    assert tok.requests[n]["credentials"] is False
    assert all(a["actions"] == ["pull"] for r in tok.requests[n:] for a in r["access"])

    n = len(tok.requests)
    digest = reg.push_with_skopeo(src, f"{repo}:1")
    pushes = [r for r in tok.requests[n:] if f"repository:{repo}:pull,push" in r["scopes"]]
    assert pushes and all(r["user"] == "alice" and r["credentials"] for r in pushes)
    assert pushes[0]["access"] == [{"type": "repository", "name": repo,
                                    "actions": ["pull", "push"]}]

    n = len(tok.requests)
    raw = reg.inspect_raw(f"{repo}:1", creds=False)
    assert sha(raw) == digest
    assert any(r["user"] is None and r["scopes"] == [f"repository:{repo}:pull"]
               for r in tok.requests[n:])
    assert reg.count("GET", r"^/v2/$", status=401) >= 1


def test_token_dance_with_requests(token_registry, images, repo):
    reg, tok = token_registry, token_registry.token
    digest = reg.push_with_skopeo(f"oci:{images['layout']}:tiny", f"{repo}:1")
    r = requests.get(f"{reg.url}/v2/{repo}/manifests/1", timeout=5,
                     headers={"Accept": regkit.ACCEPT_ALL})
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    assert params == {"realm": tok.realm, "service": tok.service,
                      "scope": f"repository:{repo}:pull"}
    t = requests.get(params["realm"], params={"service": params["service"],
                                              "scope": params["scope"]}, timeout=5)
    assert t.status_code == 200
    body = t.json()
    assert body["token"] == body["access_token"] and body["expires_in"] == 300
    assert "issued_at" in body
    header = json.loads(regkit.base64.urlsafe_b64decode(body["token"].split(".")[0] + "=="))
    assert header == {"typ": "JWT", "alg": "ES256", "kid": tok.key_id}
    r = requests.get(f"{reg.url}/v2/{repo}/manifests/1", timeout=5,
                     headers={"Accept": regkit.ACCEPT_ALL,
                              "Authorization": f"Bearer {body['token']}"})
    assert r.status_code == 200 and sha(r.content) == digest
    # the same flow through the helper; anonymous push is refused, alice may push
    assert reg.manifest(repo, "1").status_code == 200
    assert reg.request("POST", f"/v2/{repo}/blobs/uploads/").status_code == 401
    assert reg.request("POST", f"/v2/{repo}/blobs/uploads/", creds=True).status_code == 202
    # tokens for another audience, or with wrong credentials, are refused
    bad = tok.issue("alice", [{"type": "repository", "name": repo, "actions": ["pull"]}],
                    audience="someone-else")
    r = requests.get(f"{reg.url}/v2/{repo}/manifests/1", timeout=5,
                     headers={"Accept": regkit.ACCEPT_ALL, "Authorization": f"Bearer {bad}"})
    assert r.status_code == 401
    n = len(tok.requests)
    r = reg.manifest(repo, "1", creds="alice:nope")
    assert r.status_code == 401
    assert tok.requests[n]["status"] == 401 and tok.requests[n]["credentials"]


def test_token_registry_wrong_password(token_registry, images, repo):
    reg = token_registry
    reg.push_with_skopeo(f"oci:{images['layout']}:tiny", f"{repo}:1")
    r = reg.skopeo("inspect", "--raw", "--tls-verify=false", "--creds", "alice:nope",
                   reg.docker(f"{repo}:1"), check=False)
    assert r.returncode != 0
    assert re.search(r"unauthorized|invalid username/password", r.stderr, re.I)


# --- fault server -------------------------------------------------------------------------

def skopeo_copy(fs, ref, tmp_path, name="out"):
    return fs.skopeo("copy", "--src-tls-verify=false", fs.docker(ref),
                     f"oci:{tmp_path}/{name}:x", check=False)


def test_fault_server_passes_through(fault_server, registry_images, tmp_path):
    fs = fault_server
    raw = fs.inspect_raw("test/multi:1")
    assert sha(raw) == registry_images["multi"]["digest"]
    assert skopeo_copy(fs, "test/multi:1", tmp_path).returncode == 0
    assert fs.count("GET", r"^/v2/test/multi/blobs/sha256:") == 4  # config + 3 layers
    assert all(r.fault is None for r in fs.requests)
    # a push goes through the proxy too (upload Locations point back at it)
    fs.reset()
    fs.push_with_skopeo(f"oci:{tmp_path}/out:x", "test/via-proxy:1")
    assert fs.count("PUT", r"^/v2/test/via-proxy/manifests/1$") == 1


def test_fault_corrupt_blob(fault_server, registry_images, tmp_path):
    fs = fault_server
    layer = json.loads(fs.inspect_raw("test/tiny:1"))["layers"][0]["digest"]
    fs.corrupt_blob(layer)
    r = requests.get(f"{fs.url}/v2/test/tiny/blobs/{layer}", timeout=10)
    assert r.status_code == 200 and sha(r.content) != layer
    assert r.headers["Docker-Content-Digest"] == layer
    proc = skopeo_copy(fs, "test/tiny:1", tmp_path)
    assert proc.returncode != 0 and "Digest did not match" in proc.stderr
    assert fs.count("GET", re.escape(layer), fault="corrupt_blob") == 2


def test_fault_truncate(fault_server, registry_images, tmp_path):
    fs = fault_server
    layer = json.loads(fs.inspect_raw("test/tiny:1"))["layers"][0]["digest"]
    fs.truncate(re.escape(layer) + "$", 1000)
    conn = http.client.HTTPConnection(fs.host, fs.port, timeout=10)
    conn.request("GET", f"/v2/test/tiny/blobs/{layer}")
    resp = conn.getresponse()
    assert resp.status == 200 and int(resp.headers["Content-Length"]) > 1000
    with pytest.raises(http.client.IncompleteRead) as exc:
        resp.read()
    assert len(exc.value.partial) == 1000
    conn.close()
    proc = skopeo_copy(fs, "test/tiny:1", tmp_path)
    assert proc.returncode != 0 and "unexpected EOF" in proc.stderr


def test_fault_status_then_recover(fault_server, registry_images):
    fs = fault_server
    fs.status(r"/manifests/1$", 503, times=2, headers={"Retry-After": "0"})
    codes = [fs.manifest("test/tiny", "1").status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    fs.status(r"/manifests/1$", 500, times=1)
    proc = fs.skopeo("inspect", "--raw", "--tls-verify=false", fs.docker("test/tiny:1"),
                     check=False)
    assert proc.returncode != 0 and "500" in proc.stderr
    assert sha(fs.inspect_raw("test/tiny:1")) == registry_images["tiny"]["digest"]
    assert fs.count("GET", r"/manifests/1$", fault="status") == 3


def test_fault_wrong_manifest(fault_server, registry_images, tmp_path):
    fs = fault_server
    digest = registry_images["multi"]["digest"]
    fs.wrong_manifest("test/multi:1")
    for ref in ("1", digest):
        r = fs.manifest("test/multi", ref)
        assert r.status_code == 200
        assert r.headers["Docker-Content-Digest"] == digest
        assert sha(r.content) != digest
        assert json.loads(r.content)["layers"]  # still a valid manifest
    # HEAD is left alone
    r = requests.head(f"{fs.url}/v2/test/multi/manifests/1", timeout=5,
                      headers={"Accept": regkit.ACCEPT_ALL})
    assert r.headers["Docker-Content-Digest"] == digest
    proc = skopeo_copy(fs, f"test/multi@{digest}", tmp_path)
    assert proc.returncode != 0
    assert "Manifest does not match provided manifest digest" in proc.stderr


def test_fault_wrong_manifest_other(fault_server, registry, registry_images, images, repo):
    fs = fault_server
    tiny = registry.push_with_skopeo(f"oci:{images['layout']}:tiny", f"{repo}:tiny",
                                     "--preserve-digests")
    multi = registry.push_with_skopeo(f"oci:{images['layout']}:multi", f"{repo}:multi",
                                      "--preserve-digests")
    fs.wrong_manifest(f"{repo}:tiny", other="multi")
    r = fs.manifest(repo, "tiny")
    assert sha(r.content) == multi and r.headers["Docker-Content-Digest"] == tiny


def test_fault_huge_and_malformed_manifest(fault_server, registry_images):
    fs = fault_server
    size = 5 << 20
    fs.huge_manifest("test/tiny:1", size)
    r = fs.manifest("test/tiny", "1")
    assert len(r.content) == size == int(r.headers["Content-Length"])
    assert sha(r.content) == r.headers["Docker-Content-Digest"]
    assert json.loads(r.content)["layers"]
    proc = fs.skopeo("inspect", "--raw", "--tls-verify=false", fs.docker("test/tiny:1"),
                     check=False)
    assert proc.returncode != 0 and "exceeded maximum allowed size" in proc.stderr
    fs.reset()
    fs.malformed_json("test/tiny:1")
    r = fs.manifest("test/tiny", "1")
    with pytest.raises(ValueError):
        json.loads(r.content)
    assert sha(r.content) == r.headers["Docker-Content-Digest"]
    proc = fs.skopeo("inspect", "--tls-verify=false", fs.docker("test/tiny:1"), check=False)
    assert proc.returncode != 0 and "JSON" in proc.stderr
    # other repositories are not affected
    assert fs.manifest("test/multi", "1").status_code == 200


def test_fault_redirect_loop_and_delay(fault_server, registry_images):
    fs = fault_server
    fs.redirect_loop(r"/manifests/1$")
    with pytest.raises(requests.TooManyRedirects):
        fs.request("GET", "/v2/test/tiny/manifests/1", allow_redirects=True,
                   headers={"Accept": regkit.ACCEPT_ALL})
    proc = fs.skopeo("inspect", "--raw", "--tls-verify=false", fs.docker("test/tiny:1"),
                     check=False)
    assert proc.returncode != 0 and "redirects" in proc.stderr
    fs.reset()
    fs.delay(r"/manifests/1$", 0.4, times=1)
    t0 = time.monotonic()
    assert fs.manifest("test/tiny", "1").status_code == 200
    assert time.monotonic() - t0 >= 0.4
    assert [(r.method, r.path, r.status) for r in fs.requests] == [
        ("GET", "/v2/test/tiny/manifests/1", 200)]
