"""The README's main job: demo.sh, the whole walkthrough, run as CI runs it.

With a reachable Debian mirror (and debootstrap) the base image is Debian
and a package is installed inside the interactive pod; without one the demo
uses busybox and says that it skips the install.  Either way every step must
succeed: build, sign, push, verified fetch into a fresh store, the scripted
terminal session, list, commit, push (base layers skipped), fetch into another
store, serve HTTP and curl it.
"""

from __future__ import annotations

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_walkthrough_runs_end_to_end():
    env = {k: v for k, v in os.environ.items() if k not in ("PODKIT_POLICY", "PODKIT_CONFIG_DIR")}
    r = subprocess.run(["bash", os.path.join(ROOT, "demo.sh")], capture_output=True, text=True,
                       timeout=900, check=False, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "served by a committed podkit image" in out
    assert "Layer already exists, skipping" in out
    assert "rejected by policy" in out  # the unsigned image
    assert out.count("  ok  ") == 7, out[-2000:]
    if "base image (debian)" not in out:
        assert "skipping the install" in out  # says so when it could not install
    assert not [d for d in os.listdir("/var/tmp") if d.startswith("podkit-demo.")]
