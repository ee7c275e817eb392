"""ocikit.py - deterministic OCI image layouts for the benchmarks (stdlib only).

Imported by the image helpers the bench scripts write (mkimage.py, mkbase.py),
which copy this file next to them; a script's image cache is keyed on both
files.  Everything that decides a digest is fixed: PAX tars with the entries
in the order they are added, fixed times and owners, gzip with mtime 0 and
no file name, canonical JSON (sorted keys, no blanks).
"""
import gzip
import hashlib
import io
import json
import os
import tarfile

MIB = 1 << 20
MTIME = 1704067200                      # 2024-01-01T00:00:00Z
CREATED = "2024-01-01T00:00:00Z"
LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Sink:
    """A write-only file that hashes and counts, and passes bytes on."""

    def __init__(self, out):
        self.out, self.h, self.n = out, hashlib.sha256(), 0

    def write(self, b):
        self.h.update(b)
        self.n += len(b)
        if self.out is not None:
            self.out.write(b)
        return len(b)

    def flush(self):
        pass


class RandomFile:
    """``size`` pseudo-random bytes from ``rng``, read in pieces (tarfile.addfile)."""

    def __init__(self, rng, size):
        self.rng, self.left = rng, size

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)


class Layout:
    """An OCI image layout being written at ``root``: blobs, then :meth:`close`."""

    def __init__(self, root):
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.blobs, exist_ok=True)
        self.index = []

    def put_bytes(self, data, media_type):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.blobs, d), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + d, "size": len(data)}

    def layer(self, fill, compresslevel=6):
        """One gzip layer whose entries ``fill(add)`` adds, streamed to its blob:
        (descriptor, diff_id, tar size, entries).

        ``add(name, kind=REGTYPE, data=None, fileobj=None, size=0, mode=0o644, uid=0,
        gid=0, target="")``: ``data`` bytes, or ``size`` bytes read from ``fileobj``.
        """
        tmp = os.path.join(self.blobs, "tmp-layer")
        entries = 0
        with open(tmp, "wb") as raw:
            gz_sink = Sink(raw)
            with gzip.GzipFile(filename="", mode="wb", fileobj=gz_sink,
                               compresslevel=compresslevel, mtime=0) as gz:
                tar_sink = Sink(gz)
                with tarfile.open(fileobj=tar_sink, mode="w|", format=tarfile.PAX_FORMAT) as tf:

                    def add(name, kind=tarfile.REGTYPE, data=None, fileobj=None, size=0,
                            mode=0o644, uid=0, gid=0, target=""):
                        nonlocal entries
                        ti = tarfile.TarInfo(name)
                        ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = kind, mode, MTIME, uid, gid
                        ti.uname = ti.gname = ""
                        ti.linkname = target
                        if data is not None:
                            ti.size = len(data)
                            tf.addfile(ti, io.BytesIO(data))
                        elif fileobj is not None:
                            ti.size = size
                            tf.addfile(ti, fileobj)
                        else:
                            tf.addfile(ti)
                        entries += 1

                    fill(add)
        digest = gz_sink.h.hexdigest()
        os.replace(tmp, os.path.join(self.blobs, digest))
        desc = {"mediaType": LAYER_GZ, "digest": "sha256:" + digest, "size": gz_sink.n}
        return desc, "sha256:" + tar_sink.h.hexdigest(), tar_sink.n, entries

    def image(self, tag, layers, history):
        """Config and manifest over ``layers`` [(descriptor, diff_id)], named ``tag`` in
        the index; ``history``: one created_by per layer.  Returns the manifest's
        descriptor."""
        config = {
            "created": CREATED, "architecture": "amd64", "os": "linux",
            "config": {"Env": [PATH_ENV], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in layers]},
            "history": [{"created": CREATED, "created_by": h} for h in history],
        }
        cdesc = self.put_bytes(canon(config), CONFIG)
        mdesc = self.put_bytes(canon({"schemaVersion": 2, "mediaType": MANIFEST,
                                      "config": cdesc, "layers": [d for d, _ in layers]}),
                               MANIFEST)
        self.index.append({**mdesc, "annotations": {"org.opencontainers.image.ref.name": tag}})
        return mdesc

    def close(self):
        with open(os.path.join(self.root, "oci-layout"), "wb") as f:
            f.write(canon({"imageLayoutVersion": "1.0.0"}))
        with open(os.path.join(self.root, "index.json"), "wb") as f:
            f.write(canon({"schemaVersion": 2, "manifests": self.index}))
