"""Problems, user-facing errors and the exit codes every command shares."""

from __future__ import annotations

from typing import NamedTuple

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


class Problem(NamedTuple):
    """One thing wrong with the input, at a place in a file."""

    file: str
    line: int  # 1-based; 0 when unknown
    col: int  # 1-based; 0 when unknown
    message: str
    hint: str = ""
    rule: str = ""

    def location(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}"
        return self.file

    def to_json(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.col,
            "rule": self.rule,
            "message": self.message,
            "hint": self.hint,
        }


class LumaError(Exception):
    """An error for the user: printed as-is, never as a traceback."""

    exit_code = EXIT_PROBLEMS

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(LumaError):
    exit_code = EXIT_USAGE


class UnavailableError(LumaError):
    """Docker, docker compose or the proxy could not be reached."""

    exit_code = EXIT_UNAVAILABLE


class SwarmError(LumaError):
    """A swarm operation failed, or the swarm's state refuses it (exit 1)."""


def short_error(e: BaseException) -> str:
    """The first line of an exception's message (Docker's are long)."""
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__
