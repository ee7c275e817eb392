"""libaci.appc: appc ImageManifest / PodManifest models, parsing and OCI conversion."""

from __future__ import annotations

import copy
import json

import pytest

from libaci.appc import (
    AC_VERSION,
    App,
    ImageManifest,
    NameValue,
    PodManifest,
    parse_image_manifest,
    parse_pod_manifest,
)
from libaci.appc_convert import (
    appc_os_arch,
    manifest_from_oci_config,
    sanitize_ac_identifier,
    sanitize_ac_name,
)
from libaci.errors import ManifestError

ID = "sha512-" + "ab" * 64

# appc spec/aci.md "Image Manifest Schema" example (imageID made a real hash).
SPEC_IMAGE = {
    "acKind": "ImageManifest",
    "acVersion": "0.5.2",
    "name": "example.com/reduce-worker",
    "labels": [
        {"name": "version", "value": "1.0.0"},
        {"name": "arch", "value": "amd64"},
        {"name": "os", "value": "linux"},
    ],
    "app": {
        "exec": ["/usr/bin/reduce-worker", "--quiet"],
        "user": "100",
        "group": "300",
        "eventHandlers": [
            {"exec": ["/usr/bin/data-downloader"], "name": "pre-start"},
            {"exec": ["/usr/bin/deregister-worker", "--verbose"], "name": "post-stop"},
        ],
        "workingDirectory": "/opt/work",
        "environment": [{"name": "REDUCE_WORKER_DEBUG", "value": "true"}],
        "isolators": [
            {"name": "resource/cpu", "value": {"request": "250", "limit": "500"}},
            {"name": "resource/memory", "value": {"request": "1G", "limit": "2G"}},
            {"name": "os/linux/capabilities-retain-set",
             "value": {"set": ["CAP_NET_BIND_SERVICE"]}},
        ],
        "mountPoints": [{"name": "work", "path": "/var/lib/work", "readOnly": False}],
        "ports": [
            {"name": "health", "port": 4000, "protocol": "tcp", "socketActivated": True},
            {"name": "ftp-data", "port": 20000, "count": 1000, "protocol": "tcp"},
        ],
    },
    "dependencies": [
        {
            "imageName": "example.com/reduce-worker-base",
            "imageID": ID,
            "labels": [{"name": "os", "value": "linux"}, {"name": "env", "value": "canary"}],
            "size": 22017258,
        }
    ],
    "pathWhitelist": [
        "/etc/ca/example.com/crt",
        "/usr/bin/map-reduce-worker",
        "/opt/libs/reduce-toolkit.so",
        "/etc/reduce-worker.conf",
        "/etc/systemd/system/",
    ],
    "annotations": [
        {"name": "authors", "value": "Carly Container <carly@example.com>"},
        {"name": "created", "value": "2014-10-27T19:32:27.67021798Z"},
        {"name": "documentation", "value": "https://example.com/docs"},
        {"name": "homepage", "value": "https://example.com"},
    ],
}

# appc spec/pods.md "Pod Manifest Schema" example (image IDs made real hashes).
SPEC_POD = {
    "acVersion": "0.6.1",
    "acKind": "PodManifest",
    "apps": [
        {
            "name": "reduce-worker",
            "image": {"name": "example.com/reduce-worker", "id": ID,
                      "labels": [{"name": "version", "value": "1.0.0"}]},
            "app": {
                "exec": ["/bin/reduce-worker", "--debug=true", "--data-dir=/mnt/foo"],
                "group": "0",
                "user": "0",
                "mountPoints": [{"name": "work", "path": "/mnt/foo"}],
            },
            "mounts": [{"volume": "work", "path": "/mnt/foo"}],
        },
        {
            "name": "backup",
            "image": {"name": "example.com/worker-backup", "id": ID,
                      "labels": [{"name": "version", "value": "1.0.0"}]},
            "app": {
                "exec": ["/bin/reduce-backup"],
                "group": "0",
                "user": "0",
                "mountPoints": [{"name": "backup", "path": "/mnt/bar"}],
                "isolators": [{"name": "resource/memory", "value": {"limit": "1G"}}],
            },
            "mounts": [{"volume": "work", "path": "/mnt/bar"}],
            "annotations": [{"name": "foo", "value": "baz"}],
        },
        {
            "name": "register",
            "image": {"name": "example.com/reduce-worker-register", "id": ID,
                      "labels": [{"name": "version", "value": "1.0.0"}]},
        },
    ],
    "volumes": [{"name": "work", "kind": "host", "source": "/opt/tenant1/work",
                 "readOnly": True}],
    "isolators": [{"name": "resource/memory", "value": {"limit": "4G"}}],
    "annotations": [{"name": "ip-address", "value": "10.1.2.3"}],
    "ports": [{"name": "ftp", "hostPort": 2121}],
}


def _with_unknowns_image() -> dict:
    d = copy.deepcopy(SPEC_IMAGE)
    d["x-top"] = {"nested": [1, 2]}
    d["labels"][0]["x-label"] = True
    d["app"]["x-app"] = "a"
    d["app"]["eventHandlers"][0]["x-eh"] = 1
    d["app"]["isolators"][0]["x-iso"] = None
    d["app"]["mountPoints"][0]["x-mp"] = 2
    d["app"]["ports"][1]["x-port"] = "p"
    d["app"]["userAnnotations"] = {"k": "v"}
    d["app"]["userLabels"] = {"l": "w"}
    d["app"]["supplementaryGIDs"] = [10, 20]
    d["dependencies"][0]["x-dep"] = []
    d["annotations"][1]["x-ann"] = 0
    return d


def _with_unknowns_pod() -> dict:
    d = copy.deepcopy(SPEC_POD)
    d["x-pod"] = 1
    d["apps"][0]["x-app"] = 2
    d["apps"][0]["image"]["x-image"] = 3
    d["apps"][0]["readOnlyRootFS"] = True
    d["apps"][0]["mounts"][0]["appVolume"] = {"name": "work", "kind": "empty", "mode": "0755",
                                              "uid": 0, "gid": 0, "x-vol": 4}
    d["volumes"][0]["recursive"] = False
    d["ports"][0]["hostIP"] = "127.0.0.1"
    d["ports"][0]["podPort"] = {"name": "ftp", "protocol": "tcp", "port": 21, "x-pp": 5}
    d["userAnnotations"] = {"a": "b"}
    d["userLabels"] = {"c": "d"}
    return d


# ----------------------------------------------------------------- round trip


def test_spec_image_example_round_trips() -> None:
    assert ImageManifest.from_dict(SPEC_IMAGE).to_dict() == SPEC_IMAGE


def test_unknown_image_fields_round_trip() -> None:
    d = _with_unknowns_image()
    m = ImageManifest.from_dict(d)
    assert m.extra == {"x-top": {"nested": [1, 2]}}
    assert m.app is not None and m.app.extra == {"x-app": "a"}
    assert m.to_dict() == d
    assert json.loads(m.to_json()) == d


def test_from_dict_does_not_mutate_input() -> None:
    d = _with_unknowns_image()
    before = copy.deepcopy(d)
    ImageManifest.from_dict(d)
    assert d == before


def test_spec_pod_example_round_trips() -> None:
    assert PodManifest.from_dict(SPEC_POD).to_dict() == SPEC_POD


def test_unknown_pod_fields_round_trip() -> None:
    d = _with_unknowns_pod()
    m = PodManifest.from_dict(d)
    assert m.extra == {"x-pod": 1}
    assert m.apps[0].mounts is not None
    assert m.apps[0].mounts[0].app_volume is not None
    assert m.apps[0].mounts[0].app_volume.mode == "0755"
    assert m.ports is not None and m.ports[0].pod_port is not None
    assert m.to_dict() == d
    assert json.loads(m.to_json()) == d


def test_nulls_written_by_go_round_trip() -> None:
    pod = {"acVersion": "0.8.11", "acKind": "PodManifest",
           "apps": [{"name": "a", "image": {"id": ID},
                     "app": {"exec": None, "user": "0", "group": "0"}}],
           "volumes": None, "isolators": None, "annotations": None, "ports": None}
    m = parse_pod_manifest(json.dumps(pod).encode())
    assert m.volumes is None and m.apps[0].app is not None and m.apps[0].app.exec is None
    assert m.to_dict() == pod
    # a field set later wins over a null remembered from the input
    import attrs
    m2 = attrs.evolve(m, volumes=())
    assert m2.to_dict()["volumes"] == []


def test_to_json_is_compact_with_stable_order() -> None:
    m = ImageManifest.from_dict(SPEC_IMAGE)
    raw = m.to_json()
    assert raw.startswith(b'{"acKind":"ImageManifest","acVersion":"0.5.2","name":')
    assert b": " not in raw and b", " not in raw and b"\n" not in raw
    assert ImageManifest.from_dict(json.loads(raw)).to_json() == raw


def test_to_json_keeps_utf8() -> None:
    m = ImageManifest(name="a", annotations=(NameValue("authors", "Zoë"),))
    assert "Zoë".encode() in m.to_json()


# ---------------------------------------------------------------- parse/helpers


def test_parse_spec_example_and_helpers() -> None:
    m = parse_image_manifest(json.dumps(SPEC_IMAGE).encode())
    assert (m.version, m.os, m.arch) == ("1.0.0", "linux", "amd64")
    assert m.label("missing") is None
    assert m.annotation("homepage") == "https://example.com"
    assert m.app is not None
    assert m.app.env("REDUCE_WORKER_DEBUG") == "true"
    assert m.app.isolators is not None
    assert m.app.isolators[0].value == {"request": "250", "limit": "500"}
    handler = m.app.event_handler("pre-start")
    assert handler is not None and handler.exec == ("/usr/bin/data-downloader",)
    assert m.app.ports is not None and m.app.ports[1].count == 1000


def test_parse_spec_pod_example() -> None:
    m = parse_pod_manifest(json.dumps(SPEC_POD).encode())
    backup = m.app("backup")
    assert backup is not None and backup.image.id == ID
    assert m.app("nope") is None
    assert m.annotation("ip-address") == "10.1.2.3"


def test_minimal_manifest_defaults() -> None:
    m = ImageManifest(name="example.com/x")
    assert m.to_dict() == {"acKind": "ImageManifest", "acVersion": AC_VERSION,
                           "name": "example.com/x"}
    assert m.version is None and m.os is None


def _bad(**changes: object) -> bytes:
    d = copy.deepcopy(SPEC_IMAGE)
    for path, value in changes.items():
        node = d
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[int(k)] if k.isdigit() else node[k]
        last = keys[-1]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return json.dumps(d).encode()


@pytest.mark.parametrize(("raw", "needle"), [
    (b"{not json", "invalid JSON"),
    (b"\xff\xfe", "UTF-8"),
    (b"[]", "appc-image-manifest"),
    (_bad(acKind="PodManifest"), "acKind"),
    (_bad(name="Not A Name"), "$.name"),
    (_bad(labels=[{"name": "os", "value": "linux"}, {"name": "os", "value": "linux"}]),
     'duplicate label "os"'),
    (_bad(labels=[{"name": "name", "value": "x"}]), "name"),
    (_bad(labels=[{"name": "os", "value": "plan9"}]), 'bad os "plan9"'),
    (_bad(labels=[{"name": "os", "value": "linux"}, {"name": "arch", "value": "x86_64"}]),
     'bad arch "x86_64" for linux'),
    (_bad(labels=[{"name": "os", "value": "darwin"}, {"name": "arch", "value": "amd64"}]),
     'bad arch "amd64" for darwin'),
    (_bad(app__environment=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
     'duplicate environment variable "A"'),
    (_bad(app__eventHandlers=[{"name": "pre-start", "exec": ["/a"]},
                              {"name": "pre-start", "exec": ["/b"]}]),
     'duplicate eventHandler "pre-start"'),
    (_bad(annotations=[{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]),
     'duplicate annotation "a"'),
    (_bad(app__workingDirectory="relative"), "workingDirectory"),
    (_bad(app__ports=[{"name": "p", "protocol": "tcp", "port": 65535, "count": 2}]),
     "port \"p\""),
    (_bad(app__user=""), "user"),
    (_bad(dependencies=[{"imageName": "x", "labels": [{"name": "os", "value": "beos"}]}]),
     "dependency x labels: bad os"),
])
def test_bad_image_manifests(raw: bytes, needle: str) -> None:
    with pytest.raises(ManifestError) as exc:
        parse_image_manifest(raw)
    msg = str(exc.value)
    assert needle in msg
    assert "\n" not in msg


def test_missing_required_field_without_schema() -> None:
    with pytest.raises(ManifestError, match="missing 'name'"):
        parse_image_manifest(b'{"acKind":"ImageManifest","acVersion":"0.8.11"}', validate=False)
    with pytest.raises(ManifestError, match="app: missing 'user'"):
        parse_image_manifest(b'{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a",'
                             b'"app":{"exec":[],"group":"0"}}', validate=False)
    with pytest.raises(ManifestError, match="labels: expected a list"):
        parse_image_manifest(b'{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a",'
                             b'"labels":{}}', validate=False)


def test_validate_false_skips_schema_and_semantics() -> None:
    raw = _bad(name="Not A Name", labels=[{"name": "os", "value": "plan9"}])
    m = parse_image_manifest(raw, validate=False)
    assert m.name == "Not A Name" and m.os == "plan9"
    with pytest.raises(ManifestError, match="invalid JSON"):
        parse_image_manifest(b"{", validate=False)


@pytest.mark.parametrize(("change", "needle"), [
    ({"apps": [SPEC_POD["apps"][0], SPEC_POD["apps"][0]]}, 'duplicate app "reduce-worker"'),
    ({"volumes": [{"name": "v", "kind": "host"}]}, "source"),
    ({"volumes": [{"name": "v", "kind": "host", "source": "rel"}]}, "source"),
    ({"volumes": [{"name": "v", "kind": "empty", "source": "/x"}]}, "no source"),
    ({"volumes": [{"name": "v", "kind": "empty"}, {"name": "v", "kind": "empty"}]},
     'duplicate volume "v"'),
    ({"acKind": "ImageManifest"}, "PodManifest"),
])
def test_bad_pod_manifests(change: dict, needle: str) -> None:
    d = copy.deepcopy(SPEC_POD)
    d.update(change)
    with pytest.raises(ManifestError) as exc:
        parse_pod_manifest(json.dumps(d).encode())
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


# ------------------------------------------------------------ OCI config -> appc

OCI_CONFIG = {
    "created": "2024-01-02T03:04:05Z",
    "author": "Someone <s@example.com>",
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "User": "1000:2000",
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8000-8002/tcp": {}},
        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "A=1=2", "NOEQUALS", "A=3"],
        "Entrypoint": ["/docker-entrypoint.sh"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "Volumes": {"/data": {}, "/var/cache/nginx": {}, "/Data": {}},
        "WorkingDir": "/srv",
        "Labels": {"maintainer": "nginx team"},
    },
    "rootfs": {"type": "layers", "diff_ids": []},
}


def test_manifest_from_oci_config_full() -> None:
    m = manifest_from_oci_config("registry-1.docker.io/library/nginx", "1.25", OCI_CONFIG)
    assert m.name == "registry-1.docker.io/library/nginx"
    assert (m.version, m.os, m.arch) == ("1.25", "linux", "amd64")
    assert m.annotation("created") == "2024-01-02T03:04:05Z"
    assert m.annotation("authors") == "Someone <s@example.com>"
    assert json.loads(m.annotation("appc.io/docker/entrypoint") or "") == [
        "/docker-entrypoint.sh"]
    assert json.loads(m.annotation("appc.io/docker/cmd") or "") == ["nginx", "-g", "daemon off;"]
    app = m.app
    assert app is not None
    assert app.exec == ("/docker-entrypoint.sh", "nginx", "-g", "daemon off;")
    assert (app.user, app.group) == ("1000", "2000")
    assert app.working_directory == "/srv"
    assert [(e.name, e.value) for e in app.environment or ()] == [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"), ("A", "3")]
    assert [(p.name, p.protocol, p.port, p.count) for p in app.ports or ()] == [
        ("53-udp", "udp", 53, None), ("80-tcp", "tcp", 80, None),
        ("8000-8002-tcp", "tcp", 8000, 3)]
    assert [(mp.name, mp.path) for mp in app.mount_points or ()] == [
        ("volume-data", "/data"), ("volume-data-1", "/Data"),
        ("volume-var-cache-nginx", "/var/cache/nginx")]
    assert app.user_labels == {"maintainer": "nginx team"}
    # what we produce passes our own schema and checks, byte-stable
    again = parse_image_manifest(m.to_json())
    assert again == m and again.to_json() == m.to_json()


@pytest.mark.parametrize(("user", "expected"), [
    ("", ("0", "0")),
    ("nginx", ("nginx", "nginx")),
    ("1000", ("1000", "1000")),
    ("1000:50", ("1000", "50")),
    ("www-data:www-data", ("www-data", "www-data")),
    (":50", ("0", "50")),
])
def test_oci_user(user: str, expected: tuple[str, str]) -> None:
    m = manifest_from_oci_config("x", None, {"config": {"User": user, "Cmd": ["/bin/sh"]}})
    assert m.app is not None and (m.app.user, m.app.group) == expected
    assert m.version is None and m.labels is None


@pytest.mark.parametrize(("arch", "variant", "appc_arch"), [
    ("amd64", None, "amd64"),
    ("arm64", None, "aarch64"),
    ("arm64", "v8", "aarch64"),
    ("arm", "v7", "armv7l"),
    ("arm", "v6", "armv6l"),
    ("arm", None, "armv6l"),
    ("386", None, "i386"),
    ("ppc64le", None, "ppc64le"),
    ("s390x", None, "s390x"),
])
def test_oci_platform(arch: str, variant: str | None, appc_arch: str) -> None:
    cfg: dict = {"os": "linux", "architecture": arch}
    if variant:
        cfg["variant"] = variant
    m = manifest_from_oci_config("x", "v1", cfg)
    assert (m.os, m.arch) == ("linux", appc_arch)
    assert m.app is None  # no "config" section: no app
    assert appc_os_arch("linux", arch, variant) == ("linux", appc_arch)


def test_oci_platform_without_appc_name() -> None:
    with pytest.raises(ManifestError, match="linux/riscv64 has no appc"):
        manifest_from_oci_config("x", None, {"os": "linux", "architecture": "riscv64"})
    with pytest.raises(ManifestError, match="linux/arm/v5"):
        manifest_from_oci_config("x", None, {"os": "linux", "architecture": "arm",
                                             "variant": "v5"})
    assert appc_os_arch("darwin", "amd64") == ("darwin", "x86_64")


def test_oci_empty_config_section() -> None:
    m = manifest_from_oci_config("x", None, {"config": {}})
    assert m.app == App(user="0", group="0", exec=())
    assert m.app.to_dict() == {"exec": [], "user": "0", "group": "0"}
    parse_image_manifest(m.to_json())


def test_oci_bad_port() -> None:
    with pytest.raises(ManifestError, match="bad exposed port"):
        manifest_from_oci_config("x", None, {"config": {"ExposedPorts": {"http/tcp": {}}}})


def test_sanitizers() -> None:
    assert sanitize_ac_identifier("Localhost:5000/My_Image") == "localhost_5000/my_image"
    assert sanitize_ac_identifier("/a/b/") == "a/b"
    assert sanitize_ac_name("volume//var/lib/My_Data/") == "volume-var-lib-my-data"
    assert sanitize_ac_name("80/tcp") == "80-tcp"
    with pytest.raises(ManifestError):
        sanitize_ac_name("///")
