"""libaci.transport (and the registry client on top of it) against simulated servers.

Each test runs Python's http.server (HTTP/1.1, keep-alive) in a thread on
127.0.0.1.  The server numbers every TCP connection it accepts and records
each request (method, path, headers, body, connection number), so the tests
can prove what a client must do: reuse pooled connections, send a request
again on a fresh connection when a kept-alive one was closed under it, follow
redirects without carrying credentials to another host, read chunked and
large bodies, and notice a body that is cut short.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import itertools
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from libaci.digest import Digest
from libaci.errors import FetchError
from libaci.oci import Descriptor
from libaci.registry.client import Registry, TLSOptions
from libaci.transport import (
    BLOCK,
    ConnectError,
    ReadError,
    TLSError,
    TooManyRedirects,
    Transport,
    TransportError,
    keeps_auth,
)

Route = Callable[["Handler"], None]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    conn: int  # the server's number for the TCP connection
    killed: bool = False  # the connection was closed instead of answering


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.conn_no = self.server.new_connection()

    def _any(self) -> None:
        n = self.headers.get("Content-Length")
        body = self.rfile.read(int(n)) if n else b""
        path = self.path.split("?")[0]
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                    body, self.conn_no)
        self.server.log.append(seen)
        if self.server.take_kill():
            seen.killed = True  # as a server whose keep-alive timeout just ran out
            self.close_connection = True
            return
        route = self.server.routes.get(path)
        if route is None:
            self.answer(404, b"no such page\n")
        else:
            route(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
               length: int | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.port = self.server_address[1]
        self.routes: dict[str, Route] = {}
        self.log: list[Seen] = []
        self.connections = 0
        self.kill = 0  # close this many connections on their next request
        self._lock = threading.Lock()
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def new_connection(self) -> int:
        with self._lock:
            self.connections += 1
            return self.connections

    def take_kill(self) -> bool:
        with self._lock:
            if self.kill:
                self.kill -= 1
                return True
            return False

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def srv():  # type: ignore[no-untyped-def]
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def other():  # type: ignore[no-untyped-def]
    s = Server()
    yield s
    s.stop()


def static(body: bytes, status: int = 200, **headers: str) -> Route:
    return lambda h: h.answer(status, body, headers)


def redirect(location: str, status: int = 302) -> Route:
    return lambda h: h.answer(status, b"moved\n", {"Location": location})


def chunked(*pieces: bytes, cut: bool = False) -> Route:
    def route(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for p in pieces:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
        if cut:  # no last chunk: the connection just ends
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.wfile.write(b"0\r\n\r\n")
    return route


def cut_short(body: bytes, announce: int) -> Route:
    def route(h: Handler) -> None:
        h.answer(200, body, length=announce)
        h.wfile.flush()
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)
    return route


def get(t: Transport, url: str, **kw: Any) -> bytes:
    with t.request("GET", url, **kw) as r:
        assert r.status_code == 200, r.status_code
        return r.read()


# -- pooling ---------------------------------------------------------------------------

def test_keep_alive_connection_is_reused(srv: Server) -> None:
    srv.routes["/a"] = static(b"hello")
    with Transport() as t:
        assert [get(t, srv.url("/a")) for _ in range(3)] == [b"hello"] * 3
    assert [s.conn for s in srv.log] == [1, 1, 1]
    assert srv.connections == 1


def test_small_unread_rest_is_drained_and_a_large_one_drops_the_connection(srv: Server) -> None:
    srv.routes["/small"] = static(b"x" * 1000)
    srv.routes["/large"] = static(b"y" * (4 << 20))
    with Transport() as t:
        t.request("GET", srv.url("/small")).close()  # not read: drained, kept
        t.request("GET", srv.url("/small")).close()
        with t.request("GET", srv.url("/large")) as r:
            assert r.read(10) == b"y" * 10  # 4 MiB left: not worth reading, closed
        assert get(t, srv.url("/small")) == b"x" * 1000
    assert [s.conn for s in srv.log] == [1, 1, 1, 2]


def test_head_and_204_free_the_connection(srv: Server) -> None:
    srv.routes["/h"] = static(b"body", ETag='"e"')
    srv.routes["/n"] = lambda h: h.answer(204)
    with Transport() as t:
        with t.request("HEAD", srv.url("/h")) as r:
            assert (r.status_code, r.headers["etag"], r.read()) == (200, '"e"', b"")
        with t.request("DELETE", srv.url("/n")) as r:
            assert r.status_code == 204
        assert get(t, srv.url("/h")) == b"body"
    assert [s.conn for s in srv.log] == [1, 1, 1]
    assert srv.log[1].headers["content-length"] == "0"  # a bodiless DELETE says so


def test_threads_share_a_bounded_pool(srv: Server) -> None:
    srv.routes["/n"] = lambda h: h.answer(200, h.path.encode())
    errors: list[BaseException] = []
    t = Transport(pool_size=4)

    def worker(i: int) -> None:
        try:
            for j in range(25):
                assert get(t, srv.url(f"/n?{i}-{j}")) == f"/n?{i}-{j}".encode()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t.close()
    assert not errors
    assert len(srv.log) == 200
    # never more connections at once than threads, and most requests rode on old ones
    assert srv.connections <= 8 + 200 // 4
    assert len({s.conn for s in srv.log}) == srv.connections


# -- a kept-alive connection closed by the server ---------------------------------------

def test_closed_keep_alive_connection_is_retried_transparently(srv: Server) -> None:
    srv.routes["/a"] = static(b"hello")
    with Transport() as t:
        assert get(t, srv.url("/a")) == b"hello"
        srv.kill = 1  # the next request on the kept-alive connection finds it closed
        assert get(t, srv.url("/a")) == b"hello"
        srv.kill = 1  # the same for a POST: the pooled connection was reused
        with t.request("POST", srv.url("/a"), body=b"data") as r:
            assert r.status_code == 200
    assert [(s.method, s.conn, s.killed) for s in srv.log] == [
        ("GET", 1, False), ("GET", 1, True), ("GET", 2, False),
        ("POST", 2, True), ("POST", 3, False)]
    assert srv.log[-1].body == b"data"


def test_a_seekable_streamed_body_is_sent_again_whole(srv: Server) -> None:
    srv.routes["/up"] = lambda h: h.answer(201)
    with Transport() as t:
        t.request("GET", srv.url("/up")).close()
        srv.kill = 1
        with t.request("PATCH", srv.url("/up"), body=io.BytesIO(b"z" * 3000),
                       headers={"Content-Length": "3000"}) as r:
            assert r.status_code == 201
    assert [(s.killed, len(s.body)) for s in srv.log[1:]] == [(True, 3000), (False, 3000)]


def test_a_fresh_connection_is_not_retried_for_a_post(srv: Server) -> None:
    srv.kill = 1
    with Transport() as t, pytest.raises(ConnectError):
        t.request("POST", srv.url("/a"), body=b"once")
    assert len(srv.log) == 1


def test_an_unrewindable_body_is_not_sent_twice(srv: Server) -> None:
    srv.routes["/up"] = lambda h: h.answer(201)
    with Transport() as t:
        t.request("GET", srv.url("/up")).close()
        srv.kill = 1
        with pytest.raises(ConnectError):
            t.request("PUT", srv.url("/up"), body=iter([b"a" * 10, b"b" * 10]),
                      headers={"Content-Length": "20"})
    assert [s.killed for s in srv.log] == [False, True]


def test_an_idle_connection_the_server_closed_is_replaced(srv: Server) -> None:
    def bye(h: Handler) -> None:
        h.answer(200, b"bye")  # no "Connection: close", but gone
        h.close_connection = True

    srv.routes["/bye"] = bye
    srv.routes["/a"] = static(b"hello")
    with Transport() as t:
        assert get(t, srv.url("/bye")) == b"bye"
        import time

        time.sleep(0.2)
        assert get(t, srv.url("/a")) == b"hello"
    assert [(s.path, s.conn, s.killed) for s in srv.log] == [("/bye", 1, False),
                                                              ("/a", 2, False)]


def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Transport() as t, pytest.raises(ConnectError, match="refused"):
        t.request("GET", f"http://127.0.0.1:{port}/")


def test_a_bad_header_value_is_refused_without_quoting_it(srv: Server) -> None:
    with Transport() as t, pytest.raises(TransportError) as e:
        t.request("GET", srv.url("/"), headers={"Authorization": "Basic sec\nret"})
    assert "sec" not in str(e.value)
    assert srv.log == []


# -- redirects ---------------------------------------------------------------------------

def test_relative_redirects_resolve_against_the_current_url(srv: Server) -> None:
    srv.routes["/dir/start"] = redirect("next/step", 301)
    srv.routes["/dir/next/step"] = redirect("../final?x=1", 307)
    srv.routes["/dir/final"] = static(b"here")
    with Transport() as t, t.request("GET", srv.url("/dir/start")) as r:
        assert r.read() == b"here"
        assert r.url == srv.url("/dir/final?x=1")
    assert [s.path for s in srv.log] == ["/dir/start", "/dir/next/step", "/dir/final?x=1"]


def test_same_origin_redirect_keeps_authorization(srv: Server) -> None:
    srv.routes["/a"] = redirect("/b")
    srv.routes["/b"] = static(b"ok")
    with Transport() as t:
        assert get(t, srv.url("/a"), headers={"Authorization": "Bearer tok"}) == b"ok"
    assert [s.headers.get("authorization") for s in srv.log] == ["Bearer tok"] * 2


@pytest.mark.parametrize("where", ["other host", "other port"])
def test_cross_host_redirect_drops_authorization(srv: Server, other: Server,
                                                 where: str) -> None:
    target = srv.url("/blob", host="localhost") if where == "other host" else other.url("/blob")
    srv.routes["/v2/r/blobs/x"] = redirect(target, 307)
    srv.routes["/blob"] = other.routes["/blob"] = static(b"bytes")
    with Transport() as t:
        assert get(t, srv.url("/v2/r/blobs/x"), headers={"Authorization": "Bearer secret",
                                                          "Range": "bytes=0-"}) == b"bytes"
    seen = srv.log + other.log
    assert [s.path for s in seen] == ["/v2/r/blobs/x", "/blob"]
    assert seen[0].headers["authorization"] == "Bearer secret"
    assert "authorization" not in seen[1].headers
    assert seen[1].headers["range"] == "bytes=0-"  # other headers go along


def test_authorization_stays_dropped_when_the_chain_comes_back(srv: Server,
                                                               other: Server) -> None:
    srv.routes["/a"] = redirect(other.url("/b"))
    other.routes["/b"] = redirect(srv.url("/c"))
    srv.routes["/c"] = static(b"ok")
    with Transport() as t:
        assert get(t, srv.url("/a"), headers={"Authorization": "Basic x"}) == b"ok"
    assert [s.headers.get("authorization") for s in srv.log] == ["Basic x", None]


def test_keeps_auth_rules() -> None:
    assert keeps_auth("https://r.io/a", "https://R.IO:443/b")
    assert keeps_auth("http://r.io/a", "https://r.io/b")  # an upgrade on default ports
    assert not keeps_auth("https://r.io/a", "http://r.io/b")
    assert not keeps_auth("https://r.io/a", "https://r.io:5000/b")
    assert not keeps_auth("https://r.io/a", "https://s3.example/b")


def test_303_and_post_302_become_a_bodiless_get_and_307_keeps_the_body(srv: Server) -> None:
    srv.routes["/see"] = redirect("/done", 303)
    srv.routes["/found"] = redirect("/done", 302)
    srv.routes["/temp"] = redirect("/done", 307)
    srv.routes["/done"] = lambda h: h.answer(200, h.command.encode())
    with Transport() as t:
        for path in ("/see", "/found"):
            with t.request("POST", srv.url(path), body=b"form=1",
                           headers={"Content-Type": "text/plain"}) as r:
                assert r.read() == b"GET"
        with t.request("POST", srv.url("/temp"), body=io.BytesIO(b"stream"),
                       headers={"Content-Length": "6"}) as r:
            assert r.read() == b"POST"
    done = [s for s in srv.log if s.path == "/done"]
    assert [(s.method, s.body, "content-type" in s.headers) for s in done] == [
        ("GET", b"", False), ("GET", b"", False), ("POST", b"stream", False)]


def test_redirect_loop_is_an_error(srv: Server) -> None:
    srv.routes["/loop"] = redirect("/loop", 301)
    with Transport(max_redirects=5) as t, pytest.raises(TooManyRedirects):
        t.request("GET", srv.url("/loop"))
    assert len(srv.log) == 6
    assert {s.conn for s in srv.log} == {1}  # redirect bodies were drained: one connection


def test_redirects_can_be_left_to_the_caller(srv: Server) -> None:
    srv.routes["/a"] = redirect("/b")
    with Transport() as t, t.request("GET", srv.url("/a"), follow_redirects=False) as r:
        assert (r.status_code, r.headers["location"]) == (302, "/b")
    assert len(srv.log) == 1


# -- bodies ------------------------------------------------------------------------------

def test_chunked_response(srv: Server) -> None:
    pieces = [b"a" * 10, b"b" * 70000, b"c"]
    srv.routes["/c"] = chunked(*pieces)
    with Transport() as t:
        assert get(t, srv.url("/c")) == b"".join(pieces)
        with t.request("GET", srv.url("/c")) as r:
            assert list(r.iter_content(50000)) == [b"a" * 10 + b"b" * 49990,
                                                   b"b" * 20010 + b"c"]
        assert get(t, srv.url("/c")) == b"".join(pieces)
    assert {s.conn for s in srv.log} == {1}  # a chunked answer read to its end frees it


@pytest.mark.parametrize("how", ["read all", "read blocks"])
def test_truncated_body_is_detected(srv: Server, how: str) -> None:
    srv.routes["/cut"] = cut_short(b"x" * 500, 1000)
    srv.routes["/a"] = static(b"fine")
    with Transport() as t:
        with t.request("GET", srv.url("/cut")) as r, \
                pytest.raises(ReadError, match="IncompleteRead: body ended 500 bytes short"):
            if how == "read all":
                r.read()
            else:
                while r.read(100):
                    pass
        assert get(t, srv.url("/a")) == b"fine"
    assert [s.conn for s in srv.log] == [1, 2]  # the broken connection was not pooled


def test_truncated_chunked_body_is_detected(srv: Server) -> None:
    srv.routes["/cut"] = chunked(b"x" * 256, cut=True)
    with Transport() as t, t.request("GET", srv.url("/cut")) as r, \
            pytest.raises(ReadError):
        while r.read(BLOCK):
            pass


def test_large_body_is_read_in_big_blocks(srv: Server) -> None:
    data = bytes(range(256)) * ((5 * BLOCK + 10) // 256) + b"0123456789"
    srv.routes["/big"] = static(data)
    with Transport() as t, t.request("GET", srv.url("/big")) as r:
        blocks = list(r)
    assert [len(b) for b in blocks] == [BLOCK] * 5 + [len(data) - 5 * BLOCK]
    assert b"".join(blocks) == data


class CountingReader(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int] = []

    def read(self, n: int | None = -1) -> bytes:
        self.sizes.append(-1 if n is None else n)
        return super().read(n)


def test_upload_body_is_sent_in_big_blocks(srv: Server) -> None:
    srv.routes["/up"] = lambda h: h.answer(202, b"")
    body = CountingReader(b"u" * (3 * BLOCK + 5))
    with Transport() as t, t.request("PATCH", srv.url("/up"), body=body,
                                     headers={"Content-Length": str(3 * BLOCK + 5)}) as r:
        assert r.status_code == 202
    assert set(body.sizes) == {BLOCK}
    assert srv.log[0].body == b"u" * (3 * BLOCK + 5)


def test_gzip_content_encoding_is_undone_only_when_asked(srv: Server) -> None:
    raw = gzip.compress(b"page " * 1000)
    srv.routes["/z"] = static(raw, **{"Content-Encoding": "gzip"})
    with Transport(headers={"Accept-Encoding": "gzip"}) as t:
        assert get(t, srv.url("/z"), decode=True) == b"page " * 1000
        with t.request("GET", srv.url("/z"), decode=True) as r:
            assert r.read(7) == b"page pa" and r.read(3) == b"ge "
        assert get(t, srv.url("/z")) == raw
    assert srv.log[0].headers["accept-encoding"] == "gzip"


def test_decoding_hands_out_bounded_blocks_and_joins_gzip_members(srv: Server) -> None:
    import zlib

    zeros = gzip.compress(bytes(20 * BLOCK))  # 20 KiB that grow to 20 MiB
    srv.routes["/bomb"] = static(zeros, **{"Content-Encoding": "gzip"})
    srv.routes["/two"] = static(gzip.compress(b"one ") + gzip.compress(b"two"),
                                **{"Content-Encoding": "gzip"})
    d = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    srv.routes["/raw"] = static(d.compress(b"raw deflate") + d.flush(),
                                **{"Content-Encoding": "deflate"})
    srv.routes["/zlib"] = static(zlib.compress(b"zlib deflate"),
                                 **{"Content-Encoding": "deflate"})
    with Transport() as t:
        with t.request("GET", srv.url("/bomb"), decode=True) as r:
            sizes = [len(b) for b in r]
        assert max(sizes) <= BLOCK and sum(sizes) == 20 * BLOCK
        assert get(t, srv.url("/two"), decode=True) == b"one two"
        assert get(t, srv.url("/raw"), decode=True) == b"raw deflate"
        assert get(t, srv.url("/zlib"), decode=True) == b"zlib deflate"
        srv.routes["/bad"] = static(b"not gzip at all", **{"Content-Encoding": "gzip"})
        with t.request("GET", srv.url("/bad"), decode=True) as r, \
                pytest.raises(ReadError, match="DecodeError"):
            r.read()


def test_headers_are_case_insensitive_and_repeats_joined(srv: Server) -> None:
    def two(h: Handler) -> None:
        h.send_response(401)
        h.send_header("WWW-Authenticate", 'Bearer realm="a"')
        h.send_header("www-authenticate", 'Basic realm="b"')
        h.send_header("Content-Length", "0")
        h.end_headers()

    srv.routes["/two"] = two
    with Transport() as t, t.request("GET", srv.url("/two")) as r:
        assert r.headers["Www-Authenticate"] == 'Bearer realm="a", Basic realm="b"'
        assert "content-length" in r.headers


# -- TLS ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import regkit

    d = str(tmp_path_factory.mktemp("ca"))
    authority = regkit.CA(d)
    return authority, authority.issue(d)


def test_tls_verifies_and_pools(ca: Any) -> None:
    authority, pair = ca
    s = Server(tls=pair)
    try:
        s.routes["/a"] = static(b"secret")
        ctx = ssl.create_default_context(cafile=authority.cert_file)
        with Transport(ctx) as t:
            assert [get(t, s.url("/a")) for _ in range(3)] == [b"secret"] * 3
        assert s.connections == 1
        with Transport() as t, pytest.raises(TLSError) as e:
            t.request("GET", s.url("/a"))
        assert e.value.verify_failed and "certificate verify failed" in str(e.value)
    finally:
        s.stop()


def test_tls_to_a_plain_server_is_no_verification_failure(srv: Server) -> None:
    with Transport() as t, pytest.raises(ConnectError) as e:
        t.request("GET", srv.url("/").replace("http:", "https:"))
    assert not getattr(e.value, "verify_failed", False)


def test_registry_maps_tls_failures_and_uses_the_ca(ca: Any) -> None:
    authority, pair = ca
    s = Server(tls=pair)
    try:
        s.routes["/v2/"] = static(b"{}")
        with pytest.raises(FetchError, match=r"TLS verification failed \(SSLError: "
                                             "certificate verify failed"):
            Registry(s.addr).check()
        Registry(s.addr, tls=TLSOptions(ca_file=authority.cert_file)).check()
        Registry(s.addr, tls=TLSOptions(insecure_tls=True)).check()
    finally:
        s.stop()


# -- the registry client on the transport --------------------------------------------------

def _registry_routes(srv: Server, storage: Server, blob: bytes) -> Digest:
    digest = Digest.parse("sha256:" + hashlib.sha256(blob).hexdigest())
    want = "Basic " + base64.b64encode(b"alice:wonderland").decode()

    def v2(h: Handler) -> None:
        if h.headers.get("Authorization") != want:
            h.answer(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"who?"}]}',
                     {"WWW-Authenticate": 'Basic realm="reg"'})
            return
        h.answer(307, b"", {"Location": storage.url(f"/store/{digest.encoded}?sig=1")})

    srv.routes[f"/v2/r/blobs/{digest}"] = v2
    storage.routes[f"/store/{digest.encoded}"] = static(blob)
    return digest


def test_registry_blob_redirect_to_storage_drops_credentials(srv: Server,
                                                             other: Server) -> None:
    from libaci.registry.credentials import Credential

    blob = b"layer bytes " * 100000
    digest = _registry_routes(srv, other, blob)
    reg = Registry(srv.addr, credentials=lambda host, repo: Credential("alice", "wonderland"))
    with reg.open_blob("r", Descriptor("application/octet-stream", digest, len(blob))) as f:
        got = b"".join(iter(lambda: f.read(65536), b""))
    assert got == blob
    gets = [s for s in srv.log if "/blobs/" in s.path]
    assert [s.headers.get("authorization", "").split(" ")[0] for s in gets] == ["", "Basic"]
    assert [s.headers.get("authorization") for s in other.log] == [None]
    assert other.log[0].headers["accept-encoding"] == "identity"


def test_registry_blob_resumes_a_truncated_download_with_range(srv: Server) -> None:
    blob = bytes(itertools.islice(itertools.cycle(range(251)), 3 * BLOCK))
    digest = Digest.parse("sha256:" + hashlib.sha256(blob).hexdigest())
    tries = itertools.count()

    def serve(h: Handler) -> None:
        rng = h.headers.get("Range")
        if next(tries) == 0:
            cut_short(blob[:BLOCK + 7], len(blob))(h)
        elif rng:
            start = int(rng.split("=")[1].rstrip("-"))
            h.answer(206, blob[start:], {"Content-Range":
                                         f"bytes {start}-{len(blob) - 1}/{len(blob)}"})
        else:
            h.answer(200, blob)

    srv.routes[f"/v2/r/blobs/{digest}"] = serve
    reg = Registry(srv.addr)
    with reg.open_blob("r", Descriptor("application/octet-stream", digest, len(blob))) as f:
        got = b"".join(iter(lambda: f.read(BLOCK), b""))
    assert got == blob
    assert [s.headers.get("range") for s in srv.log if "/blobs/" in s.path] == [
        None, f"bytes={BLOCK + 7}-"]


def test_registry_redirect_loop_message(srv: Server) -> None:
    srv.routes["/v2/r/manifests/1"] = redirect("/v2/r/manifests/1", 307)
    with pytest.raises(FetchError, match=r"too many redirects \(a loop\?\)"):
        Registry(srv.addr).get_manifest("r", "1")
    # max_redirects 10, as the requests session had
    assert len([s for s in srv.log if "/manifests/" in s.path]) == 11


def test_registry_client_imports_no_requests() -> None:
    import subprocess
    import sys

    code = ("import sys, libaci.registry.client, libaci.http; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('requests', 'urllib3')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_plain_loopback_registry_loads_no_ca_bundle(srv: Server) -> None:
    srv.routes["/v2/"] = static(b"{}")  # no API version header: not known as a registry
    reg = Registry(srv.addr)
    reg.check()
    reg.check()
    assert reg.base.startswith("http://")
    assert reg._ctx is None  # the TLS probe used a bare context, no CA bundle
    # 1: the plain probe (kept); 2: the TLS probe (no request); then 1 again
    assert [s.conn for s in srv.log] == [1, 1, 1]


def test_a_plain_loopback_registry_is_used_without_ssl(srv: Server) -> None:
    """A registry's /v2/ over plain HTTP (with its API version header) settles it: no TLS
    probe, and the import of ssl (and of http.client) is saved.  In a fresh interpreter."""
    import subprocess
    import sys

    srv.routes["/v2/"] = static(b"{}", **{"Docker-Distribution-API-Version": "registry/2.0"})
    srv.routes["/v2/r/manifests/1"] = static(
        b'{"schemaVersion":2,"layers":[]}', **{"Content-Type": "application/json"})
    code = ("import sys; from libaci.registry.client import Registry; "
            f"r = Registry({srv.addr!r}); r.check(); r.get_manifest('r', '1'); "
            "print(r.base, sorted(m for m in ('ssl', 'http.client', 'email') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == [f"http://{srv.addr}", "[]"]
    assert [s.conn for s in srv.log] == [1, 1, 1]  # the probe's connection, kept


def test_bearer_token_from_an_https_realm(ca: Any, srv: Server) -> None:
    authority, pair = ca
    tok = Server(tls=pair)
    try:
        tok.routes["/token"] = static(b'{"token": "t0k"}')

        def v2(h: Handler) -> None:
            if h.headers.get("Authorization") == "Bearer t0k":
                h.answer(200, b"{}")
            else:
                h.answer(401, b"{}", {"WWW-Authenticate":
                                      f'Bearer realm="{tok.url("/token")}",service="reg"'})

        srv.routes["/v2/"] = v2
        reg = Registry(srv.addr, tls=TLSOptions(ca_file=authority.cert_file))
        done: list[bool] = []
        th = threading.Thread(target=lambda: done.append(reg.check() is None), daemon=True)
        th.start()
        th.join(20)  # the TLS context is made while the auth lock is held: no deadlock
        assert done == [True]
        assert tok.log[0].path == "/token?service=reg"
    finally:
        tok.stop()


def test_upload_body_is_sent_again_whole_after_a_401(srv: Server) -> None:
    blob = b"q" * (BLOCK + 100)
    digest = Digest.parse("sha256:" + hashlib.sha256(blob).hexdigest())
    tokens = itertools.count(1)
    srv.routes["/token"] = lambda h: h.answer(200, f'{{"token": "t{next(tokens)}"}}'.encode())
    challenge = {"WWW-Authenticate": f'Bearer realm="{srv.url("/token")}",service="reg"'}
    patched: list[bytes] = []

    def uploads(h: Handler) -> None:
        auth = h.headers.get("Authorization", "")
        if not auth:
            h.answer(401, b"{}", challenge)
        elif h.command == "POST":
            h.answer(202, b"", {"Location": "/v2/r/blobs/uploads/u1"})
        elif h.command == "PATCH":
            patched.append(srv.log[-1].body)
            if auth == "Bearer t1":  # expired meanwhile: a new token, and the body again
                h.answer(401, b"{}", challenge)
            else:
                h.answer(202, b"", {"Location": "/v2/r/blobs/uploads/u1"})
        else:
            h.answer(201)

    srv.routes["/v2/r/blobs/uploads/"] = srv.routes["/v2/r/blobs/uploads/u1"] = uploads
    Registry(srv.addr).upload("r", io.BytesIO(blob), digest, len(blob))
    assert patched == [blob, blob]
    assert [s.method for s in srv.log if s.path.startswith("/v2/r/")] == [
        "POST", "POST", "PATCH", "PATCH", "PUT"]
