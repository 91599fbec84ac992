"""What the commands print, without click: render and check must start fast.

Colour only when the stream is a terminal and NO_COLOR is not set.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Iterable

from ..errors import LumaError, Problem

_CODES = {"red": "31", "cyan": "36", "bold": "1"}


def _stream(err: bool) -> IO[str]:
    return sys.stderr if err else sys.stdout


def colour(stream: IO[str]) -> bool:
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()


def style(text: str, code: str, stream: IO[str]) -> str:
    return f"\x1b[{_CODES[code]}m{text}\x1b[0m" if colour(stream) else text


def echo(text: str = "", err: bool = False, nl: bool = True) -> None:
    stream = _stream(err)
    stream.write(text + ("\n" if nl else ""))
    stream.flush()


def print_problems(problems: Iterable[Problem], err: bool = True) -> None:
    s = _stream(err)
    for p in problems:
        echo(f"{style(p.location(), 'bold', s)}: {style('error', 'red', s)}: {p.message}", err)
        if p.hint:
            echo(f"  {style('hint', 'cyan', s)}: {p.hint}", err)


def print_error(e: LumaError) -> None:
    echo(f"error: {e.message}", err=True)
    if e.hint:
        echo(f"  hint: {e.hint}", err=True)


def exit_code_for(e: BaseException) -> int:
    """What the user sees of an exception that ends a command, and its exit code: a LumaError as
    it says, Ctrl-C as 130, anything else as a one-line internal error (70), never a traceback
    (LUMA_DEBUG=1 re-raises it)."""
    if isinstance(e, LumaError):
        print_error(e)
        return e.exit_code
    if isinstance(e, KeyboardInterrupt):
        return 130
    if os.environ.get("LUMA_DEBUG"):
        raise e
    print_bug(e)
    return 70


def print_bug(e: BaseException) -> None:
    echo(f"internal error: {type(e).__name__}: {e}", err=True)
    echo("  hint: this is a bug in luma-compose; rerun with LUMA_DEBUG=1 for details and report it", err=True)


def unified_diff(a: str, b: str, name_a: str, name_b: str) -> str:
    import difflib

    lines = difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True), name_a, name_b)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
