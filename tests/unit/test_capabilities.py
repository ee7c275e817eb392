"""stage0 and the stage1s number capabilities alike, as the kernel does.

podspec.ALL_CAPS (stage0: names in the pod manifest) and podkit_s1.CAPS (the
stage1s: numbers for prctl and the bounding set) are two copies on purpose: a
stage1 is a program of its own behind the ABI and imports nothing of stage0.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from stage0 import podspec

ROOT = Path(__file__).resolve().parents[2]


def _stage1_common():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "podkit_s1_under_test", ROOT / "stage1" / "common" / "podkit_s1.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_stage0_and_stage1_agree() -> None:
    s1 = _stage1_common()
    assert podspec.ALL_CAPS == s1.CAPS
    assert len(s1.CAPS) == s1.LAST_CAP + 1
    assert set(podspec.DEFAULT_CAPS) <= set(podspec.ALL_CAPS)


def test_numbers_are_the_kernels() -> None:
    """The index of a name is its number (linux/capability.h): spot checks, and the
    running kernel knows at least as many."""
    caps = podspec.ALL_CAPS
    assert caps.index("CAP_CHOWN") == 0
    assert caps.index("CAP_NET_ADMIN") == 12
    assert caps.index("CAP_SYS_ADMIN") == 21
    assert caps.index("CAP_AUDIT_READ") == 37
    assert caps.index("CAP_CHECKPOINT_RESTORE") == 40
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    assert last >= len(caps) - 1
