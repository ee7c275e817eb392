"""Every command, given bad input: the right exit status, one line, store unchanged."""

from __future__ import annotations

import fcntl
import io
import json
import os
import tarfile

import pytest
from helpers import store_state


@pytest.fixture
def seeded(podkit, images, store):
    """A store holding one image, and its state to compare with afterwards."""
    image_id = podkit.ok("fetch", f"oci:{images['layout']}:tiny").strip()
    return image_id, store_state(store)


def _bad_aci(path: str) -> None:
    with tarfile.open(path, "w") as tf:
        ti = tarfile.TarInfo("rootfs")
        ti.type = tarfile.DIRTYPE
        tf.addfile(ti)


def _ambiguous_layout(images) -> str:  # type: ignore[no-untyped-def]
    return images["layout"]  # holds several images: a REF is needed


FETCH_CASES = [
    (["Not_A_Ref!"], 2, "unknown image source"),
    (["http://example.invalid/x.aci"], 2, "--insecure-options=http"),
    (["docker://127.0.0.1:1/nothing/here:1"], 1, "127.0.0.1:1"),
    (["oci:/nonexistent/layout"], 4, "does not exist"),
    (["oci:{layout}:no-such-tag"], 4, "no image named 'no-such-tag'"),
    (["oci:{layout}"], 2, "holds"),
    (["oci:/etc"], 1, "not an OCI image layout"),
    (["oci-archive:/etc/passwd"], 1, "not a tar archive"),
    (["oci-archive:/nonexistent.tar"], 4, "does not exist"),
    (["docker-archive:/nonexistent.tar"], 4, "does not exist"),
    (["/nonexistent.aci"], 4, "does not exist"),
    (["{bad_aci}"], 1, "ACI has no manifest"),
    (["oci:{layout}:tiny", "--name", "UPPER/Case:x"], 2, "must be lowercase"),
    (["oci:{layout}:tiny", "--arch"], 2, "expected one argument"),
    ([], 2, "no arguments given"),
]


@pytest.mark.parametrize(("args", "status", "match"), FETCH_CASES)
def test_fetch_bad_input(podkit, images, store, seeded, tmp_path, args, status, match):
    bad_aci = str(tmp_path / "bad.aci")
    _bad_aci(bad_aci)
    args = [a.format(layout=images["layout"], bad_aci=bad_aci) for a in args]
    podkit.fail("fetch", *args, status=status, match=match, input="")
    assert store_state(store) == seeded[1]


def test_fetch_malformed_index_json(podkit, images, store, seeded, tmp_path):
    lay = tmp_path / "lay"
    lay.mkdir()
    (lay / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (lay / "index.json").write_text('{"schemaVersion": 2, "manifests": [{"digest": "x"}]')
    podkit.fail("fetch", f"oci:{lay}", status=1, match="invalid JSON")
    (lay / "index.json").write_text('{"schemaVersion": 2, "manifests": [{"digest": "sha256:zz",'
                                    ' "mediaType": "a/b", "size": 1}]}')
    podkit.fail("fetch", f"oci:{lay}", status=1, match="$.manifests[0].digest")
    assert store_state(store) == seeded[1]


def test_fetch_missing_blob(podkit, images, store, seeded, tmp_path):
    import shutil

    lay = tmp_path / "lay"
    shutil.copytree(images["layout"], lay)
    desc = next(m for m in json.loads((lay / "index.json").read_text())["manifests"]
                if m["annotations"]["org.opencontainers.image.ref.name"] == "multi")
    manifest = json.loads((lay / "blobs/sha256" / desc["digest"][7:]).read_text())
    (lay / "blobs/sha256" / manifest["layers"][2]["digest"][7:]).unlink()
    podkit.fail("fetch", f"oci:{lay}:multi", status=4, match="is missing from")
    assert store_state(store) == seeded[1]


def test_fetch_hostile_layer_is_refused_and_named(podkit, images, store, seeded, tmp_path):
    import hashlib
    import shutil

    lay = tmp_path / "lay"
    shutil.copytree(images["layout"], lay)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("../../escape")
        ti.size = 4
        tf.addfile(ti, io.BytesIO(b"evil"))
    layer = buf.getvalue()
    lh = hashlib.sha256(layer).hexdigest()
    (lay / "blobs/sha256" / lh).write_bytes(layer)
    config = {"architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [f"sha256:{lh}"]}}
    craw = json.dumps(config).encode()
    ch = hashlib.sha256(craw).hexdigest()
    (lay / "blobs/sha256" / ch).write_bytes(craw)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": f"sha256:{ch}", "size": len(craw)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": f"sha256:{lh}", "size": len(layer)}]}
    mraw = json.dumps(manifest).encode()
    mh = hashlib.sha256(mraw).hexdigest()
    (lay / "blobs/sha256" / mh).write_bytes(mraw)
    (lay / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": manifest["mediaType"], "digest": f"sha256:{mh}", "size": len(mraw)}]}))
    podkit.fail("fetch", "--extract", f"oci:{lay}", status=1, match="../../escape")
    assert store_state(store) == seeded[1]
    assert not (tmp_path / "escape").exists()
    # without --extract the blobs are stored; the first use refuses the layer
    image_id = podkit.ok("fetch", f"oci:{lay}").strip()
    before = store_state(store)
    podkit.fail("render", image_id, str(tmp_path / "out"), status=1, match="../../escape")
    assert store_state(store) == before
    assert not (tmp_path / "escape").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("verb", "args", "status", "match"), [
    ("inspect", ["nosuch:image"], 4, "not in the store"),
    ("inspect", [], 2, "no arguments given"),
    ("render", ["nosuch"], 2, "the following arguments are required"),
    ("render", ["nosuch", "{tmp}/out"], 4, "not in the store"),
    ("render", ["{id}", "/nonexistent/dir/out"], 4, "does not exist"),
    ("export", ["{id}", "/tmp/out.unknown"], 2, "unknown destination"),
    ("export", ["{id}", "oci-archive:"], 2, "missing path"),
    ("export", ["{id}", "oci-archive:/nonexistent/dir/x.tar"], 4, "does not exist"),
    ("export", ["{id}", "oci-archive:{tmp}/exists"], 5, "already exists"),
    ("export", ["nosuch", "oci-archive:{tmp}/x.tar"], 4, "not in the store"),
    ("rmi", ["nosuch"], 4, "not in the store"),
    ("rmi", [], 2, "no arguments given"),
    ("images", ["--bogus"], 2, "unrecognized arguments"),
    ("gc", ["extra"], 2, "unrecognized arguments"),
])
def test_commands_bad_input(podkit, store, seeded, tmp_path, verb, args, status, match):
    (tmp_path / "exists").write_text("keep me")
    args = [a.format(id=seeded[0], tmp=tmp_path) for a in args]
    podkit.fail(verb, *args, status=status, match=match, input="")
    assert store_state(store) == seeded[1]
    assert (tmp_path / "exists").read_text() == "keep me"
    assert not (tmp_path / "out").exists()


def test_aci_cannot_export_to_oci_archive(podkit, images, store, tmp_path):
    aci = podkit.ok("fetch", images["aci"]).strip()
    podkit.fail("export", aci, f"oci-archive:{tmp_path}/x.tar", status=2, match="appc image")
    assert not (tmp_path / "x.tar").exists()


def test_commands_on_a_missing_store(podkit, store):
    podkit.fail("inspect", "x", status=4, match="no podkit store")
    assert podkit.ok("images") .startswith("REPOSITORY")
    assert not os.path.exists(store)


def test_gc_while_a_writer_holds_the_store_is_busy(podkit, seeded, store):
    fd = os.open(os.path.join(store, "locks/gc.lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        podkit.fail("gc", status=5, match="locked")
    finally:
        os.close(fd)
    assert store_state(store) == seeded[1]
