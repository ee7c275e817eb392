"""podkit-fetch and podkit-push against Debian's docker-registry (distribution 2.8)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from helpers import diff_trees, snapshot, store_state, umoci_rootfs


def fetch(podkit, ref: str, *extra: str) -> str:
    out = podkit.ok("fetch", ref, *extra).split()
    assert len(out) == 1
    return out[0]


@pytest.mark.parametrize("name", ["tiny", "multi", "multi-docker", "multi-plain"])
def test_fetch_renders_like_skopeo_and_umoci(podkit, registry, registry_images, tmp_path,
                                             name):
    img = registry_images[name]
    image_id = fetch(podkit, f"docker://{img['ref']}")
    assert image_id == img["digest"]
    podkit.ok("render", image_id, str(tmp_path / "ours"))
    # the oracle: skopeo copies the same image into a layout, umoci unpacks it
    layout = tmp_path / "layout"
    registry.pull_with_skopeo(img["ref"].split("/", 1)[1], f"oci:{layout}:x")
    theirs = umoci_rootfs(str(layout), "x", str(tmp_path / "umoci"))
    assert diff_trees(snapshot(theirs), snapshot(str(tmp_path / "ours"))) == []


def test_fetch_zstd_and_bare_reference(podkit, registry_images, tmp_path, images):
    img = registry_images["multi-zstd"]
    image_id = fetch(podkit, img["ref"])  # a bare reference, as docker pull takes it
    assert image_id == img["digest"]
    doc = json.loads(podkit.ok("inspect", img["ref"]))
    assert {x["MediaType"] for x in doc["Layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"}
    podkit.ok("render", image_id, str(tmp_path / "z"))
    theirs = umoci_rootfs(images["layout"], "multi", str(tmp_path / "umoci"))
    assert diff_trees(snapshot(theirs), snapshot(str(tmp_path / "z"))) == []


def test_fetch_multiarch_index(podkit, registry_images):
    img = registry_images["multiarch"]
    amd = fetch(podkit, f"docker://{img['ref']}")
    assert amd == registry_images["multi"]["digest"]
    arm = fetch(podkit, f"docker://{img['ref']}", "--arch", "arm64", "--name", "arm:1")
    assert json.loads(podkit.ok("inspect", arm))["Platform"]["architecture"] == "arm64"
    assert json.loads(podkit.ok("inspect", arm))["Index"] == img["digest"]


def test_fetch_by_digest_and_pull_policies(podkit, registry, registry_images):
    img = registry_images["tiny"]
    by_digest = f"docker://{registry.addr}/{img['repo']}@{img['digest']}"
    podkit.fail("fetch", f"docker://{img['ref']}", "--pull-policy", "never", status=4,
                match="--pull-policy=never")
    assert fetch(podkit, by_digest) == img["digest"]
    mark = registry.mark()
    assert fetch(podkit, f"docker://{img['ref']}") == img["digest"]  # update: asks
    log = registry.access_log(mark)
    assert any(x.method == "GET" and "/manifests/" in x.path for x in log)
    assert not any("/blobs/" in x.path and x.method == "GET" for x in log)  # all in store
    mark = registry.mark()
    assert fetch(podkit, f"docker://{img['ref']}", "--pull-policy", "new") == img["digest"]
    assert registry.access_log(mark) == []  # in the store: no request at all


def test_fetch_missing_image_and_refused_registry(podkit, registry, store):
    podkit.fail("fetch", f"docker://{registry.addr}/test/nonexistent:1", status=4,
                match="not found")
    podkit.fail("fetch", "docker://127.0.0.1:1/test/x:1", status=1, match="127.0.0.1:1")
    assert store_state(store) in ({},) or not os.listdir(os.path.join(store, "blobs/sha256"))


def test_push_round_trip_skip_and_mount(podkit, registry, registry_images, repo):
    image_id = fetch(podkit, f"docker://{registry_images['multi']['ref']}")
    mark = registry.mark()
    out = podkit.ok("push", image_id, f"docker://{registry.addr}/{repo}:1")
    assert out.strip() == image_id
    raw = registry.inspect_raw(f"{repo}:1")
    assert "sha256:" + __import__("hashlib").sha256(raw).hexdigest() == image_id
    log = registry.access_log(mark)
    # the blobs came from test/multi on the same registry: mounted, not uploaded
    assert registry.count("POST", r"/blobs/uploads/\?mount=", since=mark) == 4
    assert not [x for x in log if x.method == "PATCH"]
    # pushing again uploads nothing
    mark = registry.mark()
    assert podkit.ok("push", image_id, f"docker://{registry.addr}/{repo}:2").strip() == image_id
    log = registry.access_log(mark)
    assert not [x for x in log if x.method in ("PATCH", "POST")]
    assert [x for x in log if x.method == "PUT" and "/manifests/" in x.path]


def test_push_uploads_in_chunks_to_a_fresh_registry_repo(podkit, images, registry, repo):
    image_id = fetch(podkit, f"oci:{images['layout']}:multi")  # no registry history: upload
    mark = registry.mark()
    assert podkit.ok("push", image_id, f"docker://{registry.addr}/{repo}:1").strip() == image_id
    assert registry.count("PATCH", r"/blobs/uploads/", since=mark) == 4
    assert registry.count("PUT", r"/blobs/uploads/.*digest=", since=mark) == 4
    doc = json.loads(registry.skopeo("inspect", "--tls-verify=false",
                                     f"docker://{registry.addr}/{repo}:1").stdout)
    assert doc["Digest"] == image_id


def test_push_docker_schema2_keeps_its_media_type(podkit, registry, registry_images, repo):
    img = registry_images["multi-docker"]
    image_id = fetch(podkit, f"docker://{img['ref']}")
    podkit.ok("push", image_id, f"docker://{registry.addr}/{repo}:v2s2")
    manifest = registry.manifest(repo, "v2s2").json()
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"


def test_tag_then_push_by_name_from_stdin(podkit, registry, registry_images, repo):
    image_id = fetch(podkit, f"docker://{registry_images['tiny']['ref']}")
    podkit.ok("tag", image_id, f"{registry.addr}/{repo}:named")
    out = podkit.ok("push", "-", f"docker://{registry.addr}/{repo}:named",
                    input=f"{registry.addr}/{repo}:named\n")
    assert out.strip() == image_id


def test_tls_registry_with_credentials(podkit, tls_registry, images, tmp_path, repo):
    image_id = fetch(podkit, f"oci:{images['layout']}:tiny")
    dest = f"docker://{tls_registry.addr}/{repo}:1"
    # no CA: verification fails with a one-line hint
    podkit.fail("push", image_id, dest, status=1, match="TLS verification failed")
    # CA but no credentials
    podkit.fail("push", image_id, dest, "--cert-dir", tls_registry.cert_dir, status=6)
    authfile = tmp_path / "auth.json"
    r = subprocess.run([os.path.join(os.path.dirname(podkit_tool(podkit)), "podkit-login"),
                        "--authfile", str(authfile), "--cert-dir", tls_registry.cert_dir,
                        "--username", "alice", "--password-stdin", tls_registry.addr],
                       input="wrong\n", capture_output=True, text=True, check=False)
    assert r.returncode == 6 and not authfile.exists()
    r = subprocess.run([os.path.join(os.path.dirname(podkit_tool(podkit)), "podkit-login"),
                        "--authfile", str(authfile), "--cert-dir", tls_registry.cert_dir,
                        "--username", "alice", "--password-stdin", tls_registry.addr],
                       input="wonderland\n", capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert "wonderland" not in r.stdout + r.stderr
    out = podkit.ok("push", image_id, dest, "--cert-dir", tls_registry.cert_dir,
                    "--authfile", str(authfile))
    assert out.strip() == image_id
    podkit.ok("rmi", image_id)
    again = fetch(podkit, dest[9:], "--cert-dir", tls_registry.cert_dir, "--authfile",
                  str(authfile))
    assert again == image_id


def test_docker_config_json_credentials(podkit, tls_registry, images, tmp_path, repo):
    import base64

    cfg = tmp_path / "docker"
    cfg.mkdir()
    token = base64.b64encode(b"alice:wonderland").decode()
    (cfg / "config.json").write_text(json.dumps({"auths": {tls_registry.addr: {"auth": token}}}))
    image_id = fetch(podkit, f"oci:{images['layout']}:tiny")
    env_cmd = ["env", f"DOCKER_CONFIG={cfg}", "REGISTRY_AUTH_FILE=/nonexistent/auth.json"]
    r = subprocess.run([*env_cmd, podkit_tool(podkit, "push"), "--store", podkit.store,
                        image_id, f"docker://{tls_registry.addr}/{repo}:1",
                        "--cert-dir", tls_registry.cert_dir], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stderr


def test_bearer_token_flow(podkit, token_registry, images, tmp_path, repo):
    image_id = fetch(podkit, f"oci:{images['layout']}:tiny")
    authfile = tmp_path / "auth.json"
    token = __import__("base64").b64encode(b"alice:wonderland").decode()
    authfile.write_text(json.dumps({"auths": {token_registry.addr: {"auth": token}}}))
    dest = f"docker://{token_registry.addr}/{repo}:1"
    podkit.fail("push", image_id, dest, status=6)  # anonymous tokens only pull
    out = podkit.ok("push", image_id, dest, "--authfile", str(authfile))
    assert out.strip() == image_id
    podkit.ok("rmi", image_id)
    assert fetch(podkit, dest) == image_id  # anonymous pull through the token dance
    reqs = token_registry.token.requests
    assert any(r["user"] == "alice" for r in reqs)
    assert all("wonderland" not in json.dumps(r) for r in reqs)


def podkit_tool(podkit, verb: str = "fetch") -> str:
    from helpers import TOOLS

    return os.path.join(TOOLS, f"podkit-{verb}")


def seed(podkit, images, store) -> dict:  # type: ignore[no-untyped-def]
    """A store with one local image in it, and its state to compare with afterwards."""
    podkit.ok("fetch", f"oci:{images['layout']}:tiny", "--name", "seed:1")
    return store_state(store)


# --- a registry that misbehaves (regkit.FaultServer in front of the real one) -------------

def _layer_digest(registry, repo_tag: str) -> str:
    repo, tag = repo_tag.split(":")
    return registry.manifest(repo, tag).json()["layers"][-1]["digest"]


def test_corrupt_blob_is_refused_and_store_unchanged(podkit, fault_server, registry,
                                                     registry_images, store, images):
    digest = _layer_digest(registry, "test/multi:1")
    fault_server.corrupt_blob(digest)
    before = seed(podkit, images, store)
    podkit.fail("fetch", f"docker://{fault_server.addr}/test/multi:1", status=3,
                match="digest mismatch")
    assert store_state(store) == before


def test_truncated_blob_resumes_with_range(podkit, fault_server, registry, registry_images):
    digest = _layer_digest(registry, "test/multi:1")
    fault_server.truncate(f"/blobs/{digest}", 100, times=1)
    image_id = fetch(podkit, f"docker://{fault_server.addr}/test/multi:1")
    assert image_id == registry_images["multi"]["digest"]
    ranged = [r for r in fault_server.requests if digest in r.path]
    assert len(ranged) >= 2


def test_truncated_blob_every_time_fails_cleanly(podkit, fault_server, registry, store,
                                                 images):
    digest = _layer_digest(registry, "test/multi:1")
    fault_server.truncate(f"/blobs/{digest}", 100, times=100)
    before = seed(podkit, images, store)
    podkit.fail("fetch", f"docker://{fault_server.addr}/test/multi:1", status=1,
                match=digest)
    assert store_state(store) == before


def test_manifest_of_the_wrong_digest_is_refused(podkit, fault_server, registry_images, store,
                                                 images):
    fault_server.wrong_manifest("test/tiny:1")
    before = seed(podkit, images, store)
    podkit.fail("fetch", f"docker://{fault_server.addr}/test/tiny:1", status=3,
                match="digest mismatch")
    img = registry_images["tiny"]
    podkit.fail("fetch", f"docker://{fault_server.addr}/test/tiny@{img['digest']}", status=3,
                match="digest mismatch")
    assert store_state(store) == before


@pytest.mark.parametrize(("fault", "status", "match"), [
    ("huge", 1, "limit"),
    ("malformed", 1, "invalid JSON"),
    ("redirect", 1, "too many redirects"),
    ("forbidden", 6, "access denied"),
    ("gone", 4, "not found"),
])
def test_registry_faults(podkit, fault_server, registry_images, store, images, fault, status,
                         match):
    if fault == "huge":
        fault_server.huge_manifest("test/tiny:1", 5 << 20)
    elif fault == "malformed":
        fault_server.malformed_json("test/tiny:1")
    elif fault == "redirect":
        fault_server.redirect_loop("/manifests/")
    elif fault == "forbidden":
        fault_server.status("/manifests/", 403, times=10)
    else:
        fault_server.status("/manifests/", 404, times=10)
    before = seed(podkit, images, store)
    podkit.fail("fetch", f"docker://{fault_server.addr}/test/tiny:1", status=status,
                match=match)
    assert store_state(store) == before


def test_5xx_is_retried_with_backoff(podkit, fault_server, registry_images):
    fault_server.status("/manifests/", 503, times=2)
    assert fetch(podkit, f"docker://{fault_server.addr}/test/tiny:1") == \
        registry_images["tiny"]["digest"]
    assert fault_server.count("GET", "/manifests/") >= 3


def test_killed_fetch_resumes_without_refetching_finished_layers(podkit, fault_server,
                                                                 registry, registry_images):
    import signal
    import time

    from helpers import TOOLS

    digest = _layer_digest(registry, "test/multi:1")
    fault_server.delay(f"/blobs/{digest}", 30)
    cmd = [os.path.join(TOOLS, "podkit-fetch"), "--store", podkit.store,
           f"docker://{fault_server.addr}/test/multi:1"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    fault_server.reset()
    image_id = fetch(podkit, f"docker://{fault_server.addr}/test/multi:1")
    assert image_id == registry_images["multi"]["digest"]
    manifest = registry.manifest("test/multi", "1").json()
    for layer in manifest["layers"]:
        gets = [r for r in fault_server.requests
                if r.method == "GET" and r.path.endswith(layer["digest"])]
        # after the kill, finished layers were not downloaded again; only the slow one was
        assert len(gets) == (1 if layer["digest"] == digest else 0), layer["digest"]


# --- interrupted downloads: resumed with Range, across a killed process -------------------

def _big_image(registry, repo: str, work: str, size: int = 8 << 20) -> tuple[str, str, int]:
    """An image with one incompressible layer of ``size`` bytes, pushed as ``repo:1``;
    returns (manifest digest, layer digest, layer size)."""
    import gzip
    import hashlib
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("big.bin")
        ti.size, ti.mtime = size, 1704067200
        tf.addfile(ti, io.BytesIO(os.urandom(size)))
    tar = raw.getvalue()
    layer = gzip.compress(tar, compresslevel=1, mtime=0)
    layout = os.path.join(work, "big-layout")
    os.makedirs(os.path.join(layout, "blobs", "sha256"))

    def put(data: bytes, media_type: str) -> dict:
        h = hashlib.sha256(data).hexdigest()
        with open(os.path.join(layout, "blobs", "sha256", h), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": f"sha256:{h}", "size": len(data)}

    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers",
                         "diff_ids": [f"sha256:{hashlib.sha256(tar).hexdigest()}"]}}
    ldesc = put(layer, "application/vnd.oci.image.layer.v1.tar+gzip")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": put(json.dumps(config).encode(),
                              "application/vnd.oci.image.config.v1+json"),
                "layers": [ldesc]}
    mdesc = put(json.dumps(manifest).encode(), manifest["mediaType"])
    mdesc["annotations"] = {"org.opencontainers.image.ref.name": "big"}
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [mdesc]}, f)
    pushed = registry.push_with_skopeo(f"oci:{layout}:big", f"{repo}:1", "--preserve-digests")
    assert pushed == mdesc["digest"]
    return mdesc["digest"], ldesc["digest"], ldesc["size"]


def _kill_half_way(podkit, fault_server, ref: str, digest: str, half: int) -> str:
    """Start podkit-fetch of ``ref`` through the proxy, let the layer ``digest`` break off
    after ``half`` bytes, hold the resumed request, and SIGKILL the fetch meanwhile.
    Returns the partial file the killed fetch left."""
    import itertools
    import signal
    import time

    from helpers import TOOLS

    later = itertools.count()
    hold = fault_server.delay(f"/blobs/{digest}$", 60, methods=["GET"])
    # not the first GET (it is the one cut short), every one after it: the resume waits
    hold.match = lambda path: path.endswith(digest) and next(later) >= 1
    fault_server.truncate(f"/blobs/{digest}$", half, times=1)
    part = os.path.join(podkit.store, "tmp", "partial", digest.replace(":", "-"))
    p = subprocess.Popen([os.path.join(TOOLS, "podkit-fetch"), "--store", podkit.store,
                          f"docker://{fault_server.addr}/{ref}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (os.path.exists(part) and os.path.getsize(part) == half):
            assert p.poll() is None, "the fetch ended before it was killed"
            assert time.monotonic() < deadline, "the layer never got half-way"
            time.sleep(0.05)
        time.sleep(0.2)  # it is waiting for the resumed answer now
        assert p.poll() is None
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    fault_server.reset()
    return part


def test_fetch_killed_half_way_through_a_layer_resumes_it_with_range(
        podkit, fault_server, registry, repo, tmp_path):
    image, layer, size = _big_image(registry, repo, str(tmp_path))
    half = size // 2
    part = _kill_half_way(podkit, fault_server, f"{repo}:1", layer, half)
    assert os.path.getsize(part) == half  # what the killed fetch had downloaded
    assert podkit.ok("fetch", f"docker://{fault_server.addr}/{repo}:1").split() == [image]
    gets = [r for r in fault_server.requests if r.method == "GET" and r.path.endswith(layer)]
    # one request for the rest: from where the killed fetch stopped, not from byte 0
    assert [(r.headers.get("Range"), r.status) for r in gets] == [(f"bytes={half}-", 206)]
    with open(os.path.join(podkit.store, "blobs", "sha256", layer[7:]), "rb") as f:
        assert "sha256:" + __import__("hashlib").sha256(f.read()).hexdigest() == layer
    assert not os.path.exists(os.path.dirname(part))  # nothing partial left
    podkit.ok("render", image, str(tmp_path / "rootfs"))  # the diff ID checks out too
    assert os.path.getsize(tmp_path / "rootfs" / "big.bin") == 8 << 20


def test_gc_removes_interrupted_downloads(podkit, fault_server, registry, repo, tmp_path):
    image, layer, size = _big_image(registry, repo, str(tmp_path), size=4 << 20)
    part = _kill_half_way(podkit, fault_server, f"{repo}:1", layer, size // 3)
    podkit.ok("gc")
    assert not os.path.exists(part)
    assert podkit.ok("fetch", f"docker://{fault_server.addr}/{repo}:1").split() == [image]
    gets = [r for r in fault_server.requests if r.method == "GET" and r.path.endswith(layer)]
    assert [r.headers.get("Range") for r in gets] == [None]  # from byte 0 again


def test_two_fetches_of_one_image_download_each_layer_once(podkit, fault_server, registry,
                                                          repo, tmp_path):
    import time

    from helpers import TOOLS

    image, layer, _ = _big_image(registry, repo, str(tmp_path), size=2 << 20)
    fault_server.delay(f"/blobs/{layer}$", 2, methods=["GET"])  # the first one is slow
    cmd = [os.path.join(TOOLS, "podkit-fetch"), "--store", podkit.store,
           f"docker://{fault_server.addr}/{repo}:1"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    part = os.path.join(podkit.store, "tmp", "partial", layer.replace(":", "-"))
    deadline = time.monotonic() + 30
    while not os.path.exists(part):  # the first one has claimed the layer
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.02)
    second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=60) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    assert [o[0].split() for o in outs] == [[image], [image]]
    gets = [r for r in fault_server.requests if r.method == "GET" and r.path.endswith(layer)]
    assert len(gets) == 1
