"""Fetch images written by skopeo; render them; compare with umoci's unpack."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from helpers import diff_trees, snapshot, umoci_rootfs


def fetch(podkit, source: str, *extra: str) -> str:
    out = podkit.ok("fetch", source, *extra).split()
    assert len(out) == 1
    return out[0]


@pytest.mark.parametrize("tag", ["tiny", "multi", "multi-plain"])
def test_render_equals_umoci_unpack(podkit, images, tmp_path, tag):
    image_id = fetch(podkit, f"oci:{images['layout']}:{tag}")
    assert image_id.startswith("sha256:") and len(image_id) == 71
    ours = tmp_path / "ours"
    podkit.ok("render", image_id, str(ours))
    theirs = umoci_rootfs(images["layout"], tag, str(tmp_path / "umoci"))
    a, b = snapshot(theirs), snapshot(str(ours))
    assert diff_trees(a, b) == []
    assert len(a) > 20


def test_render_content_of_multi(podkit, images, tmp_path):
    fetch(podkit, f"oci:{images['layout']}:multi", "--extract")
    root = tmp_path / "r"
    podkit.ok("render", "localhost/layout:multi", str(root))
    assert not (root / "data/a").exists()  # whiteout
    assert (root / "data/a-link").read_text().startswith("data a")  # its hardlink stays
    assert not (root / "gone").exists()  # a deleted tree
    assert (root / "swap/inner").is_dir()  # a file replaced by a directory
    assert sorted(os.listdir(root / "opaque")) == ["sub", "z"]  # opaque dir
    assert not (root / "bin/ls").exists() and (root / "bin/sh").is_symlink()
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    st1, st2 = os.stat(root / "links/h1"), os.stat(root / "links/h2")
    assert st1.st_ino == st2.st_ino == os.stat(root / "links/target").st_ino
    assert os.stat(root / "usr/bin/su").st_mode & 0o7777 == 0o4755
    assert os.stat(root / "tmp").st_mode & 0o7777 == 0o1777
    assert os.stat(root / "home/user/owned").st_uid == 1000


def test_zstd_layers_render_like_the_gzip_image(podkit, images, tmp_path):
    zid = fetch(podkit, f"oci:{images['layout']}:multi-zstd")
    manifest = json.loads(podkit.ok("inspect", zid))["Manifest"]
    assert {x["mediaType"] for x in manifest["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"}
    podkit.ok("render", zid, str(tmp_path / "z"))
    theirs = umoci_rootfs(images["layout"], "multi-plain", str(tmp_path / "umoci"))
    assert diff_trees(snapshot(theirs), snapshot(str(tmp_path / "z"))) == []


def test_layers_are_shared_between_images(podkit, images, store):
    fetch(podkit, f"oci:{images['layout']}:tiny", "--extract")
    fetch(podkit, f"oci:{images['layout']}:multi", "--extract")
    fetch(podkit, f"oci:{images['layout']}:multi-plain", "--extract")
    # tiny's layer is multi's first layer; multi-plain has the same diff IDs as multi
    layers = os.listdir(os.path.join(store, "layers/sha256"))
    assert len(layers) == 3
    for chain in layers:
        info = json.load(open(os.path.join(store, "layers/sha256", chain, "layer.json")))
        assert info["diff_id"].startswith("sha256:")


def test_whiteouts_are_stored_in_overlay_form(podkit, images, store):
    image_id = fetch(podkit, f"oci:{images['layout']}:multi", "--extract")
    doc = json.loads(podkit.ok("inspect", image_id))
    top = doc["Layers"][-1]["ChainID"].split(":")[1]
    root = os.path.join(store, "layers/sha256", top, "rootfs")
    st = os.lstat(os.path.join(root, "bin/ls"))
    assert os.major(st.st_rdev) == 0 and os.minor(st.st_rdev) == 0 and (st.st_mode & 0o170000
                                                                       == 0o020000)
    assert os.getxattr(os.path.join(root, "opaque"), "trusted.overlay.opaque") == b"y"
    assert not os.path.exists(os.path.join(root, "opaque/.wh..wh..opq"))


def test_overlay_mount_of_layers_equals_render(podkit, images, store, tmp_path):
    """The stored layers are a valid overlayfs lower stack (what pods will mount)."""
    image_id = fetch(podkit, f"oci:{images['layout']}:multi", "--extract")
    doc = json.loads(podkit.ok("inspect", image_id))
    lowers = [os.path.join(store, "layers/sha256", x["ChainID"].split(":")[1], "rootfs")
              for x in reversed(doc["Layers"])]
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    "lowerdir=" + ":".join(lowers), str(mnt)], check=True)
    try:
        podkit.ok("render", image_id, str(tmp_path / "r"))
        assert diff_trees(snapshot(str(mnt)), snapshot(str(tmp_path / "r"))) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_multiarch_index_selects_the_host_platform(podkit, images):
    multi = fetch(podkit, f"oci:{images['layout']}:multi")
    picked = fetch(podkit, f"oci:{images['layout']}:multiarch")
    assert picked == multi  # linux/amd64 in the index is the multi image
    arm = fetch(podkit, f"oci:{images['layout']}:multiarch", "--arch", "arm64", "--name",
                "example.com/arm:1")
    assert arm != multi
    doc = json.loads(podkit.ok("inspect", arm))
    assert doc["Platform"]["architecture"] == "arm64"
    assert doc["Index"].startswith("sha256:")


def test_unknown_platform_is_not_found(podkit, images, store):
    r = podkit.fail("fetch", f"oci:{images['layout']}:multiarch", "--arch", "s390x", status=4,
                    match="no image for platform linux/s390x")
    assert "linux/amd64" in r.stderr


def test_docker_archive_renders_like_the_source(podkit, images, tmp_path):
    image_id = fetch(podkit, f"docker-archive:{images['docker']}")
    names = json.loads(podkit.ok("inspect", image_id))["Names"]
    assert names == ["example.com/test/multi:1"]
    podkit.ok("render", "example.com/test/multi:1", str(tmp_path / "r"))
    theirs = umoci_rootfs(images["layout"], "multi", str(tmp_path / "umoci"))
    assert diff_trees(snapshot(theirs), snapshot(str(tmp_path / "r"))) == []


def test_oci_archive_round_trip_through_skopeo(podkit, images, tmp_path):
    archive = tmp_path / "img.tar"
    subprocess.run(["skopeo", "copy", "-q", f"oci:{images['layout']}:multi",
                    f"oci-archive:{archive}:example.com/arch:2"], check=True)
    image_id = fetch(podkit, f"oci-archive:{archive}")
    assert json.loads(podkit.ok("inspect", image_id))["Names"] == ["example.com/arch:2"]


def test_render_refuses_a_non_empty_directory(podkit, images, tmp_path):
    image_id = fetch(podkit, f"oci:{images['layout']}:tiny")
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "keep").write_text("mine")
    podkit.fail("render", image_id, str(dest), status=5, match="already exists")
    assert (dest / "keep").read_text() == "mine"
    podkit.ok("render", "--overwrite", image_id, str(dest))
    assert not (dest / "keep").exists() and (dest / "bin/busybox").exists()


def _docker_layout(src: str, dest: str) -> None:
    """``dest``: src's tiny and multi rewritten as Docker schema2, plus a manifest list."""
    import hashlib
    import shutil

    shutil.copytree(src, dest)
    blobs = os.path.join(dest, "blobs/sha256")
    index = json.load(open(os.path.join(dest, "index.json")))

    def put(doc: dict) -> dict:
        raw = json.dumps(doc, indent=3).encode()
        h = hashlib.sha256(raw).hexdigest()
        with open(os.path.join(blobs, h), "wb") as f:
            f.write(raw)
        return {"mediaType": doc["mediaType"], "digest": f"sha256:{h}", "size": len(raw)}

    entries = []
    for tag in ("tiny", "multi"):
        desc = next(m for m in index["manifests"]
                    if m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        m = json.load(open(os.path.join(blobs, desc["digest"][7:])))
        m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json"
        m["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json"
        for layer in m["layers"]:
            layer["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip"
        d = put(m)
        entries.append({**d, "annotations": {"org.opencontainers.image.ref.name": f"d-{tag}"}})
    lst = put({"schemaVersion": 2,
               "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
               "manifests": [{**{k: v for k, v in entries[1].items() if k != "annotations"},
                              "platform": {"architecture": "amd64", "os": "linux"}},
                             {**{k: v for k, v in entries[0].items() if k != "annotations"},
                              "platform": {"architecture": "arm", "os": "linux",
                                           "variant": "v7"}}]})
    entries.append({**lst, "annotations": {"org.opencontainers.image.ref.name": "d-list"}})
    json.dump({"schemaVersion": 2, "manifests": entries},
              open(os.path.join(dest, "index.json"), "w"))


def test_docker_schema2_manifests_and_lists(podkit, images, tmp_path):
    lay = str(tmp_path / "docker-layout")
    _docker_layout(images["layout"], lay)
    index = json.load(open(os.path.join(lay, "index.json")))
    want = next(m["digest"] for m in index["manifests"]
                if m["annotations"]["org.opencontainers.image.ref.name"] == "d-multi")
    multi = fetch(podkit, f"oci:{lay}:d-multi")
    assert multi == want  # the Docker manifest is kept byte for byte: same digest
    doc = json.loads(podkit.ok("inspect", multi))
    assert doc["MediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    podkit.ok("render", multi, str(tmp_path / "r"))
    theirs = umoci_rootfs(images["layout"], "multi", str(tmp_path / "umoci"))
    assert diff_trees(snapshot(theirs), snapshot(str(tmp_path / "r"))) == []
    assert fetch(podkit, f"oci:{lay}:d-list") == multi
    arm = fetch(podkit, f"oci:{lay}:d-list", "--arch", "arm", "--variant", "v7",
                "--name", "example.com/arm:v7")
    assert arm == fetch(podkit, f"oci:{lay}:d-tiny")


def _docker_save(path, n: int, size: int, *, lie: bool = False) -> None:  # type: ignore[no-untyped-def]
    """A docker-save archive of ``n`` uncompressed layers (``lie``: a wrong first diff ID)."""
    import hashlib
    import io
    import random
    import tarfile

    rng = random.Random(7)
    layers, diff_ids = [], []
    for i in range(n):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            data = rng.randbytes(size)
            ti = tarfile.TarInfo(f"layer{i}.bin")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        raw = buf.getvalue()
        layers.append(raw)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    names = [f"{d[7:]}.tar" for d in diff_ids]
    if lie:
        diff_ids[0] = "sha256:" + "1" * 64
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    with tarfile.open(path, "w") as tf:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        add("config.json", config)
        for name, raw in zip(names, layers, strict=True):
            add(name, raw)
        add("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": ["six:1"],
                                          "Layers": names}]).encode())


def test_docker_archive_layers_read_in_parallel(podkit, tmp_path):
    """Several layers of one archive are copied at once; each needs its own file handle."""
    archive = tmp_path / "six.tar"
    _docker_save(archive, 6, 2 << 20)
    image_id = fetch(podkit, f"docker-archive:{archive}")
    podkit.ok("render", image_id, str(tmp_path / "r"))
    for i in range(6):
        assert (tmp_path / "r" / f"layer{i}.bin").stat().st_size == 2 << 20


def test_docker_archive_with_a_false_diff_id_is_refused(podkit, tmp_path):
    archive = tmp_path / "lie.tar"
    _docker_save(archive, 2, 4096, lie=True)
    podkit.fail("fetch", f"docker-archive:{archive}", status=3, match="digest mismatch")
