"""The `luma-compose` entry point.

A plain `render` or `check` invocation (the pipe, pre-commit, CI) runs without importing click,
which costs more than the whole render of a typical file (see bench/render_speed.py). Its options
are the ones spec.py defines, the same definitions main.py builds the click commands from: this
module only reads an argument list against them. Anything it does not take as written (help, a
typo, `-fFILE`, a value click would refuse, --swarm or --target swarm) goes to the click CLI in
main.py; both paths call the same functions in commands.py. Set LUMA_NO_FASTPATH=1 to always use
click.
"""

from __future__ import annotations

import os
import sys

from .spec import COMMANDS, Command, Option


def parse(argv: list[str]) -> tuple[str, dict] | None:
    """(command, keyword arguments for commands.py) for a plain compose render/check, else None (click's)."""
    command = COMMANDS.get(argv[0]) if argv else None
    if command is None:
        return None
    given = _read(command, argv[1:])
    if given is None:
        return None
    kw = {o.dest: ([] if o.kind == "multiple" else o.default) for o in command.options}
    kw.update(given)
    if kw.pop("target") != "compose" or kw.pop("swarm_flag"):
        return None
    return command.name, kw


def _read(command: Command, args: list[str]) -> dict | None:
    """The options and arguments given, by dest; None when click must read them."""
    by_flag = {f: o for o in command.options for f in o.flags}
    kw: dict = {}
    paths: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        opt = by_flag.get(name)
        if opt is None:
            if not command.arguments or arg.startswith("-"):
                return None
            paths.append(arg)
        elif opt.kind == "flag":
            if eq:
                return None
            kw[opt.dest] = True
        else:
            if not eq:
                if i + 1 == len(args):
                    return None
                i += 1
                inline = args[i]
            if not _plain(opt, inline):
                return None
            if opt.kind == "multiple":
                kw.setdefault(opt.dest, []).append(inline)
            else:
                kw[opt.dest] = inline  # as click: the last one wins
        i += 1
    if command.arguments:
        kw[command.arguments] = paths
    return kw


def _plain(opt: Option, value: str) -> bool:
    """Whether click takes this value as it is (else click reads the line, and says what is wrong)."""
    if opt.choices and value not in opt.choices:
        return False
    if opt.path == "dir" and os.path.isfile(value):
        return False
    return not (opt.path == "file" and os.path.isdir(value))


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
