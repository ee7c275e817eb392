"""Shared fixtures: one set of test images per run, a fresh store per test."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import Podkit


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
