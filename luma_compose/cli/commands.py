"""The render and check commands, as plain functions returning the exit code.

main.py (click) and fast.py (the fast path for plain invocations) both call
these, so the two paths cannot behave differently.
"""

from __future__ import annotations

from typing import Sequence

from .. import api
from ..fsutil import write_atomic
from ..errors import EXIT_OK, EXIT_PROBLEMS, UsageError
from .report import echo, print_problems, reporter, unified_diff


def render(files: Sequence[str] = (), project: str | None = None, project_directory: str | None = None,
           output: str | None = None, check_only: bool = False, show_diff: bool = False,
           fail_if_changed: bool = False) -> int:
    if (check_only or fail_if_changed) and not output:
        raise UsageError("--check and --fail-if-changed compare with the file given by -o FILE",
                         "add -o FILE (the committed rendered file)")
    if check_only and fail_if_changed:
        raise UsageError("--check writes nothing and --fail-if-changed writes FILE: use one", "")
    result = api.render(files, project, project_directory)
    print_problems(result.warnings, kind="warning")
    if not result.ok:
        print_problems(result.problems)
        return EXIT_PROBLEMS
    assert result.text is not None
    if not output:
        if show_diff:
            echo(unified_diff(result.input_text, result.text, result.source, result.source + " (rendered)"), nl=False)
        else:
            echo(result.text, nl=False)
        return EXIT_OK
    current = _read_or_none(output)
    if check_only:
        if current == result.text:
            return EXIT_OK
        echo(unified_diff(current or "", result.text, output, output + " (rendered)"), nl=False)
        echo(f"{output} is out of date: run `luma-compose render ... -o {output}`", err=True)
        return EXIT_PROBLEMS
    if show_diff:
        echo(unified_diff(current or "", result.text, output, output + " (rendered)"), nl=False)
    if current != result.text:
        write_text_atomic(output, result.text)
        if fail_if_changed:
            echo(f"{output} was out of date and has been rewritten", err=True)
            return EXIT_PROBLEMS
    return EXIT_OK


def check(paths: Sequence[str] = (), files: Sequence[str] = (), project: str | None = None,
          project_directory: str | None = None, fmt: str = "text") -> int:
    if paths and files:
        raise UsageError("give files either as arguments (checked one by one) or with -f (merged), not both", "")
    results = [api.render([p], project, project_directory) for p in paths] if paths else \
        [api.render(files, project, project_directory)]
    reporter(fmt).check(results)
    return EXIT_PROBLEMS if any(r.problems for r in results) else EXIT_OK


def _read_or_none(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read it: {e}", "give a writable text file with -o") from None


def write_text_atomic(path: str, text: str) -> None:
    try:
        write_atomic(path, text.encode("utf-8"))
    except OSError as e:
        raise UsageError(f"{path}: cannot write there: {e}", "give -o a path in a writable directory") from None
