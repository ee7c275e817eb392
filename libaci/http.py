"""Plain HTTP(S) GETs: ACIs by URL, appc discovery pages (later signatures, keys).

Registries have their own client (:mod:`libaci.registry.client`); this one
fetches arbitrary URLs with the same TLS settings and rkt's rules for them:
``https://`` is verified (system CAs plus ``--cert-dir`` or the host's
certs.d), plain ``http://`` needs ``--insecure-options=http`` whatever the
host, redirects are followed by hand (at most ten, each hop checked against the
same rules and given the TLS settings of its own host, credentials never
carried to another host), refused connections and 429/5xx answers are retried
with backoff, statuses map to the error classes (404 not found, 401/403 auth,
others fetch errors), and bodies are streamed, never read whole, with
transport errors raised as one-line :class:`~libaci.errors.FetchError`.

The wire work is :mod:`libaci.transport`'s (the same pooled http.client
connections as the registry client), with one TLS context per host.
"""

from __future__ import annotations

import base64
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from libaci.errors import AuthError, FetchError, NotFoundError, UsageError
from libaci.registry.client import (
    _TRANSPORT_ERRORS,
    BACKOFF,
    CONNECT_ATTEMPTS,
    RETRY_STATUS,
    TLSOptions,
    _short,
    http_transport,
)
from libaci.transport import Response, TLSError, TransportError

MAX_REDIRECTS = 10
REDIRECTS = frozenset({301, 302, 303, 307, 308})
TIMEOUT = (10, 120)  # connect, read

Credentials = Callable[[str, str | None], Any]  # (host, None) -> Credential | None


def check_url(url: str, tls: TLSOptions) -> urllib.parse.SplitResult:
    """``url`` split, if podkit may fetch it: https, or http with the insecure switch."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        raise UsageError(f"{_redact(url)}: not a valid URL ({e})") from None
    if "@" in parts.netloc:
        raise UsageError(f"{_redact(url)}: credentials in a URL are not accepted "
                         "(use podkit-login HOST)")
    if parts.scheme == "http":
        if not tls.allow_http:
            raise UsageError(f"{url}: plain HTTP needs --insecure-options=http "
                             "(or use https://)")
    elif parts.scheme != "https":
        raise UsageError(f"{url}: unsupported URL scheme {parts.scheme!r} (use https://)")
    if not parts.hostname:
        raise UsageError(f"{url}: the URL has no host")
    return parts


def _redact(url: str) -> str:
    """``url`` without any user:password part, for messages."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    return f"{scheme}{sep}{netloc.rpartition('@')[2]}{slash}{path}" if sep else url


def _host(parts: urllib.parse.SplitResult) -> str:
    """host[:port] without user info: the key for certs.d and credentials."""
    return parts.netloc.rpartition("@")[2]


class HttpClient:
    """GETs with podkit's TLS settings (each host its own), for one command."""

    def __init__(self, tls: TLSOptions | None = None, *,
                 credentials: Credentials | None = None,
                 max_redirects: int = MAX_REDIRECTS) -> None:
        self.tls = tls or TLSOptions()
        self.max_redirects = max_redirects
        self._credentials = credentials
        self._transport = http_transport(self.tls)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, *, headers: dict[str, str] | None = None,
            ok: tuple[int, ...] = (200,), what: str = "") -> Response:
        """GET ``url`` streamed, following redirects; the answer's status is in ``ok``.

        ``response.url`` is the URL that answered.  The caller closes the response.
        """
        what = what or url
        for _hop in range(self.max_redirects + 1):
            resp = self._get_one(url, headers or {}, ok, what)
            if resp.status_code not in REDIRECTS or resp.status_code in ok:
                return resp
            location = resp.headers.get("Location")
            resp.close()
            if not location:
                raise FetchError(f"{what}: HTTP {resp.status_code} redirect without a Location")
            url = urllib.parse.urljoin(url, location)
        raise FetchError(f"{what}: too many redirects (more than {self.max_redirects}; a loop?)")

    def _get_one(self, url: str, headers: dict[str, str], ok: tuple[int, ...],
                 what: str) -> Response:
        parts = check_url(url, self.tls)
        host = _host(parts)
        auth: dict[str, str] = {}
        tries = connects = 0
        while True:
            try:
                resp = self._transport.request("GET", url, headers={**headers, **auth},
                                               follow_redirects=False, timeout=TIMEOUT,
                                               decode=True)
            except TLSError as e:
                raise FetchError(f"{host}: TLS verification failed ({_short(e)}; give the CA "
                                 "with --cert-dir, or --insecure-options=tls)") from None
            except TransportError as e:
                connects += 1
                if connects < CONNECT_ATTEMPTS:
                    time.sleep(BACKOFF[connects - 1])
                    continue
                raise FetchError(f"{host}: {_short(e)}") from None
            code = resp.status_code
            if code in ok or code in REDIRECTS:
                return resp
            if code == 401 and not auth:
                auth = self._basic_auth(resp, parts, host)
                if auth:
                    resp.close()
                    continue
            if code in RETRY_STATUS and tries < len(BACKOFF):
                resp.close()
                delay = BACKOFF[tries]
                retry_after = resp.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = min(float(retry_after), 10.0)
                tries += 1
                time.sleep(delay)
                continue
            resp.close()
            _raise_for(code, resp.reason, what, bool(auth))

    def _basic_auth(self, resp: Response, parts: urllib.parse.SplitResult,
                    host: str) -> dict[str, str]:
        """Credentials for a Basic challenge, over HTTPS only (never in clear text)."""
        challenge = resp.headers.get("WWW-Authenticate", "")
        if (self._credentials is None or parts.scheme != "https"
                or not challenge.lower().startswith("basic")):
            return {}
        cred = self._credentials(host, None)
        if cred is None:
            return {}
        raw = f"{cred.username}:{cred.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _raise_for(code: int, reason: str | None, what: str, sent_credentials: bool) -> None:
    if code == 401:
        hint = "credentials refused" if sent_credentials else \
            "credentials needed; use podkit-login HOST"
        raise AuthError(f"{what}: authentication required (HTTP 401; {hint})")
    if code == 403:
        raise AuthError(f"{what}: access denied (HTTP 403)")
    if code in (404, 410):
        raise NotFoundError(f"{what}: not found (HTTP {code})")
    raise FetchError(f"{what}: HTTP {code}{f' {reason}' if reason else ''}")


def resume_validator(resp: Response) -> str | None:
    """What ``If-Range`` may carry to resume this answer's body: a strong ETag, else the
    Last-Modified date; None when the body cannot be resumed safely (no validator, or
    a content-encoding, whose byte ranges are not the resource's)."""
    if resp.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        return None
    etag = (resp.headers.get("ETag") or "").strip()
    if etag and not etag.startswith("W/"):
        return etag
    return (resp.headers.get("Last-Modified") or "").strip() or None


def range_start(resp: Response) -> int | None:
    """The first byte of a 206 answer's ``Content-Range: bytes A-B/N`` (None if absent)."""
    m = re.match(r"\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*$",
                 resp.headers.get("Content-Range", ""), re.I)
    return int(m.group(1)) if m else None


class Body:
    """A response body as a forward-only binary stream (Content-Encoding undone).

    Transport errors and a body shorter than its Content-Length become FetchError,
    unless the body can be resumed: with ``client`` and ``url`` given and a
    validator in the answer (:func:`resume_validator`), a body that breaks off is
    asked for again from the next byte (``Range`` with ``If-Range``, at most three
    times); an answer with the whole resource, unchanged, has the bytes already
    read skipped; a resource that changed meanwhile is an error.  ``start`` is
    where this body begins in the resource (a download resumed from kept bytes).
    """

    def __init__(self, resp: Response, what: str, *, client: HttpClient | None = None,
                 url: str | None = None, start: int = 0) -> None:
        self._resp = resp
        self._what = what
        self._client, self._url = client, url
        self._start = start
        self._validator = resume_validator(resp) if client is not None and url else None
        self._resumes = 0
        self._skip = 0
        self.size = 0  # bytes read so far (decoded)

    @property
    def position(self) -> int:
        """The resource byte the next read starts at."""
        return self._start + self.size

    def read(self, n: int = -1) -> bytes:
        while True:
            try:
                while self._skip:
                    dropped = self._resp.read(min(self._skip, 1 << 20))
                    if not dropped:
                        raise FetchError(f"{self._what}: the answer ended before byte "
                                         f"{self.position}")
                    self._skip -= len(dropped)
                data = self._resp.read(-1 if n is None or n < 0 else n)
            except _TRANSPORT_ERRORS as e:
                if self._resume():
                    continue
                raise FetchError(f"{self._what}: download broke off after {self.size} bytes "
                                 f"({_short(e)})") from None
            self.size += len(data)
            return data

    def _resume(self) -> bool:
        if self._validator is None or self._resumes >= 3:
            return False
        assert self._client is not None and self._url is not None
        self._resumes += 1
        self._resp.close()
        pos = self.position
        resp = self._client.get(self._url, ok=(200, 206), what=self._what, headers={
            "Range": f"bytes={pos}-", "If-Range": self._validator,
            "Accept-Encoding": "identity"})
        if resp.status_code == 206:
            first = range_start(resp)
            if first is not None and first != pos:
                resp.close()
                raise FetchError(f"{self._what}: asked for bytes from {pos} on, the server "
                                 f"sent them from {first}")
        elif resume_validator(resp) == self._validator:
            self._skip = pos  # the whole resource again, unchanged: skip what was read
        else:
            resp.close()
            raise FetchError(f"{self._what}: changed on the server while it was downloading "
                             "(fetch it again)")
        self._resp = resp
        return True

    def close(self) -> None:
        self._resp.close()


def read_capped(resp: Response, limit: int, what: str) -> bytes:
    """The whole body of a small document; FetchError when it is over ``limit`` bytes."""
    body = Body(resp, what)
    out = bytearray()
    while True:
        chunk = body.read(65536)
        if not chunk:
            return bytes(out)
        out += chunk
        if len(out) > limit:
            raise FetchError(f"{what}: the document is over the {limit}-byte limit")
