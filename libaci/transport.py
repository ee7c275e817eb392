"""A small HTTP/1.1 client on sockets (and :mod:`ssl` for https), for podkit's fetchers.

Why not ``requests``, or even :mod:`http.client`: podkit needs little of
them, and their imports are a good part of a registry command's start-up
(requests with urllib3 ~40-80 ms and 13 MB; http.client pulls in the 15
modules of the email package and ssl, ~20 ms from a cold page cache).  This
module does exactly what podkit needs:

* a thread-safe pool of idle keep-alive connections per (scheme, host, port);
  a connection goes back only after its answer was read to the end, and one
  the server closed while it sat idle is noticed before it is reused, or the
  request is sent again once on a fresh connection when it failed before any
  byte of an answer;
* TLS with the caller's :class:`ssl.SSLContext` (one for every host, or one
  per host from a factory), connect and read timeouts; :mod:`ssl` is imported
  only when an ``https`` URL is used;
* redirects (301, 302, 303, 307, 308) up to a limit, relative ``Location``
  resolved against the current URL, 303 (and 301/302 after a POST) turned
  into a bodiless GET, and ``Authorization`` dropped as soon as a redirect
  leaves the origin (registries send blob GETs to storage backends, which
  must never see registry credentials);
* request bodies as bytes or sized file-like objects, sent in 1 MiB blocks;
* answers parsed as HTTP/1.1 says (status line, at most 100 header fields,
  ``Content-Length``, ``chunked``, or up to the end of the connection; 1xx
  answers skipped; no body after HEAD, 204 and 304); bodies read straight
  into the caller's buffer (:meth:`Response.readinto`), a body shorter than
  its ``Content-Length`` (or a broken chunked body) detected as an error, and
  ``gzip``/``deflate`` content-encoding undone when asked.

No proxy is used (``HTTP(S)_PROXY`` are ignored, as podkit's requests
sessions ignored them with ``trust_env = False``), and no cookies are kept.
Every failure below HTTP is a :class:`TransportError`; callers map them to
podkit's error classes.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import sys
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    ContextSource = ssl.SSLContext | Callable[[str], ssl.SSLContext] | None

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
MAX_LINE = 65536  # longest status line or header field
MAX_HEADERS = 100
HEAD_RECV = 65536  # what one recv asks for while a status line and header are read
# what requests' requote_uri leaves alone: escapes stay, spaces and non-ASCII are quoted
_URI_SAFE = "!#$%&'()*+,/:;=?@[]~"

Timeout = float | tuple[float, float]  # seconds, or (connect, read)


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


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection without a byte of an answer."""


class ProtocolError(Exception):
    """An answer that is not HTTP/1.x as it should be."""


class BadStatusLine(ProtocolError):
    pass


class LineTooLong(ProtocolError):
    pass


class IncompleteRead(ProtocolError):
    def __init__(self, missing: int | None = None) -> None:
        self.missing = missing
        super().__init__(f"{missing} more bytes expected" if missing else "body ended early")


def _ssl_errors() -> tuple[type[BaseException], ...]:
    """ssl's exception classes, if ssl was imported at all (only https needs it)."""
    mod = sys.modules.get("ssl")
    return (mod.SSLError,) if mod is not None else ()


def _is_stale(e: BaseException) -> bool:
    """A kept-alive connection the server closed: nothing of an answer arrived."""
    if isinstance(e, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return True
    mod = sys.modules.get("ssl")
    return mod is not None and isinstance(e, mod.SSLEOFError | mod.SSLZeroReturnError)


def _reason(e: BaseException) -> str:
    """The useful words of an exception, without ``[Errno N]`` or ``(_ssl.c:N)``."""
    mod = sys.modules.get("ssl")
    if mod is not None and isinstance(e, mod.SSLCertVerificationError):
        return f"certificate verify failed: {e.verify_message or e.reason}"
    if mod is not None and isinstance(e, mod.SSLError):
        return str(e.reason or e.strerror or type(e).__name__).replace("_", " ").lower()
    if isinstance(e, IncompleteRead):
        return f"body ended {e.missing} bytes short" if e.missing else "body ended early"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def _connect_error(e: BaseException, host: str, timeout: float) -> TransportError:
    mod = sys.modules.get("ssl")
    if mod is not None and isinstance(e, mod.SSLCertVerificationError):
        return TLSError(_reason(e), verify_failed=True)
    if mod is not None and isinstance(e, mod.SSLError):
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


class _Conn:
    """One connection: its socket, and bytes read from it ahead of their use."""

    __slots__ = ("buf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __del__(self) -> None:
        # a pooled connection left at exit is closed quietly (the socket's own finalizer
        # would format a ResourceWarning first: two system calls per socket); no module
        # globals here, they may be gone at interpreter shutdown
        try:  # noqa: SIM105 - contextlib may be torn down already
            self.sock.close()
        except Exception:
            pass

    def readline(self) -> bytes:
        """A line with its ``\\n`` (longer than MAX_LINE: LineTooLong); b"" at EOF."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > MAX_LINE:
                raise LineTooLong(f"a line of more than {MAX_LINE} bytes")
            data = self.sock.recv(HEAD_RECV)
            if not data:
                line = bytes(self.buf)
                self.buf.clear()
                return line
            self.buf += data

    def recv_into(self, mv: memoryview) -> int:
        """Bytes read ahead first, else one recv straight into ``mv``; 0 at EOF."""
        if self.buf:
            n = min(len(mv), len(self.buf))
            mv[:n] = self.buf[:n]
            del self.buf[:n]
            return n
        return self.sock.recv_into(mv)


def _read_head(conn: _Conn) -> tuple[int, int, str, list[tuple[str, str]]]:
    """(HTTP version 10/11, status, reason, header fields) of the next final answer."""
    while True:
        line = conn.readline()
        if not line:
            raise RemoteDisconnected("the server closed the connection without an answer")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        parts = text.split(None, 2)
        if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0"):
            raise BadStatusLine(f"not an HTTP/1.x status line: {text[:80]!r}")
        try:
            status = int(parts[1])
        except ValueError:
            raise BadStatusLine(f"bad status code {parts[1][:20]!r}") from None
        if not 100 <= status <= 999:
            raise BadStatusLine(f"bad status code {status}")
        fields: list[tuple[str, str]] = []
        while True:
            line = conn.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            if len(fields) >= MAX_HEADERS:
                raise ProtocolError(f"more than {MAX_HEADERS} header fields")
            field = line.decode("iso-8859-1").rstrip("\r\n")
            if field[:1] in (" ", "\t"):  # an obsolete folded continuation line
                if fields:
                    fields[-1] = (fields[-1][0], f"{fields[-1][1]} {field.strip()}")
                continue
            name, sep, value = field.partition(":")
            if sep and name and name == name.strip():
                fields.append((name, value.strip()))
        if 100 <= status < 200 and status != 101:
            continue  # 100 Continue and friends: the real answer follows
        return (11 if parts[0] == "HTTP/1.1" else 10), status, \
            (parts[2] if len(parts) > 2 else ""), fields


class Response:
    """One answer, its body streamed from the connection.

    Read it with :meth:`read` / :meth:`readinto` / iteration; :meth:`close`
    returns the connection to the pool when the body was read to the end (or
    its small rest can be), and closes it otherwise.  A body shorter than
    announced raises :class:`ReadError` instead of ending quietly.
    """

    def __init__(self, conn: _Conn, head: tuple[int, int, str, list[tuple[str, str]]],
                 transport: Transport, key: tuple[str, str, int], url: str, method: str,
                 decode: bool = False, read_timeout: float | None = None) -> None:
        version, status, reason, fields = head
        self._conn: _Conn | None = conn
        self._transport = transport
        self._key = key
        self._read_timeout = read_timeout
        self.url = url
        self.method = method
        self.status_code: int = status
        self.reason: str = reason
        self.headers = Headers(fields)
        self._pending = b""  # bytes read (and decoded) but not handed out yet ...
        self._off = 0  # ... from this offset on
        self._eof = False  # the wire has no more (for the decoder)
        self._decoder: _Decoder | None = None
        if decode and method != "HEAD":
            self._decoder = _Decoder.for_encoding(self.headers.get("Content-Encoding", ""))
        # how the body ends
        self._chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        self._chunk_left: int | None = None  # bytes left in the current chunk
        self._left: int | None = None  # bytes left of a Content-Length body
        if not self._chunked:
            try:
                self._left = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._left = None
            if self._left is not None and self._left < 0:
                self._left = None
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self._chunked, self._left = False, 0
        connection = self.headers.get("Connection", "").lower()
        self._will_close = "close" in connection or (
            version == 10 and "keep-alive" not in connection
            and "Keep-Alive" not in self.headers) or (not self._chunked and self._left is None)
        self._done = False
        self._error: TransportError | None = None  # a break, raised after the bytes before it
        if self._left == 0:
            self._finish()

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}] {self.method} {self.url}>"

    # -- the body on the wire ---------------------------------------------------------------
    def _finish(self) -> None:
        """The body was read to its end: the connection goes back to the pool (or closes)."""
        self._done = True
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._will_close or conn.buf:
            conn.close()
        else:
            self._transport._put(self._key, conn)

    def _recv(self, mv: memoryview) -> int:
        """One step of reading the body into ``mv``: some bytes, or 0 at its end."""
        conn = self._conn
        if self._done or conn is None:
            return 0
        if self._chunked:
            if not self._chunk_left:
                if self._chunk_left == 0:
                    conn.readline()  # the CRLF after a chunk's data
                line = conn.readline()
                if not line:
                    raise IncompleteRead()
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ProtocolError("bad chunk size line") from None
                if size == 0:
                    while conn.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailer fields
                    self._finish()
                    return 0
                self._chunk_left = size
            n = conn.recv_into(mv[:self._chunk_left])
            if not n:
                raise IncompleteRead()
            self._chunk_left -= n
            return n
        if self._left is None:  # up to the end of the connection
            n = conn.recv_into(mv)
            if not n:
                self._finish()
            return n
        if self._left <= 0:
            self._finish()
            return 0
        n = conn.recv_into(mv[:self._left])
        if not n:
            raise IncompleteRead(self._left)
        self._left -= n
        if not self._left:
            self._finish()
        return n

    def _fill(self, b: bytearray | memoryview) -> int:
        """Fill ``b`` from the body as far as it goes; 0 only at its end.

        When the body breaks off, the bytes that did arrive are handed out
        first; the error is raised by the next call.
        """
        if self._error is not None:
            raise self._error
        mv = memoryview(b).cast("B")
        got = 0
        try:
            while got < len(mv) and not self._done:
                n = self._recv(mv[got:])
                if not n:
                    break
                got += n
        except BaseException as e:
            self._discard()
            if not isinstance(e, Exception):
                raise
            self._error = _read_error(e, self._read_timeout)
            if not got:
                raise self._error from None
        return got

    def _read_raw(self, n: int) -> bytes:
        """Up to ``n`` bytes (``n < 0``: all) off the wire; b"" only at the true end."""
        if n < 0:
            parts = []
            while part := self._read_raw(BLOCK):
                parts.append(part)
            return b"".join(parts)
        if self._left is not None:
            n = min(n, self._left)  # a small body: no big buffer to allocate and zero
        if n <= 0 and self._error is None:
            self._fill(bytearray(0))  # releases a finished connection
            return b""
        buf = bytearray(n)
        got = self._fill(buf)
        return bytes(buf) if got == n else bytes(memoryview(buf)[:got])

    # -- reading -----------------------------------------------------------------------
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
        """Read up to ``len(b)`` bytes of the body into ``b``; 0 only at the end.

        A body taken as it came (no content-encoding to undo) goes from the
        socket straight into ``b``: no bytes object per block, no copy.  The
        buffer is filled unless the body ends first.
        """
        if self._pending or self._decoder is not None:
            data = self.read(len(b))
            b[:len(data)] = data
            return len(data)
        return self._fill(b)

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
    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        self._done = True
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Done with the body: pool the connection if the rest is small, else close it."""
        conn = self._conn
        if conn is None:
            return
        if self._will_close or not (self._chunked or (self._left is not None
                                                      and self._left <= DRAIN_MAX)):
            self._discard()
            return
        try:
            conn.sock.settimeout(1.0)  # a stalled rest is not worth waiting for
            scratch = bytearray(65536)
            left = DRAIN_MAX
            while left > 0 and not self._done:
                got = self._fill(memoryview(scratch)[:min(left, len(scratch))])
                if not got:
                    break
                left -= got
        except TransportError:
            return  # already discarded
        if not self._done:
            self._discard()

    @property
    def closed(self) -> bool:
        return self._conn is None

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


def _dropped(conn: _Conn) -> bool:
    """True when an idle connection is unusable: closed, or the peer hung up (readable)."""
    sock = conn.sock
    if conn.buf or sock.fileno() < 0:
        return True  # bytes nobody asked for, or closed
    try:
        pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted
        if pending is not None and pending():
            return True
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

    def send(self, sock: socket.socket, head: bytes) -> None:
        """The request head, then the body (a small one in the same send: no Nagle
        and delayed-ACK stall between them)."""
        if self.data is None:
            sock.sendall(head)
            return
        if not self.streamed:
            data = bytes(self.data)
            if len(data) <= 65536:
                sock.sendall(head + data)
            else:
                sock.sendall(head)
                sock.sendall(data)
            self.sent = 1
            return
        sock.sendall(head)
        if hasattr(self.data, "read"):
            while True:
                block = self.data.read(BLOCK)
                if not block:
                    return
                self.sent += len(block)
                sock.sendall(block)
        for block in self.data:  # an iterable of bytes
            if block:
                self.sent += len(block)
                sock.sendall(block)


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
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._lock = threading.Lock()

    # -- pool ----------------------------------------------------------------------------
    def _ssl_context(self, netloc: str) -> ssl.SSLContext:
        import ssl

        if isinstance(self._context, ssl.SSLContext):
            return self._context
        with self._lock:
            ctx = self._contexts.get(netloc)
        if ctx is None:
            ctx = self._context(netloc) if self._context else ssl.create_default_context()
            with self._lock:
                ctx = self._contexts.setdefault(netloc, ctx)
        return ctx

    def _get(self, key: tuple[str, str, int]) -> _Conn | None:
        """An idle pooled connection that still looks alive, or None."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None or not _dropped(conn):
                return conn
            conn.close()

    def _put(self, key: tuple[str, str, int], conn: _Conn) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.pool_size:
                idle.append(conn)
                return
        conn.close()

    def _new(self, parts: urllib.parse.SplitResult, connect_timeout: float) -> _Conn:
        scheme = parts.scheme.lower()
        host, port = parts.hostname or "", parts.port or DEFAULT_PORTS[scheme]
        netloc = parts.netloc.rpartition("@")[2]
        sock: socket.socket | None = None
        try:
            # an ASCII name as bytes: getaddrinfo would otherwise encode it with the idna
            # codec, importing encodings.idna, stringprep and unicodedata (~3 ms cold)
            sock = socket.create_connection((host.encode() if host.isascii() else host, port),
                                            timeout=connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = self._ssl_context(netloc).wrap_socket(sock, server_hostname=host)
        except Exception as e:
            if sock is not None:
                sock.close()
            raise _connect_error(e, netloc, connect_timeout) from None
        return _Conn(sock)

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
                conn.sock.settimeout(read_timeout)
                body.send(conn.sock, _head(method, target, _host_field(key), headers, body))
                head = _read_head(conn)
            except Exception as e:
                conn.close()
                if (attempt == 1 and _is_stale(e)
                        and (reused or method in IDEMPOTENT) and body.rewind()):
                    continue  # the server closed it, or it broke before answering
                if isinstance(e, TimeoutError):
                    raise ReadTimeout(f"no answer for {read_timeout:g} s") from None
                if isinstance(e, ValueError):  # a message quoting the value: a secret?
                    raise TransportError("a header name or value is not valid",
                                         "InvalidHeader") from None
                if isinstance(e, OSError | ProtocolError):
                    raise ConnectError(_reason(e), type(e).__name__
                                       if not isinstance(e, OSError) else None) from None
                raise
            return Response(conn, head, self, key, url, method, decode, read_timeout)
        raise AssertionError("unreachable")


def _host_field(key: tuple[str, str, int]) -> str:
    """The ``Host`` of a request to (scheme, host, port): no default port, IPv6 in []."""
    scheme, host, port = key
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return host if port == DEFAULT_PORTS.get(scheme) else f"{host}:{port}"


def _head(method: str, target: str, host: str, headers: Mapping[str, str],
          body: _Body) -> bytes:
    """The request line and header fields; ValueError for a name or value that would
    break the framing (CR, LF, a colon or blanks in a name)."""
    names = {k.lower() for k in headers}
    if any(c in target for c in " \r\n\t\0"):
        raise ValueError("request target")
    lines = [f"{method} {target} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {host}")
    for k, v in headers.items():
        value = str(v)
        if (not k or any(c in k for c in ":\r\n \t\0") or "\r" in value or "\n" in value
                or "\0" in value):
            raise ValueError("header")
        lines.append(f"{k}: {value}")
    if "content-length" not in names and "transfer-encoding" not in names:
        if body.length is not None:
            lines.append(f"Content-Length: {body.length}")
        elif body.data is None and method not in ("GET", "HEAD"):
            lines.append("Content-Length: 0")
        elif body.data is not None:
            raise TransportError("a streamed request body needs a known length",
                                 "InvalidBody")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")
