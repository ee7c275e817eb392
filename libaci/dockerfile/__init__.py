"""The front end of podkit-build: Dockerfiles as BuildKit reads them.

Why a package of its own: the Dockerfile language is defined by BuildKit's
Go code, quirks included, and the build engine should not have to care.
This package turns Dockerfile text into checked, typed instructions and a
build plan, and walks each stage's variable scope and image config, all
without touching a filesystem or running anything:

* :mod:`.parser` -- text to AST (directives, continuation, heredocs, JSON
  forms, flags), printable in BuildKit's parser-corpus format;
* :mod:`.shell` -- BuildKit's variable expansion and word splitting;
* :mod:`.instructions` -- typed instructions and stages;
* :mod:`.loader` -- parser nodes to instructions, validated as BuildKit does;
* :mod:`.mounts` -- ``RUN --mount`` specifications;
* :mod:`.plan` -- global ARGs, stage bases and dependencies, ``--target``;
* :mod:`.dispatch` -- per-stage ARG/ENV scope, expansion, image config and
  history, and what RUN/COPY/ADD must do;
* :mod:`.ignore` -- ``.dockerignore`` and Docker's pattern matcher;
* :mod:`.sources` -- which files a COPY/ADD takes and where they land.

Errors are :class:`~libaci.dockerfile.errors.DockerfileError` (a
``UsageError``), one line with the file name and line number.
"""

from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.instructions import Dockerfile, Stage
from libaci.dockerfile.loader import load
from libaci.dockerfile.parser import parse
from libaci.dockerfile.plan import BuildOptions, BuildPlan, plan

__all__ = ["BuildOptions", "BuildPlan", "Dockerfile", "DockerfileError", "Stage", "load",
           "parse", "plan"]
