"""The `luma-compose` entry point.

A plain `render` or `check` invocation (the pipe, pre-commit, CI) is parsed
here and run without importing click, which costs more than the whole render
of a typical file (see bench/render_speed.py). Everything else, and any
argument this small parser does not know (help, a typo, `-fFILE`), goes to the
click CLI in main.py, which is the reference: both call the same functions in
commands.py. Only the compose target is run here: `--swarm` and `--target swarm`
(any --target but compose) go to click. Set LUMA_NO_FASTPATH=1 to always use click.
"""

from __future__ import annotations

import os
import sys

_VALUE = {"-f": "files", "--file": "files", "-p": "project", "--project-name": "project",
          "--project-directory": "project_directory", "--target": "target"}
_RENDER_VALUE = {"-o": "output", "--output": "output"}
_RENDER_FLAGS = {"--check": "check_only", "--diff": "show_diff", "--fail-if-changed": "fail_if_changed"}
_CHECK_VALUE = {"--format": "fmt"}


def parse(argv: list[str]) -> tuple[str, dict] | None:
    """(command, keyword arguments) for a plain render/check invocation, else None."""
    if not argv or argv[0] not in ("render", "check"):
        return None
    command = argv[0]
    values = dict(_VALUE, **(_RENDER_VALUE if command == "render" else _CHECK_VALUE))
    flags = _RENDER_FLAGS if command == "render" else {}
    kw: dict = {"files": []}
    paths: list[str] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in values:
            if eq:
                value = inline
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                return None
            key = values[name]
            if key == "files":
                kw["files"].append(value)
            elif key in kw:
                kw[key] = value  # click: the last one wins
            else:
                kw[key] = value
        elif arg in flags:
            kw[flags[arg]] = True
        elif command == "check" and not arg.startswith("-"):
            paths.append(arg)
        else:
            return None
        i += 1
    if kw.get("fmt", "text") not in ("text", "json"):
        return None
    if kw.pop("target", "compose") != "compose":  # --target swarm (as --swarm) is click's
        return None
    if command == "check":
        kw["paths"] = paths
    return command, kw


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    parsed = None if os.environ.get("LUMA_NO_FASTPATH") else parse(args)
    if parsed is None:
        from .main import main as click_main

        click_main(args, prog_name="luma-compose")
        return
    from .report import exit_code_for

    command, kw = parsed
    try:
        from . import commands

        code = commands.render(**kw) if command == "render" else commands.check(**kw)
    except (SystemExit, GeneratorExit):
        raise
    except BaseException as e:
        code = exit_code_for(e)
    sys.exit(code)
