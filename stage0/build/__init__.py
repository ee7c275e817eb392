"""podkit-build: images from Dockerfiles, each RUN in a single-use stage1 pod.

Why a package: a build is more than one library call.  It reads a context
(:mod:`.context`), walks the stage plan of :mod:`libaci.dockerfile`, runs
every RUN in a fresh pod through the stage1 (:mod:`.runstep`, with its
mounts from :mod:`.runmounts`), does COPY,
ADD and WORKDIR in an overlay of the layers so far (:mod:`.fsops`,
:mod:`.copystep`), keeps a step cache in the store (:mod:`.cache`), and
publishes the image only when everything worked (:mod:`.engine`).
:mod:`.watch` rebuilds on every change of the context.
"""

from stage0.build.engine import Builder, BuildRequest
from stage0.build.errors import BuildError
from stage0.build.log import BuildLog

__all__ = ["BuildError", "BuildLog", "BuildRequest", "Builder"]
