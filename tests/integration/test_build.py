"""podkit-build with real pods: multi-stage builds, the image they make, the cache,
secrets, reproducibility, failures and bad input.

Each RUN runs in a single-use systemd-nspawn pod, so these need root and nspawn.
The base image is the test busybox (tests/imagekit.py), named ``busybox`` in the
store.  buildah, as an oracle, is in test_build_buildah.py; --watch in
test_build_watch.py.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import threading

import pytest
from helpers import TOOLS, store_state

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("systemd-nspawn") is None,
    reason="RUN pods need root and systemd-nspawn")

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                    "build")
EPOCH = "1700000000"


@pytest.fixture
def busybox(podkit, images) -> str:  # type: ignore[no-untyped-def]
    return podkit.ok("fetch", f"oci:{images['layout']}:tiny", "--name", "busybox").strip()


def build(store: str, *args: str, env: dict[str, str] | None = None,
          input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([os.path.join(TOOLS, "podkit-build"), "--store", store, *args],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, **(env or {})}, input=input)


def build_ok(store: str, *args: str, **kw) -> str:  # type: ignore[no-untyped-def]
    r = build(store, *args, **kw)
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.strip()
    assert image_id.startswith("sha256:") and "\n" not in image_id, r.stdout
    return image_id


def make_archive(path: str) -> None:
    """A gzip tar with owners, modes and a symlink, as ADD should extract it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        d = tarfile.TarInfo("pkg")
        d.type, d.mode, d.uid, d.gid, d.mtime = tarfile.DIRTYPE, 0o750, 42, 43, 1600000000
        tf.addfile(d)
        data = b"packed data\n"
        f = tarfile.TarInfo("pkg/data.txt")
        f.size, f.mode, f.uid, f.gid, f.mtime = len(data), 0o640, 42, 43, 1600000000
        tf.addfile(f, io.BytesIO(data))
        ln = tarfile.TarInfo("pkg/link")
        ln.type, ln.linkname, ln.mtime = tarfile.SYMTYPE, "data.txt", 1600000000
        tf.addfile(ln)
    with open(path, "wb") as out:
        out.write(gzip.compress(buf.getvalue(), mtime=0))


def multistage_context(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """tests/data/build/multistage with what git cannot keep: modes, owners, an archive."""
    ctx = str(tmp_path / "ctx")
    shutil.copytree(os.path.join(DATA, "multistage"), ctx, symlinks=True)
    os.chmod(os.path.join(ctx, "src", "sub"), 0o750)
    os.chmod(os.path.join(ctx, "src", "b.txt"), 0o600)
    os.chown(os.path.join(ctx, "src", "a.txt"), 1234, 1234)
    make_archive(os.path.join(ctx, "archive.tar.gz"))
    return ctx


def inspect(podkit, ref: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return json.loads(podkit.ok("inspect", ref))


def render(podkit, ref: str, dest: str) -> str:  # type: ignore[no-untyped-def]
    podkit.ok("render", ref, dest)
    return dest


def read(root: str, rel: str) -> str:
    with open(os.path.join(root, rel)) as f:
        return f.read()


def owner(root: str, rel: str) -> tuple[int, int, int]:
    st = os.lstat(os.path.join(root, rel))
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def pods_left(store: str) -> list[str]:
    out = []
    for where in os.listdir(os.path.join(store, "pods")):
        out += os.listdir(os.path.join(store, "pods", where))
    return out


def layer_blobs(store: str, image: dict) -> list[bytes]:  # type: ignore[type-arg]
    out = []
    for layer in image["Manifest"]["layers"]:
        with open(os.path.join(store, "blobs", *layer["digest"].split(":")), "rb") as f:
            out.append(gzip.decompress(f.read()))
    return out


# -- a multi-stage build: the image is what the Dockerfile says ---------------------------------

def test_multistage_build_runs_and_renders_as_written(podkit, busybox, store, tmp_path):
    ctx = multistage_context(tmp_path)
    image_id = build_ok(store, "-t", "demo:1", ctx)
    assert podkit.ok("images", "-q", "demo:1").strip() in image_id
    assert pods_left(store) == []  # every RUN pod is gone

    out = subprocess.run([os.path.join(TOOLS, "podkit-run"), "--store", store, "demo:1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hello world\nversion=1.0 mode=build\n"

    root = render(podkit, image_id, str(tmp_path / "final"))
    assert read(root, "srv/build.txt") == "version=1.0 mode=build\n"
    assert read(root, "srv/combined.txt") == "alpha\nbeta\n"
    assert owner(root, "srv/build.txt")[:2] == (1000, 1000)  # COPY --from keeps owners
    assert owner(root, "home/user/build.txt")[:2] == (1000, 1000)  # --chown=user:user
    assert owner(root, "home/user/work")[:2] == (1000, 1000)  # WORKDIR as USER
    assert not os.path.exists(os.path.join(root, "opt/app"))  # only what was copied
    for placeholder in ("proc", "sys", "dev", "etc/hosts", "etc/resolv.conf", "var", "root"):
        assert not os.path.lexists(os.path.join(root, placeholder)), placeholder

    doc = inspect(podkit, image_id)
    cfg = doc["Config"]["config"]
    assert cfg["User"] == "user:user" and cfg["WorkingDir"] == "/home/user/work"
    assert "GREETING=hello world" in cfg["Env"]
    assert any(e.startswith("PATH=") for e in cfg["Env"])
    assert cfg["Labels"] == {"org.example.version": "1.0", "org.example.name": "demo app"}
    assert cfg["ExposedPorts"] == {"53/udp": {}, "8080/tcp": {}}
    assert cfg["Volumes"] == {"/data2": {}} and cfg["StopSignal"] == "SIGUSR1"
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"]
    assert cfg["Cmd"] == ["echo $GREETING; cat /srv/build.txt"]
    history = [h for h in doc["Config"]["history"]
               if h.get("comment") == "buildkit.dockerfile.v0"]
    assert [h["created_by"] for h in history] == [
        "ARG VERSION=1.0", "LABEL org.example.version=1.0 org.example.name=demo app",
        "COPY /out/ /srv/ # buildkit", "COPY --chown=user:user /opt/app/build.txt /home/user/ "
        "# buildkit", "USER user:user", "WORKDIR /home/user/work", "ENV GREETING=hello world",
        "EXPOSE map[53/udp:{} 8080/tcp:{}]", "VOLUME [/data2]", "STOPSIGNAL SIGUSR1",
        'ENTRYPOINT ["/bin/sh" "-c"]', 'CMD ["echo $GREETING; cat /srv/build.txt"]']
    layers = [h for h in doc["Config"]["history"] if not h.get("empty_layer")]
    assert len(layers) == len(doc["Manifest"]["layers"]) == \
        len(doc["Config"]["rootfs"]["diff_ids"])


def test_target_builds_only_the_stages_it_needs(podkit, busybox, store, tmp_path):
    ctx = multistage_context(tmp_path)
    r = build(store, "--target", "builder", ctx)
    assert r.returncode == 0, r.stderr
    assert "[unused" not in r.stderr and "[final" not in r.stderr
    root = render(podkit, r.stdout.strip(), str(tmp_path / "builder"))
    app = "opt/app"
    assert sorted(os.listdir(os.path.join(root, app, "src"))) == ["a.txt", "b.txt", "sub"]
    assert owner(root, f"{app}/src/a.txt") == (0, 0, 0o644)  # context owners become 0:0
    assert owner(root, f"{app}/src/b.txt") == (0, 0, 0o600)  # modes are kept
    assert owner(root, f"{app}/src/sub") == (0, 0, 0o750)
    assert read(root, f"{app}/src/sub/c.txt") == "gamma\n"
    assert read(root, f"{app}/build.txt") == "version=1.0 mode=build\n"
    assert owner(root, "usr/local/bin/run.sh")[2] == 0o755  # --chmod
    assert sorted(os.listdir(os.path.join(root, "globbed"))) == ["a.txt", "b.txt",
                                                                  "remove-me.txt"]
    assert not os.path.islink(os.path.join(root, "linked.txt"))  # a symlink source is followed
    assert read(root, "linked.txt") == "alpha\n"
    assert owner(root, "opt/extracted/pkg") == (42, 43, 0o750)  # ADD extracts with owners
    assert owner(root, "opt/extracted/pkg/data.txt") == (42, 43, 0o640)
    assert os.readlink(os.path.join(root, "opt/extracted/pkg/link")) == "data.txt"
    assert not os.path.exists(os.path.join(root, "archive.tar.gz"))
    assert read(root, "home/user/work/uid.txt") == "1000\n"  # RUN as USER
    assert not any(n.endswith(".log") for n in os.listdir(os.path.join(root, app, "src")))
    cfg = inspect(podkit, r.stdout.strip())["Config"]["config"]
    assert cfg["User"] == "user" and "MODE=build" in cfg["Env"]
    assert "APP_HOME=/opt/app" in cfg["Env"]


def test_bad_input_is_a_one_line_error_and_changes_nothing(podkit, busybox, store, tmp_path):
    before = store_state(store)
    ctx = multistage_context(tmp_path)
    r = podkit.fail("build", "--target", "nope", ctx, status=2, match="target stage")
    assert "'nope'" in r.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "Dockerfile").write_text("FROM busybox\nRUN true\nFROOM x\n")
    podkit.fail("build", str(bad), status=2, match="Dockerfile:3: unknown instruction")
    (bad / "Dockerfile").write_text('FROM busybox\nCMD ["a", ["nested"]]\n')
    podkit.fail("build", str(bad), status=2, match="Dockerfile:2:")
    (bad / "Dockerfile").write_text("FROM busybox AS a\nCOPY --from=b /x /x\nFROM a AS b\n")
    podkit.fail("build", str(bad), status=2, match="circular dependency")
    empty = tmp_path / "empty"
    empty.mkdir()
    podkit.fail("build", str(empty), status=4, match="no Dockerfile or Containerfile")
    podkit.fail("build", "-f", str(empty / "Dockerfile"), ctx, status=4, match="no such Dockerfile")
    podkit.fail("build", str(tmp_path / "absent"), status=4, match="no such build context")
    podkit.fail("build", "--secret", f"id=x,src={tmp_path}/none", ctx, status=2,
                match="--secret id=x: cannot read")
    podkit.fail("build", "--build-arg", "=1", ctx, status=2)
    podkit.fail("build", "-t", "Bad Name", ctx, status=2)
    podkit.fail("build", "--network=bridge", ctx, status=2)
    podkit.fail("build", "--platform", "linux/nonsense/x/y", ctx, status=2)
    assert store_state(store) == before


def test_steps_that_cannot_be_done_fail_with_file_and_line(podkit, busybox, store, tmp_path):
    images = podkit.ok("images", "-q")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "Dockerfile").write_text("FROM busybox\nCOPY missing.txt /x\n")
    podkit.fail("build", "-q", str(bad), status=2,
                match='Dockerfile:2: COPY failed: "/missing.txt": not found')
    # not a stage: an image, fetched when missing (a refused connection here)
    (bad / "Dockerfile").write_text("FROM busybox\nCOPY --from=127.0.0.1:9/nostage /x /x\n")
    podkit.fail("build", "-q", str(bad), status=1, match="Dockerfile:2: [stage-0 2/2] COPY")
    (bad / "Dockerfile").write_text("FROM busybox\nUSER nobody-here\nRUN true\n")
    podkit.fail("build", "-q", str(bad), status=4, match="Dockerfile:3: [stage-0 3/3] RUN true")
    (bad / "Dockerfile").write_text("FROM busybox\nCOPY --chown=ghost Dockerfile /x\n")
    podkit.fail("build", "-q", str(bad), status=1, match="unable to find user ghost")
    assert podkit.ok("images", "-q") == images
    assert pods_left(store) == []


# -- a failing RUN ---------------------------------------------------------------------------------

def test_a_failing_run_fails_the_build_and_leaves_nothing(podkit, busybox, store, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nENV A=1\nRUN echo made > /file\n"
                                    "RUN echo about to fail && exit 3\n")
    images = podkit.ok("images", "-q")
    for quiet in ([], ["-q"]):
        r = build(store, *quiet, "-t", "never:1", str(ctx))
        assert r.returncode == 1, r.stderr
        last = r.stderr.strip().splitlines()[-1]
        assert last == ('podkit-build: Dockerfile:4: [stage-0 4/4] RUN failed: process '
                        '"/bin/sh -c echo about to fail && exit 3" did not complete '
                        'successfully: exit code: 3')
        assert "about to fail" in r.stderr  # the step's output, also when quiet
        assert r.stdout == ""
    assert podkit.ok("images", "-q") == images  # no image, named or not
    assert pods_left(store) == []
    assert os.listdir(os.path.join(store, "tmp")) in ([], ["verified"])


# -- the cache ----------------------------------------------------------------------

def test_cache_hits_unchanged_steps_and_misses_from_a_changed_copy(podkit, busybox, store,
                                                                   tmp_path):
    ctx = str(tmp_path / "ctx")
    shutil.copytree(os.path.join(DATA, "cache"), ctx)
    r1 = build(store, ctx)
    assert r1.returncode == 0 and r1.stderr.count("CACHED") == 0, r1.stderr
    r2 = build(store, ctx)
    assert r2.returncode == 0 and r2.stderr.count("CACHED") == 5, r2.stderr
    assert r2.stdout == r1.stdout  # an unchanged rebuild is the same image

    os.utime(os.path.join(ctx, "a.txt"), (1, 1))  # a new mtime is no change
    r3 = build(store, ctx)
    assert r3.stderr.count("CACHED") == 5 and r3.stdout == r1.stdout, r3.stderr

    with open(os.path.join(ctx, "b.txt"), "w") as f:
        f.write("b v2\n")
    r4 = build(store, ctx)
    assert r4.returncode == 0, r4.stderr
    steps = [line for line in r4.stderr.splitlines() if "CACHED" in line or "DONE" in line]
    cached = [line for line in steps if "CACHED" in line]
    assert len(cached) == 3, r4.stderr  # RUN, COPY a.txt, RUN; then COPY b.txt misses
    assert "COPY b.txt" in r4.stderr.split(cached[-1])[1].splitlines()[1]
    assert r4.stdout != r1.stdout
    out = subprocess.run([os.path.join(TOOLS, "podkit-run"), "--store", store,
                          r4.stdout.strip()], capture_output=True, text=True, timeout=120)
    assert out.stdout == "b v2\n"

    r5 = build(store, "--no-cache", ctx)
    assert r5.returncode == 0 and "CACHED" not in r5.stderr


# -- reproducible images -------------------------------------------------------------------------

def test_source_date_epoch_gives_the_same_digest(podkit, images, tmp_path):
    ctx = str(tmp_path / "ctx")
    shutil.copytree(os.path.join(DATA, "cache"), ctx)
    with open(os.path.join(ctx, "Dockerfile"), "a") as f:
        f.write("WORKDIR /w\nRUN mkdir -p sub && echo x > sub/f && chmod 600 sub/f\n")
    ids = []
    for n in (1, 2):
        other = type(podkit)(str(tmp_path / f"store{n}"))
        other.ok("fetch", f"oci:{images['layout']}:tiny", "--name", "busybox")
        ids.append(build_ok(other.store, ctx, env={"SOURCE_DATE_EPOCH": EPOCH}))
    assert ids[0] == ids[1]
    doc = inspect(other, ids[0])["Config"]
    assert doc["created"] == "2023-11-14T22:13:20Z"
    ours = [h for h in doc["history"] if h.get("comment") == "buildkit.dockerfile.v0"]
    assert {h["created"] for h in ours} == {"2023-11-14T22:13:20Z"}
    # --timestamp wins over SOURCE_DATE_EPOCH
    again = build_ok(other.store, "--no-cache", "--timestamp", EPOCH, ctx,
                     env={"SOURCE_DATE_EPOCH": "5"})
    assert again == ids[0]


# -- secrets, mounts, network -------------------------------------------------------

SECRET = "s3cr3t-v@lue-4242"


def test_secrets_never_reach_a_layer_the_config_or_the_history(podkit, busybox, store,
                                                               tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    digest = hashlib.sha256(SECRET.encode()).hexdigest()  # the Dockerfile never holds it
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN --mount=type=secret,id=token sha256sum /run/secrets/token | "
        f"grep -q ^{digest} && echo ok > /checked\n"
        "RUN --mount=type=secret,id=token,target=/root/token,mode=0440 "
        "ls -ln /root/token > /listing\n"
        "RUN --mount=type=secret,id=token,env=TOKEN printf %s \"$TOKEN\" | sha256sum | "
        f"grep -q ^{digest} && echo ok > /checked-env\n"
        "RUN --mount=type=secret,id=other echo unset > /not-required\n")
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(SECRET)
    image_id = build_ok(store, "--secret", f"id=token,src={secret_file}", str(ctx))
    doc = inspect(podkit, image_id)
    root = render(podkit, image_id, str(tmp_path / "r"))
    assert read(root, "checked") == "ok\n" and read(root, "checked-env") == "ok\n"
    assert read(root, "listing").split()[:4] == ["-r--r-----", "1", "0", "0"]
    assert read(root, "not-required") == "unset\n"
    for gone in ("run/secrets", "root/token", "root"):
        assert not os.path.lexists(os.path.join(root, gone)), gone
    blobs = layer_blobs(store, doc)
    with open(os.path.join(store, "blobs", *doc["Manifest"]["config"]["digest"].split(":")),
              "rb") as f:
        config = f.read()
    for blob in [*blobs, config, json.dumps(doc).encode()]:
        assert SECRET.encode() not in blob
    names = [m.name for blob in blobs for m in tarfile.open(fileobj=io.BytesIO(blob))]
    assert not any("secrets" in n or n.startswith("root") for n in names), names

    # from the environment too; a required secret that is missing fails the step
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nRUN --mount=type=secret,id=token,required=true cat /run/secrets/token "
        "| wc -c > /n\n")
    env_id = build_ok(store, "--secret", "id=token,env=MY_TOKEN", str(ctx),
                      env={"MY_TOKEN": SECRET})
    assert read(render(podkit, env_id, str(tmp_path / "e")), "n").strip() == str(len(SECRET))
    r = build(store, str(ctx))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("podkit-build: Dockerfile:2: ")
    assert "secret token is required" in r.stderr
    assert pods_left(store) == []


def test_cache_and_bind_mounts_heredocs_and_scripts(podkit, busybox, store, tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "tree" / "d").mkdir(parents=True)
    (ctx / "tree" / "d" / "f").write_text("bound\n")
    (ctx / "Dockerfile").write_text(
        "FROM busybox AS helper\nRUN echo from-stage > /made\n"
        "FROM busybox\n"
        "ARG N=1\n"
        "RUN --mount=type=cache,target=/var/cache/app,id=app "
        "sh -c 'echo run$N >> /var/cache/app/log; wc -l < /var/cache/app/log > /count'\n"
        "RUN --mount=type=bind,source=tree,target=/mnt/t cat /mnt/t/d/f > /from-context\n"
        "RUN --mount=type=bind,from=helper,source=/made,target=/mnt/m cat /mnt/m > /from-stage\n"
        "RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch > /tmpfs\n"
        "RUN <<EOT\necho heredoc > /hd\nEOT\n"
        "RUN <<EOT\n#!/bin/sh\necho \"script $0\" > /script\nEOT\n"
        "ARG WHO=world\n"
        "COPY <<EOF /etc/motd\nhello $WHO\nEOF\n"
        "COPY <<'EOF' /etc/raw\nhello $WHO\nEOF\n")
    first = render(podkit, build_ok(store, str(ctx)), str(tmp_path / "r1"))
    assert read(first, "count").strip() == "1"
    assert read(first, "from-context") == "bound\n" and read(first, "from-stage") == "from-stage\n"
    assert read(first, "tmpfs") == "x\n"
    assert not os.path.lexists(os.path.join(first, "scratch"))
    assert not os.path.lexists(os.path.join(first, "var/cache"))  # the mount point is no change
    assert read(first, "hd") == "heredoc\n" and read(first, "script") == "script /dev/pipes/EOT\n"
    assert read(first, "etc/motd") == "hello world\n" and read(first, "etc/raw") == "hello $WHO\n"
    assert not os.path.lexists(os.path.join(first, "dev"))
    # the cache directory persists between builds (a changed ARG reruns the step)
    second = render(podkit, build_ok(store, "--build-arg", "N=2", str(ctx)),
                    str(tmp_path / "r2"))
    assert read(second, "count").strip() == "2"


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_files():  # type: ignore[no-untyped-def]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Files.files
    finally:
        server.shutdown()
        server.server_close()


def test_add_url_with_checksum_and_network_none(podkit, busybox, store, tmp_path, http_files):
    base, files = http_files
    files["/tool.sh"] = b"#!/bin/sh\necho tool\n"
    files["/probe"] = b"reachable\n"
    digest = hashlib.sha256(files["/tool.sh"]).hexdigest()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        f"ADD --checksum=sha256:{digest} {base}/tool.sh /opt/\n"
        f"RUN wget -q -O /fetched {base}/probe\n"
        f"RUN --network=none wget -q -T 2 -O /x {base}/probe || echo blocked > /blocked\n")
    root = render(podkit, build_ok(store, str(ctx)), str(tmp_path / "r"))
    assert read(root, "opt/tool.sh") == "#!/bin/sh\necho tool\n"
    assert owner(root, "opt/tool.sh") == (0, 0, 0o600)
    assert os.lstat(os.path.join(root, "opt/tool.sh")).st_mtime == 1700000000
    assert read(root, "fetched") == "reachable\n"
    assert read(root, "blocked") == "blocked\n"

    # --network=none for the whole build
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN wget -q -T 2 -O /x {base}/probe\n")
    r = build(store, "--network=none", str(ctx))
    assert r.returncode == 1 and "exit code: 1" in r.stderr.splitlines()[-1]
    # a wrong checksum is a verification failure
    (ctx / "Dockerfile").write_text(f"FROM busybox\nADD --checksum=sha256:{'0' * 64} "
                                    f"{base}/tool.sh /opt/\n")
    r = build(store, str(ctx))
    assert r.returncode == 3, r.stderr
    assert "checksum mismatch" in r.stderr.splitlines()[-1]
    assert pods_left(store) == []


def test_dockerfile_from_stdin_and_containerfile(podkit, busybox, store, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM busybox\nLABEL from=containerfile\n")
    image_id = build_ok(store, str(ctx))
    assert inspect(podkit, image_id)["Config"]["config"]["Labels"] == {"from": "containerfile"}
    image_id = build_ok(store, "-f", "-", str(ctx), input="FROM busybox\nLABEL from=stdin\n")
    assert inspect(podkit, image_id)["Config"]["config"]["Labels"] == {"from": "stdin"}
    # FROM scratch: a COPY only, no RUN, no placeholders
    (ctx / "hello").write_text("hi\n")
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY hello /\nCMD [\"/hello\"]\n")
    doc = inspect(podkit, build_ok(store, str(ctx)))
    assert len(doc["Manifest"]["layers"]) == 1
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(layer_blobs(store, doc)[0]))]
    assert names == ["hello"]


def test_metadata_instructions_and_onbuild_triggers(podkit, busybox, store, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        "MAINTAINER someone@example.com\n"
        'SHELL ["/bin/sh", "-ec"]\n'
        "RUN echo \"$-\" > /flags\n"
        "HEALTHCHECK --interval=5s --retries=3 CMD true\n"
        "ONBUILD RUN echo triggered > /from-trigger\n"
        "STOPSIGNAL 9\n"
        "EXPOSE 9000-9001 53/UDP\n"
        "ENTRYPOINT echo entry\n"
        "CMD echo hi\n")
    parent = build_ok(store, "-t", "parent:1", str(ctx))
    doc = inspect(podkit, parent)["Config"]
    cfg = doc["config"]
    assert doc["author"] == "someone@example.com"
    assert cfg["Shell"] == ["/bin/sh", "-ec"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-ec", "echo entry"]
    assert cfg["Cmd"] == ["/bin/sh", "-ec", "echo hi"]
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000,
                                  "Retries": 3}
    assert cfg["OnBuild"] == ["RUN echo triggered > /from-trigger"]
    assert cfg["ExposedPorts"] == {"9000/tcp": {}, "9001/tcp": {}, "53/udp": {}}
    assert cfg["StopSignal"] == "9"
    assert "e" in read(render(podkit, parent, str(tmp_path / "p")), "flags")  # SHELL for RUN

    (ctx / "Dockerfile").write_text("FROM parent:1\nRUN cat /from-trigger > /seen\n")
    child = build_ok(store, str(ctx))
    assert read(render(podkit, child, str(tmp_path / "c")), "seen") == "triggered\n"
    assert "OnBuild" not in inspect(podkit, child)["Config"]["config"]


def test_a_missing_base_image_is_fetched_and_verified_per_policy(podkit, store, tmp_path,
                                                                 registry_images):
    ref = registry_images["tiny"]["ref"]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {ref}\nRUN echo fetched > /f\n")
    reject = tmp_path / "reject.json"
    reject.write_text('{"default": [{"type": "reject"}]}\n')
    r = build(store, "-q", str(ctx), env={"PODKIT_POLICY": str(reject)})
    assert r.returncode == 3, r.stderr  # the policy is asked, and it says no
    assert r.stderr.strip().splitlines()[-1].startswith(f"podkit-build: Dockerfile:1: FROM {ref}")
    assert podkit.ok("images", "-q") == ""
    image_id = build_ok(store, str(ctx))  # the session's accept-anything policy
    assert read(render(podkit, image_id, str(tmp_path / "r")), "f") == "fetched\n"
    names = podkit.ok("images", "--json")
    assert ref.split("/", 1)[1].split(":")[0] in names  # the base is in the store, named
