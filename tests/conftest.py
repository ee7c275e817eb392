"""Shared fixtures: one set of test images per run, a fresh store per test."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import Podkit


@pytest.fixture(scope="session", autouse=True)
def _accept_anything():  # type: ignore[no-untyped-def]
    """podkit refuses unsigned images from the network by default; the tests run under
    a policy that accepts anything (tests/integration/test_trust.py sets its own), with a
    configuration directory of their own (never /etc/podkit), readable by every user
    (tests run commands as nobody too)."""
    import shutil
    import tempfile

    config = tempfile.mkdtemp(prefix="podkit-test-config-")
    os.chmod(config, 0o755)
    policy = os.path.join(config, "accept-anything.json")
    with open(policy, "w") as f:
        f.write('{"default": [{"type": "insecureAcceptAnything"}],\n'
                ' "transports": {"appc": {"": [{"type": "insecureAcceptAnything"}]}}}\n')
    os.chmod(policy, 0o644)
    os.environ["PODKIT_POLICY"] = policy
    os.environ["PODKIT_CONFIG_DIR"] = config
    yield
    shutil.rmtree(config, ignore_errors=True)


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The test images (see tests/imagekit.py), built once per run."""
    import imagekit

    return imagekit.build_all(str(tmp_path_factory.mktemp("images")))


@pytest.fixture
def store(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return str(tmp_path / "store")


@pytest.fixture
def podkit(store: str) -> Podkit:
    return Podkit(store)


# --- registries (tests/regkit.py): one of each per run, stopped at session end ---------


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Plain-HTTP, no-auth distribution 2.8 registry (``regkit.Registry``)."""
    import regkit

    reg = regkit.Registry(str(tmp_path_factory.mktemp("registry")))
    try:
        yield reg.start()
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """HTTPS (throw-away CA: ``.ca_file``, ``.cert_dir``) + htpasswd alice/wonderland."""
    import regkit

    reg = regkit.Registry(str(tmp_path_factory.mktemp("tls-registry")), tls=True,
                          htpasswd={regkit.USER: regkit.PASSWORD})
    try:
        yield reg.start()
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Plain-HTTP registry with Bearer-token auth; ``.token`` is the ``regkit.TokenServer``
    (anonymous: pull; alice/wonderland: pull+push)."""
    import regkit

    work = str(tmp_path_factory.mktemp("token-registry"))
    reg = regkit.Registry(work, token=regkit.TokenServer(os.path.join(work, "token")))
    try:
        yield reg.start()
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def registry_images(registry, images) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """The imagekit images pushed to ``registry`` as ``test/<name>:1``:
    name -> {"ref": "ADDR/test/<name>:1", "repo": "test/<name>", "digest": "sha256:..."}
    for tiny, multi, multi-docker (schema2), multi-plain, multi-zstd, multiarch (index)."""
    import regkit

    return regkit.push_test_images(registry, images["layout"])


@pytest.fixture
def fault_server(registry):  # type: ignore[no-untyped-def]
    """A fresh ``regkit.FaultServer`` proxying ``registry`` (no faults until told)."""
    import regkit

    fs = regkit.FaultServer(registry)
    try:
        yield fs.start()
    finally:
        fs.stop()


@pytest.fixture
def repo(request) -> str:  # type: ignore[no-untyped-def]
    """A repository name no other test uses: ``test/<test name>-<n>``."""
    import regkit

    return regkit.unique_repo(request.node.name)
