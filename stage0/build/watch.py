"""``podkit-build --watch``: rebuild whenever the context changes.

After each build the context is polled (every path ``.dockerignore`` lets a
build see, plus the Dockerfile and the ignore files: type, mode, size, mtime,
ctime, link target).  A change starts a new build once the tree has been
still for one poll interval, so an editor's burst of writes makes one
rebuild.  Each build's image ID goes to stdout when it differs from the last
one printed; a failing build prints its one-line error on stderr and the
watch goes on (the next edit may fix it).  The steps an edit does not touch
come from the step cache, so a rebuild costs what changed.

It ends on SIGINT or SIGTERM: exit status 0 when that came while waiting for
a change, 130 when it interrupted a build (which leaves no image and no pod).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from libaci.errors import PodkitError

INTERVAL = 0.5  # seconds between looks at the context


def watch(build: Callable[[], str], fingerprint: Callable[[], object], *,
          emit: Callable[[str], None], prog: str = "podkit-build",
          interval: float = INTERVAL) -> int:
    """Build, then rebuild on every change of ``fingerprint()``, until interrupted."""
    last: str | None = None
    while True:
        before = fingerprint()
        try:
            image_id = build()
        except KeyboardInterrupt:
            return 130
        except PodkitError as e:
            print(f"{prog}: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
        else:
            if image_id != last:
                emit(image_id)
                last = image_id
        try:
            _wait_for_change(before, fingerprint, interval)
        except KeyboardInterrupt:
            return 0


def _wait_for_change(before: object, fingerprint: Callable[[], object],
                     interval: float) -> None:
    current = before
    while current == before:
        time.sleep(interval)
        current = fingerprint()
    while True:  # settle: one quiet interval
        time.sleep(interval)
        now = fingerprint()
        if now == current:
            return
        current = now
