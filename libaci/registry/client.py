"""An OCI distribution (Docker Registry v2) client for one registry host.

Everything about talking to a registry lives here: TLS (verified by default,
CA files from --cert-dir and containers-certs.d), plain HTTP only for loopback
hosts or with the insecure ``http`` option, the Basic and Bearer challenge
flows (tokens cached per scope for the life of the command), retries with
backoff on refused connections and 5xx answers, a redirect limit, size caps
on documents, and resumable blob downloads (``Range``).  Credentials are
asked for through a callback, so they never pass through arguments, logs or
the store, and error messages never contain them.

HTTP itself goes through :mod:`libaci.transport` (sockets, and ssl for https,
pooled keep-alive connections shared by the threads of one command), not
requests or http.client: this module is imported by every command that talks
to a registry, and their imports alone cost tens of milliseconds there.  ssl
is imported only once TLS is needed (a plain-HTTP loopback registry never
needs it).
"""

from __future__ import annotations

import binascii
import contextlib
import os
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

import attrs

from libaci import mediatypes as mt
from libaci.digest import Digest
from libaci.errors import (
    AuthError,
    DigestMismatchError,
    FetchError,
    ManifestError,
    NotFoundError,
    UsageError,
)
from libaci.oci import Descriptor
from libaci.transport import (
    BLOCK,
    ConnectError,
    Response,
    TLSError,
    TooManyRedirects,
    Transport,
    TransportError,
)

ACCEPT_MANIFESTS = ", ".join([mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_LIST])
MAX_MANIFEST = 4 << 20
USER_AGENT = "podkit/0.1"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
BACKOFF = (0.2, 0.6, 1.5, 3.0)  # between tries after a 5xx or 429
CONNECT_ATTEMPTS = 3  # a refused connection is rarely transient: fail within a second
CERT_DIRS = ("/etc/containers/certs.d", "/etc/docker/certs.d")
DOCKER_HUB = "registry-1.docker.io"
MAX_REDIRECTS = 10
TIMEOUT = (10, 120)  # connect, read
# what requests sent with every request (bodies that come content-encoded are decoded,
# except blobs, which are asked for as they are stored)
DEFAULT_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate",
                   "Accept": "*/*", "Connection": "keep-alive"}

if TYPE_CHECKING:
    import ssl

    from libaci.registry.credentials import Credential

# (host, repository) -> Credential | None
CredentialSource = Callable[[str, "str | None"], "Credential | None"]


@attrs.frozen
class TLSOptions:
    """How to reach a registry: CA files, or the insecure switches rkt has."""

    ca_file: str | None = None
    cert_dir: str | None = None
    insecure_tls: bool = False  # --insecure-options=tls: do not verify certificates
    allow_http: bool = False  # --insecure-options=http: plain HTTP for any host


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    # what ipaddress.ip_address(name).is_loopback says (127.0.0.0/8, ::1), without
    # importing ipaddress on every registry command's path
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(family, name)
        except (OSError, ValueError):
            continue
        return packed[0] == 127 if family == socket.AF_INET else packed == _IPV6_LOOPBACK
    return False


_IPV6_LOOPBACK = bytes(15) + b"\x01"


def api_host(domain: str) -> str:
    """The host serving a reference's domain (Docker Hub's API is elsewhere)."""
    return DOCKER_HUB if domain in ("docker.io", "index.docker.io") else domain


SEND_BLOCK = BLOCK  # uploads go out in 1 MiB blocks (urllib3 sent 16 KiB ones)


def _cert_dirs(host: str, tls: TLSOptions) -> list[str]:
    return [tls.cert_dir] if tls.cert_dir else [os.path.join(d, host) for d in CERT_DIRS]


def _load_client_certs(ctx: ssl.SSLContext, dirs: list[str]) -> None:
    """``NAME.cert`` + ``NAME.key`` pairs in the cert dirs: client certificates."""
    import glob
    import ssl

    for d in dirs:
        for cert in sorted(glob.glob(os.path.join(d, "*.cert"))):
            key = cert[:-5] + ".key"
            if os.path.exists(key):
                try:
                    ctx.load_cert_chain(cert, key)
                except (OSError, ssl.SSLError) as e:
                    raise UsageError(f"cannot load the client certificate {cert}: "
                                     f"{e}") from None


def _ssl_context(host: str, tls: TLSOptions) -> ssl.SSLContext:
    import glob
    import ssl

    ctx = ssl.create_default_context()
    if tls.insecure_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    dirs = _cert_dirs(host, tls)
    files = [tls.ca_file] if tls.ca_file else []
    for d in dirs:
        files += sorted(glob.glob(os.path.join(d, "*.crt")))
    _load_client_certs(ctx, dirs)
    for f in files:
        try:
            ctx.load_verify_locations(cafile=f)
        except (OSError, ssl.SSLError) as e:
            raise UsageError(f"cannot load CA certificates from {f}: {e}") from None
    return ctx


def _probe_context(host: str, tls: TLSOptions) -> ssl.SSLContext:
    """Only to learn whether ``host`` speaks TLS at all, so: no verification and no CA
    bundle (loading the system's costs ~20 ms and ~3 MB, for nothing when the answer
    is plain HTTP); client certificates as configured, for servers that demand one."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if not tls.insecure_tls:
        _load_client_certs(ctx, _cert_dirs(host, tls))
    return ctx


def http_session(host: str, tls: TLSOptions) -> Transport:
    """A transport for plain HTTP(S) GETs to ``host`` (ACI URLs, appc discovery).

    TLS as for registries (system CAs plus certs.d or --cert-dir, the insecure
    ``tls`` switch), podkit's User-Agent, no proxy from the environment.
    Callers that check each hop pass ``follow_redirects=False``.
    """
    return Transport(_ssl_context(host, tls), headers=DEFAULT_HEADERS, pool_size=4)


def http_transport(tls: TLSOptions, *, pool_size: int = 4) -> Transport:
    """A transport for any host, each ``https`` host with its own TLS context."""
    return Transport(lambda host: _ssl_context(host, tls), headers=DEFAULT_HEADERS,
                     pool_size=pool_size)


def _b64(raw: bytes) -> str:
    """base64.b64encode(raw) as text (binascii is built in; base64 is a module to load)."""
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)\s*=\s*"?([^",]*)"?', rest))
    return scheme.lower(), params


def _registry_error(resp: Response) -> str:
    try:
        errors = resp.json().get("errors") or []
        if errors:
            e = errors[0]
            return f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
    except (ValueError, AttributeError, TransportError):
        pass
    return resp.reason or f"HTTP {resp.status_code}"


class Registry:
    """One registry host; safe to share between threads of one command."""

    def __init__(self, host: str, *, tls: TLSOptions | None = None,
                 credentials: CredentialSource | None = None) -> None:
        self.host = host
        self.tls = tls or TLSOptions()
        self._credentials = credentials
        self._tokens: dict[str, str] = {}
        self._basic: str | None = None
        self._lock = threading.Lock()
        self._scheme_lock = threading.Lock()
        self._ctx_lock = threading.Lock()
        self._ctx: ssl.SSLContext | None = None  # made at the first TLS connection
        # one pool for all threads; no proxy (loopback registries must not go through one)
        self._transport = Transport(self._context, headers=DEFAULT_HEADERS,
                                    max_redirects=MAX_REDIRECTS, pool_size=8)
        self.base = f"https://{host}"
        self._scheme_checked = False

    def close(self) -> None:
        """Close idle connections (optional: they also go with the object)."""
        self._transport.close()

    def _context(self, netloc: str) -> ssl.SSLContext:
        """This registry's TLS settings, for it and for any host it redirects to."""
        with self._ctx_lock:  # not _lock: that one is held while fetching a token
            if self._ctx is None:
                self._ctx = _ssl_context(self.host, self.tls)
            return self._ctx

    def _pick_scheme(self) -> None:
        """HTTPS, or HTTP for loopback hosts (as Docker does) and --insecure-options=http."""
        if self._scheme_checked:
            return
        with self._scheme_lock:  # held through the probe: other threads wait for its answer
            if self._scheme_checked:
                return
            if is_loopback(self.host) and self._plain_registry():
                self.base = f"http://{self.host}"  # no TLS (and no ssl import) needed
            elif self.tls.allow_http or is_loopback(self.host):
                # whether it speaks TLS at all; a certificate that does not verify
                # is reported by the real request (this connection is not kept)
                probe = Transport(_probe_context(self.host, self.tls), headers=DEFAULT_HEADERS,
                                  max_redirects=0)
                try:
                    probe.request("GET", f"https://{self.host}/v2/", timeout=5,
                                  follow_redirects=False).close()
                except TLSError as e:
                    if not e.verify_failed:  # it speaks no TLS at all
                        self.base = f"http://{self.host}"
                except ConnectError:
                    # nothing on HTTPS at all: plain HTTP is worth a try
                    self.base = f"http://{self.host}"
                except TransportError:
                    pass  # something answers TLS, slowly: stay on HTTPS
                finally:
                    probe.close()
            self._scheme_checked = True

    def _plain_registry(self) -> bool:
        """Does a registry answer plain HTTP here?  Only asked of loopback hosts, first:
        a registry answers ``/v2/`` (200 or 401) with its API version header; a TLS
        server answers plain text with an error, or hangs up.  The connection is
        kept for the requests that follow.  (Hosts that ``--insecure-options=http``
        allows are asked TLS first: HTTP could be another server on port 80.)"""
        try:
            resp = self._transport.request("GET", f"http://{self.host}/v2/", timeout=5,
                                           follow_redirects=False)
        except TransportError:
            return False
        with resp:
            if "Docker-Distribution-API-Version" not in resp.headers:
                return False
            with contextlib.suppress(TransportError):
                resp.preload(65536)
        return True

    # -- auth ----------------------------------------------------------------------
    def _credential(self, repository: str | None) -> Credential | None:
        if self._credentials is None:
            return None
        return self._credentials(self.host, repository)

    def _authorize(self, resp: Response, scope: str | None, sent: str | None) -> bool:
        """Answer a 401 challenge; True when a retry with new credentials makes sense.

        ``sent`` is the Authorization the refused request carried: when another
        thread has meanwhile obtained a different one, retrying with it is enough.
        """
        header = resp.headers.get("WWW-Authenticate", "")
        scheme, params = _parse_challenge(header)
        repository = scope.split(":")[1] if scope and scope.count(":") >= 2 else None
        with self._lock:
            current = self._auth_header(scope).get("Authorization")
            if current is not None and current != sent:
                return True
            if scheme == "basic":
                if current is not None:
                    return False  # these very credentials were refused
                cred = self._credential(repository)
                if cred is None:
                    return False
                raw = f"{cred.username}:{cred.password}".encode()
                self._basic = "Basic " + _b64(raw)
                return True
            if scheme == "bearer":
                wanted = " ".join(x for x in (scope, params.get("scope")) if x)
                token = self._fetch_token(params, wanted, repository)
                for key in {scope or "", params.get("scope") or ""}:
                    self._tokens[key] = token
                return True
        return False

    def _fetch_token(self, params: dict[str, str], scope: str, repository: str | None) -> str:
        realm = params.get("realm")
        if not realm:
            raise AuthError(f"{self.host}: bearer challenge without a realm")
        query: dict[str, Any] = {"service": params.get("service", "")}
        if scope:
            query["scope"] = sorted(set(scope.split()))
        cred = self._credential(repository)
        headers: dict[str, str] = {}
        if cred is not None:
            if cred.identity_token:
                query.update(grant_type="refresh_token", refresh_token=cred.identity_token)
            else:
                raw = f"{cred.username}:{cred.password}".encode()
                headers["Authorization"] = "Basic " + _b64(raw)
        form = urllib.parse.urlencode(query, doseq=True)
        try:
            if cred is not None and cred.identity_token:
                resp = self._transport.request(
                    "POST", realm, body=form.encode(), timeout=30,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
            else:
                resp = self._transport.request("GET", _with_query(realm, form),
                                               headers=headers, timeout=30)
            resp.preload()
        except TransportError as e:
            raise FetchError(f"{self.host}: token server {realm} unreachable: "
                             f"{e.kind}") from None
        resp.close()  # the body is in memory
        if resp.status_code in (401, 403):
            raise AuthError(f"{self.host}: authentication failed "
                            f"({'wrong credentials' if cred else 'credentials needed'}; "
                            f"use podkit-login {self.host})")
        if resp.status_code != 200:
            raise AuthError(f"{self.host}: token server answered HTTP {resp.status_code}")
        try:
            doc = resp.json()
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError, TransportError):
            token = None
        if not token:
            raise AuthError(f"{self.host}: token server sent no token")
        return str(token)

    def _auth_header(self, scope: str | None) -> dict[str, str]:
        token = self._tokens.get(scope or "") or self._tokens.get("")
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self._basic:
            return {"Authorization": self._basic}
        return {}

    # -- requests ------------------------------------------------------------------
    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base + path

    def request(self, method: str, path: str, *, scope: str | None = None,
                ok: tuple[int, ...] = (200,), headers: dict[str, str] | None = None,
                stream: bool = False, data: Any = None, retry: bool = True,
                what: str = "", decode: bool = True) -> Response:
        """One request with auth, retries and error mapping; ``ok`` lists good statuses.

        Without ``stream`` the body is read at once (the connection is free again);
        ``decode=False`` hands a content-encoded body over as it came.
        """
        self._pick_scheme()
        url = self.url(path)
        attempts = len(BACKOFF) + 1 if retry else 1
        authed = 0
        i = 0
        start = _tell(data)  # a streamed body is sent again from here after a 401 or 5xx
        first = True
        while True:
            if not first and start is not None:
                data.seek(start)
            first = False
            hdrs = {**self._auth_header(scope), **(headers or {})}
            try:
                resp = self._transport.request(method, url, headers=hdrs, body=data,
                                               timeout=TIMEOUT, decode=decode)
                if not stream:
                    resp.preload()
            except TooManyRedirects:
                raise FetchError(f"{what or url}: too many redirects (a loop?)") from None
            except TLSError as e:
                raise FetchError(f"{self.host}: TLS verification failed ({_short(e)}; "
                                 "give the CA with --cert-dir, or "
                                 "--insecure-options=tls)") from None
            except TransportError as e:
                i += 1
                if i < min(attempts, CONNECT_ATTEMPTS):
                    time.sleep(BACKOFF[i - 1])
                    continue
                raise FetchError(f"{self.host}: {_short(e)}") from None
            if resp.status_code == 401 and authed < 2:
                authed += 1
                if self._authorize(resp, scope, hdrs.get("Authorization")):
                    resp.close()
                    continue
            if resp.status_code in ok:
                return resp
            if resp.status_code in RETRY_STATUS and i + 1 < attempts:
                i += 1
                resp.close()
                delay = BACKOFF[i - 1]
                retry_after = resp.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = min(float(retry_after), 10.0)
                time.sleep(delay)
                continue
            self._raise(resp, what or f"{method} {urllib.parse.urlsplit(url).path}")

    def _raise(self, resp: Response, what: str) -> None:
        msg = _registry_error(resp)
        resp.close()
        code = resp.status_code
        if code == 401:
            raise AuthError(f"{what}: authentication required or refused ({msg}; "
                            f"use podkit-login {self.host})")
        if code == 403:
            raise AuthError(f"{what}: access denied ({msg})")
        if code == 404:
            raise NotFoundError(f"{what}: not found ({msg})")
        raise FetchError(f"{what}: HTTP {code} ({msg})")

    # -- reading -------------------------------------------------------------------
    def get_manifest(self, repo: str, ref: str, *,
                     method: str = "GET") -> tuple[Descriptor, bytes]:
        """A manifest or index by tag or digest, verified when a digest is known."""
        scope = f"repository:{repo}:pull"
        what = f"{self.host}/{repo}:{ref}" if ":" not in ref else f"{self.host}/{repo}@{ref}"
        resp = self.request(method, f"/v2/{repo}/manifests/{ref}", scope=scope, stream=True,
                            headers={"Accept": ACCEPT_MANIFESTS}, what=what)
        with resp:
            media = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > MAX_MANIFEST:
                raise ManifestError(f"{what}: manifest of {length} bytes is over the "
                                    f"{MAX_MANIFEST}-byte limit")
            raw = b"" if method == "HEAD" else _read_capped(resp, MAX_MANIFEST, what)
        header = resp.headers.get("Docker-Content-Digest")
        if method == "HEAD":
            if not header:
                raise FetchError(f"{what}: registry sent no Docker-Content-Digest")
            return Descriptor(media, Digest.parse(header), int(length or 0)), b""
        if media in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED):
            raise ManifestError(f"{what}: the registry offers only a Docker schema1 manifest "
                                "(deprecated, unsupported)")
        if ref.startswith("sha") and ":" in ref:
            want = Digest.parse(ref)
            got = Digest.of_bytes(raw, want.algorithm)
            if got != want:
                raise DigestMismatchError(f"{what}: manifest digest mismatch: got {got}")
        else:
            got = Digest.of_bytes(raw)
            if header and Digest.parse(header).algorithm == "sha256" and header != str(got):
                raise DigestMismatchError(f"{what}: manifest digest mismatch: registry says "
                                          f"{header}, content is {got}")
        return Descriptor(media or mt.OCI_MANIFEST, got, len(raw)), raw

    def open_blob(self, repo: str, desc: Descriptor, offset: int = 0) -> BinaryIO:
        """A stream of the blob's bytes from ``offset`` on, resumed with Range after a broken
        connection; its ``offset`` attribute says where it really starts (0 when the
        registry ignores Range: the caller then starts over)."""
        return _BlobStream(self, repo, desc, offset)  # type: ignore[return-value]

    def blob_exists(self, repo: str, digest: Digest, *, scope: str | None = None) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", ok=(200, 404),
                            scope=scope or f"repository:{repo}:pull", what=f"blob {digest}")
        resp.close()
        return resp.status_code == 200

    def check(self) -> None:
        """GET /v2/ — reachable, and credentials (if any) accepted."""
        self.request("GET", "/v2/", what=f"{self.host}").close()

    # -- writing -------------------------------------------------------------------
    def mount(self, repo: str, digest: Digest, source: str) -> bool:
        scope = f"repository:{repo}:pull,push repository:{source}:pull"
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from="
                            f"{urllib.parse.quote(source, safe='/')}", scope=scope,
                            ok=(201, 202), retry=False, what=f"mount {digest}")
        resp.close()
        if resp.status_code == 201:
            return True
        # 202: no mount; an upload session was opened instead: cancel it
        loc = resp.headers.get("Location")
        if loc:
            self._cancel(repo, loc)
        return False

    def _cancel(self, repo: str, location: str) -> None:
        with contextlib.suppress(FetchError, AuthError, NotFoundError):
            self.request("DELETE", urllib.parse.urljoin(self.base + "/", location),
                         scope=f"repository:{repo}:pull,push", ok=(204, 202, 200, 404),
                         retry=False).close()

    def upload(self, repo: str, stream: BinaryIO, digest: Digest, size: int,
               chunk: int = 64 << 20) -> None:
        """POST a session, PATCH the bytes in chunks (Content-Range), PUT ?digest=."""
        scope = f"repository:{repo}:pull,push"
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope, ok=(202,),
                            retry=False, what=f"upload {digest}")
        resp.close()
        location = self._location(resp)
        sent = 0
        while sent < size or size == 0:
            n = min(chunk, size - sent)
            body = _Limited(stream, n)
            resp = self.request("PATCH", location, scope=scope, ok=(202, 204), retry=False,
                                data=body, what=f"upload {digest}",
                                headers={"Content-Type": "application/octet-stream",
                                         "Content-Length": str(n),
                                         **({"Content-Range": f"{sent}-{sent + n - 1}"}
                                            if n else {})})
            resp.close()
            location = self._location(resp, location)
            sent += n
            if size == 0:
                break
        sep = "&" if "?" in location else "?"
        resp = self.request("PUT", f"{location}{sep}digest={digest}", scope=scope,
                            ok=(201, 204), retry=False, what=f"upload {digest}",
                            headers={"Content-Length": "0"})
        resp.close()

    def _location(self, resp: Response, previous: str | None = None) -> str:
        loc = resp.headers.get("Location") or previous
        if not loc:
            raise FetchError(f"{self.host}: upload answered without a Location")
        return urllib.parse.urljoin(resp.url, loc)

    def put_manifest(self, repo: str, ref: str, raw: bytes, media_type: str) -> Digest:
        resp = self.request("PUT", f"/v2/{repo}/manifests/{ref}",
                            scope=f"repository:{repo}:pull,push", ok=(201, 200, 202),
                            data=raw, headers={"Content-Type": media_type},
                            what=f"{self.host}/{repo}:{ref}")
        resp.close()
        ours = Digest.of_bytes(raw)
        theirs = resp.headers.get("Docker-Content-Digest")
        if theirs and theirs != str(ours):
            raise DigestMismatchError(f"{self.host}/{repo}: registry stored the manifest as "
                                      f"{theirs}, expected {ours}")
        return ours


def _tell(data: Any) -> int | None:
    """Where a seekable streamed body starts (None for bytes or an unseekable one)."""
    if data is None or isinstance(data, (bytes, bytearray, memoryview, str)):
        return None
    try:
        return int(data.tell())
    except (AttributeError, OSError, ValueError):
        return None


def _with_query(url: str, query: str) -> str:
    """``url`` with ``query`` added to the query it may have (as requests' params=)."""
    if not query:
        return url
    parts = urllib.parse.urlsplit(url)
    q = f"{parts.query}&{query}" if parts.query else query
    return urllib.parse.urlunsplit(parts._replace(query=q))


def _short(e: Exception) -> str:
    if isinstance(e, TransportError):
        return str(e)[:200]
    text = str(e)
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text) or re.search(r"\] ([^'\")\]]+)", text)
    reason = m.group(1) if m else type(e).__name__
    return f"{type(e).__name__}: {reason}"[:200]


def _read_capped(resp: Response, limit: int, what: str) -> bytes:
    out = bytearray()
    try:
        for chunk in resp.iter_content(65536):
            out += chunk
            if len(out) > limit:
                raise ManifestError(f"{what}: manifest is over the {limit}-byte limit")
    except TransportError as e:
        raise FetchError(f"{what}: {_short(e)}") from None
    return bytes(out)


class _Limited:
    """Exactly ``n`` bytes of a stream, as a sized file-like body (Content-Length, no
    chunked transfer encoding, which distribution refuses together with it)."""

    def __init__(self, stream: BinaryIO, n: int) -> None:
        self._s, self._left = stream, n

    def __len__(self) -> int:
        return self._left

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._s.read(want)
        if not data:
            raise FetchError("blob ended early while uploading")
        self._left -= len(data)
        return data

    # a seekable stream can be sent again (a kept-alive connection closed under it)
    def tell(self) -> int:
        return self._s.tell()

    def seek(self, pos: int) -> int:
        here = self._s.tell()
        self._s.seek(pos)
        self._left += here - pos
        return pos


_TRANSPORT_ERRORS = (TransportError, OSError)


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)


class _BlobStream:
    """A blob download that resumes with Range after a broken connection.

    ``offset`` asks for the blob from that byte on (a download kept from an
    earlier process); the :attr:`offset` property says where the stream
    really starts: that byte, or 0 when the registry ignored the Range and
    sent the whole blob (the caller then starts over).  Within the stream, a
    connection that breaks is resumed from the next byte; a registry that
    answers that Range with the whole blob has the bytes already handed out
    skipped (blobs are content-addressed: the same bytes again).
    """

    def __init__(self, reg: Registry, repo: str, desc: Descriptor, offset: int = 0) -> None:
        self._reg, self._repo, self._desc = reg, repo, desc
        self._pos = offset  # the next byte handed out
        self._start: int | None = None  # where the stream starts (known once open)
        self._resp: Response | None = None
        self._skip = 0  # bytes at the head of the current answer that were handed out before
        self._done = False
        self._resumes = 0

    @property
    def offset(self) -> int:
        """The blob byte this stream starts at (asks the registry if not asked yet)."""
        if self._start is None:
            self._open()
        assert self._start is not None
        return self._start

    def _open(self) -> Response:
        # identity: the bytes as stored, so that digests and Range offsets hold
        headers = {"Accept-Encoding": "identity"}
        ranged = self._pos > 0
        if ranged:
            headers["Range"] = f"bytes={self._pos}-"
        what = f"blob {self._desc.digest}"
        resp = self._reg.request("GET", f"/v2/{self._repo}/blobs/{self._desc.digest}",
                                 scope=f"repository:{self._repo}:pull", stream=True,
                                 ok=(200, 206, 416) if ranged else (200,), headers=headers,
                                 decode=False, what=what)
        if resp.status_code == 416 or (ranged and resp.status_code == 200):
            # the registry cannot (or will not) serve that range
            if self._start is not None and resp.status_code == 200:
                self._skip = self._pos  # mid-stream: drop what was handed out already
            elif resp.status_code == 416:
                resp.close()
                if self._start is not None:
                    raise FetchError(f"{what}: registry refused to resume at byte {self._pos}")
                self._pos = 0  # a kept download it will not continue: start over
                return self._open()
            else:
                self._pos = 0  # the whole blob from byte 0: the caller starts over
        elif resp.status_code == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if m is not None and int(m.group(1)) != self._pos:
                resp.close()
                raise FetchError(f"{what}: asked for bytes from {self._pos} on, "
                                 f"the registry sent them from {m.group(1)}")
        if self._start is None:
            self._start = self._pos
        self._resp = resp
        return resp

    def _drop_skipped(self, resp: Response, buf: memoryview) -> None:
        while self._skip:
            n = resp.readinto(buf[:min(len(buf), self._skip)])
            if not n:
                raise FetchError(f"blob {self._desc.digest}: the answer ended before byte "
                                 f"{self._pos}")
            self._skip -= n

    def readinto(self, b: bytearray | memoryview) -> int:
        """Fill ``b`` with the next bytes of the blob (fewer only at its end); 0 at the end."""
        mv = memoryview(b).cast("B")
        if not len(mv):
            return 0
        while not self._done:
            try:
                resp = self._resp or self._open()
                if self._skip:
                    self._drop_skipped(resp, mv)
                n = resp.readinto(mv)
            except _TRANSPORT_ERRORS as e:
                self.close()
                if self._resumes >= 3:
                    raise FetchError(f"blob {self._desc.digest}: download broke at byte "
                                     f"{self._pos}: {_short(e)}") from None
                self._resumes += 1
                continue
            except BaseException:
                self.close()
                raise
            if not n:
                self._done = True
                self.close()
                return 0
            self._pos += n
            return n
        return 0

    def read(self, n: int = -1) -> bytes:
        """``n`` bytes (fewer only at the end); the whole rest for ``n < 0``."""
        if n is None or n < 0:
            parts = []
            while part := self.read(BLOCK):
                parts.append(part)
            return b"".join(parts)
        buf = bytearray(n)
        got = 0
        while got < n:
            k = self.readinto(memoryview(buf)[got:])
            if not k:
                break
            got += k
        del buf[got:]
        return bytes(buf)

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None

    def __enter__(self) -> _BlobStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_login(registry: str, cred: Credential, *, ca_file: str | None = None,
                cert_dir: str | None = None, insecure_tls: bool = False) -> None:
    """Raise AuthError unless ``cred`` is accepted by ``registry``."""
    reg = Registry(api_host(registry), tls=TLSOptions(ca_file, cert_dir, insecure_tls),
                   credentials=lambda host, repo: cred)
    reg.request("GET", "/v2/", what=registry).close()
