"""``https://HOST/PATH.aci``: an appc image archive fetched by URL, with HTTP caching.

The body streams through the same import as a local ACI
(:func:`libaci.sources.acifile.import_aci`): decompressed by magic, hashed
and staged inside the store, never held in memory.  Plain ``http://`` needs
``--insecure-options=http``, as in rkt, whatever the host.

What each URL gave is remembered, as rkt's ``remote`` table did, in
``STORE/cache/aci-remotes.json`` (updated atomically under a lock): the image
ID, the ``ETag``, ``Last-Modified`` and ``Cache-Control: max-age`` of the
answer, when it was downloaded, and the signature URL (the URL with ``.aci``
turned into ``.aci.asc``, also kept on the image descriptor as
``io.podkit.aci.signature-url`` for verification).  With pull policy

* ``update`` (default): while ``max-age`` has not run out the stored image is
  used without a request; after that the request carries ``If-None-Match`` /
  ``If-Modified-Since`` and a ``304 Not Modified`` reuses the stored image;
* ``new``: a URL fetched before whose image is still in the store is not asked;
* ``never``: only the store; a URL never fetched is a not-found error.

Downloads resume: the body is asked for without content-encoding, and when
it breaks off it is asked for again from the next byte (``Range`` with
``If-Range``, see :class:`libaci.http.Body`); the bytes of a fetch that
fails or is killed are kept in ``tmp/partial/url-<hash>`` and the next fetch
of the URL continues them (see :class:`_Kept`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from libaci.appc import ImageManifest, parse_image_manifest
from libaci.digest import Digest
from libaci.errors import FetchError, ImageError, NotFoundError, StoreError, UsageError
from libaci.fsutil import atomic_write, flocked, mkdir_shared, try_flock
from libaci.names import appc_store_name
from libaci.reference import parse_appc_name
from libaci.sources import Fetched, FetchOptions
from libaci.sources.acifile import ANN_SIGNATURE_URL, import_aci
from libaci.store import ANN_ACI_MANIFEST, ImageRecord, Store

if TYPE_CHECKING:
    from libaci.http import HttpClient
    from libaci.transport import Response

__all__ = ["ANN_SIGNATURE_URL", "Remote", "fetch", "fetch_url", "lookup", "parse_cache_control",
           "record", "reuse", "signature_url", "stored_manifest"]

CACHE_FILE = "aci-remotes.json"
MAX_REMOTES = 5000
POLICIES = ("never", "new", "update")

Check = Callable[[ImageManifest], None]


@attrs.frozen
class Remote:
    """What one URL gave the last time it was downloaded."""

    url: str
    image_id: str
    signature_url: str
    etag: str | None = None
    last_modified: str | None = None
    max_age: int = 0  # seconds from download_time during which no request is made
    download_time: float = 0.0

    def fresh(self, now: float) -> bool:
        return self.max_age > 0 and now < self.download_time + self.max_age

    def to_dict(self) -> dict[str, Any]:
        return {"imageID": self.image_id, "signatureURL": self.signature_url,
                "etag": self.etag, "lastModified": self.last_modified,
                "maxAge": self.max_age, "downloadTime": self.download_time}

    @classmethod
    def from_dict(cls, url: str, d: Any) -> Remote | None:
        try:
            return cls(url, str(d["imageID"]), str(d.get("signatureURL") or signature_url(url)),
                       d.get("etag") or None, d.get("lastModified") or None,
                       int(d.get("maxAge") or 0), float(d.get("downloadTime") or 0))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None  # a damaged entry is only a cache miss


def signature_url(url: str) -> str:
    """rkt's rule: ``x.aci`` -> ``x.aci.asc``; any other path gets ``.asc`` appended."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path
    path = path[:-4] + ".aci.asc" if path.endswith(".aci") else path + ".asc"
    return urllib.parse.urlunsplit(parts._replace(path=path, fragment=""))


def parse_cache_control(header: str | None) -> tuple[int, bool]:
    """(max-age seconds, whether validators may be kept) from a Cache-Control header.

    ``no-cache`` means "ask every time" (max-age 0); ``no-store`` also keeps
    no ETag or Last-Modified.
    """
    directives: dict[str, str] = {}
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        directives[key.strip().lower()] = value.strip().strip('"')
    keep = "no-store" not in directives
    age = directives.get("max-age", "")
    max_age = int(age) if age.isdigit() else 0
    if not keep or "no-cache" in directives:
        max_age = 0
    return max_age, keep


# -- the cache file ---------------------------------------------------------------

def _load(store: Store) -> dict[str, Any]:
    return store.read_cache(CACHE_FILE)


def lookup(store: Store, url: str) -> Remote | None:
    """The cache entry of ``url``, if any."""
    entry = _load(store).get(url)
    return Remote.from_dict(url, entry) if entry is not None else None


def record(store: Store, remote: Remote) -> None:
    """Remember ``remote`` (most recently used entries are kept, at most MAX_REMOTES)."""
    def change(doc: dict[str, Any]) -> None:
        doc.pop(remote.url, None)
        doc[remote.url] = remote.to_dict()
        while len(doc) > MAX_REMOTES:
            doc.pop(next(iter(doc)))

    store.update_cache(CACHE_FILE, change)


# -- fetching ---------------------------------------------------------------------

def _stored(store: Store, image_id: str) -> ImageRecord | None:
    """The image if it is still in the store, with its layer extracted."""
    for rec in store.images():
        if rec.is_aci and rec.id == image_id:
            return rec if store.layer_info(rec.descriptor.digest) is not None else None
    return None


def stored_manifest(store: Store, rec: ImageRecord) -> ImageManifest:
    ann = rec.descriptor.annotations.get(ANN_ACI_MANIFEST)
    if not ann:
        raise NotFoundError(f"image {rec.id} has no ACI manifest in the store")
    return parse_image_manifest(store.read_blob(Digest.parse(ann)), validate=False)


def reuse(store: Store, rec: ImageRecord, options: FetchOptions,
          check: Check | None = None) -> Fetched:
    """A stored image as the result of a fetch; ``--name`` (if given) is added to it."""
    if check is not None:
        check(stored_manifest(store, rec))
    names = rec.names
    if options.name:
        app = parse_appc_name(options.name)
        name = appc_store_name(app.name, app.version)
        if name not in names:
            store.add_image(rec.descriptor, [name])
            names = (*names, name)
    return Fetched(rec.id, names)


def fetch(store: Store, rest: str, options: FetchOptions) -> Fetched:
    return fetch_url(store, rest, options)


def fetch_url(store: Store, url: str, options: FetchOptions, *,
              signature: str | None = None, check: Check | None = None,
              client: HttpClient | None = None) -> Fetched:
    """Fetch the ACI at ``url`` into ``store`` under ``options.pull_policy``.

    ``signature`` overrides the signature URL derived from ``url`` (discovery
    renders its own); ``check`` sees the image manifest (of a new download or
    of the stored image that is reused) and refuses it by raising; ``client``
    is a :class:`libaci.http.HttpClient` to share.  Errors about the image
    itself (a bad archive, a refused manifest) name the URL.
    """
    try:
        return _fetch_url(store, url, options, signature, check, client)
    except ImageError as e:
        raise type(e)(f"{url}: {e}") from None


def _fetch_url(store: Store, url: str, options: FetchOptions, signature: str | None,
               check: Check | None, client: HttpClient | None) -> Fetched:
    from libaci.http import Body, HttpClient, check_url
    from libaci.registry.client import TLSOptions

    tls = options.tls or TLSOptions()
    check_url(url, tls)
    policy = options.pull_policy
    if policy not in POLICIES:
        raise UsageError(f"--pull-policy: {policy!r} is not never, new or update")
    sig = signature or signature_url(url)
    remote = lookup(store, url) if store.exists() else None
    rec = _stored(store, remote.image_id) if remote is not None else None
    now = time.time()
    if rec is not None and remote is not None:
        if policy in ("never", "new"):
            return reuse(store, rec, options, check)
        if remote.fresh(now):
            left = int(remote.download_time + remote.max_age - now)
            options.say(f"{url}: in the store, fresh for {left}s more")
            return reuse(store, rec, options, check)
    elif policy == "never":
        raise NotFoundError(f"{url} is not in the store and --pull-policy=never "
                            "forbids fetching it")
    headers: dict[str, str] = {}
    if rec is not None and remote is not None:
        if remote.etag:
            headers["If-None-Match"] = remote.etag
        if remote.last_modified:
            headers["If-Modified-Since"] = remote.last_modified
    own = client is None
    client = client or HttpClient(tls, credentials=options.credentials)
    with contextlib.ExitStack() as held:
        kept = _claim(store, url, held) if store.exists() else None
        if kept is not None:
            headers.update(kept.range_headers())
        try:
            resp = client.get(url, headers={**headers, "Accept-Encoding": "identity"},
                              ok=(200, 206, 304))
            max_age, keep = parse_cache_control(resp.headers.get("Cache-Control"))
            etag = resp.headers.get("ETag") if keep else None
            modified = resp.headers.get("Last-Modified") if keep else None
            if resp.status_code == 304 and rec is not None and remote is not None:
                resp.close()
                options.say(f"{url}: not modified")
                fetched = reuse(store, rec, options, check)
                record(store, attrs.evolve(remote, etag=etag or remote.etag,
                                           last_modified=modified or remote.last_modified,
                                           max_age=max_age, download_time=now,
                                           signature_url=sig))
                return fetched
            if resp.status_code == 304:
                resp.close()
                raise FetchError(f"{url}: HTTP 304 to a request that was not conditional")
            if kept is None:
                store.ensure()
                kept = _claim(store, url, held)
            start = kept.begin(resp) if kept is not None else 0
            if resp.status_code == 206 and start == 0:
                resp.close()
                raise FetchError(f"{url}: the server sent a range that was not asked for")
            options.say(f"Downloading {url}" + (f" (from byte {start} on)" if start else ""))
            body = Body(resp, url, client=client, url=url, start=start)
            src = kept.reader(body) if kept is not None else body
            try:
                # the trust policy: its check fetches the .asc first and sees the
                # bytes as served; it refuses the image before it is published
                session = (options.verify_aci(url, sig, client)
                           if options.verify_aci is not None else None)
                if session is not None:
                    held.callback(session.close)
                    src = session.wrap(src)

                def checks(info: Any) -> None:
                    if check is not None:
                        check(info.manifest)
                    if session is not None:
                        session.check(info)

                fetched = import_aci(store, src, options, source=url,
                                     annotations={ANN_SIGNATURE_URL: sig},
                                     check=None if check is None and session is None
                                     else checks)
            except (FetchError, KeyboardInterrupt):
                raise  # the bytes downloaded so far stay for the next try
            except BaseException:
                if kept is not None:
                    kept.drop()  # they are not an image
                raise
            finally:
                body.close()
            if kept is not None:
                kept.drop()
        finally:
            if own:
                client.close()
    record(store, Remote(url, fetched.image_id, sig, etag, modified, max_age, now))
    return fetched


# -- downloads kept across an interruption -------------------------------------------

def _claim(store: Store, url: str, held: contextlib.ExitStack) -> _Kept | None:
    """The kept download of ``url``, locked (None if another fetch is using it).

    The store's gc lock is held (shared) from here on, as by every writer, so
    that gc never removes the file while it is being written.
    """
    held.enter_context(flocked(store.lock_path("gc.lock"), exclusive=False))
    kept = _Kept.claim(store, url)
    if kept is not None:
        held.callback(kept.release)
    return kept


class _Kept:
    """The first bytes of a URL, kept in ``tmp/partial`` when its download is interrupted.

    ``tmp/partial/url-<sha256 of the URL>`` holds them as the server sent them
    (asked for without content-encoding), ``...json`` the validator (a strong ETag,
    else Last-Modified) they came with.  The next fetch asks for the rest with
    ``Range`` and ``If-Range``: a 206 continues the kept bytes (which are read
    again, ahead of the new ones, through the same import), a 200 (the resource
    changed, or the server ignores ranges) starts over.  The file is flocked
    while in use, so two fetches of one URL never write it both.
    """

    def __init__(self, path: str, fd: int, size: int, validator: str | None) -> None:
        self.path, self.fd, self.size, self.validator = path, fd, size, validator

    @classmethod
    def claim(cls, store: Store, url: str) -> _Kept | None:
        key = hashlib.sha256(url.encode()).hexdigest()
        path = store.path("tmp", "partial", f"url-{key}")
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:  # no tmp/partial, or removed just now by its last user
                mkdir_shared(os.path.dirname(path))
                continue
            if not try_flock(fd):
                os.close(fd)
                return None  # another fetch of this URL: download without keeping
            st = os.fstat(fd)
            try:
                now = os.stat(path)
                if (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)  # removed by the fetch that had it: take the new one
        try:
            with open(path + ".json", "rb") as f:
                meta = json.load(f)
            validator = meta["validator"] if meta.get("url") == url else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            validator = None
        size = os.fstat(fd).st_size
        if not isinstance(validator, str) or not validator:
            validator = None
        return cls(path, fd, size, validator)

    def range_headers(self) -> dict[str, str]:
        if not self.size or self.validator is None:
            return {}
        return {"Range": f"bytes={self.size}-", "If-Range": self.validator}

    def begin(self, resp: Response) -> int:
        """Where ``resp``'s body starts: after the kept bytes if it continues them, else 0
        (they are dropped, and the validator of this answer is remembered)."""
        from libaci.http import range_start, resume_validator

        validator = resume_validator(resp)
        if (resp.status_code == 206 and self.size and validator == self.validator
                and range_start(resp) == self.size):
            return self.size
        os.ftruncate(self.fd, 0)
        self.size = 0
        self.validator = validator
        meta = self.path + ".json"
        if validator is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(meta)
        else:
            atomic_write(meta, json.dumps({"url": resp.url, "validator": validator}).encode(),
                         mode=0o600)
        return 0

    def reader(self, body: Any) -> _KeptReader:
        return _KeptReader(self, body)

    def drop(self) -> None:
        """Done with it (the image is in, or the bytes were no image)."""
        os.ftruncate(self.fd, 0)

    def release(self) -> None:
        """Unlock it; an empty one (nothing to resume) is removed first."""
        try:
            if os.fstat(self.fd).st_size == 0:
                for p in (self.path + ".json", self.path):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(p)
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.dirname(self.path))  # the last one takes tmp/partial
        finally:
            os.close(self.fd)


class _KeptReader:
    """The kept bytes, then the body's; the body's are appended to the kept file as they
    pass (unless there is no validator to resume them with)."""

    def __init__(self, kept: _Kept, body: Any) -> None:
        self._kept, self._body = kept, body
        self._end = kept.size  # kept bytes to hand out first
        self._pos = 0
        self._keep = kept.validator is not None

    def read(self, n: int = -1) -> bytes:
        fd = self._kept.fd
        if self._pos < self._end:
            want = self._end - self._pos if n is None or n < 0 else min(n, self._end - self._pos)
            data = os.pread(fd, want, self._pos)
            if not data:
                raise StoreError(f"{self._kept.path}: the kept download shrank")
            self._pos += len(data)
            return data
        data = self._body.read(n)
        if data and self._keep:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.pwrite(fd, view, self._pos + len(data) - len(view)):]
            except OSError as e:
                raise StoreError(f"cannot keep the download in {self._kept.path}: "
                                 f"{e.strerror}") from None
        self._pos += len(data)
        return data
