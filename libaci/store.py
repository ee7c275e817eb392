"""The on-disk store: an OCI image layout plus extracted layers and pods.

Layout (see man/podkit-store.5)::

    STORE/oci-layout, index.json, blobs/<alg>/<hex>   OCI image layout
    STORE/layers/<alg>/<chain-hex>/rootfs             one extracted layer (overlay form)
    STORE/layers/<alg>/<chain-hex>/layer.json         its diff ID, size, entry count
    STORE/tmp/w-<random>/                             a writer's staging dir (flocked)
    STORE/tmp/verified/<alg>/<hex>                    verified blobs of unfinished fetches
    STORE/tmp/partial/<alg>-<hex>                     a blob being downloaded (flocked), or
                                                      what an interrupted download left
    STORE/locks/                                      lock files
    STORE/pods/<state>/<uuid>                         pods (stage0)

Names live in index.json as ``org.opencontainers.image.ref.name`` holding the
full reference, so ``skopeo inspect oci:STORE:REF`` and ``umoci ls`` read it.
Writers stage everything in their own ``tmp/w-*`` directory, verify it, and
only then rename blobs and layers into place and rewrite index.json, so a
killed process never leaves a partial image visible; stale staging
directories (whose flock nobody holds) are removed by the next writer.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import attrs

from libaci import mediatypes as mt
from libaci.digest import CHUNK, Digest, Hasher, chain_ids, verify
from libaci.errors import (
    AmbiguousError,
    DigestMismatchError,
    FetchError,
    ManifestError,
    NotFoundError,
    StoreError,
)
from libaci.fsutil import atomic_write, flocked, fsync_dir, mkdir_shared, rmtree, try_flock
from libaci.oci import Descriptor, ImageConfig, Index, Manifest, dumps, parse_config, parse_document

REF_NAME = "org.opencontainers.image.ref.name"
ANN_CREATED = "io.podkit.image.imported"
ANN_SOURCE = "io.podkit.image.source"
ANN_ACI_MANIFEST = "io.podkit.aci.manifest"
ANN_INDEX = "io.podkit.image.index"
LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'
DEFAULT_STORE = "/var/lib/podkit"


@attrs.frozen
class ImageRecord:
    """One image in the store: its descriptor in index.json and its names."""

    descriptor: Descriptor
    names: tuple[str, ...]

    @property
    def is_aci(self) -> bool:
        return self.descriptor.media_type == mt.APPC_ACI

    @property
    def id(self) -> str:
        d = self.descriptor.digest
        return f"sha512-{d.encoded}" if self.is_aci else str(d)

    @property
    def short_id(self) -> str:
        d = self.descriptor.digest
        return f"sha512-{d.encoded[:12]}" if self.is_aci else d.encoded[:12]


@attrs.frozen
class LayerInfo:
    chain_id: Digest
    diff_id: Digest
    path: str
    size: int
    entries: int
    whiteouts: str = "overlay"  # or "marker" (.wh. files) or "none" (appc)


def image_id_to_digest(text: str) -> Digest:
    """``sha512-<hex>`` (appc) or ``alg:hex`` to a Digest."""
    if text.startswith("sha512-"):
        return Digest.parse("sha512:" + text[7:])
    return Digest.parse(text)


class Store:
    """Access to one store directory.  Cheap to create; opens nothing by itself."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    # -- paths ---------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def blob_path(self, digest: Digest) -> str:
        return self.path("blobs", digest.algorithm, digest.encoded)

    def layer_dir(self, chain_id: Digest) -> str:
        return self.path("layers", chain_id.algorithm, chain_id.encoded)

    def lock_path(self, name: str) -> str:
        return self.path("locks", name)

    # -- set-up and housekeeping ----------------------------------------------
    def exists(self) -> bool:
        return os.path.isfile(self.path("oci-layout")) and os.path.isfile(self.path("index.json"))

    def ensure(self) -> None:
        """Create the layout if it is missing (idempotent, safe to race)."""
        if self.exists() and os.path.isdir(self.path("locks")):
            return
        try:
            os.makedirs(self.root, mode=0o711, exist_ok=True)
            for sub, mode in (("blobs/sha256", 0o755), ("layers", 0o700), ("tmp", 0o700),
                              ("locks", 0o700), ("pods", 0o711)):
                os.makedirs(self.path(sub), mode=mode, exist_ok=True)
            os.chmod(self.path("layers"), 0o700)
        except OSError as e:
            raise StoreError(f"cannot create store {self.root}: {e.strerror}") from None
        with flocked(self.lock_path("index.lock")):
            if not os.path.isfile(self.path("oci-layout")):
                atomic_write(self.path("oci-layout"), LAYOUT)
            if not os.path.isfile(self.path("index.json")):
                atomic_write(self.path("index.json"), dumps(
                    {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}))

    def require(self) -> None:
        if not self.exists():
            raise NotFoundError(f"no podkit store at {self.root} (fetch an image first)")

    @contextlib.contextmanager
    def writing(self) -> Iterator[Staging]:
        """A staging directory for one writer; shared gc lock held meanwhile."""
        self.ensure()
        self.clean_stale()
        with flocked(self.lock_path("gc.lock"), exclusive=False):
            staging = Staging.create(self)
            try:
                yield staging
            finally:
                staging.close()

    def clean_stale(self) -> list[str]:
        """Remove staging dirs left by killed writers (nobody holds their lock)."""
        removed = []
        tmp = self.path("tmp")
        try:
            names = os.listdir(tmp)
        except FileNotFoundError:
            return removed
        for name in names:
            p = os.path.join(tmp, name)
            if name.startswith("n-") and _age(p) > 60:  # killed between mkdir and rename
                rmtree(p)
                removed.append(p)
                continue
            if not name.startswith("w-"):
                continue
            try:
                fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if try_flock(fd):
                    rmtree(p)
                    removed.append(p)
            finally:
                os.close(fd)
        return removed

    # -- blobs ----------------------------------------------------------------
    def has_blob(self, digest: Digest) -> bool:
        return os.path.isfile(self.blob_path(digest))

    def verified_path(self, digest: Digest) -> str:
        """Where a verified blob waits for its image to be published (tmp/verified)."""
        return self.path("tmp", "verified", digest.algorithm, digest.encoded)

    def open_blob(self, digest: Digest) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} is not in the store") from None

    def read_blob(self, digest: Digest, limit: int = 4 << 20) -> bytes:
        with self.open_blob(digest) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ManifestError(f"blob {digest} is larger than {limit} bytes")
        return data

    def blob_size(self, digest: Digest) -> int:
        try:
            return os.stat(self.blob_path(digest)).st_size
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} is not in the store") from None

    # -- documents --------------------------------------------------------------
    def read_index(self) -> Index:
        try:
            with open(self.path("index.json"), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return Index(manifests=(), media_type=mt.OCI_INDEX)
        doc = parse_document(raw, validate=False)
        if not isinstance(doc, Index):
            raise StoreError(f"{self.path('index.json')} is not an image index")
        return doc

    def manifest(self, digest: Digest) -> Manifest:
        doc = parse_document(self.read_blob(digest), validate=False)
        if not isinstance(doc, Manifest):
            raise ManifestError(f"{digest} is an index, not an image manifest")
        return doc

    def config(self, manifest: Manifest) -> ImageConfig:
        return parse_config(self.read_blob(manifest.config.digest), validate=False)

    # -- images -----------------------------------------------------------------
    def images(self) -> list[ImageRecord]:
        """Images in index.json order, one record per digest with all its names."""
        by_digest: dict[Digest, tuple[Descriptor, list[str]]] = {}
        for desc in self.read_index().manifests:
            entry = by_digest.setdefault(desc.digest, (desc, []))
            name = desc.annotations.get(REF_NAME)
            if name and name not in entry[1]:
                entry[1].append(name)
        return [ImageRecord(d, tuple(n)) for d, n in by_digest.values()]

    def resolve(self, ref: str) -> ImageRecord:
        """Find an image by name, full ID or unique ID prefix."""
        from libaci import names as naming

        images = self.images()
        if not ref:
            raise NotFoundError("empty image reference")
        keys = naming.lookup_keys(ref)
        for rec in images:
            if any(k in rec.names for k in keys):
                return rec
        aci = naming.appc_name_without_version(ref)
        if aci is not None:  # appc: newest import of any version, as rkt does
            hits = [r for r in images if r.is_aci and any(n.partition(":")[0] == aci
                                                          for n in r.names)]
            if hits:
                return max(hits, key=lambda r: r.descriptor.annotations.get(ANN_CREATED, ""))
        prefix = naming.id_prefix(ref)
        if prefix is not None:
            alg, hexpart = prefix
            hits = [r for r in images if (alg is None or r.descriptor.digest.algorithm == alg)
                    and r.descriptor.digest.encoded.startswith(hexpart)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise AmbiguousError(f"image ID prefix {ref!r} is ambiguous "
                                     f"({len(hits)} images match; give more digits)")
        raise NotFoundError(f"image {ref!r} is not in the store (podkit-fetch it first)")

    def update_index(self, change: Any) -> None:
        """Apply ``change(list_of_descriptor_dicts) -> list`` to index.json under its lock."""
        self.ensure()
        with flocked(self.lock_path("index.lock")):
            idx = self.read_index()
            doc = idx.to_dict()
            doc["manifests"] = change([d.to_dict() for d in idx.manifests])
            doc.setdefault("mediaType", mt.OCI_INDEX)
            atomic_write(self.path("index.json"), dumps(doc))

    def add_image(self, desc: Descriptor, names: list[str]) -> None:
        """Make an image visible under ``names`` (names move from other images)."""
        def change(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            out = []
            digest = str(desc.digest)
            for e in entries:
                ann = e.get("annotations") or {}
                if ann.get(REF_NAME) in names:
                    if e["digest"] != digest:  # the name moves; the image stays, unnamed
                        out.append({**e, "annotations": {k: v for k, v in ann.items()
                                                         if k != REF_NAME}})
                    continue
                out.append(e)
            # one unnamed entry per image at most, and none for an image with names
            named = {x["digest"] for x in out if (x.get("annotations") or {}).get(REF_NAME)}
            if names:
                named.add(digest)
            seen: set[str] = set()
            kept = []
            for e in out:
                unnamed = not (e.get("annotations") or {}).get(REF_NAME)
                if unnamed and (e["digest"] in named or e["digest"] in seen):
                    continue
                if unnamed:
                    seen.add(e["digest"])
                kept.append(e)
            out = kept
            have = {(e["digest"], (e.get("annotations") or {}).get(REF_NAME)) for e in out}
            for n in names or [None]:
                if (digest, n) in have:
                    continue
                ann = dict(desc.annotations)
                if n:
                    ann[REF_NAME] = n
                else:
                    ann.pop(REF_NAME, None)
                out.append(desc.with_annotations(ann).to_dict())
            return out

        self.update_index(change)

    def remove_names(self, rec: ImageRecord, names: list[str] | None) -> list[str]:
        """Drop ``names`` of an image (all entries when None); returns what was removed."""
        removed: list[str] = []
        digest = str(rec.descriptor.digest)

        def change(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            out = []
            for e in entries:
                n = (e.get("annotations") or {}).get(REF_NAME)
                if e["digest"] == digest and (names is None or n in names):
                    removed.append(n or digest)
                    continue
                out.append(e)
            return out

        self.update_index(change)
        return removed

    # -- layers -------------------------------------------------------------------
    def layer_info(self, chain_id: Digest) -> LayerInfo | None:
        d = self.layer_dir(chain_id)
        try:
            with open(os.path.join(d, "layer.json"), "rb") as f:
                info = json.load(f)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as e:
            raise StoreError(f"layer {chain_id}: unreadable layer.json: {e}") from None
        return LayerInfo(chain_id, Digest.parse(info["diff_id"]), os.path.join(d, "rootfs"),
                         int(info.get("size", 0)), int(info.get("entries", 0)),
                         info.get("whiteouts", "overlay"))

    def image_layers(self, rec: ImageRecord) -> list[LayerInfo]:
        """The extracted layers of an image, bottom first; NotFoundError if one is missing."""
        if rec.is_aci:
            chains = [rec.descriptor.digest]
        else:
            chains = chain_ids(self.config(self.manifest(rec.descriptor.digest)).diff_ids)
        out = []
        for c in chains:
            info = self.layer_info(c)
            if info is None:
                raise NotFoundError(f"layer {c} of image {rec.id} is not extracted "
                                    f"(fetch the image again)")
            out.append(info)
        return out

    def missing_layers(self, rec: ImageRecord) -> list[Digest]:
        """Chain IDs of the image's layers not extracted yet."""
        if rec.is_aci:
            chains = [rec.descriptor.digest]
        else:
            chains = chain_ids(self.config(self.manifest(rec.descriptor.digest)).diff_ids)
        return [c for c in chains if self.layer_info(c) is None]

    def extract_layers(self, rec: ImageRecord) -> list[LayerInfo]:
        """The image's layers, extracting on first use those not extracted yet.

        Fetching only stores blobs, as ``skopeo copy`` does; a layer is
        decompressed, checked against its diff ID and extracted in overlay form
        the first time something needs its files (render, run, export), then
        shared by every image that has it.  Writers of one image serialize on a
        lock, so two first runs do the work once.
        """
        if not self.missing_layers(rec):
            return self.image_layers(rec)
        if rec.is_aci:
            raise NotFoundError(f"the rootfs of ACI {rec.short_id} is missing "
                                f"(fetch the image again)")
        manifest = self.manifest(rec.descriptor.digest)
        with flocked(self.lock_path(f"extract-{rec.descriptor.digest.encoded}.lock")), \
                self.writing() as staging:
            staging.extract(manifest, self.config(manifest).diff_ids)
            staging.commit(None, [])
        return self.image_layers(rec)

    def render_layers(self, rec: ImageRecord) -> tuple[list[str], frozenset[str]]:
        """The image's layer roots (bottom first) and those with marker whiteouts."""
        layers = self.extract_layers(rec)
        return [x.path for x in layers], frozenset(x.path for x in layers
                                                   if x.whiteouts == "marker")

    # -- small JSON caches under cache/ (hints only: a damaged one reads as empty) --
    def read_cache(self, name: str) -> dict[str, Any]:
        try:
            with open(self.path("cache", name), "rb") as f:
                doc = json.load(f)
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    def update_cache(self, name: str, change: Any) -> None:
        """Apply ``change(doc)`` (in place) to cache ``name`` under its lock, atomically."""
        os.makedirs(self.path("cache"), mode=0o700, exist_ok=True)
        with flocked(self.lock_path(name + ".lock")):
            doc = self.read_cache(name)
            change(doc)
            atomic_write(self.path("cache", name), json.dumps(doc).encode(), mode=0o600)

    def image_size(self, rec: ImageRecord) -> int:
        """Bytes of the image's layers: extracted size, else the compressed blob's."""
        try:
            if rec.is_aci:
                return sum(x.size for x in self.image_layers(rec))
            manifest = self.manifest(rec.descriptor.digest)
            chains = chain_ids(self.config(manifest).diff_ids)
            total = 0
            for desc, chain in zip(manifest.layers, chains, strict=False):
                info = self.layer_info(chain)
                total += info.size if info is not None else desc.size
            return total
        except (NotFoundError, ManifestError, StoreError):
            return 0


def _age(path: str) -> float:
    try:
        return time.time() - os.lstat(path).st_mtime
    except OSError:
        return 0.0


OpenAt = Callable[[int], Any]  # byte offset -> a stream of a blob from there (see Staging.download)
PARTIAL_POLL = 0.1  # seconds between looks at a blob another fetch is downloading
WRITEBACK = 8 << 20  # start writing a blob to disk every this many bytes (see copy_hashed)


def copy_hashed(stream: Any, fd: int, h: Hasher, size: int | None = None,
                progress: Callable[[int], None] | None = None,
                stop: threading.Event | None = None) -> None:
    """Copy ``stream`` to ``fd`` in 1 MiB blocks, hashing; stop one byte past ``size``.

    Streams with ``readinto`` fill one reused buffer (no bytes object per
    block); ``h.size`` counts every byte (including those hashed before).
    """
    limit = None if size is None else size + 1  # one byte too many is caught by verify
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    readinto = getattr(stream, "readinto", None)
    flushed = written = os.lseek(fd, 0, os.SEEK_CUR)
    while True:
        want = CHUNK if limit is None else min(CHUNK, limit - h.size)
        if want <= 0:
            return
        if readinto is not None:
            n = readinto(mv[:want])
            block: Any = mv[:n]
        else:
            block = stream.read(want)
            n = len(block)
        if not n:
            return
        h.update(block)
        view = memoryview(block)
        while view:
            view = view[os.write(fd, view):]
        written += n
        if written - flushed >= WRITEBACK:
            _start_writeback(fd, flushed, written - flushed)
            flushed = written
        if progress is not None:
            progress(h.size)
        if stop is not None and stop.is_set():
            raise FetchError("download stopped (another part of the fetch failed)")


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing these (just written, dirty) pages to disk now.

    So that the fsync at the end of a blob waits for little: without this, a
    40 MB layer is written back only at its fsync (~20 ms of the download
    thread's time, ~100 ms when four end at once).  POSIX_FADV_DONTNEED
    starts the writeback of dirty pages and drops only pages that are
    already clean, which these are not: the blob stays in the page cache.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def _rehash(fd: int, h: Hasher, size: int | None) -> int:
    """Hash what a kept partial download holds; a file longer than the blob is emptied."""
    length = os.fstat(fd).st_size
    if size is not None and length > size:
        os.ftruncate(fd, 0)
        return 0
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    pos = 0
    while pos < length:
        n = os.preadv(fd, [mv[:min(CHUNK, length - pos)]], pos)
        if not n:
            break
        h.update(mv[:n])
        pos += n
    return pos


@attrs.define
class Staging:
    """A writer's private directory inside the store, locked while it lives."""

    store: Store
    dir: str
    fd: int
    blobs: dict[Digest, str] = attrs.field(factory=dict)
    layers: dict[Digest, str] = attrs.field(factory=dict)

    @classmethod
    def create(cls, store: Store) -> Staging:
        # made under a name clean_stale ignores, and renamed once locked, so no
        # other writer can ever see it unlocked and take it for a stale one
        name = f"{os.getpid()}-{os.urandom(6).hex()}"
        new, d = store.path("tmp", f"n-{name}"), store.path("tmp", f"w-{name}")
        os.mkdir(new, 0o700)
        fd = os.open(new, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if not try_flock(fd):
            raise StoreError(f"cannot lock {new}")
        os.rename(new, d)
        return cls(store, d, fd)

    def close(self) -> None:
        rmtree(self.dir)
        os.close(self.fd)

    def tmpfile(self, prefix: str) -> tuple[str, int]:
        p = os.path.join(self.dir, f"{prefix}-{os.urandom(6).hex()}")
        return p, os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)

    def has_blob(self, digest: Digest) -> bool:
        if digest in self.blobs or self.store.has_blob(digest):
            return True
        kept = self.store.verified_path(digest)
        if os.path.isfile(kept):  # verified by an earlier, interrupted writer
            self.blobs[digest] = kept
            return True
        return False

    def blob_path(self, digest: Digest) -> str:
        return self.blobs.get(digest) or self.store.blob_path(digest)

    def put_stream(self, stream: BinaryIO, *, expected: Digest | None = None,
                   size: int | None = None, algorithm: str = "sha256",
                   what: str = "blob") -> tuple[Digest, int]:
        """Copy ``stream`` into a staged blob, hashing it; verify against ``expected``."""
        alg = expected.algorithm if expected is not None else algorithm
        h = Hasher(alg)
        path, fd = self.tmpfile("blob")
        try:
            try:
                copy_hashed(stream, fd, h, size)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise StoreError(f"{what}: cannot stage blob: {e.strerror}") from None
        actual = h.digest()
        if expected is not None:
            try:
                verify(expected, size, actual, h.size, what)
            except Exception:
                os.unlink(path)
                raise
        if expected is not None:
            # verified: keep it where a fetch killed before its commit finds it again
            path = self._keep_verified(path, actual)
        self.blobs[actual] = path
        return actual, h.size

    def _keep_verified(self, path: str, digest: Digest) -> str:
        kept = self.store.verified_path(digest)
        os.makedirs(os.path.dirname(kept), mode=0o700, exist_ok=True)
        os.rename(path, kept)
        return kept

    # -- resumable downloads of blobs whose digest is known ----------------------------
    def partial_path(self, digest: Digest) -> str:
        """Where a download of ``digest`` is kept while it lasts, and after an interruption."""
        return self.store.path("tmp", "partial", f"{digest.algorithm}-{digest.encoded}")

    def download(self, expected: Digest, size: int | None, open_at: OpenAt, *,
                 what: str = "blob", progress: Callable[[int], None] | None = None,
                 waiting: Callable[[], None] | None = None,
                 stop: threading.Event | None = None, keep: bool = True) -> None:
        """Fetch the blob ``expected`` (of ``size`` bytes), resuming a download kept earlier.

        The bytes go to ``tmp/partial/<alg>-<hex>``, flocked while written, so that
        two fetches never write one file (the second waits for the first, then finds
        the blob verified, or resumes where a killed one stopped).  The bytes
        already there are hashed again (a hash state cannot be saved) and
        ``open_at(n)`` gives a stream of the blob from byte ``n`` on; its
        ``offset`` attribute (0 if it has none) says where it really starts.
        The file is fsynced, verified and renamed into ``tmp/verified``.  A
        download that breaks off stays for the next try (gc removes it); one
        whose bytes do not verify is deleted (when it was resumed, it is first
        fetched once more from byte 0: the kept part may be what was wrong).
        ``progress`` gets the byte count as it grows; ``stop`` set makes it give up.
        ``keep=False`` (a source that cannot resume) removes what a failure leaves.
        """
        claimed = self._claim_partial(expected, waiting)
        if claimed is None:
            return
        fd, path = claimed
        try:
            for attempt in (1, 2):
                h = Hasher(expected.algorithm)
                try:
                    kept = _rehash(fd, h, size)
                except OSError as e:
                    raise StoreError(f"{what}: cannot read {path}: {e.strerror}") from None
                if size is None or kept < size:
                    stream = open_at(kept)
                    try:
                        start = int(getattr(stream, "offset", 0))
                        if start != kept:  # the source starts over: so do we
                            os.ftruncate(fd, 0)
                            h = Hasher(expected.algorithm)
                            if start != 0:
                                raise StoreError(f"{what}: the source resumed at byte {start}, "
                                                 f"not at {kept} or 0")
                        os.lseek(fd, h.size, os.SEEK_SET)
                        if progress is not None:
                            progress(h.size)
                        copy_hashed(stream, fd, h, size, progress, stop)
                    except OSError as e:
                        raise StoreError(f"{what}: cannot stage blob: "
                                         f"{e.strerror or e}") from None
                    finally:
                        stream.close()
                try:
                    os.fsync(fd)
                except OSError as e:
                    raise StoreError(f"{what}: cannot write {path}: {e.strerror}") from None
                try:
                    verify(expected, size, h.digest(), h.size, what)
                except DigestMismatchError:
                    os.ftruncate(fd, 0)
                    if kept and attempt == 1:
                        continue  # the kept bytes were not the blob's: once more from 0
                    os.unlink(path)
                    path = ""
                    raise
                os.chmod(path, 0o644)
                self.blobs[expected] = self._keep_verified(path, expected)
                path = ""
                return
        finally:
            with contextlib.suppress(OSError):
                if path and (not keep or os.fstat(fd).st_size == 0):
                    os.unlink(path)  # nothing worth keeping
                    path = ""
            os.close(fd)  # and with it the lock
            if not path:  # tmp/partial goes when its last file does
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.dirname(self.partial_path(expected)))

    def _claim_partial(self, digest: Digest,
                       waiting: Callable[[], None] | None) -> tuple[int, str] | None:
        """The locked partial file of ``digest``, or None once the blob is there."""
        path = self.partial_path(digest)
        told = False
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:  # no tmp/partial (or another writer's rmdir just now)
                mkdir_shared(os.path.dirname(path))
                continue
            if try_flock(fd):
                st = os.fstat(fd)
                try:
                    now = os.stat(path)
                    current = (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev)
                except FileNotFoundError:
                    current = False
                if current:
                    if not self.has_blob(digest):
                        return fd, path
                    os.unlink(path)  # made just now, after another fetch finished it
                    os.close(fd)
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.dirname(path))
                    return None
                os.close(fd)
                if self.has_blob(digest):
                    return None
                continue  # that file was renamed or removed after we opened it
            os.close(fd)
            if self.has_blob(digest):
                return None
            if not told and waiting is not None:
                waiting()  # another fetch is downloading this blob: wait for it
                told = True
            time.sleep(PARTIAL_POLL)

    def put_bytes(self, data: bytes, *, expected: Digest | None = None,
                  what: str = "blob") -> Digest:
        digest, _ = self.put_stream(io.BytesIO(data), expected=expected,
                                    size=len(data) if expected is not None else None, what=what)
        return digest

    def extract(self, manifest: Manifest, diff_ids: list[Digest]) -> None:
        """Extract the manifest's layers that the store lacks into this staging dir.

        Blobs come from staging or the store; each layer is checked against its
        diff ID; :meth:`commit` moves the layers into place.
        """
        from libaci.unpack import extract_all

        chains = chain_ids(diff_ids)

        def blob(desc: Descriptor) -> Callable[[], str]:
            path = self.blob_path(desc.digest)
            return lambda: path

        def existing(i: int) -> str | None:
            info = self.store.layer_info(chains[i])
            return info.path if info is not None else None

        jobs = [(blob(desc), os.path.join(self.dir, f"layer-{chain.encoded}"), diff)
                for desc, diff, chain in zip(manifest.layers, diff_ids, chains, strict=True)]
        extract_all(jobs, existing=existing)
        for (_, dest, _), chain in zip(jobs, chains, strict=True):
            if os.path.isdir(dest):
                self.layers[chain] = dest

    def commit(self, desc: Descriptor | None, names: list[str]) -> None:
        """Move staged blobs and layers into the store, then publish the image."""
        st = self.store
        for digest, path in self.blobs.items():
            final = st.blob_path(digest)
            if os.path.exists(final):
                continue
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.chmod(path, 0o644)
            if path == st.verified_path(digest):
                # linked, not moved: a concurrent writer may be reading this very file;
                # tmp/verified is emptied by gc, when no writer runs
                with contextlib.suppress(FileExistsError):
                    os.link(path, final)
            else:
                os.rename(path, final)
        for chain, path in self.layers.items():
            final = st.layer_dir(chain)
            os.makedirs(os.path.dirname(final), mode=0o700, exist_ok=True)
            try:
                os.rename(path, final)
            except OSError:
                if not os.path.isdir(final):  # another writer won the race: fine
                    raise
        for sub in ("blobs", "layers"):
            for alg in os.listdir(st.path(sub)):
                fsync_dir(st.path(sub, alg))
        if desc is not None:
            st.add_image(desc, names)
