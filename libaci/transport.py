"""A small HTTP/1.1 client on :mod:`http.client` and :mod:`ssl`, for podkit's fetchers.

Why not ``requests``: importing it (with urllib3, charset detection, idna...)
costs about 40-80 ms and 13 MB of RSS in every command that talks to a
registry, and urllib3 sends and reads bodies in 16 KiB pieces.  podkit needs
little of it, and this module does exactly that little:

* a thread-safe pool of idle keep-alive connections per (scheme, host, port);
  a connection goes back only after its answer was read to the end, and one
  the server closed while it sat idle is noticed before it is reused, or the
  request is sent again once on a fresh connection when it failed before any
  byte of an answer;
* TLS with the caller's :class:`ssl.SSLContext` (one for every host, or one
  per host from a factory), connect and read timeouts;
* redirects (301, 302, 303, 307, 308) up to a limit, relative ``Location``
  resolved against the current URL, 303 (and 301/302 after a POST) turned
  into a bodiless GET, and ``Authorization`` dropped as soon as a redirect
  leaves the origin (registries send blob GETs to storage backends, which
  must never see registry credentials);
* request bodies as bytes or sized file-like objects, sent in 1 MiB blocks;
* responses read in large blocks, with a body shorter than its
  ``Content-Length`` (or a broken chunked body) detected as an error, and
  ``gzip``/``deflate`` content-encoding undone when asked.

No proxy is used (``HTTP(S)_PROXY`` are ignored, as podkit's requests
sessions ignored them with ``trust_env = False``), and no cookies are kept.
Every failure below HTTP is a :class:`TransportError`; callers map them to
podkit's error classes.
"""

from __future__ import annotations

import http.client
import json
import select
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = [
    "BLOCK", "REDIRECTS", "ConnectError", "ConnectTimeout", "Headers", "ReadError",
    "ReadTimeout", "Response", "TLSError", "TooManyRedirects", "Transport", "TransportError",
]

BLOCK = 1 << 20  # send and read bodies in 1 MiB pieces
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 120.0
MAX_REDIRECTS = 30  # requests' default
REDIRECTS = frozenset({301, 302, 303, 307, 308})
POOL_SIZE = 8  # idle connections kept per (scheme, host, port)
DRAIN_MAX = 64 << 10  # an unread rest up to this size is read on close to keep the connection
JSON_MAX = 4 << 20
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
DEFAULT_PORTS = {"http": 80, "https": 443}
# what requests' requote_uri leaves alone: escapes stay, spaces and non-ASCII are quoted
_URI_SAFE = "!#$%&'()*+,/:;=?@[]~"
# the server closed a kept-alive connection: nothing of an answer arrived
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError, ssl.SSLEOFError, ssl.SSLZeroReturnError)

Timeout = float | tuple[float, float]  # seconds, or (connect, read)
ContextSource = ssl.SSLContext | Callable[[str], ssl.SSLContext] | None


# -- errors ------------------------------------------------------------------------------

class TransportError(Exception):
    """A request failed below HTTP.  ``str()`` is one line: ``Kind: reason``."""

    kind = "TransportError"

    def __init__(self, reason: str, kind: str | None = None) -> None:
        self.reason = reason
        if kind:
            self.kind = kind
        super().__init__(f"{self.kind}: {reason}")


class ConnectError(TransportError):
    """No connection, or it broke before any byte of an answer (a retry may help)."""

    kind = "ConnectionError"


class ConnectTimeout(ConnectError):
    kind = "ConnectTimeout"


class TLSError(ConnectError):
    """The TLS handshake failed; ``verify_failed`` when the certificate was refused."""

    kind = "SSLError"

    def __init__(self, reason: str, verify_failed: bool = False) -> None:
        self.verify_failed = verify_failed
        super().__init__(reason)


class ReadError(TransportError):
    """The answer broke off: truncated, malformed, reset, or undecodable."""

    kind = "ReadError"


class ReadTimeout(ReadError):
    kind = "ReadTimeout"


class TooManyRedirects(TransportError):
    kind = "TooManyRedirects"


def _reason(e: BaseException) -> str:
    """The useful words of an exception, without ``[Errno N]`` or ``(_ssl.c:N)``."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {e.verify_message or e.reason}"
    if isinstance(e, ssl.SSLError):
        return str(e.reason or e.strerror or type(e).__name__).replace("_", " ").lower()
    if isinstance(e, http.client.IncompleteRead):
        return f"body ended {e.expected} bytes short" if e.expected else "body ended early"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def _connect_error(e: BaseException, host: str, timeout: float) -> TransportError:
    if isinstance(e, ssl.SSLCertVerificationError):
        return TLSError(_reason(e), verify_failed=True)
    if isinstance(e, ssl.SSLError):
        return TLSError(_reason(e))
    if isinstance(e, TimeoutError):
        return ConnectTimeout(f"connecting to {host} timed out ({timeout:g} s)")
    return ConnectError(_reason(e))


def _read_error(e: BaseException, timeout: float | None) -> TransportError:
    if isinstance(e, TransportError):
        return e
    if isinstance(e, TimeoutError):
        return ReadTimeout(f"no data for {timeout:g} s" if timeout else "read timed out")
    return ReadError(_reason(e), type(e).__name__)


# -- responses ---------------------------------------------------------------------------

class Headers(Mapping[str, str]):
    """Response headers, case-insensitive; repeated fields joined with ``", "``."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._d: dict[str, tuple[str, str]] = {}
        for k, v in fields:
            old = self._d.get(k.lower())
            self._d[k.lower()] = (k, f"{old[1]}, {v}" if old else v)

    def __getitem__(self, key: str) -> str:
        return self._d[key.lower()][1]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._d

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._d.values())

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class Response:
    """One answer, its body streamed from the connection.

    Read it with :meth:`read` / :meth:`readinto` / iteration; :meth:`close`
    returns the connection to the pool when the body was read to the end (or
    its small rest can be), and closes it otherwise.  A body shorter than
    announced raises :class:`ReadError` instead of ending quietly.
    """

    def __init__(self, raw: http.client.HTTPResponse, conn: http.client.HTTPConnection,
                 transport: Transport, key: tuple[str, str, int], url: str, method: str,
                 decode: bool = False, read_timeout: float | None = None) -> None:
        self._raw: http.client.HTTPResponse | None = raw
        self._conn: http.client.HTTPConnection | None = conn
        self._transport = transport
        self._key = key
        self._read_timeout = read_timeout
        self.url = url
        self.method = method
        self.status_code: int = raw.status
        self.reason: str = raw.reason
        self.headers = Headers(raw.getheaders())
        self._pending = b""  # bytes read (and decoded) but not handed out yet ...
        self._off = 0  # ... from this offset on
        self._eof = False  # the wire has no more (for the decoder)
        self._decoder: _Decoder | None = None
        if decode and method != "HEAD":
            self._decoder = _Decoder.for_encoding(self.headers.get("Content-Encoding", ""))

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}] {self.method} {self.url}>"

    # -- reading -----------------------------------------------------------------------
    def _read_raw(self, n: int) -> bytes:
        """Up to ``n`` bytes (``n < 0``: all) off the wire; b"" only at the true end."""
        raw = self._raw
        if raw is None:
            return b""
        try:
            if n < 0:
                data = raw.read()
            else:
                data = raw.read(n)
                if not data and n and raw.length:  # http.client ends quietly here
                    raise http.client.IncompleteRead(b"", raw.length)
        except BaseException as e:
            self._discard()
            if isinstance(e, Exception):
                raise _read_error(e, self._read_timeout) from None
            raise
        if raw.isclosed():
            self._release()
        return data

    def _take(self, n: int) -> bytes:
        end = len(self._pending) if n < 0 else min(len(self._pending), self._off + n)
        out = self._pending[self._off:end]
        if end >= len(self._pending):
            self._pending, self._off = b"", 0
        else:
            self._off = end
        return out

    def _decode_more(self) -> bool:
        """Decode some more into ``_pending`` (at most a block); False at the end."""
        d = self._decoder
        assert d is not None
        try:
            out = d.more(BLOCK)
            if out is None:
                if self._eof:
                    return False
                block = self._read_raw(BLOCK)
                if block:
                    out = d.decompress(block, BLOCK)
                else:
                    self._eof = True
                    out = d.flush()
        except TransportError:
            raise
        except Exception as e:  # zlib.error, for one
            self._discard()
            raise ReadError(f"bad content encoding: {e}", "DecodeError") from None
        self._pending, self._off = out, 0
        return True

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the body (all of it for ``n < 0``); b"" at the end."""
        if n is None:
            n = -1
        if self._pending:
            if n >= 0:
                return self._take(n)
            return self._take(-1) + self.read()
        if self._decoder is None:
            return self._read_raw(n)
        if n < 0:
            parts = []
            while part := self.read(BLOCK):
                parts.append(part)
            return b"".join(parts)
        while not self._pending:
            if not self._decode_more():
                return b""
        return self._take(n)

    def readinto(self, b: bytearray | memoryview) -> int:
        """Fill ``b`` with what one :meth:`read` gives; the number of bytes."""
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def __iter__(self) -> Iterator[bytes]:
        return self.iter_content(BLOCK)

    def iter_content(self, size: int = BLOCK) -> Iterator[bytes]:
        while True:
            data = self.read(size)
            if not data:
                return
            yield data

    def preload(self, limit: int = JSON_MAX) -> None:
        """Read the body into memory now (up to ``limit`` bytes), freeing the connection."""
        parts = [self._take(-1)]
        size = len(parts[0])
        while size <= limit:
            data = self.read(min(BLOCK, limit + 1 - size))
            if not data:
                break
            parts.append(data)
            size += len(data)
        self._pending, self._off = b"".join(parts), 0

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not JSON or over 4 MiB)."""
        self.preload(JSON_MAX)
        if len(self._pending) - self._off > JSON_MAX:
            raise ValueError(f"JSON document over {JSON_MAX} bytes")
        return json.loads(self._pending[self._off:])

    # -- the connection ------------------------------------------------------------------
    def _release(self) -> None:
        raw, conn = self._raw, self._conn
        self._raw = self._conn = None
        if conn is None:
            return
        if raw is not None and not raw.will_close and raw.isclosed() and not raw.length:
            self._transport._put(self._key, conn)
        else:
            conn.close()

    def _discard(self) -> None:
        raw, conn = self._raw, self._conn
        self._raw = self._conn = None
        if raw is not None:
            raw.close()
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Done with the body: pool the connection if the rest is small, else close it."""
        raw = self._raw
        if raw is None:
            return
        if raw.isclosed():
            self._release()
            return
        if raw.will_close or not (raw.chunked or (raw.length is not None
                                                  and raw.length <= DRAIN_MAX)):
            self._discard()
            return
        try:
            if self._conn is not None and self._conn.sock is not None:
                self._conn.sock.settimeout(1.0)  # a stalled rest is not worth waiting for
            left = DRAIN_MAX
            while left > 0 and self._raw is not None:
                got = len(self._read_raw(min(left, 65536)))
                if not got:
                    break
                left -= got
        except TransportError:
            return  # already discarded
        if self._raw is not None:
            self._discard()

    @property
    def closed(self) -> bool:
        return self._raw is None

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Decoder:
    """Undoes ``gzip`` or ``deflate`` content-encoding, a block of output at a time
    (a small body cannot blow up in memory)."""

    def __init__(self, gzip: bool) -> None:
        import zlib

        self._zlib = zlib
        self._gzip = gzip
        self._d: Any = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None

    @classmethod
    def for_encoding(cls, encoding: str) -> _Decoder | None:
        enc = encoding.strip().lower()
        if enc in ("gzip", "x-gzip"):
            return cls(True)
        if enc == "deflate":
            return cls(False)
        return None  # identity, or something we do not know: hand it over as it is

    def decompress(self, data: bytes, limit: int) -> bytes:
        if self._d is None:  # deflate is zlib-wrapped by the standard, raw from some servers
            zlib = self._zlib
            wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._d = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return bytes(self._d.decompress(data, limit))

    def more(self, limit: int) -> bytes | None:
        """Output of input already given, or None when more input is needed."""
        d = self._d
        if d is None:
            return None
        if d.unconsumed_tail:
            return bytes(d.decompress(d.unconsumed_tail, limit))
        if self._gzip and d.eof and d.unused_data.strip(b"\0"):  # another gzip member
            data = d.unused_data
            self._d = self._zlib.decompressobj(16 + self._zlib.MAX_WBITS)
            return self.decompress(data, limit)
        return None

    def flush(self) -> bytes:
        return bytes(self._d.flush()) if self._d is not None else b""


# -- the transport -------------------------------------------------------------------------

def _split_timeout(timeout: Timeout | None) -> tuple[float, float]:
    if timeout is None:
        return CONNECT_TIMEOUT, READ_TIMEOUT
    if isinstance(timeout, tuple):
        return float(timeout[0]), float(timeout[1])
    return float(timeout), float(timeout)


def _origin(parts: urllib.parse.SplitResult) -> tuple[str, str, int]:
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 0)


def keeps_auth(old: str, new: str) -> bool:
    """May a redirect from ``old`` to ``new`` carry ``Authorization``?  Only within one
    origin (scheme, host, port), or from http:80 up to https:443 of the same host."""
    a, b = _origin(urllib.parse.urlsplit(old)), _origin(urllib.parse.urlsplit(new))
    if a == b:
        return True
    return a[1] == b[1] and a[0] == "http" and a[2] == 80 and b[0] == "https" and b[2] == 443


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """True when an idle connection is unusable: closed, or the peer hung up (readable)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True  # bytes nobody asked for
        p = select.poll()
        p.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(p.poll(0))
    except (OSError, ValueError):
        return True


class _Body:
    """A request body: bytes, or a file-like read in :data:`BLOCK` pieces, rewindable
    when seekable (for a resend after a stale connection or a 307/308)."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.sent = 0
        self.length: int | None = None
        self._start: int | None = None
        if data is None:
            self.length = None
        elif isinstance(data, (bytes, bytearray, memoryview)):
            self.length = len(data)
        elif isinstance(data, str):
            self.data = data.encode()
            self.length = len(self.data)
        else:
            try:
                self.length = len(data)
            except TypeError:
                self.length = None
            try:
                self._start = data.tell()
            except (AttributeError, OSError, ValueError):
                self._start = None

    @property
    def streamed(self) -> bool:
        return self.data is not None and not isinstance(self.data, (bytes, bytearray,
                                                                     memoryview))

    def rewind(self) -> bool:
        """Ready to be sent again?"""
        if not self.streamed or self.sent == 0:
            return True
        if self._start is None:
            return False
        try:
            self.data.seek(self._start)
        except (AttributeError, OSError, ValueError):
            return False
        self.sent = 0
        return True

    def send(self, conn: http.client.HTTPConnection) -> None:
        if self.data is None:
            conn.endheaders()
            return
        if not self.streamed:
            conn.endheaders(bytes(self.data))
            self.sent = 1
            return
        conn.endheaders()
        if hasattr(self.data, "read"):
            while True:
                block = self.data.read(BLOCK)
                if not block:
                    return
                self.sent += len(block)
                conn.send(block)
        for block in self.data:  # an iterable of bytes
            if block:
                self.sent += len(block)
                conn.send(block)


class Transport:
    """Pooled HTTP(S) connections with podkit's TLS context; safe to share between threads.

    ``context`` is the :class:`ssl.SSLContext` for every ``https`` host, or a
    function of ``host[:port]`` giving one (cached), or None for the default
    verified context.  ``headers`` go with every request unless the caller
    overrides them.
    """

    def __init__(self, context: ContextSource = None, *, headers: Mapping[str, str] | None = None,
                 max_redirects: int = MAX_REDIRECTS, pool_size: int = POOL_SIZE) -> None:
        self._context = context
        self._contexts: dict[str, ssl.SSLContext] = {}
        self.headers = dict(headers or {})
        self.max_redirects = max_redirects
        self.pool_size = pool_size
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    # -- pool ----------------------------------------------------------------------------
    def _ssl_context(self, netloc: str) -> ssl.SSLContext:
        if isinstance(self._context, ssl.SSLContext):
            return self._context
        with self._lock:
            ctx = self._contexts.get(netloc)
        if ctx is None:
            ctx = self._context(netloc) if self._context else ssl.create_default_context()
            with self._lock:
                ctx = self._contexts.setdefault(netloc, ctx)
        return ctx

    def _get(self, key: tuple[str, str, int]) -> http.client.HTTPConnection | None:
        """An idle pooled connection that still looks alive, or None."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None or not _dropped(conn):
                return conn
            conn.close()

    def _put(self, key: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.pool_size:
                idle.append(conn)
                return
        conn.close()

    def _new(self, parts: urllib.parse.SplitResult, connect_timeout: float
             ) -> http.client.HTTPConnection:
        host, port = parts.hostname or "", parts.port
        netloc = parts.netloc.rpartition("@")[2]
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=connect_timeout,
                                               context=self._ssl_context(netloc))
        else:
            conn = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        try:
            conn.connect()
        except Exception as e:
            conn.close()
            raise _connect_error(e, netloc, connect_timeout) from None
        return conn

    def close(self) -> None:
        """Close the idle connections (those in use close with their responses)."""
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for c in conns:
            c.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ----------------------------------------------------------------------------
    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                body: Any = None, timeout: Timeout | None = None,
                follow_redirects: bool = True, decode: bool = False) -> Response:
        """Send one request (following redirects unless told not to); the caller closes
        the response.  ``body`` is bytes or a sized file-like object."""
        method = method.upper()
        hdrs = {**self.headers}
        for k, v in (headers or {}).items():
            for old in [x for x in hdrs if x.lower() == k.lower()]:
                del hdrs[old]
            hdrs[k] = v
        data = _Body(body)
        for _hop in range(self.max_redirects + 1):
            resp = self._send(method, url, hdrs, data, timeout, decode)
            location = resp.headers.get("Location")
            if not follow_redirects or resp.status_code not in REDIRECTS or not location:
                return resp
            resp.close()
            new = urllib.parse.urljoin(url, location.strip())
            new = urllib.parse.urldefrag(new)[0]
            code = resp.status_code
            if (code == 303 and method != "HEAD") or (code in (301, 302) and method == "POST"):
                method = "GET"
                data = _Body(None)
                hdrs = {k: v for k, v in hdrs.items() if k.lower() not in
                        ("content-length", "content-type", "transfer-encoding",
                         "content-range")}
            elif not data.rewind():
                raise TransportError(f"cannot send a streamed body again after HTTP {code}",
                                     "UnrewindableBodyError")
            if not keeps_auth(url, new):
                hdrs = {k: v for k, v in hdrs.items() if k.lower() != "authorization"}
            url = new
        raise TooManyRedirects(f"exceeded {self.max_redirects} redirects")

    def _send(self, method: str, url: str, headers: dict[str, str], body: _Body,
              timeout: Timeout | None, decode: bool) -> Response:
        try:
            parts = urllib.parse.urlsplit(url)
            key = _origin(parts)
        except ValueError as e:
            raise ConnectError(f"bad URL {url!r}: {e}", "InvalidURL") from None
        if key[0] not in DEFAULT_PORTS or not key[1]:
            raise ConnectError(f"cannot fetch {url!r}", "InvalidURL")
        connect_timeout, read_timeout = _split_timeout(timeout)
        target = urllib.parse.quote((parts.path or "/") + (f"?{parts.query}"
                                                          if parts.query else ""),
                                    safe=_URI_SAFE)
        for attempt in (1, 2):
            conn = self._get(key)
            reused = conn is not None
            if conn is None:
                conn = self._new(parts, connect_timeout)
            try:
                assert conn.sock is not None
                conn.sock.settimeout(read_timeout)
                self._write(conn, method, target, headers, body)
                raw = conn.getresponse()
            except Exception as e:
                conn.close()
                if (attempt == 1 and isinstance(e, _STALE)
                        and (reused or method in IDEMPOTENT) and body.rewind()):
                    continue  # the server closed it, or it broke before answering
                if isinstance(e, TimeoutError):
                    raise ReadTimeout(f"no answer for {read_timeout:g} s") from None
                if isinstance(e, OSError | http.client.HTTPException):
                    raise ConnectError(_reason(e), type(e).__name__
                                       if not isinstance(e, OSError) else None) from None
                if isinstance(e, ValueError):  # http.client's message quotes the value:
                    raise TransportError("a header name or value is not valid",  # a secret?
                                         "InvalidHeader") from None
                raise
            return Response(raw, conn, self, key, url, method, decode, read_timeout)
        raise AssertionError("unreachable")

    def _write(self, conn: http.client.HTTPConnection, method: str, target: str,
               headers: dict[str, str], body: _Body) -> None:
        names = {k.lower() for k in headers}
        conn.putrequest(method, target, skip_host="host" in names, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        if "content-length" not in names and "transfer-encoding" not in names:
            if body.length is not None:
                conn.putheader("Content-Length", str(body.length))
            elif body.data is None and method not in ("GET", "HEAD"):
                conn.putheader("Content-Length", "0")
            elif body.data is not None:
                raise TransportError("a streamed request body needs a known length",
                                     "InvalidBody")
        body.send(conn)
