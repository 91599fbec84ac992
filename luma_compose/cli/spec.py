"""The options of ``render`` and ``check``, defined once, as plain data (no click here).

main.py builds the click commands from these definitions, and fast.py parses a plain
invocation with them (without importing click, which costs more than a whole render of a
typical file; see bench/render_speed.py). Nothing else defines an option of these commands,
so the two paths cannot accept different options.
"""

from __future__ import annotations

from typing import NamedTuple  # not dataclasses: it imports inspect, which the fast path would pay for

TARGETS = ("compose", "swarm")


class Option(NamedTuple):
    dest: str  # the parameter name the command function takes
    flags: tuple[str, ...]
    help: str
    kind: str = "value"  # value | multiple | flag
    choices: tuple[str, ...] = ()
    default: object = None
    metavar: str | None = None
    path: str = ""  # "file": a path that must not be a directory; "dir": one that must not be a file
    show_default: bool = False


class Command(NamedTuple):
    name: str
    options: tuple[Option, ...]
    arguments: str = ""  # the dest of the command's PATH arguments, if it takes any


INPUT = (
    Option("files", ("-f", "--file"), "Compose file; repeat to merge (through docker compose); - reads stdin.",
           kind="multiple", metavar="FILE"),
    Option("project", ("-p", "--project-name"),
           "Project name (default: COMPOSE_PROJECT_NAME, then `name:`, then the directory).", metavar="NAME"),
    Option("project_directory", ("--project-directory",),
           "Directory relative paths and .env are read from (default: the first file's).", path="dir"),
)

TARGET = (
    Option("target", ("--target",), "compose: one Docker host, with docker compose. swarm: a Docker Swarm (stacks, and the "
           "proxy as swarm services; commands that talk to it run against a manager).",
           choices=TARGETS, default="compose", show_default=True),
    Option("swarm_flag", ("--swarm",), "Short for --target swarm.", kind="flag", default=False),
)

RENDER = Command("render", INPUT + TARGET + (
    Option("output", ("-o", "--output"), "Write here instead of stdout.", path="file"),
    Option("check_only", ("--check",),
           "With -o: write nothing; exit 0 if FILE already holds the output, else 1 and show a diff "
           "(--target compose only).", kind="flag", default=False),
    Option("show_diff", ("--diff",), "Print what render changes, as a unified diff (--target compose only).",
           kind="flag", default=False),
    Option("fail_if_changed", ("--fail-if-changed",),
           "With -o: write FILE, and exit 1 if that changed it (for pre-commit; --target compose only).",
           kind="flag", default=False),
))

CHECK = Command("check", INPUT + TARGET + (
    Option("fmt", ("--format",), "json: the shape in schemas/check-output.schema.json (--target compose only).",
           choices=("text", "json"), default="text", show_default=True),
), arguments="paths")

COMMANDS = {c.name: c for c in (RENDER, CHECK)}
