"""What every command module of the CLI shares: the engine of this command, and the options that
more than one command takes (-f/-p, --target/--swarm), built from spec.py. Imports no other
command module, so no two modules of cli/ import each other."""

from __future__ import annotations

import click

from ..errors import UsageError
from . import spec


def endpoint():
    """The one engine of this command: the global -H/--context, else the docker CLI's own rules."""
    from ..engine.client import resolve

    ctx = click.get_current_context(silent=True)
    obj = (ctx.find_root().obj if ctx is not None else None) or {}
    return resolve(obj.get("docker_host"), obj.get("docker_context"))


def docker_engine():
    """The engine (docker SDK and ``docker compose``) on :func:`endpoint`."""
    from ..engine.docker_engine import DockerEngine

    return DockerEngine(endpoint())


def swarm_engine():
    """The swarm engine on :func:`endpoint`."""
    from ..engine.swarm import SwarmEngine

    return SwarmEngine(endpoint())


def click_option(o: spec.Option):
    """The click option of one spec.py definition."""
    kw: dict = {"help": o.help, "metavar": o.metavar, "show_default": o.show_default}
    if o.kind == "flag":
        return click.option(*o.flags, o.dest, is_flag=True, **kw)
    if o.kind == "multiple":
        return click.option(*o.flags, o.dest, multiple=True, **kw)
    if o.choices:
        kw["type"] = click.Choice(o.choices)
    elif o.path:
        kw["type"] = click.Path(file_okay=o.path != "dir", dir_okay=o.path != "file")
    return click.option(*o.flags, o.dest, default=o.default, **kw)


def options(opts):
    """A decorator adding these spec.py options (in the order given, as --help lists them)."""
    def deco(f):
        for o in reversed(opts):
            f = click_option(o)(f)
        return f
    return deco


input_options = options(spec.INPUT)  # -f/-p/--project-directory: render, check, deploy, down
target_options = options(spec.TARGET)  # --target compose|swarm and --swarm


def resolve_target(target: str, swarm_flag: bool, compose_only: tuple[str, ...] = (),
                   swarm_only: tuple[str, ...] = ()) -> str:
    """The target of this command; a usage error when an option given is for the other target.

    compose_only, swarm_only: names of this command's parameters that only one target takes. An option
    counts as given when it is on the command line, whatever its value (`--drain 10` with swarm is refused
    too), so no option is ever silently ignored.
    """
    ctx = click.get_current_context()
    if swarm_flag:
        if target != "swarm" and given(ctx, "target"):
            raise UsageError(f"--swarm means --target swarm, and --target {target} was given too",
                             "give one of them")
        target = "swarm"
    wrong = swarm_only if target == "compose" else compose_only
    other = "swarm" if target == "compose" else "compose"
    for name in wrong:
        if given(ctx, name):
            opt = spelling(ctx, name)
            fix = "add --swarm (or --target swarm)" if other == "swarm" else "leave out --swarm/--target swarm"
            raise UsageError(f"{ctx.command_path.split(' ', 1)[-1]} --target {target} does not take {opt} "
                             f"(it is for --target {other})", f"drop {opt}, or {fix}")
    return target


def compose_only_command(target: str, swarm_flag: bool, instead: str) -> None:
    """For a command the swarm has no twin of: --swarm (or --target swarm) is a usage error.

    instead: what to run on a swarm for what this command tells on one host."""
    if resolve_target(target, swarm_flag) == "swarm":
        name = click.get_current_context().command_path.split(" ", 1)[-1]
        raise UsageError(f"{name} is for one Docker host: it has no --swarm form",
                         f"leave out --swarm/--target swarm; on a swarm, {instead}")


def given(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source not in (click.core.ParameterSource.DEFAULT,
                                                 click.core.ParameterSource.DEFAULT_MAP)


def spelling(ctx: click.Context, name: str) -> str:
    """How the help spells a parameter: its first long option."""
    param = next(p for p in ctx.command.params if p.name == name)
    return next((o for o in param.opts if o.startswith("--")), param.opts[0])


def project_name(files, project: str | None, project_directory: str | None, required: bool = True) -> tuple[str, str]:
    """(project, project directory) of a command that reads the engine only (releases, rollback): -p NAME,
    else the compose file's project, found as render finds it. With no file here and no -p: ("", cwd)
    unless ``required``."""
    import os

    from .. import api

    from ..compose.inputs import check_explicit

    if project and not files:
        return check_explicit(project, "-p"), os.path.abspath(project_directory or ".")
    try:
        result = api.render(files, project, project_directory)
    except UsageError:
        if files or required:
            raise
        return "", os.path.abspath(project_directory or ".")
    if not result.project:
        raise UsageError("cannot tell the project from the compose file", "give -p NAME")
    return result.project, result.project_directory
