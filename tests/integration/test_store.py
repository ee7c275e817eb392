"""The store as peers see it, its safety rules, listing, removal and gc."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from helpers import TOOLS, diff_trees, snapshot, store_state


def staging_left(store: str) -> list[str]:
    """Staging dirs of writers (tmp/verified may keep verified blobs until gc)."""
    return [n for n in os.listdir(os.path.join(store, "tmp")) if n != "verified"]


def test_skopeo_and_umoci_read_the_store(podkit, images, store):
    image_id = podkit.ok("fetch", f"oci:{images['layout']}:multi", "--name",
                         "example.com/team/app:1.0").strip()
    podkit.ok("fetch", images["aci"])
    out = subprocess.run(["skopeo", "inspect", f"oci:{store}:example.com/team/app:1.0"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["Digest"] == image_id
    listed = subprocess.run(["umoci", "ls", "--layout", store], capture_output=True, text=True,
                            check=True).stdout.split()
    assert "example.com/team/app:1.0" in listed
    subprocess.run(["umoci", "stat", "--image", f"{store}:example.com/team/app:1.0"],
                   check=True, capture_output=True)


def test_exports_are_read_by_skopeo_and_umoci(podkit, images, tmp_path):
    image_id = podkit.ok("fetch", "--extract", f"oci:{images['layout']}:multi").strip()
    oa = tmp_path / "x.tar"
    assert podkit.ok("export", image_id, f"oci-archive:{oa}").strip() == image_id
    doc = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{oa}"],
                                    capture_output=True, text=True, check=True).stdout)
    assert doc["Digest"] == image_id
    da = tmp_path / "d.tar"
    podkit.ok("export", image_id, f"docker-archive:{da}:example.com/x:1")
    doc = json.loads(subprocess.run(["skopeo", "inspect", f"docker-archive:{da}"],
                                    capture_output=True, text=True, check=True).stdout)
    assert len(doc["Layers"]) == 3
    import tarfile

    with tarfile.open(da) as tf:
        saved = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert saved[0]["RepoTags"] == ["example.com/x:1"]
    layout = tmp_path / "lay"
    podkit.ok("export", image_id, f"oci:{layout}:mytag")
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:mytag", str(tmp_path / "b")],
                   check=True, capture_output=True)
    # and back: a docker-archive export fetched again renders the same image
    again = podkit.ok("fetch", f"docker-archive:{da}").strip()
    podkit.ok("render", again, str(tmp_path / "r2"))
    assert os.path.exists(tmp_path / "r2/bin/busybox")


def test_aci_fetch_list_render_export_round_trip(podkit, images, tmp_path, store):
    image_id = podkit.ok("fetch", images["aci"]).strip()
    assert image_id.startswith("sha512-") and len(image_id) == 7 + 128
    import hashlib

    with open(images["aci"], "rb") as f:
        assert image_id[7:] == hashlib.sha512(f.read()).hexdigest()
    table = podkit.ok("images")
    assert "example.com/app" in table and "v1" in table
    podkit.ok("render", "example.com/app:v1", str(tmp_path / "r"))
    assert (tmp_path / "r/etc/hostname").read_text() == "aci\n"
    # appc has no whiteouts: a .wh. name is an ordinary file
    assert (tmp_path / "r/.wh.notawhiteout").read_text() == "appc has no whiteouts"
    out = tmp_path / "back.aci"
    podkit.ok("export", image_id, str(out))
    with open(out, "rb") as a, open(images["aci"], "rb") as b:
        assert a.read() == b.read()
    doc = json.loads(podkit.ok("inspect", "example.com/app"))
    assert doc["Manifest"]["x-unknown-field"] == {"kept": True}
    assert podkit.ok("fetch", str(out)).strip() == image_id


def test_oci_image_exports_to_an_aci(podkit, images, tmp_path):
    image_id = podkit.ok("fetch", f"oci:{images['layout']}:tiny").strip()
    out = tmp_path / "tiny.aci"
    podkit.ok("export", image_id, str(out))
    aci_id = podkit.ok("fetch", str(out)).strip()
    podkit.ok("render", aci_id, str(tmp_path / "a"))
    podkit.ok("render", image_id, str(tmp_path / "o"))
    from helpers import diff_trees, snapshot

    assert diff_trees(snapshot(str(tmp_path / "o")), snapshot(str(tmp_path / "a"))) == []


def _corrupt_copy(layout: str, dest: str, which: str) -> str:
    shutil.copytree(layout, dest)
    manifest_digest = next(m["digest"] for m in json.load(open(f"{dest}/index.json"))["manifests"]
                           if m["annotations"]["org.opencontainers.image.ref.name"] == "multi")
    manifest = json.load(open(f"{dest}/blobs/sha256/{manifest_digest[7:]}"))
    target = {"layer": manifest["layers"][1]["digest"], "config": manifest["config"]["digest"],
              "manifest": manifest_digest}[which]
    path = f"{dest}/blobs/sha256/{target[7:]}"
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(path, "wb").write(bytes(data))
    return target


@pytest.mark.parametrize("which", ["layer", "config", "manifest"])
def test_a_blob_altered_by_one_byte_is_refused(podkit, images, store, tmp_path, which):
    podkit.ok("fetch", f"oci:{images['layout']}:tiny")
    before = store_state(store)
    bad = str(tmp_path / "bad")
    digest = _corrupt_copy(images["layout"], bad, which)
    r = podkit.fail("fetch", f"oci:{bad}:multi", status=3, match="digest mismatch")
    assert digest in r.stderr
    assert store_state(store) == before
    assert staging_left(store) == []


def test_a_wrong_diff_id_is_refused(podkit, images, store, tmp_path):
    bad = str(tmp_path / "bad")
    shutil.copytree(images["layout"], bad)
    idx = json.load(open(f"{bad}/index.json"))
    desc = next(m for m in idx["manifests"]
                if m["annotations"]["org.opencontainers.image.ref.name"] == "tiny")
    manifest = json.load(open(f"{bad}/blobs/sha256/{desc['digest'][7:]}"))
    config = json.load(open(f"{bad}/blobs/sha256/{manifest['config']['digest'][7:]}"))
    config["rootfs"]["diff_ids"][0] = "sha256:" + "0" * 64
    import hashlib

    def put(doc) -> tuple[str, int]:  # type: ignore[no-untyped-def]
        raw = json.dumps(doc).encode()
        h = hashlib.sha256(raw).hexdigest()
        open(f"{bad}/blobs/sha256/{h}", "wb").write(raw)
        return "sha256:" + h, len(raw)

    manifest["config"]["digest"], manifest["config"]["size"] = put(config)
    desc["digest"], desc["size"] = put(manifest)
    json.dump(idx, open(f"{bad}/index.json", "w"))
    podkit.fail("fetch", "--extract", f"oci:{bad}:tiny", status=3, match="diff ID")
    assert store_state(store) == {} or podkit.ok("images", "-q", "-a") == ""
    # fetched without --extract, the first use finds it, and extracts nothing
    image_id = podkit.ok("fetch", f"oci:{bad}:tiny").strip()
    before = store_state(store)
    podkit.fail("render", image_id, str(tmp_path / "out"), status=3, match="diff ID")
    assert not (tmp_path / "out").exists()
    assert store_state(store) == before
    assert not os.path.exists(os.path.join(store, "layers/sha256"))


def test_eight_simultaneous_fetches_store_each_blob_once(images, store):
    cmd = [os.path.join(TOOLS, "podkit-fetch"), "--store", store, "--extract",
           f"oci:{images['layout']}:multi"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    outs = [p.communicate(timeout=300) for p in procs]
    failed = [(p.returncode, o[1]) for p, o in zip(procs, outs, strict=True) if p.returncode]
    assert failed == []
    assert len({o[0] for o in outs}) == 1
    blobs = os.listdir(os.path.join(store, "blobs/sha256"))
    assert len(blobs) == len(set(blobs)) == 5  # manifest, config, 3 layers
    assert len(os.listdir(os.path.join(store, "layers/sha256"))) == 3
    assert staging_left(store) == []
    idx = json.load(open(os.path.join(store, "index.json")))
    assert len(idx["manifests"]) == 1


def test_layers_are_extracted_once_at_first_use(images, store, podkit, tmp_path):
    """fetch stores blobs only; four renders at once extract each layer once."""
    image_id = podkit.ok("fetch", f"oci:{images['layout']}:multi").strip()
    assert not os.path.exists(os.path.join(store, "layers/sha256"))
    assert json.loads(podkit.ok("inspect", image_id))["Layers"][0]["Extracted"] is False
    cmds = [[os.path.join(TOOLS, "podkit-render"), "--store", store, image_id,
             str(tmp_path / f"r{i}")] for i in range(4)]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [(p.returncode, o[1]) for p, o in zip(procs, outs, strict=True) if p.returncode] == []
    assert len(os.listdir(os.path.join(store, "layers/sha256"))) == 3
    assert staging_left(store) == []
    for i in range(1, 4):
        assert diff_trees(snapshot(str(tmp_path / "r0")), snapshot(str(tmp_path / f"r{i}"))) == []
    assert all(x["Extracted"] for x in json.loads(podkit.ok("inspect", image_id))["Layers"])


def test_a_killed_fetch_leaves_no_partial_image(images, store, podkit):
    cmd = [os.path.join(TOOLS, "podkit-fetch"), "--store", store,
           f"oci:{images['layout']}:multi"]
    for delay in (0.05, 0.15, 0.3, 0.45, 0.6):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        listed = podkit.ok("images", "-q", "-a", "--no-trunc").split()
        if listed:  # the kill came after the commit: then the image is complete
            podkit.ok("render", listed[0], f"{store}-render-{delay}")
            podkit.ok("rmi", listed[0])
    podkit.ok("gc")
    assert os.listdir(os.path.join(store, "tmp")) == []
    image_id = podkit.ok("fetch", "--extract", f"oci:{images['layout']}:multi").strip()
    assert podkit.ok("images", "-q", "--no-trunc").split() == [image_id]


def test_images_table_quiet_and_json(podkit, images):
    a = podkit.ok("fetch", "--extract", f"oci:{images['layout']}:multi").strip()
    podkit.ok("fetch", f"oci:{images['layout']}:tiny", "--name", "busybox")
    podkit.ok("fetch", images["aci"])
    lines = podkit.ok("images").splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = {tuple(x.split()[:3]) for x in lines[1:]}
    assert ("localhost/layout", "multi", a[7:19]) in rows
    assert any(r[0] == "docker.io/library/busybox" and r[1] == "latest" for r in rows)
    assert any(r[0] == "example.com/app" and r[1] == "v1" for r in rows)
    assert len(podkit.ok("images", "-q").split()) == 3
    docs = json.loads(podkit.ok("images", "--json"))
    assert {d["id"] for d in docs} >= {a}
    assert all(d["size"] > 0 for d in docs)
    assert podkit.ok("images", "busybox").count("\n") == 2


def test_names_move_and_rmi_untags_then_deletes(podkit, images, store):
    a = podkit.ok("fetch", "--extract", f"oci:{images['layout']}:multi", "--name", "app:1").strip()
    podkit.ok("fetch", "--extract", f"oci:{images['layout']}:multi", "--name", "app:2")
    b = podkit.ok("fetch", "--extract", f"oci:{images['layout']}:tiny", "--name", "app:1").strip()
    assert json.loads(podkit.ok("inspect", "app:1"))["Id"] == b  # the name moved
    assert json.loads(podkit.ok("inspect", "app:2"))["Id"] == a
    r = podkit("rmi", "app:2")
    assert r.returncode == 0 and r.stdout.strip() == a  # last name: image deleted
    assert "Id" in podkit.ok("inspect", b)
    podkit.fail("inspect", a, status=4, match="not in the store")
    # a's own layers were collected, tiny's shared first layer stayed
    assert len(os.listdir(os.path.join(store, "layers/sha256"))) == 1
    podkit.ok("render", b, os.path.join(store, "..", "r"))


def test_gc_removes_unreferenced_blobs_and_layers(podkit, images, store):
    image_id = podkit.ok("fetch", "--extract", f"oci:{images['layout']}:multi").strip()
    podkit.ok("rmi", "--no-prune", image_id)
    out = podkit.ok("gc", "--dry-run")
    assert out.count("blob ") == 5 and out.count("layer ") == 3
    assert len(os.listdir(os.path.join(store, "blobs/sha256"))) == 5
    podkit.ok("gc")
    assert os.listdir(os.path.join(store, "blobs/sha256")) == []
    assert os.listdir(os.path.join(store, "layers/sha256")) == []


def test_id_prefixes_and_ambiguity(podkit, images):
    a = podkit.ok("fetch", "--extract", f"oci:{images['layout']}:multi").strip()
    assert json.loads(podkit.ok("inspect", a[7:19]))["Id"] == a
    assert json.loads(podkit.ok("inspect", "sha256:" + a[7:13]))["Id"] == a
    podkit.fail("inspect", "ffffffffffff", status=4)


def test_dispatcher_runs_verbs(images, store):
    r = subprocess.run([os.path.join(TOOLS, "podkit"), "images", "--store", store],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stdout.startswith("REPOSITORY")
    r = subprocess.run([os.path.join(TOOLS, "podkit"), "nope"], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 2 and "'nope' is not a podkit command" in r.stderr


def test_output_into_a_closed_pipe_is_quiet(podkit, images, store):
    podkit.ok("fetch", f"oci:{images['layout']}:multi")
    podkit.ok("fetch", f"oci:{images['layout']}:tiny")
    r = subprocess.run(f"{TOOLS}/podkit-images --store {store} | head -c1 >/dev/null; "
                       f"{TOOLS}/podkit-inspect --store {store} localhost/layout:multi | head -1",
                       shell=True, capture_output=True, text=True, check=False)
    assert r.stderr == ""


def test_ids_chain_through_stdin(podkit, images):
    ids = podkit.ok("fetch", input=f"oci:{images['layout']}:multi\noci:{images['layout']}:tiny\n")
    assert len(ids.split()) == 2
    docs = json.loads(podkit.ok("inspect", input=ids))
    assert [d["Id"] for d in docs] == ids.split()


def test_a_killed_render_leaves_nothing_and_is_cleaned_up(podkit, images, tmp_path):
    image_id = podkit.ok("fetch", "--extract", f"oci:{images['layout']}:multi").strip()
    dest = tmp_path / "out"
    cmd = [os.path.join(TOOLS, "podkit-render"), "--store", podkit.store, image_id, str(dest)]
    for delay in (0.05, 0.12, 0.2):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if dest.exists():  # finished before the kill: complete
            assert (dest / "bin/busybox").stat().st_size > 1000
            break
    podkit.ok("render", "--overwrite", image_id, str(dest))
    assert sorted(os.listdir(tmp_path)) == ["out", "store"]  # stale temporaries are gone


def test_gc_and_rmi_keep_what_a_pod_uses(podkit, images, store):
    image_id = podkit.ok("fetch", "--extract", f"oci:{images['layout']}:multi").strip()
    pod = os.path.join(store, "pods/run/6f1b1a4e-0000-4000-8000-000000000001")
    os.makedirs(pod)
    with open(os.path.join(pod, "pod"), "w") as f:
        json.dump({"acKind": "PodManifest", "acVersion": "0.8.11",
                   "apps": [{"name": "app", "image": {"id": image_id}}]}, f)
    podkit.fail("rmi", image_id, status=5, match="used by a pod")
    assert podkit("rmi", "--force", image_id).returncode == 0
    podkit.ok("gc")
    assert len(os.listdir(os.path.join(store, "blobs/sha256"))) == 5
    assert len(os.listdir(os.path.join(store, "layers/sha256"))) == 3
    os.unlink(os.path.join(pod, "pod"))
    out = podkit.ok("gc")
    assert out.count("layer ") == 3


@pytest.mark.parametrize("verb", ["render", "images", "inspect"])
def test_commands_on_a_stored_image_stay_lean(podkit, images, store, tmp_path, verb):
    """No jsonschema, requests, cryptography or zstandard once an image is in the store."""
    import sys

    podkit.ok("fetch", "--extract", f"oci:{images['layout']}:multi-zstd")
    args = {"render": ["layout:multi-zstd", str(tmp_path / "r")], "images": [],
            "inspect": ["layout:multi-zstd"]}[verb]
    code = (f"import sys; sys.argv = ['podkit-{verb}', '--store', {store!r}, *{args!r}]\n"
            f"from stage0.cli.{verb} import main\n"
            "rc = main()\n"
            "heavy = {m.split('.')[0] for m in sys.modules} & "
            "{'jsonschema', 'requests', 'cryptography', 'zstandard', 'referencing'}\n"
            "print(sorted(heavy), file=sys.stderr); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "[]"


@pytest.fixture
def world_tmp():  # type: ignore[no-untyped-def]
    """A temporary directory other users can reach (pytest's are 0700)."""
    import pathlib
    import tempfile

    d = tempfile.mkdtemp(prefix="podkit-test-", dir="/var/tmp")
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d)


def test_rootless_fetch_and_render_apply_whiteouts(images, world_tmp):
    """Without root, whiteouts are kept as .wh. markers, and render still applies them."""
    tmp_path = world_tmp
    home = tmp_path / "nobody"
    home.mkdir()
    os.chown(home, 65534, 65534)
    store, out = home / "store", home / "out"

    def as_nobody(verb: str, *args: str) -> str:
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            os.path.join(TOOLS, f"podkit-{verb}"), "--store", str(store), *args],
                           capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        return r.stdout

    layout = tmp_path / "layout"
    shutil.copytree(images["layout"], layout)
    os.system(f"chmod -R a+rX {layout}")
    image_id = as_nobody("fetch", "--extract", f"oci:{layout}:multi").strip()
    info = [json.loads(p.read_text()) for p in store.glob("layers/sha256/*/layer.json")]
    assert {i["whiteouts"] for i in info} == {"marker"}
    as_nobody("render", image_id, str(out))
    assert not (out / "data/a").exists() and not (out / "gone").exists()
    assert sorted(os.listdir(out / "opaque")) == ["sub", "z"]
    assert not [p for p in out.rglob(".wh.*")]
