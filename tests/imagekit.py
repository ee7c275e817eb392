"""Builds the shared test images with the real peers (umoci, skopeo).

One call per test session (see conftest.py) makes an OCI layout ``LAYOUT``
written by skopeo holding:

- ``tiny``         one gzip layer: busybox, symlinks, hardlinks, setuid, sticky,
                   owners, fifo, old mtimes
- ``multi``        three gzip layers on top of tiny's: whiteouts, a deleted tree,
                   a file replaced by a dir, an opaque dir, cross-entry hardlinks
- ``multi-plain``  the same image with uncompressed layers
- ``multi-zstd``   the same image with zstd layers
- ``multiarch``    an index: linux/amd64 -> multi, linux/arm64 -> tiny (relabelled)

plus ``docker.tar`` (docker-archive of multi) and ``app.aci`` (an appc image
written by hand with tarfile, independent of podkit's own writer).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time

BUSYBOX = "/bin/busybox"
OLD = 946684800  # 2000-01-01


def sh(*cmd: str, cwd: str | None = None) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def _base_rootfs(root: str) -> None:
    for d in ("bin", "etc", "usr/bin", "data", "opaque", "gone/deep", "run", "home/user"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(root, "bin/busybox"))
    for applet in ("sh", "ls", "cat", "echo", "true", "false", "sleep", "id", "env"):
        os.symlink("/bin/busybox", os.path.join(root, "bin", applet))
    os.symlink("../bin/busybox", os.path.join(root, "usr/bin/relative"))
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write("root:x:0:\nuser:x:1000:\n")
    for name in ("a", "b", "c"):
        with open(os.path.join(root, "data", name), "w") as f:
            f.write(f"data {name}\n" * 100)
    for name in ("x", "y"):
        with open(os.path.join(root, "opaque", name), "w") as f:
            f.write(name)
    with open(os.path.join(root, "gone/deep/file"), "w") as f:
        f.write("to be deleted")
    with open(os.path.join(root, "swap"), "w") as f:
        f.write("a file that becomes a dir")
    with open(os.path.join(root, "usr/bin/su"), "w") as f:
        f.write("#!/bin/sh\necho su\n")
    os.chmod(os.path.join(root, "usr/bin/su"), 0o4755)
    with open(os.path.join(root, "usr/bin/sg"), "w") as f:
        f.write("setgid")
    os.chmod(os.path.join(root, "usr/bin/sg"), 0o2711)
    os.makedirs(os.path.join(root, "tmp"))
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    with open(os.path.join(root, "home/user/owned"), "w") as f:
        f.write("mine")
    os.chown(os.path.join(root, "home/user/owned"), 1000, 1000)
    os.chown(os.path.join(root, "home/user"), 1000, 1000)
    os.link(os.path.join(root, "data/a"), os.path.join(root, "data/a-link"))
    with open(os.path.join(root, "bin/hl1"), "w") as f:
        f.write("hardlinked")
    os.link(os.path.join(root, "bin/hl1"), os.path.join(root, "bin/hl2"))
    os.mkfifo(os.path.join(root, "run/fifo"), 0o620)
    with open(os.path.join(root, "etc/empty"), "w"):
        pass
    os.chmod(os.path.join(root, "etc/empty"), 0o400)
    os.utime(os.path.join(root, "data/b"), (OLD, OLD))


def _modify(root: str) -> None:
    os.unlink(os.path.join(root, "data/a"))  # whiteout (data/a-link stays)
    with open(os.path.join(root, "data/d"), "w") as f:
        f.write("new in layer 2")
    with open(os.path.join(root, "etc/passwd"), "a") as f:
        f.write("extra:x:1001:1001::/:/bin/false\n")
    shutil.rmtree(os.path.join(root, "gone"))  # whiteout of a tree
    os.unlink(os.path.join(root, "swap"))
    os.makedirs(os.path.join(root, "swap/inner"))  # file replaced by a directory
    os.unlink(os.path.join(root, "bin/false"))


def _tar_bytes(entries: list[tuple[str, str, bytes | str | None, int]]) -> bytes:
    """A layer from (name, kind, data-or-linkname, mode) tuples."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mode, ti.mtime = mode, OLD + 5
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif kind == "file":
                raw = data.encode() if isinstance(data, str) else (data or b"")
                ti.size = len(raw)
                tf.addfile(ti, io.BytesIO(raw))
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, str(data)
                tf.addfile(ti)
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, str(data)
                tf.addfile(ti)
    return buf.getvalue()


def _handmade_layer() -> bytes:
    return _tar_bytes([
        ("opaque/", "dir", None, 0o755),
        ("opaque/.wh..wh..opq", "file", b"", 0o644),
        ("opaque/z", "file", "only z survives", 0o644),
        ("opaque/sub/", "dir", None, 0o750),
        ("opaque/sub/deep", "file", "deep", 0o600),
        ("bin/.wh.ls", "file", b"", 0o644),
        ("links/", "dir", None, 0o755),
        ("links/target", "file", "target of two links", 0o640),
        ("links/h1", "hard", "links/target", 0o640),
        ("links/h2", "hard", "links/target", 0o640),
        ("links/rel", "sym", "target", 0o777),
        ("links/dangling", "sym", "/nonexistent/path", 0o777),
        ("links/dir", "sym", "../data", 0o777),
    ])


def _oci_index_with(layout: str, entries: list[tuple[str, str, str | None]], tag: str) -> None:
    """Add an index to ``layout`` over existing tags: (tag, arch, variant)."""
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m
              for m in index["manifests"]}
    manifests = []
    for t, arch, variant in entries:
        desc = {k: v for k, v in by_tag[t].items() if k != "annotations"}
        desc["platform"] = {"architecture": arch, "os": "linux"}
        if variant:
            desc["platform"]["variant"] = variant
        manifests.append(desc)
    doc = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                      "manifests": manifests}).encode()
    h = hashlib.sha256(doc).hexdigest()
    with open(os.path.join(layout, "blobs/sha256", h), "wb") as f:
        f.write(doc)
    index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                               "digest": f"sha256:{h}", "size": len(doc),
                               "annotations": {"org.opencontainers.image.ref.name": tag}})
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)


def _decompressed_copy(layout: str, tag: str, new_tag: str) -> None:
    """Tag ``new_tag``: ``tag`` with every gzip layer stored uncompressed."""
    import gzip

    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    desc = next(m for m in index["manifests"]
                if m["annotations"]["org.opencontainers.image.ref.name"] == tag)
    blobs = os.path.join(layout, "blobs/sha256")
    with open(os.path.join(blobs, desc["digest"].split(":")[1])) as f:
        manifest = json.load(f)
    for layer in manifest["layers"]:
        with gzip.open(os.path.join(blobs, layer["digest"].split(":")[1])) as f:
            data = f.read()
        h = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, h), "wb") as f:
            f.write(data)
        layer.update(mediaType="application/vnd.oci.image.layer.v1.tar",
                     digest=f"sha256:{h}", size=len(data))
    raw = json.dumps(manifest).encode()
    h = hashlib.sha256(raw).hexdigest()
    with open(os.path.join(blobs, h), "wb") as f:
        f.write(raw)
    index["manifests"].append({"mediaType": desc["mediaType"], "digest": f"sha256:{h}",
                               "size": len(raw),
                               "annotations": {"org.opencontainers.image.ref.name": new_tag}})
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)


def build_aci(path: str, name: str = "example.com/app", version: str = "v1") -> None:
    manifest = {
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
        "labels": [{"name": "version", "value": version}, {"name": "os", "value": "linux"},
                   {"name": "arch", "value": "amd64"}],
        "app": {"exec": ["/bin/sh", "-c", "echo hello"], "user": "0", "group": "0",
                "environment": [{"name": "GREETING", "value": "hi"}]},
        "annotations": [{"name": "created", "value": "2020-01-02T03:04:05Z"}],
        "x-unknown-field": {"kept": True},
    }
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        raw = json.dumps(manifest, indent=2).encode()
        ti = tarfile.TarInfo("manifest")
        ti.size, ti.mode, ti.mtime = len(raw), 0o644, OLD
        tf.addfile(ti, io.BytesIO(raw))
        for name_, kind, data, mode in [
            ("rootfs", "dir", None, 0o755), ("rootfs/bin", "dir", None, 0o755),
            ("rootfs/etc", "dir", None, 0o755),
            ("rootfs/etc/hostname", "file", "aci\n", 0o644),
            ("rootfs/bin/sh", "sym", "busybox", 0o777),
            ("rootfs/.wh.notawhiteout", "file", "appc has no whiteouts", 0o644),
        ]:
            ti = tarfile.TarInfo(name_)
            ti.mode, ti.mtime = mode, OLD
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, str(data)
                tf.addfile(ti)
            else:
                b = str(data).encode()
                ti.size = len(b)
                tf.addfile(ti, io.BytesIO(b))
        ti = tarfile.TarInfo("rootfs/bin/busybox")
        ti.size, ti.mode, ti.mtime = os.path.getsize(BUSYBOX), 0o755, OLD
        with open(BUSYBOX, "rb") as f:
            tf.addfile(ti, f)


def build_all(work: str) -> dict[str, str]:
    """Build everything under ``work``; returns paths by name."""
    t0 = time.time()
    build = os.path.join(work, "build")
    layout = os.path.join(work, "layout")
    bundle = os.path.join(work, "bundle")
    sh("umoci", "init", "--layout", build)
    sh("umoci", "new", "--image", f"{build}:base")
    sh("umoci", "unpack", "--image", f"{build}:base", bundle)
    rootfs = os.path.join(bundle, "rootfs")
    _base_rootfs(rootfs)
    sh("umoci", "repack", "--refresh-bundle", "--image", f"{build}:tiny", bundle)
    sh("umoci", "config", "--image", f"{build}:tiny", "--config.cmd", "/bin/sh",
       "--config.env", "PATH=/usr/bin:/bin", "--config.workingdir", "/")
    _modify(rootfs)
    sh("umoci", "repack", "--image", f"{build}:multi2", bundle)
    hand = os.path.join(work, "hand.tar")
    with open(hand, "wb") as f:
        f.write(_handmade_layer())
    sh("umoci", "raw", "add-layer", "--image", f"{build}:multi2", "--tag", "multi", hand)
    sh("umoci", "config", "--image", f"{build}:tiny", "--tag", "tiny-arm64",
       "--architecture", "arm64")
    shutil.rmtree(bundle)
    # "pushed by skopeo" into the layout the tests fetch from
    for tag in ("tiny", "multi"):
        sh("skopeo", "copy", "-q", f"oci:{build}:{tag}", f"oci:{layout}:{tag}")
    _decompressed_copy(build, "multi", "multi-plain")
    sh("skopeo", "copy", "-q", "--dest-oci-accept-uncompressed-layers",
       f"oci:{build}:multi-plain", f"oci:{layout}:multi-plain")
    # a fresh layout, or skopeo reuses the uncompressed blobs it finds there
    zlayout = os.path.join(work, "zstd")
    sh("skopeo", "copy", "-q", "--dest-compress-format", "zstd",
       f"oci:{build}:multi-plain", f"oci:{zlayout}:multi-zstd")
    sh("skopeo", "copy", "-q", f"oci:{zlayout}:multi-zstd", f"oci:{layout}:multi-zstd")
    _oci_index_with(build, [("multi", "amd64", None), ("tiny-arm64", "arm64", "v8")], "multiarch")
    sh("skopeo", "copy", "-q", "--all", f"oci:{build}:multiarch", f"oci:{layout}:multiarch")
    docker_tar = os.path.join(work, "docker.tar")
    sh("skopeo", "copy", "-q", f"oci:{layout}:multi",
       f"docker-archive:{docker_tar}:example.com/test/multi:1")
    aci = os.path.join(work, "app.aci")
    build_aci(aci)
    return {"layout": layout, "build": build, "docker": docker_tar, "aci": aci,
            "seconds": f"{time.time() - t0:.1f}"}
