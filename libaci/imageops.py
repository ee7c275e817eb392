"""Whole-image operations on the store: render a rootfs, export to a file.

Both write through a temporary path next to the destination and rename at
the end, so a failure or a kill never leaves a half-written result.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import tarfile
import time
from collections.abc import Iterator
from typing import BinaryIO

from libaci import mediatypes as mt
from libaci.compress import open_decompressed
from libaci.digest import chain_ids
from libaci.errors import ConflictError, NotFoundError, StoreError, UsageError
from libaci.fsutil import atomic_write, flocked, fsync_dir, rmtree, try_flock
from libaci.oci import Descriptor, dumps
from libaci.render import RenderStats, render
from libaci.store import REF_NAME, ImageRecord, Store


@contextlib.contextmanager
def _replacing(dest: str, overwrite: bool, *, directory: bool) -> Iterator[str]:
    """Yield a temp path beside ``dest``; on success it replaces ``dest``."""
    dest = os.path.abspath(dest)
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        raise NotFoundError(f"directory {parent} does not exist")
    if os.path.lexists(dest):
        empty_dir = directory and os.path.isdir(dest) and not os.listdir(dest)
        if not (overwrite or empty_dir):
            raise ConflictError(f"{dest} already exists (use --overwrite)")
    prefix = f".{os.path.basename(dest)}.podkit-"
    _remove_stale(parent, prefix)
    tmp = os.path.join(parent, prefix + os.urandom(4).hex())
    # the locked file says "a podkit process is writing tmp"; see _remove_stale
    lockfile = tmp + ".lock"
    lfd = os.open(lockfile, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    fcntl.flock(lfd, fcntl.LOCK_EX)
    try:
        if directory:
            os.mkdir(tmp, 0o755)
        yield tmp
        if os.path.lexists(dest):
            old = tmp + ".old"
            os.rename(dest, old)
            os.rename(tmp, dest)
            if os.path.isdir(old) and not os.path.islink(old):
                rmtree(old)
            else:
                os.unlink(old)
        else:
            os.rename(tmp, dest)
        fsync_dir(parent)
    except BaseException:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            rmtree(tmp)
        elif os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    finally:
        os.unlink(lockfile)
        os.close(lfd)


def _remove_stale(parent: str, prefix: str) -> None:
    """Remove temporaries of earlier writers to the same destination that were killed."""
    try:
        names = [n for n in os.listdir(parent) if n.startswith(prefix) and n.endswith(".lock")]
    except OSError:
        return
    for name in names:
        lockfile = os.path.join(parent, name)
        try:
            fd = os.open(lockfile, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not try_flock(fd):
                continue  # its writer is alive
            tmp = lockfile.removesuffix(".lock")
            if os.path.isdir(tmp) and not os.path.islink(tmp):
                rmtree(tmp)
            elif os.path.lexists(tmp):
                os.unlink(tmp)
            os.unlink(lockfile)
        finally:
            os.close(fd)


def render_image(store: Store, rec: ImageRecord, dest: str, *,
                 overwrite: bool = False) -> RenderStats:
    """The image's flattened rootfs, written to ``dest``."""
    with _replacing(dest, overwrite, directory=True) as tmp:
        layers, markers = store.render_layers(rec)
        return render(layers, tmp, markers=markers)


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), 0o644, int(time.time())
    tf.addfile(ti, io.BytesIO(data))


def _add_stream(tf: tarfile.TarFile, name: str, stream: BinaryIO, size: int) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = size, 0o644, int(time.time())
    tf.addfile(ti, stream)


def _add_dir(tf: tarfile.TarFile, name: str) -> None:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
    tf.addfile(ti)


def _oci_blobs(store: Store, rec: ImageRecord) -> list[Descriptor]:
    m = store.manifest(rec.descriptor.digest)
    return [rec.descriptor, m.config, *m.layers]


def _index_for(rec: ImageRecord, ref: str | None) -> bytes:
    ann = {k: v for k, v in rec.descriptor.annotations.items() if not k.startswith("io.podkit.")}
    name = ref or (rec.names[0] if rec.names else None)
    if name:
        ann[REF_NAME] = name
    else:
        ann.pop(REF_NAME, None)
    desc = rec.descriptor.with_annotations(ann)
    return dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [desc.to_dict()]})


def export_oci_archive(store: Store, rec: ImageRecord, out: BinaryIO, ref: str | None) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        _add_bytes(tf, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _add_bytes(tf, "index.json", _index_for(rec, ref))
        _add_dir(tf, "blobs")
        seen = set()
        for desc in _oci_blobs(store, rec):
            if desc.digest.algorithm not in seen:
                _add_dir(tf, f"blobs/{desc.digest.algorithm}")
                seen.add(desc.digest.algorithm)
        done = set()
        for desc in _oci_blobs(store, rec):
            if desc.digest in done:
                continue
            done.add(desc.digest)
            with store.open_blob(desc.digest) as f:
                _add_stream(tf, f"blobs/{desc.digest.algorithm}/{desc.digest.encoded}", f,
                            desc.size)


def export_oci_dir(store: Store, rec: ImageRecord, path: str, ref: str | None) -> None:
    """Add the image to an OCI layout directory (created if missing)."""
    os.makedirs(path, exist_ok=True)
    if not os.path.exists(os.path.join(path, "oci-layout")):
        atomic_write(os.path.join(path, "oci-layout"), b'{"imageLayoutVersion": "1.0.0"}')
    with flocked(os.path.join(path, ".podkit.lock")):
        for desc in _oci_blobs(store, rec):
            d = os.path.join(path, "blobs", desc.digest.algorithm)
            os.makedirs(d, exist_ok=True)
            final = os.path.join(d, desc.digest.encoded)
            if os.path.exists(final):
                continue
            with store.open_blob(desc.digest) as src, open(final + ".tmp", "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            os.rename(final + ".tmp", final)
        index_path = os.path.join(path, "index.json")
        entries = []
        if os.path.exists(index_path):
            with open(index_path, "rb") as f:
                entries = json.load(f).get("manifests") or []
        new = json.loads(_index_for(rec, ref))["manifests"][0]
        name = (new.get("annotations") or {}).get(REF_NAME)
        entries = [e for e in entries if not name or
                   (e.get("annotations") or {}).get(REF_NAME) != name]
        entries.append(new)
        atomic_write(index_path, dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                                        "manifests": entries}))
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(path, ".podkit.lock"))


def export_docker_archive(store: Store, rec: ImageRecord, out: BinaryIO, ref: str | None) -> None:
    """``docker save`` format: uncompressed layers named by diff ID."""
    m = store.manifest(rec.descriptor.digest)
    config = store.config(m)
    cfg_name = f"{m.config.digest.encoded}.json"
    layer_names = []
    extracted = {x.chain_id: x for x in store.extract_layers(rec)}  # uncompressed sizes
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        _add_bytes(tf, cfg_name, config.raw)
        for desc, diff, chain in zip(m.layers, config.diff_ids, chain_ids(config.diff_ids),
                                     strict=True):
            info = extracted[chain]
            name = f"{diff.encoded}/layer.tar"
            if name in layer_names:
                continue
            _add_dir(tf, diff.encoded)
            _add_bytes(tf, f"{diff.encoded}/VERSION", b"1.0")
            with store.open_blob(desc.digest) as f:
                _add_stream(tf, name, open_decompressed(f), info.size)
            layer_names.append(name)
        tags = [ref] if ref else list(rec.names)
        manifest = [{"Config": cfg_name, "RepoTags": tags or None, "Layers": layer_names}]
        _add_bytes(tf, "manifest.json", json.dumps(manifest).encode())


def export_aci(store: Store, rec: ImageRecord, out: BinaryIO, staging_dir: str) -> None:
    from libaci.aci import write_aci
    from libaci.appc_convert import manifest_from_oci_config, sanitize_ac_identifier
    from libaci.catalog import split_name

    if rec.is_aci:
        with store.open_blob(rec.descriptor.digest) as f:
            shutil.copyfileobj(f, out, 1 << 20)
        return
    m = store.manifest(rec.descriptor.digest)
    config = store.config(m)
    if rec.names:
        repo, tag = split_name(rec.names[0], aci=False)
    else:
        repo, tag = f"localhost/{rec.descriptor.digest.encoded[:12]}", "latest"
    manifest = manifest_from_oci_config(sanitize_ac_identifier(repo),
                                        None if tag == "<none>" else tag, config.doc)
    rootfs = os.path.join(staging_dir, "rootfs")
    os.mkdir(rootfs)
    layers, markers = store.render_layers(rec)
    render(layers, rootfs, markers=markers)
    write_aci(out, manifest.to_json(), rootfs)


def export_image(store: Store, rec: ImageRecord, dest: str, *, overwrite: bool = False) -> str:
    """Write ``rec`` to ``dest`` (oci-archive:, docker-archive:, oci:, FILE.aci)."""
    kind, path, ref = parse_destination(dest)
    if rec.is_aci and kind != "aci":
        raise UsageError(f"{rec.id} is an appc image: it exports only to FILE.aci")
    if kind == "oci":
        export_oci_dir(store, rec, path, ref)
        return path
    with _replacing(path, overwrite, directory=False) as tmp, open(tmp, "xb") as out:
        if kind == "oci-archive":
            export_oci_archive(store, rec, out, ref)
        elif kind == "docker-archive":
            export_docker_archive(store, rec, out, ref)
        else:
            with store.writing() as staging:
                export_aci(store, rec, out, staging.dir)
        out.flush()
        os.fsync(out.fileno())
    return path


def parse_destination(dest: str) -> tuple[str, str, str | None]:
    for kind in ("oci-archive", "docker-archive", "oci"):
        if dest.startswith(kind + ":"):
            path, _, ref = dest[len(kind) + 1:].partition(":")
            if not path:
                raise UsageError(f"missing path in destination {dest!r}")
            return kind, path, ref or None
    if dest.endswith(".aci"):
        return "aci", dest, None
    raise UsageError(f"unknown destination {dest!r} (use oci-archive:FILE[:REF], "
                     "docker-archive:FILE[:REF], oci:DIR[:REF] or FILE.aci)")


__all__ = ["StoreError", "export_image", "parse_destination", "render_image"]
