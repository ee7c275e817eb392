"""``oci-archive:FILE[:REF]``: a tar of an OCI image layout.

The archive is unpacked into the writer's staging directory, accepting only
the names a layout has (``oci-layout``, ``index.json``, ``blobs/ALG/HEX``),
then imported like an ``oci:`` directory.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile

from libaci.errors import ImageError, NotFoundError
from libaci.sources import Fetched, FetchOptions, split_path_ref
from libaci.sources.oci_import import import_manifest
from libaci.sources.ocilayout import Layout, store_name
from libaci.store import REF_NAME, Store

_NAME = re.compile(r"^(oci-layout|index\.json|blobs/[a-z0-9]+/[a-zA-Z0-9=_-]+)\Z")


def unpack_layout(archive: str, dest: str) -> None:
    try:
        tf = tarfile.open(archive, mode="r|*")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise NotFoundError(f"archive {archive} does not exist") from None
    except (tarfile.TarError, OSError) as e:
        raise ImageError(f"{archive}: not a tar archive ({e})") from None
    try:
        for m in tf:
            name = m.name.removeprefix("./").rstrip("/")
            if m.isdir() or name in ("", "blobs") or re.fullmatch(r"blobs/[a-z0-9]+", name):
                continue
            if not m.isfile() or not _NAME.match(name):
                raise ImageError(f"{archive}: unexpected entry {m.name!r} in an OCI archive")
            target = os.path.join(dest, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            src = tf.extractfile(m)
            assert src is not None
            with open(target, "xb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    except FileExistsError as e:
        raise ImageError(f"{archive}: duplicate entry {e.filename}") from None
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ImageError(f"{archive}: broken archive ({e})") from None
    finally:
        tf.close()


def fetch(store: Store, rest: str, options: FetchOptions) -> Fetched:
    path, ref = split_path_ref(rest)
    if not os.path.exists(path):
        raise NotFoundError(f"archive {path} does not exist")
    with store.writing() as staging:
        root = os.path.join(staging.dir, "archive")
        os.mkdir(root)
        unpack_layout(path, root)
        layout = Layout(root)
        desc = layout.find(ref)
        names = store_name(path.removesuffix(".tar"), ref or desc.annotations.get(REF_NAME),
                           options.name)
        source = f"oci-archive:{os.path.abspath(path)}" + (f":{ref}" if ref else "")
        return import_manifest(staging, layout.open, desc, names, options, source)
