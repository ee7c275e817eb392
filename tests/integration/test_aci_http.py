"""podkit-fetch of ACIs over HTTP(S) and by appc discovery, against real servers.

Python's http.server on loopback serves ACIs written by tests/imagekit.py, over
HTTPS with a throw-away CA (tests/regkit.py) or plain HTTP, with ETag,
Last-Modified and Cache-Control headers, conditional answers, errors and
redirects; it counts requests, which is how the tests prove that the cache
saves them.  appc names have no port, so discovery sites listen on port 443
(and 80) of an address of their own in 127.0.0.0/8, as the name says.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import random
import re
import ssl
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from helpers import store_state

# -- the server -----------------------------------------------------------------------

@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    cache_control: str | None = None
    location: str | None = None  # a redirect
    fail: list[int] = field(default_factory=list)  # statuses to answer first, one each
    short_by: int = 0  # announce this many bytes more than sent, then hang up
    basic: str | None = None  # "user:password" required
    ranges: bool = True  # answer "Range: bytes=N-" (with If-Range) with 206
    cuts: list[int] = field(default_factory=list)  # cut the next answers after n bytes
    hold: threading.Event | None = None  # ranged requests wait until it is set ...
    drop_held: bool = False  # ... and are then dropped unanswered when this is true


@dataclass
class Hit:
    path: str
    query: str
    status: int
    headers: dict[str, str]


class Site:
    """An HTTP(S) server on loopback serving ``routes`` and logging every request."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 tls: tuple[str, str] | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[Hit] = []
        self.scheme = "https" if tls else "http"
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site._serve(self)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.host = host
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        default = 443 if self.scheme == "https" else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}{path}"

    def add(self, path: str, body: bytes = b"", **kw: object) -> Route:
        self.routes[path] = Route(body, **kw)  # type: ignore[arg-type]
        return self.routes[path]

    def count(self, path: str, status: int | None = None) -> int:
        return sum(1 for h in self.hits
                   if h.path == path and (status is None or h.status == status))

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        route = self.routes.get(parts.path)
        headers = {k.lower(): v for k, v in h.headers.items()}

        def send(status: int, body: bytes = b"", extra: dict[str, str] | None = None,
                 length: int | None = None) -> None:
            self.hits.append(Hit(parts.path, parts.query, status, headers))
            h.send_response(status)
            for k, v in (extra or {}).items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(body) if length is None else length))
            h.end_headers()
            h.wfile.write(body)

        if route is None:
            send(404, b"no such page\n")
            return
        if route.fail:
            code = route.fail.pop(0)
            send(code, b"fault\n", {"Retry-After": "0"})
            return
        if route.basic is not None:
            want = "Basic " + base64.b64encode(route.basic.encode()).decode()
            if headers.get("authorization") != want:
                send(401, b"who are you\n", {"WWW-Authenticate": 'Basic realm="acis"'})
                return
        if route.location is not None:
            send(route.status, b"", {"Location": route.location})
            return
        meta = dict(route.headers)
        if route.etag:
            meta["ETag"] = route.etag
        if route.last_modified:
            meta["Last-Modified"] = route.last_modified
        if route.cache_control:
            meta["Cache-Control"] = route.cache_control
        if (route.etag and headers.get("if-none-match") == route.etag) or (
                not route.etag and route.last_modified
                and headers.get("if-modified-since") == route.last_modified):
            send(304, b"", meta, length=0)
            return
        if route.short_by:
            send(route.status, route.body[:len(route.body) // 2], meta,
                 length=len(route.body) + route.short_by)
            h.close_connection = True
            return
        status, body = route.status, route.body
        m = re.fullmatch(r"bytes=(\d+)-", headers.get("range", ""))
        if m and route.ranges and status == 200:
            if route.hold is not None:
                route.hold.wait(60)
                if route.drop_held:  # its client is gone: no answer, no hit
                    h.close_connection = True
                    return
            start = int(m.group(1))
            if_range = headers.get("if-range")
            if start < len(body) and if_range in (None, route.etag, route.last_modified):
                meta["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
                status, body = 206, body[start:]
        if route.cuts:  # the whole length announced, part of it sent, then hang up
            send(status, body[:route.cuts.pop(0)], meta, length=len(body))
            h.wfile.flush()
            h.close_connection = True
            return
        send(status, body, meta)


# -- images ---------------------------------------------------------------------------

def image_id(tar: bytes) -> str:
    return "sha512-" + hashlib.sha512(tar).hexdigest()


def make_aci(work: str, name: str, version: str, labels: dict[str, str] | None = None) -> bytes:
    """An uncompressed ACI from imagekit.build_aci, with other labels if asked."""
    import imagekit

    path = os.path.join(work, f"{name.replace('/', '_')}-{version}-{os.getpid()}.aci")
    imagekit.build_aci(path, name, version)
    with open(path, "rb") as f:
        raw = f.read()
    if not labels:
        return raw
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(raw)) as src, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for member in src:
            data = src.extractfile(member) if member.isreg() else None
            if member.name == "manifest":
                assert data is not None
                doc = json.loads(data.read())
                have = {x["name"]: x["value"] for x in doc["labels"]}
                have.update(labels)
                doc["labels"] = [{"name": k, "value": v} for k, v in have.items()]
                blob = json.dumps(doc).encode()
                member.size = len(blob)
                data = io.BytesIO(blob)
            dst.addfile(member, data)
    return out.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@pytest.fixture(scope="session")
def acis(tmp_path_factory) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    work = str(tmp_path_factory.mktemp("acis"))
    v1 = make_aci(work, "example.com/app", "v1")
    v2 = make_aci(work, "example.com/app", "v2")
    corrupt = bytearray(gz(v1))
    middle = len(corrupt) // 2
    corrupt[middle:middle + 64] = bytes(64)  # zeros inside the deflate stream
    return {"v1": v1, "v1.gz": gz(v1), "v2.gz": gz(v2), "corrupt.gz": bytes(corrupt),
            "work": work.encode()}


@pytest.fixture(scope="session")
def ca(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A throw-away CA: ``.cert_dir`` holds only its ca.crt (what --cert-dir takes)."""
    import regkit

    d = tmp_path_factory.mktemp("ca")
    authority = regkit.CA(str(d / "ca"))
    authority.cert_dir = str(d / "ca")
    os.unlink(authority.key_file)  # only ca.crt stays in the --cert-dir directory
    authority.certs = str(d / "certs")
    os.mkdir(authority.certs)
    return authority


def _serve(host: str, port: int, ca=None) -> Site:  # type: ignore[no-untyped-def]
    tls = ca.issue(ca.certs, stem=f"{host}-{port}", hosts=(host,)) if ca else None
    return Site(host, port, tls)


@pytest.fixture
def site(ca) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    """HTTPS on 127.0.0.1:<free port>, certificate from ``ca``."""
    s = _serve("127.0.0.1", 0, ca)
    yield s
    s.stop()


@pytest.fixture
def plain_site() -> Iterator[Site]:
    s = Site("127.0.0.1", 0)
    yield s
    s.stop()


def _own_address(port: int, ca=None) -> Site:  # type: ignore[no-untyped-def]
    """A site on ``port`` of a loopback address nobody else uses (appc names have no port)."""
    last: OSError | None = None
    for _ in range(20):
        host = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(2, 254)}"
        try:
            return _serve(host, port, ca)
        except OSError as e:  # in use by a parallel run
            last = e
    raise RuntimeError(f"no free loopback address for port {port}: {last}")


@pytest.fixture
def disco(ca) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    """HTTPS on port 443 of its own loopback address: ``disco.host`` starts appc names."""
    s = _own_address(443, ca)
    yield s
    s.stop()


def cert(ca) -> list[str]:  # type: ignore[no-untyped-def]
    return ["--cert-dir", ca.cert_dir]


def fetch(podkit, *args: str) -> str:  # type: ignore[no-untyped-def]
    out = podkit.ok("fetch", *args).split()
    assert len(out) == 1, out
    return out[0]


def index_entry(store: str, image: str) -> dict:
    with open(os.path.join(store, "index.json")) as f:
        doc = json.load(f)
    hits = [m for m in doc["manifests"] if m["digest"] == "sha512:" + image[7:]]
    assert hits, doc
    return hits[0]


def assert_no_images(store: str) -> None:
    """Nothing published: no image, no blob, no layer, no cache entry."""
    with open(os.path.join(store, "index.json")) as f:
        assert json.load(f)["manifests"] == []
    state = store_state(store)
    assert [n for n in state if n.startswith(("blobs/", "layers/")) and n.count("/") > 1] == []
    assert "cache/aci-remotes.json" not in state


def remotes(store: str) -> dict:
    with open(os.path.join(store, "cache", "aci-remotes.json")) as f:
        return json.load(f)


# -- ACIs by URL ----------------------------------------------------------------------

def test_https_aci_streams_in_and_max_age_saves_the_request(podkit, store, site, ca, acis):
    site.add("/app-v1.aci", acis["v1.gz"], etag='"v1"', cache_control="public, max-age=3600")
    url = site.url("/app-v1.aci")
    got = fetch(podkit, url, *cert(ca))
    assert got == image_id(acis["v1"])  # the sha512 of the uncompressed tar
    entry = index_entry(store, got)
    assert entry["annotations"]["io.podkit.image.source"] == url
    assert entry["annotations"]["io.podkit.aci.signature-url"] == url + ".asc"
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "example.com/app:v1"
    cached = remotes(store)[url]
    assert cached["imageID"] == got and cached["etag"] == '"v1"' and cached["maxAge"] == 3600
    assert cached["signatureURL"] == site.url("/app-v1.aci.asc")
    # max-age has not run out: the store answers, the server hears nothing
    assert fetch(podkit, url, *cert(ca)) == got
    assert site.count("/app-v1.aci") == 1
    assert podkit.ok("inspect", "example.com/app:v1")


def test_etag_revalidation_304_and_a_changed_image(podkit, store, site, ca, acis):
    route = site.add("/app.aci", acis["v1.gz"], etag='"one"', cache_control="no-cache")
    url = site.url("/app.aci")
    first = fetch(podkit, url, *cert(ca))
    assert fetch(podkit, url, *cert(ca)) == first
    assert site.count("/app.aci", 200) == 1 and site.count("/app.aci", 304) == 1
    assert site.hits[-1].headers["if-none-match"] == '"one"'
    before = store_state(store)
    # the server's image changes: a new ETag, a new download, a new image
    route.body, route.etag = acis["v2.gz"], '"two"'
    second = fetch(podkit, url, *cert(ca))
    assert second != first and site.count("/app.aci", 200) == 2
    assert index_entry(store, second)["annotations"][
        "org.opencontainers.image.ref.name"] == "example.com/app:v2"
    assert remotes(store)[url]["imageID"] == second
    assert store_state(store) != before


def test_last_modified_revalidation(podkit, site, ca, acis):
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"
    site.add("/lm.aci", acis["v1.gz"], last_modified=stamp)
    url = site.url("/lm.aci")
    first = fetch(podkit, url, *cert(ca))
    assert "if-modified-since" not in site.hits[-1].headers
    assert fetch(podkit, url, *cert(ca)) == first
    assert site.hits[-1].headers["if-modified-since"] == stamp
    assert site.hits[-1].status == 304


def test_image_removed_from_the_store_is_fetched_again(podkit, site, ca, acis):
    site.add("/app.aci", acis["v1.gz"], etag='"x"', cache_control="max-age=3600")
    url = site.url("/app.aci")
    got = fetch(podkit, url, *cert(ca))
    podkit.ok("rmi", got)
    # the cache entry is there, the image is not: no 304 trick, a full download
    assert fetch(podkit, url, *cert(ca)) == got
    assert site.count("/app.aci", 200) == 2
    assert "if-none-match" not in site.hits[-1].headers


def test_pull_policies(podkit, store, site, ca, acis):
    site.add("/app.aci", acis["v1.gz"], etag='"x"')  # no max-age: update always asks
    url = site.url("/app.aci")
    podkit.fail("fetch", url, "--pull-policy", "never", *cert(ca), status=4,
                match="--pull-policy=never")
    assert site.hits == [] and store_state(store) == {}
    got = fetch(podkit, url, "--pull-policy", "new", *cert(ca))
    for policy in ("new", "never"):
        assert fetch(podkit, url, "--pull-policy", policy, *cert(ca)) == got
    assert len(site.hits) == 1
    assert fetch(podkit, url, *cert(ca)) == got  # update: asks (304)
    assert [h.status for h in site.hits] == [200, 304]
    # --name names the reused image too
    assert fetch(podkit, url, "--pull-policy", "new", "--name", "example.com/mine:2",
                 *cert(ca)) == got
    assert index_entry(store, got) and podkit.ok("inspect", "example.com/mine:2")
    assert len(site.hits) == 2


def test_no_store_keeps_no_validators(podkit, store, site, ca, acis):
    site.add("/app.aci", acis["v1.gz"], etag='"x"', cache_control="no-store, max-age=600")
    url = site.url("/app.aci")
    got = fetch(podkit, url, *cert(ca))
    assert remotes(store)[url]["etag"] is None and remotes(store)[url]["maxAge"] == 0
    assert fetch(podkit, url, *cert(ca)) == got
    assert [h.status for h in site.hits] == [200, 200]  # nothing to revalidate with


def test_plain_http_needs_the_insecure_option(podkit, store, plain_site, acis):
    plain_site.add("/app.aci", acis["v1.gz"])
    url = plain_site.url("/app.aci")  # loopback: still refused, as rkt refuses it
    podkit.fail("fetch", url, status=2, match="--insecure-options=http")
    assert plain_site.hits == [] and store_state(store) == {}
    assert fetch(podkit, url, "--insecure-options=http") == image_id(acis["v1"])


def test_tls_is_verified(podkit, store, site, ca, acis):
    site.add("/app.aci", acis["v1.gz"])
    url = site.url("/app.aci")
    podkit.fail("fetch", url, status=1, match="TLS verification failed")
    assert store_state(store) == {}
    assert fetch(podkit, url, "--insecure-options=tls") == image_id(acis["v1"])


@pytest.mark.parametrize(("route", "status", "match"), [
    ({"status": 404}, 4, "not found (HTTP 404)"),
    ({"status": 403}, 6, "access denied (HTTP 403)"),
    ({"status": 401}, 6, "authentication required (HTTP 401"),
    ({"fail": [500] * 5}, 1, "HTTP 500"),
    ({"corrupt": True}, 1, "ACI: "),
    ({"short_by": 1000}, 1, "download broke off"),
    ({"not_an_aci": True}, 1, "ACI: not a valid tar archive"),
])
def test_failures_leave_the_store_unchanged(podkit, store, site, ca, acis, route, status,
                                            match):
    route = dict(route)
    site.add("/seed.aci", acis["v2.gz"])
    fetch(podkit, site.url("/seed.aci"), *cert(ca))
    before = store_state(store)
    body = acis["corrupt.gz"] if route.pop("corrupt", False) else acis["v1.gz"]
    if route.pop("not_an_aci", False):
        body = b"<html>hello</html>" * 100
    site.add("/bad.aci", body, **route)
    r = podkit.fail("fetch", site.url("/bad.aci"), *cert(ca), status=status, match=match)
    assert site.url("/bad.aci") in r.stderr
    assert store_state(store) == before
    assert os.listdir(os.path.join(store, "tmp")) in ([], ["verified"])  # nothing kept


def test_5xx_is_retried(podkit, site, ca, acis):
    site.add("/app.aci", acis["v1.gz"], fail=[503, 502])
    assert fetch(podkit, site.url("/app.aci"), *cert(ca)) == image_id(acis["v1"])
    assert [h.status for h in site.hits] == [503, 502, 200]


# -- interrupted downloads: resumed with Range ------------------------------------------

def partial_of(store: str, url: str) -> str:
    return os.path.join(store, "tmp", "partial",
                        "url-" + hashlib.sha256(url.encode()).hexdigest())


def test_a_broken_download_resumes_with_range(podkit, store, site, ca, acis):
    body = acis["v1.gz"]
    half = len(body) // 2
    site.add("/app.aci", body, etag='"v1"', cuts=[half])
    assert fetch(podkit, site.url("/app.aci"), *cert(ca)) == image_id(acis["v1"])
    assert [(h.status, h.headers.get("range"), h.headers.get("if-range"))
            for h in site.hits] == [(200, None, None), (206, f"bytes={half}-", '"v1"')]
    assert not os.path.exists(os.path.join(store, "tmp", "partial"))


def test_a_server_that_ignores_range_has_the_read_part_skipped(podkit, site, ca, acis):
    site.add("/app.aci", acis["v1.gz"], last_modified="Mon, 01 Jan 2024 00:00:00 GMT",
             ranges=False, cuts=[len(acis["v1.gz"]) // 3])
    assert fetch(podkit, site.url("/app.aci"), *cert(ca)) == image_id(acis["v1"])
    assert [(h.status, bool(h.headers.get("range"))) for h in site.hits] == [
        (200, False), (200, True)]


def test_a_download_without_validator_is_not_resumed(podkit, store, site, ca, acis):
    site.add("/app.aci", acis["v1.gz"], cuts=[1000])  # no ETag, no Last-Modified
    podkit.fail("fetch", site.url("/app.aci"), *cert(ca), status=1,
                match="download broke off after 1000 bytes")
    assert [h.headers.get("range") for h in site.hits] == [None]
    assert not os.path.exists(os.path.join(store, "tmp", "partial"))  # nothing to resume


def _kill_half_way(podkit, site, route, url: str, ca) -> str:  # type: ignore[no-untyped-def]
    """podkit-fetch ``url`` and SIGKILL it while it waits for the rest of a body that
    broke off half-way; returns the kept file."""
    import signal
    import subprocess
    import time

    from helpers import TOOLS

    half = len(route.body) // 2
    route.cuts = [half]
    route.hold = threading.Event()  # the resumed request waits
    part = partial_of(podkit.store, url)
    p = subprocess.Popen([os.path.join(TOOLS, "podkit-fetch"), "--store", podkit.store, url,
                          *cert(ca)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (os.path.exists(part) and os.path.getsize(part) == half):
            assert p.poll() is None, "the fetch ended before it was killed"
            assert time.monotonic() < deadline, "the download never got half-way"
            time.sleep(0.05)
        time.sleep(0.2)
        assert p.poll() is None
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    hold, route.hold, route.drop_held = route.hold, None, True
    hold.set()  # the killed fetch's request goes away unanswered
    site.hits.clear()
    return part


def test_a_killed_download_resumes_in_the_next_fetch(podkit, store, site, ca, acis):
    route = site.add("/app.aci", acis["v1.gz"], etag='"v1"')
    url = site.url("/app.aci")
    part = _kill_half_way(podkit, site, route, url, ca)
    half = len(acis["v1.gz"]) // 2
    assert os.path.getsize(part) == half
    assert fetch(podkit, url, *cert(ca)) == image_id(acis["v1"])
    assert [(h.status, h.headers.get("range"), h.headers.get("if-range"))
            for h in site.hits] == [(206, f"bytes={half}-", '"v1"')]
    assert not os.path.exists(part) and not os.path.exists(part + ".json")
    podkit.ok("render", image_id(acis["v1"]), str(store) + "-rootfs")


def test_a_kept_download_of_an_image_that_changed_starts_over(podkit, site, ca, acis):
    route = site.add("/app.aci", acis["v1.gz"], etag='"v1"')
    url = site.url("/app.aci")
    part = _kill_half_way(podkit, site, route, url, ca)
    route.body, route.etag = acis["v2.gz"], '"v2"'  # a new version meanwhile
    got = fetch(podkit, url, *cert(ca))
    assert got == image_id(make_aci_v2(acis))
    assert [(h.status, h.headers.get("if-range")) for h in site.hits] == [(200, '"v1"')]
    assert not os.path.exists(part)


def make_aci_v2(acis: dict[str, bytes]) -> bytes:
    return gzip.decompress(acis["v2.gz"])


def test_gc_removes_a_kept_download(podkit, site, ca, acis):
    route = site.add("/app.aci", acis["v1.gz"], etag='"v1"')
    url = site.url("/app.aci")
    part = _kill_half_way(podkit, site, route, url, ca)
    podkit.ok("gc")
    assert not os.path.exists(part)
    assert fetch(podkit, url, *cert(ca)) == image_id(acis["v1"])
    assert [h.headers.get("range") for h in site.hits] == [None]


def test_redirects_are_followed_and_limited(podkit, store, site, ca, acis):
    site.add("/real/app.aci", acis["v1.gz"], etag='"r"')
    site.add("/app.aci", location="/real/app.aci", status=302)
    url = site.url("/app.aci")
    got = fetch(podkit, url, *cert(ca))
    assert got == image_id(acis["v1"])
    assert remotes(store)[url]["etag"] == '"r"'  # cached under the URL asked for
    site.add("/loop.aci", location="/loop.aci", status=301)
    podkit.fail("fetch", site.url("/loop.aci"), *cert(ca), status=1,
                match="too many redirects")
    assert site.count("/loop.aci") == 11


def test_redirect_to_plain_http_is_refused(podkit, site, plain_site, ca, acis):
    plain_site.add("/app.aci", acis["v1.gz"])
    site.add("/app.aci", location=plain_site.url("/app.aci"), status=302)
    podkit.fail("fetch", site.url("/app.aci"), *cert(ca), status=2,
                match="--insecure-options=http")
    assert plain_site.hits == []


def test_basic_auth_from_the_auth_file(podkit, site, ca, acis, tmp_path):
    site.add("/private.aci", acis["v1.gz"], basic="alice:wonderland")
    url = site.url("/private.aci")
    podkit.fail("fetch", url, *cert(ca), "--authfile", str(tmp_path / "none.json"),
                status=6, match="HTTP 401")
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"auths": {f"127.0.0.1:{site.port}": {
        "auth": base64.b64encode(b"alice:wonderland").decode()}}}))
    r = podkit("fetch", url, *cert(ca), "--authfile", str(auth))
    assert r.returncode == 0, r.stderr
    assert "wonderland" not in r.stderr


# -- appc discovery ------------------------------------------------------------------

def discovery_page(prefix: str, template: str, keys: str = "") -> bytes:
    tags = f'<meta name="ac-discovery" content="{prefix} {template}">'
    if keys:
        tags += f'\n<meta name="ac-discovery-pubkeys" content="{prefix} {keys}">'
    return f"<!DOCTYPE html>\n<html><head>{tags}</head><body>hi</body></html>\n".encode()


def host_labels() -> dict[str, str]:
    from libaci.reference import default_labels

    u = os.uname()
    return default_labels(u.sysname, u.machine)


@pytest.fixture
def app_site(disco, acis):  # type: ignore[no-untyped-def]
    """``disco`` serving ``HOST/app`` v1 for this machine's os/arch, by discovery."""
    name = f"{disco.host}/app"
    work = acis["work"].decode()
    labels = host_labels()
    tar = make_aci(work, name, "v1", labels)
    disco.add("/app", discovery_page(
        name, f"https://{disco.host}/images/{{name}}-{{version}}-{{os}}-{{arch}}.{{ext}}",
        keys=f"https://{disco.host}/pubkeys.gpg"))
    path = f"/images/{name}-v1-{labels['os']}-{labels['arch']}.aci"
    disco.add(path, gz(tar), etag='"d1"')
    disco.name, disco.tar, disco.aci_path = name, tar, path  # type: ignore[attr-defined]
    return disco


def test_discovery_fetches_the_named_image(podkit, store, app_site, ca):
    d = app_site
    got = fetch(podkit, f"appc:{d.name}:v1", *cert(ca))  # os/arch: this machine's
    assert got == image_id(d.tar)
    assert [(h.path, h.query) for h in d.hits] == [("/app", "ac-discovery=1"),
                                                    (d.aci_path, "")]
    entry = index_entry(store, got)
    assert entry["annotations"]["io.podkit.aci.signature-url"] == \
        f"https://{d.host}{d.aci_path}.asc"
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == f"{d.name}:v1"
    # again: discovery is asked again (update), the ACI answers 304
    assert fetch(podkit, f"appc:{d.name}:v1", *cert(ca)) == got
    assert d.count(d.aci_path, 200) == 1 and d.count(d.aci_path, 304) == 1
    # a name with labels needs no appc: prefix; never/new use the store only
    labels = host_labels()
    bare = f"{d.name}:v1,os={labels['os']},arch={labels['arch']}"
    hits = len(d.hits)
    for policy in ("never", "new"):
        assert fetch(podkit, bare, "--pull-policy", policy, *cert(ca)) == got
    assert len(d.hits) == hits


def test_discovery_walks_up_to_the_parent(podkit, disco, ca, acis):
    name = f"{disco.host}/team/app"
    tar = make_aci(acis["work"].decode(), name, "v1")
    disco.add("/", discovery_page(disco.host, f"https://{disco.host}/{{name}}/{{version}}/"
                                              "{os}-{arch}.{ext}"))
    disco.add(f"/{name}/v1/linux-amd64.aci", tar)
    got = fetch(podkit, f"appc:{name}:v1,os=linux,arch=amd64", *cert(ca))
    assert got == image_id(tar)
    assert [(h.path, h.status) for h in disco.hits] == [
        ("/team/app", 404), ("/team", 404), ("/", 200), (f"/{name}/v1/linux-amd64.aci", 200)]


def test_discovery_without_version_uses_latest_templates(podkit, disco, ca, acis):
    name = f"{disco.host}/app"
    tar = make_aci(acis["work"].decode(), name, "v7")
    # only a versioned template: the version is tried as "latest" (rkt's rule)
    disco.add("/app", discovery_page(name, f"https://{disco.host}/{{name}}-{{version}}"
                                           "-{os}-{arch}.{ext}"))
    disco.add(f"/{name}-latest-linux-amd64.aci", tar)
    got = fetch(podkit, f"{name},os=linux,arch=amd64", *cert(ca))
    assert got == image_id(tar)


@pytest.mark.parametrize(("served", "asked", "match"), [
    ("example.com/other", "v1", "the image is named 'example.com/other', not "),
    (None, "v2", "label version=v2 was asked for, the image has version=v1"),
])
def test_discovery_refuses_an_image_that_does_not_match(podkit, store, disco, ca, acis,
                                                        served, asked, match):
    name = f"{disco.host}/app"
    tar = make_aci(acis["work"].decode(), served or name, "v1")
    disco.add("/app", discovery_page(name, f"https://{disco.host}/a-{{version}}.{{ext}}"))
    disco.add(f"/a-{asked}.aci", gz(tar))
    podkit.fail("fetch", f"appc:{name}:{asked},os=linux,arch=amd64", *cert(ca), status=1,
                match=match)
    assert_no_images(store)


def test_discovery_failures(podkit, store, disco, ca):
    name = f"{disco.host}/nothing/here"
    podkit.fail("fetch", f"appc:{name}:v1", *cert(ca), status=4,
                match="appc discovery found no image")
    assert [h.path for h in disco.hits] == ["/nothing/here", "/nothing", "/"]
    # a page without a usable template is no better than none
    disco.add("/", discovery_page(disco.host, "https://x/{name}-{flavour}.{ext}"))
    podkit.fail("fetch", f"appc:{name}:v1", *cert(ca), status=4,
                match="no ac-discovery template")
    podkit.fail("fetch", f"appc:{name}:v1", "--pull-policy", "never", status=4,
                match="--pull-policy=never")
    podkit.fail("fetch", "appc:Bad_Name", status=2, match="invalid appc name")
    assert store_state(store) == {}


def test_discovery_over_plain_http_only_with_the_option(podkit, store, acis):
    http_site = _own_address(80)  # nothing on 443 of that address
    try:
        name = f"{http_site.host}/app"
        tar = make_aci(acis["work"].decode(), name, "v1")
        http_site.add("/app", discovery_page(name, f"http://{http_site.host}/{{version}}.{{ext}}"))
        http_site.add("/v1.aci", tar)
        podkit.fail("fetch", f"appc:{name}:v1,os=linux,arch=amd64", status=1,
                    match="appc discovery found no image")
        assert http_site.hits == [] and store_state(store) == {}
        got = fetch(podkit, f"appc:{name}:v1,os=linux,arch=amd64", "--insecure-options=http")
        assert got == image_id(tar)
    finally:
        http_site.stop()


def test_public_keys_have_a_walk_of_their_own(disco, ca):
    """Keys may sit on another level than the images (appc's DiscoverPublicKeys)."""
    from libaci.errors import NotFoundError
    from libaci.http import HttpClient
    from libaci.reference import parse_appc_name
    from libaci.registry.client import TLSOptions
    from libaci.sources.appcname import discover, discover_keys

    name = f"{disco.host}/team/app"
    disco.add("/team/app", discovery_page(name, f"https://{disco.host}/{{name}}.{{ext}}"))
    disco.add("/", discovery_page(f"{disco.host}/team", "https://x/{name}-{flavour}.{ext}",
                                  keys=f"https://{disco.host}/keys.gpg"))
    app = parse_appc_name(name)
    with HttpClient(TLSOptions(cert_dir=ca.cert_dir)) as client:
        page, endpoints = discover(client, app)
        assert page == f"https://{name}?ac-discovery=1"
        assert [e.aci for e in endpoints] == [f"https://{disco.host}/{name}.aci"]
        page, keys = discover_keys(client, app)
        assert page == f"https://{disco.host}?ac-discovery=1"
        assert keys == [f"https://{disco.host}/keys.gpg"]
        with pytest.raises(NotFoundError, match="found no public keys"):
            discover_keys(client, parse_appc_name(f"{disco.host}/other"))  # prefix
