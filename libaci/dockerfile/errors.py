"""The error raised for a bad Dockerfile, with the file and line it is about.

Everything in :mod:`libaci.dockerfile` raises :class:`DockerfileError` for
bad input: a syntax error, an instruction with the wrong arguments, a bad
variable substitution, a missing stage.  It is a
:class:`~libaci.errors.UsageError` (exit status 2) and its message is one
line, ``Dockerfile:LINE: what went wrong``, so a command can print it as is.
"""

from __future__ import annotations

from libaci.errors import UsageError


class DockerfileError(UsageError):
    """A Dockerfile (or .dockerignore, or a build argument) is malformed."""

    def __init__(self, message: str, line: int | None = None, *,
                 end_line: int | None = None, filename: str = "Dockerfile") -> None:
        self.message = " ".join(message.split("\n"))
        self.line = line
        self.end_line = end_line if end_line is not None else line
        self.filename = filename
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.filename}: {self.message}"
        return f"{self.filename}:{self.line}: {self.message}"

    def at(self, line: int | None, end_line: int | None = None) -> DockerfileError:
        """This error with a location, unless it already has one."""
        if self.line is not None or line is None:
            return self
        return DockerfileError(self.message, line, end_line=end_line, filename=self.filename)

    def named(self, filename: str) -> DockerfileError:
        """This error reported against another file name."""
        return DockerfileError(self.message, self.line, end_line=self.end_line,
                               filename=filename)
