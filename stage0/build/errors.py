"""The error of a build step that failed (a RUN's exit status, a COPY that cannot be done)."""

from __future__ import annotations

from libaci.errors import PodkitError


class BuildError(PodkitError):
    """A step of the build failed (exit status 1); the message names file, line and step."""
