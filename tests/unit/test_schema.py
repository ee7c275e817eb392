"""Schemas in ``schemas/`` and the validation boundary in :mod:`libaci.schema`."""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from libaci import schema
from libaci.errors import ImageError, ManifestError

ROOT = Path(__file__).resolve().parents[2]

SCHEMA_NAMES = {
    "oci-layout", "oci-descriptor", "oci-index", "oci-manifest", "oci-config",
    "docker-manifest-v2", "docker-manifest-list", "docker-archive-manifest",
    "appc-image-manifest", "appc-pod-manifest",
}


def sha256(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def sha512_id(data: str) -> str:
    return "sha512-" + hashlib.sha512(data.encode()).hexdigest()


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EMPTY = {
    "mediaType": "application/vnd.oci.empty.v1+json",
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
    "data": "e30=",
}

# --- valid documents, shaped as the peers write them -----------------------------------------

# umoci 0.4.7: no mediaType at all.
UMOCI_MANIFEST = {
    "schemaVersion": 2,
    "config": {"mediaType": OCI_CONFIG, "digest": sha256("config"), "size": 1084},
    "layers": [
        {"mediaType": OCI_LAYER_GZ, "digest": sha256("layer0"), "size": 2811947},
        {"mediaType": OCI_LAYER_GZ, "digest": sha256("layer1"), "size": 164},
    ],
}

# skopeo copy to oci: (and registries): mediaType present, annotations on the manifest.
SKOPEO_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": OCI_MANIFEST,
    "config": {"mediaType": OCI_CONFIG, "digest": sha256("cfg2"), "size": 581},
    "layers": [{"mediaType": OCI_LAYER_GZ, "digest": sha256("busybox"), "size": 2231088}],
    "annotations": {"org.opencontainers.image.created": "2024-01-02T03:04:05Z"},
}

ARTIFACT_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": OCI_MANIFEST,
    "artifactType": "application/vnd.example.sbom.v1+json",
    "config": EMPTY,
    "layers": [EMPTY],
    "subject": {"mediaType": OCI_MANIFEST, "digest": sha256("subject"), "size": 349},
    "annotations": {"org.opencontainers.image.title": "sbom.json"},
}

MULTI_ARCH_INDEX = {
    "schemaVersion": 2,
    "mediaType": OCI_INDEX,
    "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha256("amd64"), "size": 528,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": sha256("armv7"), "size": 528,
         "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
        {"mediaType": OCI_MANIFEST, "digest": sha256("arm64"), "size": 528,
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        {"mediaType": OCI_MANIFEST, "digest": sha256("win"), "size": 1125,
         "platform": {"architecture": "amd64", "os": "windows",
                      "os.version": "10.0.17763.5329", "os.features": ["win32k"]}},
        {"mediaType": OCI_INDEX, "digest": "sha512:" + hashlib.sha512(b"nested").hexdigest(),
         "size": 300},
    ],
    "annotations": {"org.opencontainers.image.ref.name": "1.36"},
}

# index.json of an OCI layout written by skopeo: tags only in ref.name, same digest twice.
LAYOUT_INDEX = {
    "schemaVersion": 2,
    "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha256("m"), "size": 406,
         "annotations": {"org.opencontainers.image.ref.name": "latest"}},
        {"mediaType": OCI_MANIFEST, "digest": sha256("m"), "size": 406,
         "annotations": {"org.opencontainers.image.ref.name": "1.0"}},
    ],
}

DOCKER_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": DOCKER_V2,
    "config": {"mediaType": DOCKER_CONFIG, "size": 1457, "digest": sha256("dcfg")},
    "layers": [
        {"mediaType": DOCKER_LAYER, "size": 2811947, "digest": sha256("alpine")},
        {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
         "size": 5, "digest": sha256("foreign"),
         "urls": ["https://mcr.microsoft.com/v2/windows/blobs/sha256:0"]},
    ],
}

DOCKER_MANIFEST_LIST = {
    "schemaVersion": 2,
    "mediaType": DOCKER_LIST,
    "manifests": [
        {"mediaType": DOCKER_V2, "size": 528, "digest": sha256("l-amd64"),
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": DOCKER_V2, "size": 528, "digest": sha256("l-arm"),
         "platform": {"architecture": "arm", "os": "linux", "variant": "v6",
                      "features": ["sse4"]}},
    ],
}

# Docker-built config: Go nil slices and maps are written as null; plenty of extra fields.
DOCKER_CONFIG_DOC = {
    "architecture": "amd64",
    "config": {
        "Hostname": "",
        "User": "",
        "ExposedPorts": {"80/tcp": {}},
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "Entrypoint": None,
        "OnBuild": None,
        "Image": sha256("parent"),
        "Volumes": None,
        "WorkingDir": "",
        "Labels": None,
        "StopSignal": "SIGQUIT",
        "ArgsEscaped": True,
    },
    "container": "3d5b7c4a",
    "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) CMD [\"nginx\"]"]},
    "created": "2024-02-14T18:25:06.207186402Z",
    "docker_version": "20.10.23",
    "history": [
        {"created": "2024-01-27T00:30:48Z", "created_by": "/bin/sh -c #(nop) ADD file:9a4f in / "},
        {"created": "2024-01-27T00:30:48Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]",
         "empty_layer": True},
    ],
    "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": [sha256("diff0"), sha256("diff1")]},
}

# umoci config after `umoci config --author ... --config.entrypoint`: variant, history comment.
UMOCI_CONFIG = {
    "created": "2024-03-01T10:00:00.123456789Z",
    "author": "podkit tests",
    "architecture": "arm64",
    "variant": "v8",
    "os": "linux",
    "config": {
        "User": "1000:1000",
        "Env": ["PATH=/bin"],
        "Entrypoint": ["/bin/app"],
        "Cmd": None,
        "WorkingDir": "/srv",
        "Volumes": {"/data": {}},
        "Labels": {"org.opencontainers.image.version": "1.0"},
    },
    "rootfs": {"type": "layers", "diff_ids": [sha256("u0")]},
    "history": [
        {"created": "2024-03-01T10:00:00Z", "created_by": "umoci config", "empty_layer": True,
         "comment": "", "author": "podkit tests"},
    ],
}

MINIMAL_CONFIG = {
    "architecture": "amd64", "os": "linux",
    "config": None, "history": None, "os.features": None,
    "rootfs": {"type": "layers", "diff_ids": []},
}

DOCKER_SAVE = [
    {
        "Config": hashlib.sha256(b"c").hexdigest() + ".json",
        "RepoTags": ["example.com/foo:bar", "foo:latest"],
        "Layers": [hashlib.sha256(b"d0").hexdigest() + "/layer.tar"],
    },
    {
        "Config": "blobs/sha256/" + hashlib.sha256(b"c2").hexdigest(),
        "RepoTags": None,
        "Layers": ["blobs/sha256/" + hashlib.sha256(b"d1").hexdigest()],
        "LayerSources": {
            sha256("d1"): {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar",
                           "size": 10, "digest": sha256("d1"), "urls": ["https://x/y"]},
        },
    },
]

# The example of appc spec/aci.md (0.8.11), with real image IDs.
APPC_IMAGE = {
    "acKind": "ImageManifest",
    "acVersion": "0.8.11",
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
        "supplementaryGIDs": [400, 500],
        "eventHandlers": [
            {"exec": ["/usr/bin/data-downloader"], "name": "pre-start"},
            {"exec": ["/usr/bin/deregister-worker", "--verbose"], "name": "post-stop"},
        ],
        "workingDirectory": "/opt/work",
        "environment": [{"name": "REDUCE_WORKER_DEBUG", "value": "true"}],
        "isolators": [
            {"name": "resource/cpu", "value": {"request": "250m", "limit": "500m"}},
            {"name": "resource/memory", "value": {"request": "1G", "limit": "2G"}},
            {"name": "os/linux/capabilities-retain-set",
             "value": {"set": ["CAP_NET_BIND_SERVICE"]}},
            {"name": "os/linux/no-new-privileges", "value": True},
        ],
        "mountPoints": [{"name": "work", "path": "/var/lib/work", "readOnly": False}],
        "ports": [
            {"name": "health", "port": 4000, "protocol": "tcp", "socketActivated": True},
            {"name": "ftp-data", "port": 20000, "count": 1000, "protocol": "tcp"},
        ],
        "userAnnotations": {"team": "reduce"},
        "userLabels": {"tier": "batch"},
    },
    "dependencies": [
        {
            "imageName": "example.com/reduce-worker-base",
            "imageID": sha512_id("base"),
            "labels": [{"name": "os", "value": "linux"}, {"name": "env", "value": "canary"}],
            "size": 22017258,
        },
    ],
    "pathWhitelist": ["/etc/ca/example.com/crt", "/usr/bin/map-reduce-worker",
                      "/etc/systemd/system/"],
    "annotations": [
        {"name": "authors", "value": "Carly Container <carly@example.com>"},
        {"name": "created", "value": "2014-10-27T19:32:27.67021798Z"},
        {"name": "documentation", "value": "https://example.com/docs"},
        {"name": "homepage", "value": "https://example.com"},
        {"name": "appc.io/executor/supports-systemd-notify", "value": "true"},
    ],
}

# A stage1-style image: no app at all.
APPC_IMAGE_NO_APP = {
    "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "coreos.com/rkt/stage1-coreos",
    "annotations": [{"name": "coreos.com/rkt/stage1/run", "value": "/init"}],
}

# The example of appc spec/pods.md, plus the 0.8.11 volume and port fields.
APPC_POD = {
    "acVersion": "0.8.11",
    "acKind": "PodManifest",
    "apps": [
        {
            "name": "reduce-worker",
            "image": {"name": "example.com/reduce-worker", "id": sha512_id("rw"),
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
            "image": {"name": "example.com/worker-backup", "id": sha512_id("bk")},
            "app": {
                "exec": ["/bin/reduce-backup"], "group": "0", "user": "0",
                "isolators": [{"name": "resource/memory", "value": {"limit": "1G"}}],
            },
            "readOnlyRootFS": True,
            "mounts": [{"volume": "scratch", "path": "/mnt/bar",
                        "appVolume": {"name": "scratch", "kind": "empty", "mode": "0755",
                                      "uid": 0, "gid": 0}}],
            "annotations": [{"name": "foo", "value": "baz"}],
        },
        {"name": "register", "image": {"id": sha512_id("reg")}},
    ],
    "volumes": [
        {"name": "work", "kind": "host", "source": "/opt/tenant1/work", "readOnly": True,
         "recursive": False},
        {"name": "cache", "kind": "empty", "mode": "1777", "uid": 1000, "gid": 1000},
    ],
    "isolators": [{"name": "resource/memory", "value": {"limit": "4G"}}],
    "annotations": [{"name": "coreos.com/rkt/stage1/mutable", "value": "false"}],
    "ports": [
        {"name": "ftp", "hostPort": 2121},
        {"name": "http", "hostPort": 8080, "hostIP": "127.0.0.1",
         "podPort": {"name": "http", "protocol": "tcp", "port": 80, "count": 1,
                     "socketActivated": False}},
    ],
    "userAnnotations": {"owner": "ops"},
    "userLabels": {"env": "test"},
}

# What Go's encoding/json writes for a pod without volumes, isolators, annotations or ports.
RKT_POD_NULLS = {
    "acVersion": "1.30.0", "acKind": "PodManifest",
    "apps": [{"name": "busybox", "image": {"id": sha512_id("bb")},
              "app": {"exec": None, "user": "0", "group": "0",
                      "ports": [{"name": "p", "protocol": "tcp", "port": 53, "count": 0,
                                 "socketActivated": False}]}}],
    "volumes": None, "isolators": None, "annotations": None, "ports": None,
}

VALID = [
    pytest.param("oci-layout", {"imageLayoutVersion": "1.0.0"}, id="oci-layout"),
    pytest.param("oci-descriptor", EMPTY, id="empty-descriptor"),
    pytest.param("oci-manifest", UMOCI_MANIFEST, id="umoci-manifest"),
    pytest.param("oci-manifest", SKOPEO_MANIFEST, id="skopeo-manifest"),
    pytest.param("oci-manifest", ARTIFACT_MANIFEST, id="artifact-manifest"),
    pytest.param("oci-manifest", {**UMOCI_MANIFEST, "layers": []}, id="no-layers"),
    pytest.param("oci-index", MULTI_ARCH_INDEX, id="multi-arch-index"),
    pytest.param("oci-index", LAYOUT_INDEX, id="layout-index"),
    pytest.param("oci-index", {"schemaVersion": 2, "manifests": []}, id="empty-index"),
    pytest.param("oci-config", DOCKER_CONFIG_DOC, id="docker-config-nulls"),
    pytest.param("oci-config", UMOCI_CONFIG, id="umoci-config"),
    pytest.param("oci-config", MINIMAL_CONFIG, id="minimal-config"),
    pytest.param("oci-config", {"architecture": "amd64", "os": "linux",
                                "rootfs": {"type": "layers"}}, id="docker-layerless-config"),
    pytest.param("docker-manifest-v2", DOCKER_MANIFEST, id="docker-schema2"),
    pytest.param("docker-manifest-list", DOCKER_MANIFEST_LIST, id="docker-list"),
    pytest.param("docker-archive-manifest", DOCKER_SAVE, id="docker-save"),
    pytest.param("appc-image-manifest", APPC_IMAGE, id="appc-spec-example"),
    pytest.param("appc-image-manifest", APPC_IMAGE_NO_APP, id="appc-no-app"),
    pytest.param("appc-pod-manifest", APPC_POD, id="appc-pod"),
    pytest.param("appc-pod-manifest", RKT_POD_NULLS, id="rkt-pod-nulls"),
]


@pytest.mark.parametrize(("name", "doc"), VALID)
def test_valid_documents(name: str, doc: object) -> None:
    schema.validate(doc, name)


@pytest.mark.parametrize(("name", "doc"), VALID)
def test_load_json_round_trip(name: str, doc: object) -> None:
    raw = json.dumps(doc, indent=1).encode()
    assert schema.load_json(raw, name) == doc


def test_every_valid_kind_is_exercised() -> None:
    assert {p.values[0] for p in VALID} == SCHEMA_NAMES


# --- unknown fields survive -------------------------------------------------------------------

def _with_unknowns(doc: Any) -> Any:
    """Add an unknown key to every object in *doc* (skipping free-form maps)."""
    doc = copy.deepcopy(doc)

    def walk(node: Any, key: str | None) -> None:
        if isinstance(node, dict):
            free_form = key in {"annotations", "Labels", "ExposedPorts", "Volumes", "value",
                                "userAnnotations", "userLabels", "LayerSources"}
            for k, v in list(node.items()):
                walk(v, k)
            if not free_form:
                node["x-podkit-future"] = {"nested": [1, None, "x"]}
        elif isinstance(node, list):
            for item in node:
                walk(item, None)

    walk(doc, None)
    return doc


@pytest.mark.parametrize(("name", "doc"), VALID)
def test_unknown_fields_accepted(name: str, doc: object) -> None:
    schema.validate(_with_unknowns(doc), name)


def test_unknown_media_types_and_algorithms_accepted() -> None:
    doc = copy.deepcopy(SKOPEO_MANIFEST)
    doc["layers"][0]["mediaType"] = "application/vnd.example.future.layer.v9+zstd"
    doc["layers"][0]["digest"] = "blake3:" + "A" * 40
    doc["layers"][0]["artifactType"] = "application/x-anything"
    schema.validate(doc, "oci-manifest")


# --- invalid documents: the message names kind, JSON path and reason ---------------------------

def _layers_bad_digest() -> dict[str, Any]:
    doc = copy.deepcopy(UMOCI_MANIFEST)
    doc["layers"][1]["digest"] = "sha256:xyz"
    return doc


def _mutate(doc: Any, path: list[str | int], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    node = doc
    for part in path[:-1]:
        node = node[part]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DELETE = object()
H64 = hashlib.sha256(b"x").hexdigest()

INVALID = [
    pytest.param("oci-manifest", _layers_bad_digest(),
                 "oci-manifest: $.layers[1].digest: 'sha256:xyz' does not match "
                 "'^sha256:[a-f0-9]{64}$'", id="bad-digest-layers-1"),
    pytest.param("oci-manifest", _mutate(UMOCI_MANIFEST, ["config", "size"], -1),
                 "oci-manifest: $.config.size: -1 is less than the minimum of 0",
                 id="negative-size"),
    pytest.param("oci-manifest", _mutate(UMOCI_MANIFEST, ["schemaVersion"], 1),
                 "oci-manifest: $.schemaVersion: 2 was expected", id="schema-version-1"),
    pytest.param("oci-manifest", _mutate(UMOCI_MANIFEST, ["config"], _DELETE),
                 "oci-manifest: $: 'config' is a required property", id="missing-config"),
    pytest.param("oci-manifest", _mutate(UMOCI_MANIFEST, ["layers", 0, "size"], "12"),
                 "oci-manifest: $.layers[0].size: '12' is not of type 'integer'",
                 id="size-string"),
    pytest.param("oci-manifest", _mutate(UMOCI_MANIFEST, ["layers", 0, "size"], True),
                 "oci-manifest: $.layers[0].size: True is not of type 'integer'",
                 id="size-bool"),
    pytest.param("oci-manifest", _mutate(UMOCI_MANIFEST, ["layers", 0, "size"], 2**63),
                 "oci-manifest: $.layers[0].size: 9223372036854775808 is greater than the "
                 "maximum of 9223372036854775807", id="size-over-int64"),
    pytest.param("oci-manifest",
                 _mutate(UMOCI_MANIFEST, ["layers", 0, "digest"], "sha256:" + H64.upper()),
                 "$.layers[0].digest", id="sha256-uppercase"),
    pytest.param("oci-manifest",
                 _mutate(UMOCI_MANIFEST, ["layers", 0, "digest"], "sha256:" + H64 + "\n"),
                 "$.layers[0].digest", id="digest-trailing-newline"),
    pytest.param("oci-manifest", _mutate(UMOCI_MANIFEST, ["layers", 0, "digest"], "sha512:" + H64),
                 "oci-manifest: $.layers[0].digest: 'sha512:" + H64 + "' does not match "
                 "'^sha512:[a-f0-9]{128}$'", id="sha512-too-short"),
    pytest.param("oci-manifest", _mutate(UMOCI_MANIFEST, ["layers", 0, "digest"], "SHA256:" + H64),
                 "$.layers[0].digest", id="algorithm-uppercase"),
    pytest.param("oci-manifest", _mutate(UMOCI_MANIFEST, ["layers", 0, "digest"], H64),
                 "$.layers[0].digest", id="digest-without-algorithm"),
    pytest.param("oci-manifest", _mutate(UMOCI_MANIFEST, ["layers", 0, "mediaType"], "gzip"),
                 "$.layers[0].mediaType", id="media-type-grammar"),
    pytest.param("oci-manifest", _mutate(UMOCI_MANIFEST, ["layers"], None),
                 "oci-manifest: $.layers: None is not of type 'array'", id="layers-null"),
    pytest.param("oci-manifest",
                 _mutate(SKOPEO_MANIFEST, ["annotations", "org.opencontainers.image.created"], 5),
                 "oci-manifest: $.annotations[\"org.opencontainers.image.created\"]: "
                 "5 is not of type 'string'", id="annotation-not-string"),
    pytest.param("oci-manifest", _mutate(ARTIFACT_MANIFEST, ["config", "data"], "e30"),
                 "$.config.data", id="data-not-base64"),
    pytest.param("oci-manifest", _mutate(ARTIFACT_MANIFEST, ["subject", "digest"], "sha256:"),
                 "$.subject.digest", id="subject-bad-digest"),
    pytest.param("oci-manifest", [], "oci-manifest: $: [] is not of type 'object'",
                 id="not-an-object"),
    pytest.param("oci-index",
                 _mutate(MULTI_ARCH_INDEX, ["manifests", 1, "platform", "os"], _DELETE),
                 "oci-index: $.manifests[1].platform: 'os' is a required property",
                 id="platform-without-os"),
    pytest.param("oci-index",
                 _mutate(MULTI_ARCH_INDEX, ["manifests", 3, "platform", "os.features"], "win32k"),
                 "oci-index: $.manifests[3].platform[\"os.features\"]: 'win32k' is not of type "
                 "'array'", id="os-features-string"),
    pytest.param("oci-index", _mutate(LAYOUT_INDEX, ["manifests"], _DELETE),
                 "oci-index: $: 'manifests' is a required property", id="index-no-manifests"),
    pytest.param("oci-config", _mutate(UMOCI_CONFIG, ["rootfs", "type"], "layer"),
                 "oci-config: $.rootfs.type: 'layers' was expected", id="rootfs-type"),
    pytest.param("oci-config", _mutate(UMOCI_CONFIG, ["rootfs", "diff_ids", 0], "sha256:abc"),
                 "$.rootfs.diff_ids[0]", id="bad-diff-id"),
    pytest.param("oci-config", _mutate(UMOCI_CONFIG, ["rootfs"], _DELETE),
                 "oci-config: $: 'rootfs' is a required property", id="no-rootfs"),
    pytest.param("oci-config", _mutate(UMOCI_CONFIG, ["config", "Env"], "PATH=/bin"),
                 "oci-config: $.config.Env: 'PATH=/bin' is not of type 'array', 'null'",
                 id="env-string"),
    pytest.param("oci-config", _mutate(UMOCI_CONFIG, ["config", "Labels", "a"], None),
                 "oci-config: $.config.Labels.a: None is not of type 'string'",
                 id="label-null-value"),
    pytest.param("oci-config", _mutate(UMOCI_CONFIG, ["history", 0, "empty_layer"], "yes"),
                 "$.history[0].empty_layer", id="empty-layer-string"),
    pytest.param("oci-config", _mutate(UMOCI_CONFIG, ["architecture"], None),
                 "oci-config: $.architecture: None is not of type 'string'", id="arch-null"),
    pytest.param("oci-layout", {"imageLayoutVersion": 1},
                 "oci-layout: $.imageLayoutVersion: 1 is not of type 'string'", id="layout-int"),
    pytest.param("oci-layout", {}, "oci-layout: $: 'imageLayoutVersion' is a required property",
                 id="layout-empty"),
    pytest.param("docker-manifest-v2", _mutate(DOCKER_MANIFEST, ["mediaType"], _DELETE),
                 "docker-manifest-v2: $: 'mediaType' is a required property",
                 id="docker-no-media-type"),
    pytest.param("docker-manifest-v2", _mutate(DOCKER_MANIFEST, ["mediaType"], OCI_MANIFEST),
                 "docker-manifest-v2: $.mediaType: '" + DOCKER_V2 + "' was expected",
                 id="docker-oci-media-type"),
    pytest.param("docker-manifest-v2", _mutate(DOCKER_MANIFEST, ["layers", 1, "size"], -5),
                 "docker-manifest-v2: $.layers[1].size: -5 is less than the minimum of 0",
                 id="docker-negative-size"),
    pytest.param("docker-manifest-list",
                 _mutate(DOCKER_MANIFEST_LIST, ["manifests", 1, "platform"], _DELETE),
                 "docker-manifest-list: $.manifests[1]: 'platform' is a required property",
                 id="list-without-platform"),
    pytest.param("docker-manifest-list", _mutate(DOCKER_MANIFEST_LIST, ["mediaType"], DOCKER_V2),
                 "docker-manifest-list: $.mediaType: '" + DOCKER_LIST + "' was expected",
                 id="list-media-type"),
    pytest.param("docker-archive-manifest", _mutate(DOCKER_SAVE, [0, "Config"], _DELETE),
                 "docker-archive-manifest: $[0]: 'Config' is a required property",
                 id="save-no-config"),
    pytest.param("docker-archive-manifest", _mutate(DOCKER_SAVE, [1, "RepoTags"], "foo:latest"),
                 "docker-archive-manifest: $[1].RepoTags: 'foo:latest' is not of type 'array', "
                 "'null'", id="save-repotags-string"),
    pytest.param("docker-archive-manifest", DOCKER_SAVE[0],
                 "$", id="save-not-a-list"),
    pytest.param("appc-image-manifest", _mutate(APPC_IMAGE, ["name"], "Example.com/Reduce"),
                 "appc-image-manifest: $.name: 'Example.com/Reduce' does not match "
                 "'^[a-z0-9]+([-._~/][a-z0-9]+)*$'", id="bad-appc-name"),
    pytest.param("appc-image-manifest", _mutate(APPC_IMAGE, ["name"], "example.com/x\n"),
                 "$.name", id="appc-name-newline"),
    pytest.param("appc-image-manifest", _mutate(APPC_IMAGE, ["app", "ports", 0, "port"], 0),
                 "appc-image-manifest: $.app.ports[0].port: 0 is less than the minimum of 1",
                 id="port-0"),
    pytest.param("appc-image-manifest", _mutate(APPC_IMAGE, ["app", "ports", 1, "port"], 65536),
                 "appc-image-manifest: $.app.ports[1].port: 65536 is greater than the maximum "
                 "of 65535", id="port-65536"),
    pytest.param("appc-image-manifest", _mutate(APPC_IMAGE, ["app", "ports", 1, "count"], -1),
                 "$.app.ports[1].count", id="port-count-negative"),
    pytest.param("appc-image-manifest", _mutate(APPC_IMAGE, ["app", "ports", 0, "name"], "Health"),
                 "$.app.ports[0].name", id="port-name-not-acname"),
    pytest.param("appc-image-manifest",
                 _mutate(APPC_IMAGE, ["app", "mountPoints", 0, "name"], "my.work"),
                 "appc-image-manifest: $.app.mountPoints[0].name: 'my.work' does not match "
                 "'^[a-z0-9]+([-][a-z0-9]+)*$'", id="mountpoint-acname"),
    pytest.param("appc-image-manifest", _mutate(APPC_IMAGE, ["acKind"], "PodManifest"),
                 "appc-image-manifest: $.acKind: 'ImageManifest' was expected", id="ackind"),
    pytest.param("appc-image-manifest", _mutate(APPC_IMAGE, ["acVersion"], "0.8"),
                 "$.acVersion", id="acversion-not-semver"),
    pytest.param("appc-image-manifest", _mutate(APPC_IMAGE, ["app", "user"], _DELETE),
                 "appc-image-manifest: $.app: 'user' is a required property", id="app-no-user"),
    pytest.param("appc-image-manifest", _mutate(APPC_IMAGE, ["app", "group"], ""),
                 "$.app.group", id="app-empty-group"),
    pytest.param("appc-image-manifest",
                 _mutate(APPC_IMAGE, ["app", "eventHandlers", 1, "name"], "pre-stop"),
                 "appc-image-manifest: $.app.eventHandlers[1].name: 'pre-stop' is not one of "
                 "['pre-start', 'post-stop']", id="event-handler-name"),
    pytest.param("appc-image-manifest", _mutate(APPC_IMAGE, ["app", "workingDirectory"], "opt"),
                 "$.app.workingDirectory", id="relative-working-directory"),
    pytest.param("appc-image-manifest",
                 _mutate(APPC_IMAGE, ["app", "environment", 0, "name"], "1BAD"),
                 "$.app.environment[0].name", id="env-name"),
    pytest.param("appc-image-manifest", _mutate(APPC_IMAGE, ["labels", 0, "name"], "name"),
                 "$.labels[0].name", id="label-called-name"),
    pytest.param("appc-image-manifest",
                 _mutate(APPC_IMAGE, ["dependencies", 0, "imageID"], sha256("x")),
                 "$.dependencies[0].imageID", id="dependency-sha256-id"),
    pytest.param("appc-image-manifest",
                 _mutate(APPC_IMAGE, ["dependencies", 0, "imageName"], _DELETE),
                 "appc-image-manifest: $.dependencies[0]: 'imageName' is a required property",
                 id="dependency-no-name"),
    pytest.param("appc-image-manifest",
                 _mutate(APPC_IMAGE, ["app", "isolators", 0, "value"], _DELETE),
                 "appc-image-manifest: $.app.isolators[0]: 'value' is a required property",
                 id="isolator-no-value"),
    pytest.param("appc-pod-manifest", _mutate(APPC_POD, ["apps", 2, "image", "id"], _DELETE),
                 "appc-pod-manifest: $.apps[2].image: 'id' is a required property",
                 id="pod-image-no-id"),
    pytest.param("appc-pod-manifest", _mutate(APPC_POD, ["apps", 0, "name"], "Reduce_Worker"),
                 "$.apps[0].name", id="pod-app-name"),
    pytest.param("appc-pod-manifest", _mutate(APPC_POD, ["volumes", 1, "kind"], "tmpfs"),
                 "appc-pod-manifest: $.volumes[1].kind: 'tmpfs' is not one of ['host', 'empty']",
                 id="volume-kind"),
    pytest.param("appc-pod-manifest", _mutate(APPC_POD, ["volumes", 0, "source"], _DELETE),
                 "appc-pod-manifest: $.volumes[0]: 'source' is a required property",
                 id="host-volume-no-source"),
    pytest.param("appc-pod-manifest", _mutate(APPC_POD, ["volumes", 0, "source"], "opt/work"),
                 "appc-pod-manifest: $.volumes[0].source: 'opt/work' does not match '^/'",
                 id="host-volume-relative"),
    pytest.param("appc-pod-manifest", _mutate(APPC_POD, ["volumes", 1, "mode"], "rwx"),
                 "$.volumes[1].mode", id="volume-mode"),
    pytest.param("appc-pod-manifest",
                 _mutate(APPC_POD, ["apps", 1, "mounts", 0, "appVolume", "kind"], "nfs"),
                 "$.apps[1].mounts[0].appVolume.kind", id="app-volume-kind"),
    pytest.param("appc-pod-manifest", _mutate(APPC_POD, ["ports", 1, "podPort", "port"], 0),
                 "appc-pod-manifest: $.ports[1].podPort.port: 0 is less than the minimum of 1",
                 id="pod-port-0"),
    pytest.param("appc-pod-manifest", _mutate(APPC_POD, ["ports", 0, "hostPort"], 70000),
                 "$.ports[0].hostPort", id="host-port-range"),
    pytest.param("appc-pod-manifest", _mutate(APPC_POD, ["acKind"], "ImageManifest"),
                 "appc-pod-manifest: $.acKind: 'PodManifest' was expected", id="pod-ackind"),
    pytest.param("appc-pod-manifest", _mutate(APPC_POD, ["apps"], _DELETE),
                 "appc-pod-manifest: $: 'apps' is a required property", id="pod-no-apps"),
]


@pytest.mark.parametrize(("name", "doc", "message"), INVALID)
def test_invalid_documents(name: str, doc: object, message: str) -> None:
    """*message* is the whole message, or only the JSON path when it starts with ``$``."""
    with pytest.raises(ManifestError) as info:
        schema.validate(doc, name)
    text = str(info.value)
    assert "\n" not in text
    if message.startswith("$"):
        assert text.startswith(f"{name}: {message}: ")
    else:
        assert text == message


def test_manifest_error_is_an_image_error() -> None:
    with pytest.raises(ImageError):
        schema.validate({}, "oci-manifest")


def test_long_values_are_shortened() -> None:
    doc = _mutate(UMOCI_MANIFEST, ["layers", 0, "digest"], "sha256:" + "z" * 10_000)
    with pytest.raises(ManifestError) as info:
        schema.validate(doc, "oci-manifest")
    text = str(info.value)
    assert text.startswith("oci-manifest: $.layers[0].digest: 'sha256:zzz")
    assert "..." in text
    assert len(text) < 250


def test_huge_wrong_type_is_shortened() -> None:
    with pytest.raises(ManifestError) as info:
        schema.validate({"schemaVersion": 2, "manifests": {str(i): i for i in range(5000)}},
                        "oci-index")
    assert len(str(info.value)) < 250
    assert "is not of type 'array'" in str(info.value)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ([], "$"),
        (["layers", 0, "digest"], "$.layers[0].digest"),
        ([3, "Config"], "$[3].Config"),
        (["platform", "os.version"], '$.platform["os.version"]'),
        (["annotations", "with \"quote\""], '$.annotations["with \\"quote\\""]'),
        (["a b", "_ok1"], '$["a b"]._ok1'),
    ],
)
def test_json_path(path: list[str | int], expected: str) -> None:
    assert schema.json_path(path) == expected


# --- load_json -------------------------------------------------------------------------------

def test_load_json_invalid_json_names_line_and_column() -> None:
    raw = b'{\n  "schemaVersion": 2,\n  "layers": [\n}\n'
    with pytest.raises(ManifestError) as info:
        schema.load_json(raw, "oci-manifest")
    assert str(info.value).startswith("oci-manifest: invalid JSON at line 4, column 1: ")
    assert "\n" not in str(info.value)


def test_load_json_empty() -> None:
    with pytest.raises(ManifestError, match=r"^oci-index: invalid JSON at line 1, column 1: "):
        schema.load_json(b"", "oci-index")


def test_load_json_not_utf8() -> None:
    raw = json.dumps(UMOCI_MANIFEST).encode().replace(b'"config"', b'"conf\xffig"')
    with pytest.raises(ManifestError, match=r"^oci-manifest: not UTF-8 \(byte 0xff at offset "):
        schema.load_json(raw, "oci-manifest")


def test_load_json_utf16_refused() -> None:
    raw = json.dumps({"imageLayoutVersion": "1.0.0"}).encode("utf-16")
    with pytest.raises(ManifestError, match=r"^oci-layout: "):
        schema.load_json(raw, "oci-layout")


def test_load_json_bom_refused() -> None:
    raw = b"\xef\xbb\xbf" + json.dumps({"imageLayoutVersion": "1.0.0"}).encode()
    with pytest.raises(ManifestError, match=r"^oci-layout: invalid JSON at line 1, column 1"):
        schema.load_json(raw, "oci-layout")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_load_json_rejects_non_json_constants(constant: str) -> None:
    raw = b'{"imageLayoutVersion": "1.0.0", "x": ' + constant.encode() + b"}"
    with pytest.raises(ManifestError,
                       match=rf"^oci-layout: invalid JSON: {constant} is not a JSON value$"):
        schema.load_json(raw, "oci-layout")


def test_load_json_huge_integer() -> None:
    raw = b'{"imageLayoutVersion": "1.0.0", "x": ' + b"9" * 5000 + b"}"
    with pytest.raises(ManifestError, match=r"^oci-layout: invalid JSON: "):
        schema.load_json(raw, "oci-layout")


def test_load_json_deep_nesting() -> None:
    raw = b'{"imageLayoutVersion": "1.0.0", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ManifestError, match=r"^oci-layout: invalid JSON: nested too deeply$"):
        schema.load_json(raw, "oci-layout")


def test_load_json_validates() -> None:
    raw = json.dumps(_layers_bad_digest()).encode()
    with pytest.raises(ManifestError, match=r"^oci-manifest: \$\.layers\[1\]\.digest: "):
        schema.load_json(raw, "oci-manifest")


def test_load_json_keeps_unknown_fields() -> None:
    raw = b'{"imageLayoutVersion": "1.0.0", "podkit.future": {"a": [1, 2]}}'
    assert schema.load_json(raw, "oci-layout") == {
        "imageLayoutVersion": "1.0.0", "podkit.future": {"a": [1, 2]}}


def test_unknown_schema_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown schema"):
        schema.validate({}, "oci-manifest-v3")
    with pytest.raises(ValueError, match="unknown schema"):
        schema.load_json(b"{}", "../setup")


# --- the schema files themselves -------------------------------------------------------------

def test_schema_names() -> None:
    assert schema.schema_names() == SCHEMA_NAMES
    on_disk = {p.stem for p in (ROOT / "schemas").glob("*.json")}
    assert on_disk == SCHEMA_NAMES


@pytest.mark.parametrize("name", sorted(SCHEMA_NAMES))
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    document = schema.load_schema(name)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"] == f"https://podkit.dev/schemas/{name}.json"
    Draft202012Validator.check_schema(document)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


@pytest.mark.parametrize("name", sorted(SCHEMA_NAMES))
def test_every_ref_resolves_locally(name: str) -> None:
    registry: Registry[Any] = Registry().with_resources(
        (schema.load_schema(n)["$id"], DRAFT202012.create_resource(schema.load_schema(n)))
        for n in SCHEMA_NAMES)
    document = schema.load_schema(name)
    resolver = registry.resolver(base_uri=document["$id"])
    for ref in _refs(document):
        assert ref.startswith(("#", "https://podkit.dev/schemas/")), ref
        resolver.lookup(ref)


def test_schemas_ship_as_package_data() -> None:
    setup_cfg = (ROOT / "setup.cfg").read_text()
    assert "schemas = *.json" in setup_cfg
    assert (ROOT / "schemas" / "__init__.py").read_text().strip().startswith('"""JSON Schemas')


def test_import_does_not_load_jsonschema() -> None:
    code = ("import sys, libaci.schema; "
            "bad = [m for m in ('jsonschema', 'referencing') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
