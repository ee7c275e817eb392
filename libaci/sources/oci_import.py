"""Importing an OCI image (manifest or index) from any blob provider.

Shared by the oci:, oci-archive: and docker-archive: sources and the
registry: the provider opens blobs; this module verifies every byte against
its descriptor, picks the platform from an index, stages config and layers
(several at once, resumable where the provider can start a blob at an
offset) and publishes the image only when all of it checked out.  Layers are
extracted later, on first use (:meth:`Store.extract_layers`).

The schema validation of the manifest (and index) runs in a thread of its
own while the blobs download, since importing jsonschema alone takes about
40 ms: only their digests and sizes are used meanwhile (every blob is
verified against them), and nothing is published before the validation
passed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from libaci import mediatypes as mt
from libaci.digest import Digest, verify
from libaci.errors import ImageError, ManifestError, PodkitError
from libaci.oci import Descriptor, Index, Manifest, parse_config, parse_document
from libaci.platform import select
from libaci.sources import Fetched, FetchOptions
from libaci.store import ANN_CREATED, ANN_INDEX, ANN_SOURCE, Staging

MAX_MANIFEST = 4 << 20
MAX_CONFIG = 32 << 20
DOWNLOADS = 4  # blobs fetched at once, as skopeo and docker pull do
Opener = Callable[[Descriptor], BinaryIO]
# a blob from a byte offset on; the stream's ``offset`` says where it really starts
RangedOpener = Callable[[Descriptor, int], Any]


class Validation:
    """Schema checks that run in the background; :meth:`wait` raises the first failure."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    def add(self, check: Callable[[], object]) -> None:
        def run() -> None:
            try:
                check()
            except BaseException as e:  # handed to wait()
                self._errors.append(e)

        t = threading.Thread(target=run, name="podkit-validate", daemon=True)
        t.start()
        self._threads.append(t)

    def wait(self) -> None:
        for t in self._threads:
            t.join()
        if self._errors:
            raise self._errors[0]


class Job:
    """One call run by a :class:`Pool`; :meth:`result` waits for it and re-raises."""

    __slots__ = ("args", "done", "error", "func", "value")

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def result(self) -> Any:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


class Pool:
    """Calls run on at most ``workers`` threads, in the order they were submitted.

    What concurrent.futures' ThreadPoolExecutor does here, without importing it
    (with logging and queue it is ~15 modules, ~10 ms of a fetch from a cold
    page cache).  Leaving the ``with`` block waits for the threads; jobs not
    started yet when :meth:`cancel` is called end with the cancelling error.
    """

    def __init__(self, workers: int, name: str = "podkit-worker") -> None:
        self._workers, self._name = max(1, workers), name
        self._jobs: list[Job] = []
        self._next = 0
        self._cancelled: BaseException | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._running = 0  # threads that will look for another job before they end

    def submit(self, func: Callable[..., Any], *args: Any) -> Job:
        job = Job(func, args)
        with self._lock:
            self._jobs.append(job)
            start = self._running < self._workers
            if start:
                self._running += 1
                t = threading.Thread(target=self._work, daemon=True,
                                     name=f"{self._name}_{len(self._threads)}")
                self._threads.append(t)
        if start:
            t.start()
        return job

    def _work(self) -> None:
        while True:
            with self._lock:
                if self._next >= len(self._jobs):
                    self._running -= 1  # under the lock: a job submitted now starts another
                    return
                job = self._jobs[self._next]
                self._next += 1
                cancelled = self._cancelled
            if cancelled is not None:
                job.error = cancelled
            else:
                try:
                    job.value = job.func(*job.args)
                except BaseException as e:  # handed to result()
                    job.error = e
            job.done.set()

    def cancel(self, error: BaseException) -> None:
        with self._lock:
            self._cancelled = error

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        for t in self._threads:
            t.join()


def read_verified(opener: Opener, desc: Descriptor, limit: int, what: str) -> bytes:
    if desc.size > limit:
        raise ManifestError(f"{what} {desc.digest} is {desc.size} bytes (limit {limit})")
    with opener(desc) as f:
        data = f.read(desc.size + 1)
    verify(desc.digest, desc.size, Digest.of_bytes(data, desc.digest.algorithm), len(data),
           f"{what} {desc.digest}")
    return data


def _parse(raw: bytes, media_type: str | None,
           checks: Validation | None) -> Manifest | Index:
    if checks is None:
        return parse_document(raw, media_type=media_type)
    try:
        doc = parse_document(raw, media_type=media_type, validate=False)
    except Exception:
        parse_document(raw, media_type=media_type)  # the schema explains it better
        raise
    checks.add(lambda: parse_document(raw, media_type=media_type))
    return doc


def resolve_manifest(opener: Opener, desc: Descriptor, options: FetchOptions,
                     depth: int = 0, checks: Validation | None = None
                     ) -> tuple[Descriptor, Manifest, Descriptor | None]:
    """Follow indexes down to one image manifest for the wanted platform.

    With ``checks``, documents are validated there, in the background.
    """
    if depth > 4:
        raise ManifestError("image indexes nested too deeply")
    raw = read_verified(opener, desc, MAX_MANIFEST, "manifest")
    doc = _parse(raw, desc.media_type if desc.media_type in
                 (mt.INDEX_TYPES | mt.MANIFEST_TYPES) else None, checks)
    if isinstance(doc, Index):
        chosen = select(doc, options.platform)
        options.say(f"Selected {chosen.platform} manifest {chosen.digest}")
        d, m, _ = resolve_manifest(opener, chosen, options, depth + 1, checks)
        return d, m, desc
    return desc, doc, None


def copy_layer(staging: Staging, open_at: RangedOpener, layer: Descriptor,
               options: FetchOptions, stop: threading.Event | None = None,
               resumable: bool = True) -> None:
    """Stream one layer into the store, verifying its size and digest; what a failed
    download got is kept for the next try when the source can resume it."""
    key = layer.digest.encoded[:12]
    sink = options.progress
    sink.item(key, "Downloading", 0, layer.size)
    staging.download(layer.digest, layer.size, lambda offset: open_at(layer, offset),
                     what=f"layer {layer.digest}",
                     progress=lambda n: sink.item(key, "Downloading", n, layer.size),
                     waiting=lambda: sink.item(key, "Waiting for another download"),
                     stop=stop, keep=resumable)
    sink.item(key, "Download complete")


def import_manifest(staging: Staging, opener: Opener, desc: Descriptor, names: list[str],
                    options: FetchOptions, source: str, *,
                    ranged: RangedOpener | None = None) -> Fetched:
    """Stage, verify and publish the image that ``desc`` points to.

    ``ranged`` opens a blob at an offset, so that a download interrupted (even
    by a killed process) continues where it stopped; without it a kept
    partial download starts over.
    """
    remote = opener

    def opener(d: Descriptor) -> BinaryIO:  # what the store has is not asked for again
        if staging.has_blob(d.digest):
            return open(staging.blob_path(d.digest), "rb")
        return remote(d)

    open_at: RangedOpener = ranged or (lambda d, _offset: remote(d))
    checks = Validation()
    try:
        return _import(staging, opener, open_at, desc, names, options, source, checks,
                       ranged is not None)
    except Exception as e:
        if not isinstance(e, PodkitError):
            checks.wait()  # a document that fails its schema explains this better
        raise


def _import(staging: Staging, opener: Opener, open_at: RangedOpener, desc: Descriptor,
            names: list[str], options: FetchOptions, source: str,
            checks: Validation, resumable: bool) -> Fetched:
    mdesc, manifest, index_desc = resolve_manifest(opener, desc, options, checks=checks)
    if manifest.config.media_type not in mt.CONFIG_TYPES:
        raise ImageError(f"not a container image: config media type "
                         f"{manifest.config.media_type!r}")
    for layer in manifest.layers:
        if layer.media_type not in mt.LAYER_COMPRESSION:
            raise ImageError(f"layer {layer.digest}: unsupported media type {layer.media_type!r}")
    if manifest.config.size > MAX_CONFIG:
        raise ManifestError(f"config {manifest.config.digest} is {manifest.config.size} bytes "
                            f"(limit {MAX_CONFIG})")
    if options.verify is not None:  # the trust policy: before any download or publishing
        signed = index_desc or mdesc
        options.verify(source, signed.digest, manifest.raw if index_desc is None else
                       read_verified(opener, index_desc, MAX_MANIFEST, "index"))

    fetching: dict[Digest, threading.Lock] = {d.digest: threading.Lock() for d in manifest.layers}
    stop = threading.Event()

    def get(layer: Descriptor) -> None:
        with fetching[layer.digest]:  # an image may list one blob twice
            if staging.has_blob(layer.digest):
                options.progress.item(layer.digest.encoded[:12], "Already exists")
            else:
                copy_layer(staging, open_at, layer, options, stop, resumable)

    for layer in manifest.layers:
        options.progress.item(layer.digest.encoded[:12], "Waiting")
    # the config and the layers at once; the manifest's schema check meanwhile
    # the layers on the download threads; the config (small) here meanwhile, then the
    # manifest's schema check
    with Pool(DOWNLOADS, "podkit-download") as pool:
        jobs = [pool.submit(get, layer) for layer in manifest.layers]
        try:
            config_raw = read_verified(opener, manifest.config, MAX_CONFIG, "config")
            checks.wait()
            config = parse_config(config_raw)
            if len(config.diff_ids) != len(manifest.layers):
                raise ManifestError(f"image config lists {len(config.diff_ids)} diff IDs for "
                                    f"{len(manifest.layers)} layers")
            for job in jobs:
                job.result()
        except BaseException as e:
            stop.set()
            pool.cancel(e)
            raise
    staging.put_bytes(config_raw, expected=manifest.config.digest, what="config")
    staging.put_bytes(manifest.raw, expected=mdesc.digest, what="manifest")
    if options.extract:  # before the commit: a layer that fails leaves no image behind
        staging.extract(manifest, config.diff_ids)
    annotations = {ANN_CREATED: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   ANN_SOURCE: source}
    if index_desc is not None:
        annotations[ANN_INDEX] = str(index_desc.digest)
    top = Descriptor(media_type=manifest.effective_media_type, digest=mdesc.digest,
                     size=mdesc.size, annotations=annotations)
    staging.commit(top, names)
    return Fetched(str(mdesc.digest), tuple(names))

