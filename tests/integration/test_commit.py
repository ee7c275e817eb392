"""podkit-commit with real pods: the new image is exactly what the pod saw.

Oracles: the pod's own view (its upper directory over its lower layers,
mounted again read-only with real overlayfs), umoci unpacking the exported
image, skopeo reading it, and podkit-run running it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator

import pytest
from helpers import TOOLS, diff_trees, snapshot, store_state, umoci_rootfs

from libaci.errors import UsageError
from libaci.imagewrite import apply_changes, parse_changes

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("systemd-nspawn") is None,
    reason="pods need root and systemd-nspawn")

APP = "busybox"
SCRIPT = "echo new > /newfile; rm /data/a; mkdir -p /opt/x && echo y > /opt/x/y; rm -r /gone"
PLACEHOLDERS = {"etc/hosts", "etc/hostname", "etc/resolv.conf", "proc", "sys", "dev", "run",
                "tmp", "root", "var"}
EPOCH = 1700000000


@pytest.fixture
def busybox(podkit, images) -> str:  # type: ignore[no-untyped-def]
    return podkit.ok("fetch", f"oci:{images['layout']}:tiny", "--name", APP).strip()


def run_pod(podkit, *args: str, image: str = APP, opts: tuple[str, ...] = (),
            status: int = 0) -> str:  # type: ignore[no-untyped-def]
    """Run a pod to its end; its UUID."""
    uuid_file = os.path.join(os.path.dirname(podkit.store), f"pod-{time.monotonic_ns()}.uuid")
    r = podkit("run", "--uuid-file-save", uuid_file, *opts, image, "--", *args)
    assert r.returncode == status, r.stderr
    with open(uuid_file) as f:
        return f.read().strip()


def pod_dir(store: str, uuid: str) -> str:
    for where in ("run", "exited-garbage", "prepared"):
        d = os.path.join(store, "pods", where, uuid)
        if os.path.isdir(d):
            return d
    raise AssertionError(f"no pod {uuid}")


@contextlib.contextmanager
def pod_view(store: str, uuid: str, app: str = APP) -> Iterator[str]:
    """The pod's root filesystem as the app saw it: its upper dir over its layers, mounted
    again (read-only: the upper dir becomes the top lower dir)."""
    d = os.path.join(pod_dir(store, uuid), "apps", app)
    lowers = sorted(os.listdir(os.path.join(d, "lower")), key=int, reverse=True)
    dirs = [os.path.join(d, "upper")] + [os.path.realpath(os.path.join(d, "lower", n))
                                         for n in lowers]
    mnt = tempfile.mkdtemp(prefix="podview-")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=" + ":".join(dirs),
                    mnt], check=True, capture_output=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", mnt], check=True)
        os.rmdir(mnt)


def comparable(snap: dict[str, tuple]) -> dict[str, tuple]:
    """A snapshot with hardlink groups of one member (the other names deleted) dropped."""
    groups: dict[str, int] = {}
    for v in snap.values():
        if isinstance(v[5], tuple):
            groups[v[5][1]] = groups.get(v[5][1], 0) + 1
    out = {}
    for k, v in snap.items():
        if isinstance(v[5], tuple) and groups[v[5][1]] == 1:
            v = (*v[:5], v[5][0], *v[6:])
        out[k] = v
    return out


def inspect(podkit, ref: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return json.loads(podkit.ok("inspect", ref))


def top_layer(podkit, store: str, ref: str) -> list[tarfile.TarInfo]:  # type: ignore[no-untyped-def]
    digest = inspect(podkit, ref)["Manifest"]["layers"][-1]["digest"]
    with open(os.path.join(store, "blobs", *digest.split(":")), "rb") as f:
        blob = f.read()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tf:
        return tf.getmembers()


def render(podkit, ref: str, dest: str) -> dict[str, tuple]:  # type: ignore[no-untyped-def]
    podkit.ok("render", ref, dest)
    return comparable(snapshot(dest))


# -- the new image is the pod's view --------------------------------------------------------


@pytest.mark.parametrize("stage1", ["nspawn", "fly"])
def test_the_new_image_is_what_the_pod_saw(podkit, busybox, store, tmp_path, stage1):
    uuid = run_pod(podkit, "sh", "-c", SCRIPT, opts=(f"--stage1={stage1}",))
    upper = os.path.join(pod_dir(store, uuid), "apps", APP, "upper")
    assert os.path.exists(os.path.join(upper, "etc/hosts"))  # the stage1 made placeholders
    image_id = podkit.ok("commit", uuid).strip()
    assert image_id.startswith("sha256:") and image_id != busybox

    parent = render(podkit, busybox, str(tmp_path / "parent"))
    with pod_view(store, uuid) as view:
        seen = comparable(snapshot(view))
    expected = {k: v for k, v in seen.items() if not (k in PLACEHOLDERS and k not in parent)}
    assert "newfile" in expected and "data/a" not in expected and "gone" not in expected
    ours = render(podkit, image_id, str(tmp_path / "ours"))
    assert diff_trees(expected, ours) == []

    # umoci, an independent reader of the layer (whiteouts included), sees the same
    layout = str(tmp_path / "layout")
    podkit.ok("export", image_id, f"oci:{layout}:committed")
    theirs = comparable(snapshot(umoci_rootfs(layout, "committed", str(tmp_path / "umoci"))))
    assert diff_trees(ours, theirs) == []


def test_the_layer_holds_the_changes_with_whiteouts_and_no_placeholders(podkit, busybox, store):
    uuid = run_pod(podkit, "sh", "-c", SCRIPT)
    image_id = podkit.ok("commit", uuid).strip()
    names = [m.name for m in top_layer(podkit, store, image_id)]
    assert names == [".wh.gone", "data", "data/.wh.a", "newfile", "opt", "opt/x", "opt/x/y"]
    for m in top_layer(podkit, store, image_id):
        assert m.uname == "" and m.gname == ""
    doc = inspect(podkit, image_id)
    assert len(doc["Layers"]) == 2 and all(x["Extracted"] for x in doc["Layers"])
    assert doc["Manifest"]["layers"][-1]["mediaType"] == \
        "application/vnd.oci.image.layer.v1.tar+gzip"
    assert doc["Manifest"]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["Manifest"]["annotations"]["org.opencontainers.image.base.digest"] == busybox
    assert doc["Config"]["rootfs"]["diff_ids"][-1] == doc["Layers"][-1]["DiffID"]
    assert doc["Source"] == f"pod:{uuid}"


def test_an_opaque_directory_and_a_replaced_file(podkit, busybox, store, tmp_path):
    uuid = run_pod(podkit, "sh", "-c", "rm -r /opaque && mkdir /opaque && echo z > /opaque/z; "
                   "rm /etc/empty && mkdir /etc/empty; chmod 700 /home/user")
    image_id = podkit.ok("commit", uuid).strip()
    names = [m.name for m in top_layer(podkit, store, image_id)]
    i = names.index("opaque")
    assert names[i + 1:i + 3] == ["opaque/.wh..wh..opq", "opaque/z"]
    podkit.ok("render", image_id, str(tmp_path / "r"))
    assert sorted(os.listdir(tmp_path / "r" / "opaque")) == ["z"]
    assert os.path.isdir(tmp_path / "r" / "etc/empty")
    assert os.stat(tmp_path / "r" / "home/user").st_mode & 0o777 == 0o700
    assert os.stat(tmp_path / "r" / "home/user").st_uid == 1000


def test_mount_points_working_dir_and_home_do_not_leak(podkit, busybox, store, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    uuid = run_pod(podkit, "sh", "-c", "echo in-volume > /mnt/vol/f; echo kept > /kept",
                   opts=("--stage1=fly", "--volume", f"{vol}:/mnt/vol", "--working-dir",
                         "/wd/x", "--set-env", "HOME=/home/nobody"))
    upper = os.path.join(pod_dir(store, uuid), "apps", APP, "upper")
    assert os.path.isdir(os.path.join(upper, "mnt/vol"))
    assert os.path.isdir(os.path.join(upper, "wd/x"))
    image_id = podkit.ok("commit", uuid).strip()
    assert [m.name for m in top_layer(podkit, store, image_id)] == ["kept"]
    assert (vol / "f").read_text() == "in-volume\n"


def test_a_pod_that_changed_nothing_gives_an_empty_layer(podkit, busybox, store):
    uuid = run_pod(podkit, "true")
    image_id = podkit.ok("commit", uuid).strip()
    assert top_layer(podkit, store, image_id) == []


def test_files_the_pod_made_placeholders_for_are_kept_when_not_empty(podkit, busybox, store):
    # /etc/hosts is bound read-only over the placeholder; the app writes beside it
    uuid = run_pod(podkit, "sh", "-c", "mkdir -p /var/lib && echo x > /var/lib/state")
    image_id = podkit.ok("commit", uuid).strip()
    assert [m.name for m in top_layer(podkit, store, image_id)] == ["var", "var/lib",
                                                                     "var/lib/state"]


# -- config --------------------------------------------------------------------------------


def test_change_cmd_then_run_prints_hi(podkit, busybox):
    uuid = run_pod(podkit, "true")
    image_id = podkit.ok("commit", uuid, "--change", 'CMD ["/bin/echo","hi"]').strip()
    r = podkit("run", image_id)
    assert r.returncode == 0 and r.stdout == "hi\n", r.stderr


def test_changes_message_and_author_in_the_config(podkit, busybox):
    uuid = run_pod(podkit, "sh", "-c", "echo x > /x")
    image_id = podkit.ok(
        "commit", uuid, "-m", "added x", "--author", "Ann <ann@example.com>",
        "--change", "ENV GREETING=hello NAME='big world' PATH=$PATH:/opt/bin",
        "-c", "WORKDIR /srv", "-c", "WORKDIR app", "-c", "USER user",
        "-c", 'LABEL org.example.team=infra "version"="1.0"',
        "-c", "EXPOSE 8080 53/udp", "-c", "STOPSIGNAL SIGQUIT", "-c", 'VOLUME ["/data"]',
        "-c", "ENTRYPOINT /bin/sh -c 'echo $GREETING'").strip()
    doc = inspect(podkit, image_id)
    c = doc["Config"]["config"]
    assert c["Env"] == ["PATH=/usr/bin:/bin:/opt/bin", "GREETING=hello", "NAME=big world"]
    assert c["WorkingDir"] == "/srv/app" and c["User"] == "user"
    assert c["Labels"] == {"org.example.team": "infra", "version": "1.0"}
    assert c["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert c["StopSignal"] == "SIGQUIT" and c["Volumes"] == {"/data": {}}
    assert c["Entrypoint"] == ["/bin/sh", "-c", "/bin/sh -c 'echo $GREETING'"]
    assert c["Cmd"] is None  # ENTRYPOINT drops the inherited Cmd, as docker does
    assert doc["Config"]["author"] == "Ann <ann@example.com>"
    last = doc["Config"]["history"][-1]
    assert last["comment"] == "added x" and last["author"] == "Ann <ann@example.com>"
    assert last["created_by"] == "podkit-commit sh -c 'echo x > /x'"
    assert "empty_layer" not in last
    parent = inspect(podkit, APP)
    assert doc["Config"]["history"][:-1] == parent["Config"]["history"]
    assert doc["Config"]["rootfs"]["diff_ids"][:-1] == parent["Config"]["rootfs"]["diff_ids"]
    # (fly: the nspawn stage1 does not create a missing working directory)
    r = podkit("run", "--stage1=fly", "--exec", "/bin/sh", image_id, "--", "-c",
               "pwd; id -u; echo $NAME")
    assert r.returncode == 0 and r.stdout == "/srv/app\n1000\nbig world\n", r.stderr


def test_change_forms_like_docker_commit():
    c = apply_changes({"Cmd": ["sh"], "Env": ["A=1"]}, parse_changes([
        "CMD echo hi", "ENV B ${A}-legacy value", "LABEL a=b\nLABEL c=d",
        "EXPOSE 7000-7001/tcp", "VOLUME /v1 /v2"]))
    assert c["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert c["Env"] == ["A=1", "B=1-legacy value"]
    assert c["Labels"] == {"a": "b", "c": "d"}
    assert c["ExposedPorts"] == {"7000/tcp": {}, "7001/tcp": {}}
    assert c["Volumes"] == {"/v1": {}, "/v2": {}}
    # a CMD given before ENTRYPOINT survives it; JSON that is not an array is the shell form
    c = apply_changes({"Shell": ["/bin/bash", "-c"]}, parse_changes([
        'CMD ["a"]', "ENTRYPOINT [not json", "WORKDIR rel/../dir"]))
    assert c["Cmd"] == ["a"] and c["Entrypoint"] == ["/bin/bash", "-c", "[not json"]
    assert c["WorkingDir"] == "/dir"
    for bad in ("RUN echo", "CMD", "EXPOSE http", "ENV novalue", "STOPSIGNAL SIGNOPE",
                "ENV A=${UNSET:?must be set}", "ONBUILD FROM x", "USER a b"):
        with pytest.raises(UsageError):
            apply_changes({}, parse_changes([bad]))


# -- readers and reproducibility -----------------------------------------------------------


def test_skopeo_and_umoci_read_the_exported_image(podkit, busybox, tmp_path):
    uuid = run_pod(podkit, "sh", "-c", SCRIPT)
    image_id = podkit.ok("commit", uuid, "web:2").strip()
    layout = str(tmp_path / "layout")
    assert podkit.ok("export", "web:2", f"oci:{layout}:web").strip() == image_id
    doc = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{layout}:web"], check=True,
                                    capture_output=True, text=True).stdout)
    assert doc["Digest"] == image_id and len(doc["Layers"]) == 2
    raw = json.loads(subprocess.run(["skopeo", "inspect", "--config", f"oci:{layout}:web"],
                                    check=True, capture_output=True, text=True).stdout)
    assert raw["config"]["Cmd"] == ["/bin/sh"]
    rootfs = umoci_rootfs(layout, "web", str(tmp_path / "umoci"))
    assert os.path.exists(os.path.join(rootfs, "newfile"))
    assert not os.path.exists(os.path.join(rootfs, "data/a"))
    assert not os.path.exists(os.path.join(rootfs, "etc/hosts"))
    # and the image runs again, and commits again
    uuid2 = run_pod(podkit, "sh", "-c", "cat /newfile /opt/x/y > /both", image="web:2")
    again = podkit.ok("commit", uuid2).strip()
    r = podkit("run", again, "--", "cat", "/both")
    assert r.stdout == "new\ny\n", r.stderr
    assert len(inspect(podkit, again)["Layers"]) == 3


def test_same_pod_same_epoch_same_digest(podkit, busybox, monkeypatch):
    uuid = run_pod(podkit, "sh", "-c", SCRIPT)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    first = podkit.ok("commit", uuid, "-c", "CMD x").strip()
    time.sleep(1.1)
    assert podkit.ok("commit", uuid, "-c", "CMD x").strip() == first
    doc = inspect(podkit, first)
    assert doc["Config"]["created"] == "2023-11-14T22:13:20Z"
    assert doc["Config"]["history"][-1]["created"] == "2023-11-14T22:13:20Z"
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert podkit.ok("commit", uuid, "-c", "CMD x", "--timestamp", str(EPOCH)).strip() == first
    assert podkit.ok("commit", uuid, "-c", "CMD x").strip() != first
    # the pod's files are newer than the epoch: clamped
    assert {m.mtime for m in top_layer(podkit, podkit.store, first)} == {EPOCH}


def test_name_and_uuid_on_stdin(podkit, busybox, store):
    uuid = run_pod(podkit, "sh", "-c", "echo named > /named")
    image_id = podkit.ok("commit", "-", "mytools:1", input=uuid + "\n").strip()
    images = json.loads(podkit.ok("images", "--json"))
    names = {n for i in images if i["id"] == image_id for n in i["names"]}
    assert names == {"docker.io/library/mytools:1"}
    r = podkit("run", "mytools:1", "--", "cat", "/named")
    assert r.stdout == "named\n", r.stderr
    # the name moves to a newer commit, as docker's tags do
    again = podkit.ok("commit", uuid[:8], "mytools:1", "-c", "LABEL v=2").strip()
    assert inspect(podkit, "mytools:1")["Id"] == again != image_id


def test_a_running_pod_can_be_committed(podkit, busybox, store, tmp_path):
    uuid_file = str(tmp_path / "uuid")
    p = subprocess.Popen([os.path.join(TOOLS, "podkit-run"), "--store", store,
                          "--uuid-file-save", uuid_file, APP, "--", "sh", "-c",
                          "echo live > /live; exec sleep 60"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "the pod did not start"
            if os.path.exists(uuid_file):
                uuid = open(uuid_file).read().strip()
                if os.path.exists(os.path.join(store, "pods/run", uuid, "apps", APP,
                                               "upper/live")):
                    break
            time.sleep(0.05)
        assert json.loads(podkit.ok("status", "--json", uuid))["state"] == "running"
        image_id = podkit.ok("commit", uuid).strip()
        assert "live" in [m.name for m in top_layer(podkit, store, image_id)]
    finally:
        if os.path.exists(uuid_file):
            podkit("stop", "--force", "--timeout=5", open(uuid_file).read().strip())
        p.wait(timeout=30)


def test_docker_schema2_parent_gives_a_docker_image(podkit, registry, registry_images, repo,
                                                    tmp_path):
    img = registry_images["multi-docker"]
    parent = podkit.ok("fetch", f"docker://{img['ref']}").strip()
    uuid = run_pod(podkit, "sh", "-c", "echo docker > /d", image=parent)
    image_id = podkit.ok("commit", uuid).strip()
    doc = inspect(podkit, image_id)
    m = doc["Manifest"]
    assert m["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert m["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert {x["mediaType"] for x in m["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"}
    assert "annotations" not in m
    podkit.ok("push", image_id, f"docker://{registry.addr}/{repo}:committed")
    out = registry.skopeo("inspect", "--tls-verify=false",
                          f"docker://{registry.addr}/{repo}:committed").stdout
    assert json.loads(out)["Digest"] == image_id
    r = podkit("run", image_id, "--", "cat", "/d")
    assert r.stdout == "docker\n", r.stderr


# -- bad input -----------------------------------------------------------------------------


@pytest.fixture
def exited(podkit, busybox, store):  # type: ignore[no-untyped-def]
    """An exited pod, and the store's state to compare with afterwards."""
    uuid = run_pod(podkit, "sh", "-c", SCRIPT)
    return uuid, store_state(store)


@pytest.mark.parametrize(("args", "status", "match"), [
    (["0123abcd"], 4, "no pod 0123abcd"),
    (["ffffffff-ffff-ffff-ffff-ffffffffffff"], 4, "no pod"),
    (["not-a-uuid!"], 2, "is not a pod UUID"),
    (["{uuid}", "--change", "RUN apt-get install nginx"], 2, "RUN cannot be applied"),
    (["{uuid}", "-c", "EXPOSE http"], 2, "'http' is not a port"),
    (["{uuid}", "-c", "ENV A=${{B:?B is needed}}"], 2, "B is needed"),
    (["{uuid}", "Bad/NAME"], 2, "Bad/NAME"),
    (["{uuid}", "x@sha256:" + "0" * 64], 2, "cannot be named by digest"),
    (["{uuid}", "--timestamp", "yesterday"], 2, "not a number of seconds"),
    ([], 2, "nothing on stdin"),
])
def test_bad_input(podkit, store, exited, args, status, match):
    uuid, before = exited
    podkit.fail("commit", *[a.format(uuid=uuid) for a in args], status=status, match=match,
                input="")
    assert store_state(store) == before


def test_bad_source_date_epoch(podkit, store, exited, monkeypatch):
    uuid, before = exited
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    podkit.fail("commit", uuid, status=2, match="SOURCE_DATE_EPOCH")
    assert store_state(store) == before


def test_a_prepared_pod_is_refused(podkit, busybox, store):
    uuid = podkit.ok("prepare", APP).strip()
    before = store_state(store)
    podkit.fail("commit", uuid, status=5, match="prepared")
    assert store_state(store) == before
    podkit.ok("rm", uuid)


def test_an_aci_pod_is_refused(podkit, images, store):
    podkit.ok("fetch", images["aci"])
    uuid = run_pod(podkit, "-c", "echo x > /x", image="example.com/app:v1",  # exec[0] is sh
                   opts=("--stage1=fly",))
    before = store_state(store)
    podkit.fail("commit", uuid, status=1, match="appc image (ACI)")
    assert store_state(store) == before


def test_a_pod_being_removed_is_refused(podkit, store, exited):
    import fcntl

    uuid, before = exited
    # what podkit-rm does: mark it (run/ -> exited-garbage/), then delete under its lock
    src = os.path.join(store, "pods", "run", uuid)
    dst = os.path.join(store, "pods", "exited-garbage", uuid)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    os.rename(src, dst)
    fd = os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        podkit.fail("commit", uuid, status=5, match="deleting")
    finally:
        os.close(fd)
    # marked but not being deleted: still committable
    assert podkit.ok("commit", uuid).strip().startswith("sha256:")
    os.rename(dst, src)
    assert store_state(store) != before


def test_a_file_no_layer_can_hold_fails_cleanly(podkit, busybox, store):
    uuid = run_pod(podkit, "sh", "-c", "echo trick > /data/.wh.trick")
    before = store_state(store)
    podkit.fail("commit", uuid, "named:1", status=1, match=".wh.trick")
    assert store_state(store) == before
    assert os.listdir(os.path.join(store, "tmp")) in ([], ["verified"])


def test_stage_layer_passes_on_either_side_s_failure(tmp_path):
    from libaci.errors import LayerError, StoreError
    from libaci.imagewrite import stage_layer
    from libaci.layerwrite import write_overlay_layer
    from libaci.store import Store

    store = Store(str(tmp_path / "store"))
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "big").write_bytes(os.urandom(8 << 20))

    def broken(out):  # type: ignore[no-untyped-def]
        out.write(b"x" * (3 << 20))
        raise LayerError("the writer broke")

    with store.writing() as staging, pytest.raises(LayerError, match="writer broke"):
        stage_layer(staging, broken, [])

    class FailingStaging:  # the store fails after reading a little: the writer must stop
        def put_stream(self, stream, **kw):  # type: ignore[no-untyped-def]
            stream.read(1 << 16)
            raise StoreError("disk full")

    t0 = time.monotonic()
    with pytest.raises(StoreError, match="disk full"):
        stage_layer(FailingStaging(), lambda out: write_overlay_layer(
            out, str(upper), compression="none"), [])
    assert time.monotonic() - t0 < 10
