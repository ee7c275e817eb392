"""Resumable blob downloads: Staging.download over Registry.open_blob, against a
simulated registry (the http.server of test_transport.py) that honours Range,
ignores it, refuses it, or answers with the wrong range.

A download kept in ``tmp/partial`` by an earlier (killed) process is hashed
again and continued with ``Range: bytes=N-``; a registry that sends the whole
blob instead makes the download start over; kept bytes that turn out wrong
are fetched once more from byte 0; two downloads of one blob never write the
same file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator

import pytest

from libaci.digest import Digest
from libaci.errors import DigestMismatchError, FetchError
from libaci.oci import Descriptor
from libaci.registry.client import Registry
from libaci.sources.aciurl import _Kept
from libaci.store import Staging, Store
from unit.test_transport import Handler, Server, cut_short

BLOB = bytes(range(256)) * (3 * 4096 + 17)  # ~3 MiB: more than one 1 MiB block
DIGEST = Digest("sha256", hashlib.sha256(BLOB).hexdigest())
DESC = Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", DIGEST, len(BLOB))
PATH = f"/v2/r/blobs/{DIGEST}"


def ranged(h: Handler) -> None:
    """A registry as distribution serves blobs: 206 for ``Range: bytes=N-``."""
    m = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range", ""))
    if m is None:
        h.answer(200, BLOB)
        return
    start = int(m.group(1))
    if start >= len(BLOB):
        h.answer(416, b"", {"Content-Range": f"bytes */{len(BLOB)}"})
        return
    h.answer(206, BLOB[start:], {"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"})


@pytest.fixture
def srv() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def staging(tmp_path) -> Iterator[Staging]:  # type: ignore[no-untyped-def]
    store = Store(str(tmp_path / "store"))
    with store.writing() as st:
        yield st


def keep(staging: Staging, data: bytes) -> str:
    """What a killed download left: ``data`` in the blob's partial file."""
    path = staging.partial_path(DIGEST)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def download(staging: Staging, srv: Server) -> list[int]:
    reg = Registry(srv.addr)
    seen: list[int] = []
    staging.download(DIGEST, len(BLOB), lambda off: reg.open_blob("r", DESC, off),
                     progress=seen.append)
    return seen


def fetched(staging: Staging) -> bytes:
    with open(staging.blob_path(DIGEST), "rb") as f:
        return f.read()


def ranges(srv: Server) -> list[str | None]:
    return [s.headers.get("range") for s in srv.log if s.path == PATH]


def test_a_kept_download_is_rehashed_and_continued_with_range(staging, srv):
    srv.routes[PATH] = ranged
    part = keep(staging, BLOB[:1234567])
    progress = download(staging, srv)
    assert ranges(srv) == ["bytes=1234567-"]
    assert progress[0] == 1234567 and progress[-1] == len(BLOB)  # counted from the kept part
    assert fetched(staging) == BLOB
    assert staging.blob_path(DIGEST) == staging.store.verified_path(DIGEST)
    assert not os.path.exists(part)
    assert not os.path.exists(os.path.dirname(part))  # tmp/partial goes with its last file


def test_a_registry_that_ignores_range_makes_it_start_over(staging, srv):
    srv.routes[PATH] = lambda h: h.answer(200, BLOB)
    keep(staging, BLOB[:1000])
    download(staging, srv)
    assert ranges(srv) == ["bytes=1000-"]  # asked once, got the whole blob: no second request
    assert fetched(staging) == BLOB


def test_a_refused_range_416_makes_it_start_over(staging, srv):
    def refuse(h: Handler) -> None:
        if h.headers.get("Range"):
            h.answer(416, b"")
        else:
            h.answer(200, BLOB)

    srv.routes[PATH] = refuse
    keep(staging, BLOB[:1000])
    download(staging, srv)
    assert ranges(srv) == ["bytes=1000-", None]
    assert fetched(staging) == BLOB


def test_kept_bytes_that_are_wrong_are_fetched_again_from_zero(staging, srv):
    srv.routes[PATH] = ranged
    keep(staging, b"\0" * 5000)  # e.g. what a power cut left of unwritten pages
    download(staging, srv)
    assert ranges(srv) == ["bytes=5000-", None]
    assert fetched(staging) == BLOB


def test_a_kept_file_longer_than_the_blob_is_dropped(staging, srv):
    srv.routes[PATH] = ranged
    keep(staging, BLOB + b"more")
    download(staging, srv)
    assert ranges(srv) == [None]
    assert fetched(staging) == BLOB


def test_a_complete_kept_download_needs_no_request(staging, srv):
    srv.routes[PATH] = ranged
    keep(staging, BLOB)  # killed between the last write and the rename
    download(staging, srv)
    assert ranges(srv) == []
    assert fetched(staging) == BLOB


def test_a_wrong_content_range_is_refused_and_the_kept_part_stays(staging, srv):
    def liar(h: Handler) -> None:
        h.answer(206, BLOB, {"Content-Range": f"bytes 0-{len(BLOB) - 1}/{len(BLOB)}"})

    srv.routes[PATH] = liar
    part = keep(staging, BLOB[:1000])
    with pytest.raises(FetchError, match="sent them from 0"):
        download(staging, srv)
    with open(part, "rb") as f:
        assert f.read() == BLOB[:1000]  # kept for the next try


def test_a_broken_download_keeps_its_bytes_for_the_next_process(staging, srv):
    srv.routes[PATH] = cut_short(BLOB[:2_500_000], len(BLOB))  # every answer breaks off
    with pytest.raises(FetchError, match="download broke at byte 2500000"):
        download(staging, srv)
    part = staging.partial_path(DIGEST)
    assert os.path.getsize(part) == 2_500_000
    assert not staging.has_blob(DIGEST)
    # the next process resumes there
    srv.log.clear()
    srv.routes[PATH] = ranged
    download(staging, srv)
    assert ranges(srv) == ["bytes=2500000-"]
    assert fetched(staging) == BLOB


def test_within_one_process_a_whole_blob_after_a_break_is_skipped_to_where_it_was(staging,
                                                                                 srv):
    answers = iter([cut_short(BLOB[:1_500_000], len(BLOB)), lambda h: h.answer(200, BLOB)])
    srv.routes[PATH] = lambda h: next(answers)(h)
    download(staging, srv)
    assert ranges(srv) == [None, "bytes=1500000-"]
    assert fetched(staging) == BLOB


def test_a_wrong_blob_is_refused_and_nothing_is_kept(staging, srv):
    srv.routes[PATH] = lambda h: h.answer(200, BLOB[::-1])
    with pytest.raises(DigestMismatchError):
        download(staging, srv)
    assert not os.path.exists(staging.partial_path(DIGEST))
    assert not staging.has_blob(DIGEST)


def test_a_second_download_of_the_same_blob_waits_for_the_first(staging, srv):
    """Another fetch holds the partial file's lock: this one waits, writes nothing,
    and takes the blob the other verified."""
    srv.routes[PATH] = ranged
    part = keep(staging, BLOB[:10])
    fd = os.open(part, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    waited = threading.Event()
    errors: list[BaseException] = []
    reg = Registry(srv.addr)

    def second() -> None:
        try:
            staging.download(DIGEST, len(BLOB), lambda off: reg.open_blob("r", DESC, off),
                             waiting=waited.set)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=second)
    t.start()
    assert waited.wait(10)
    time.sleep(0.3)
    assert t.is_alive() and os.path.getsize(part) == 10  # untouched while locked
    # the first one finishes: the verified blob appears, its partial file goes
    verified = staging.store.verified_path(DIGEST)
    os.makedirs(os.path.dirname(verified), exist_ok=True)
    with open(verified, "wb") as f:
        f.write(BLOB)
    os.rename(part, part + ".done")
    os.close(fd)
    t.join(10)
    assert not t.is_alive() and errors == []
    assert ranges(srv) == []  # it never downloaded
    assert staging.blob_path(DIGEST) == verified
    assert not os.path.exists(part)


def test_tmp_partial_removed_by_another_writer_during_mkdir_is_made_again(staging, srv,
                                                                          monkeypatch):
    """Another fetch's last download removes tmp/partial between this one's mkdir
    (EEXIST) and its look at the directory: the download goes on (a CI run of eight
    simultaneous fetches once failed here with "File exists")."""
    srv.routes[PATH] = ranged
    partial = os.path.dirname(staging.partial_path(DIGEST))
    raced = race_mkdir(monkeypatch, partial)
    download(staging, srv)
    assert raced == [partial]
    assert fetched(staging) == BLOB
    assert not os.path.exists(partial)


def test_an_aci_url_download_survives_the_same_race(staging, monkeypatch):
    partial = os.path.dirname(staging.partial_path(DIGEST))
    raced = race_mkdir(monkeypatch, partial)
    kept = _Kept.claim(staging.store, "https://example.com/a.aci")
    assert kept is not None and raced == [partial]
    assert os.path.dirname(kept.path) == partial
    kept.release()
    assert not os.path.exists(partial)


def race_mkdir(monkeypatch: pytest.MonkeyPatch, target: str) -> list[str]:
    """Make the first mkdir of ``target`` meet a directory that another writer's
    rmdir takes away right after: EEXIST, and then no directory."""
    real_mkdir = os.mkdir
    raced: list[str] = []

    def mkdir(path, mode=0o777, *args, **kw):  # type: ignore[no-untyped-def]
        if os.fspath(path) == target and not raced:
            raced.append(target)
            real_mkdir(path, mode)  # it was there at mkdir time ...
            os.rmdir(path)  # ... and the other writer's rmdir came just after
            raise FileExistsError(17, "File exists", path)
        return real_mkdir(path, mode, *args, **kw)

    monkeypatch.setattr(os, "mkdir", mkdir)
    return raced
