"""The command line: parses arguments, calls the library, prints. Nothing else."""

from __future__ import annotations

import importlib
import sys

import click

from .. import __version__
from ..errors import UsageError
from .report import exit_code_for

# Subcommands that live in their own modules are imported only when used, so
# `render` and `check` never pay for the docker SDK.
LAZY_COMMANDS = {
    "proxy": "luma_compose.cli.proxy:proxy",
    "routes": "luma_compose.cli.proxy:routes",
    "deploy": "luma_compose.cli.deploy:deploy",
    "down": "luma_compose.cli.deploy:down",
    "swarm": "luma_compose.cli.swarm:swarm",
}


class LumaGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is not None or name not in LAZY_COMMANDS:
            return cmd
        module, attr = LAZY_COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)  # a broken import is a bug: never "No such command"

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except BaseException as e:  # LumaError, Ctrl-C, or a bug: one place decides what the user sees
            sys.exit(exit_code_for(e))


@click.group(cls=LumaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="luma-compose")
@click.option("-H", "--host", "docker_host", default=None, metavar="URL",
              help="Docker engine to use (like docker -H): unix://, tcp://, ssh://user@host. Default: as the docker CLI "
                   "(DOCKER_HOST, DOCKER_CONTEXT, the current context).")
@click.option("-c", "--context", "docker_context", default=None, metavar="NAME",
              help="Docker context to use (like docker --context).")
@click.pass_context
def main(ctx: click.Context, docker_host: str | None, docker_context: str | None) -> None:
    """Route many Docker Compose projects behind one reverse proxy.

    Exit codes: 0 ok, 1 problems found, 2 usage error, 3 Docker/proxy unavailable
    (deploy --dry-run: 4 changes pending).
    """
    ctx.obj = {"docker_host": docker_host, "docker_context": docker_context}


def endpoint():
    """The one engine of this command: the global -H/--context, else the docker CLI's own rules."""
    from ..engine.client import resolve

    obj = (click.get_current_context(silent=True) or click.Context(main)).find_root().obj or {}
    return resolve(obj.get("docker_host"), obj.get("docker_context"))


def docker_engine():
    """The engine (docker SDK and ``docker compose``) on :func:`endpoint`."""
    from ..engine.docker_engine import DockerEngine

    return DockerEngine(endpoint())


def input_options(f):
    """-f/-p/--project-directory, shared by render, check, deploy and down."""
    f = click.option("--project-directory", type=click.Path(file_okay=False),
                     help="Directory relative paths and .env are read from (default: the first file's).")(f)
    f = click.option("-p", "--project-name", "project", metavar="NAME",
                     help="Project name (default: COMPOSE_PROJECT_NAME, then `name:`, then the directory).")(f)
    f = click.option("-f", "--file", "files", multiple=True, metavar="FILE",
                     help="Compose file; repeat to merge (through docker compose); - reads stdin.")(f)
    return f


TARGETS = ("compose", "swarm")


def target_options(f):
    """--target compose|swarm and its shorthand --swarm, shared by render, check, deploy and down."""
    f = click.option("--swarm", "swarm_flag", is_flag=True, help="Short for --target swarm.")(f)
    f = click.option("--target", type=click.Choice(TARGETS), default="compose", show_default=True,
                     help="compose: one Docker host, with docker compose. swarm: a Docker Swarm stack "
                          "(what `luma-compose swarm COMMAND` does).")(f)
    return f


def resolve_target(target: str, swarm_flag: bool, compose_only: tuple[str, ...] = (),
                   swarm_only: tuple[str, ...] = ()) -> str:
    """The target of this command; a usage error when an option given is for the other target.

    compose_only, swarm_only: names of this command's parameters that only one target takes. An option
    counts as given when it is on the command line, whatever its value (`--drain 10` with swarm is refused
    too), so no option is ever silently ignored.
    """
    ctx = click.get_current_context()
    if swarm_flag:
        if target != "swarm" and _given(ctx, "target"):
            raise UsageError(f"--swarm means --target swarm, and --target {target} was given too",
                             "give one of them")
        target = "swarm"
    wrong = swarm_only if target == "compose" else compose_only
    other = "swarm" if target == "compose" else "compose"
    for name in wrong:
        if _given(ctx, name):
            opt = _spelling(ctx, name)
            fix = "add --swarm (or --target swarm)" if other == "swarm" else "leave out --swarm/--target swarm"
            raise UsageError(f"{ctx.command.name} --target {target} does not take {opt} (it is for --target {other})",
                             f"drop {opt}, or {fix}")
    return target


def _given(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source not in (click.core.ParameterSource.DEFAULT,
                                                 click.core.ParameterSource.DEFAULT_MAP)


def _spelling(ctx: click.Context, name: str) -> str:
    """How the help spells a parameter: its first long option."""
    param = next(p for p in ctx.command.params if p.name == name)
    return next((o for o in param.opts if o.startswith("--")), param.opts[0])


@main.command()
@input_options
@target_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.option("--check", "check_only", is_flag=True,
              help="With -o: write nothing; exit 0 if FILE already holds the output, else 1 and show a diff.")
@click.option("--diff", "show_diff", is_flag=True, help="Print what render changes, as a unified diff.")
@click.option("--fail-if-changed", is_flag=True,
              help="With -o: write FILE, and exit 1 if that changed it (for pre-commit).")
def render(files, project, project_directory, target, swarm_flag, output, check_only, show_diff,
           fail_if_changed) -> None:
    """Rewrite a compose file so its x-luma services are routed without collisions.

    Writes nothing (and exits 1) when any check fails. --target swarm writes the file
    `docker stack deploy -c - NAME` takes, as `luma-compose swarm render` (no --check,
    --diff or --fail-if-changed there).
    """
    if resolve_target(target, swarm_flag, compose_only=("check_only", "show_diff", "fail_if_changed")) == "swarm":
        from .swarm import run_render

        run_render(files, project, project_directory, output)
        return
    from . import commands

    sys.exit(commands.render(files, project, project_directory, output, check_only, show_diff, fail_if_changed))


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
@input_options
@target_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: the shape in schemas/check-output.schema.json (--target compose only).")
def check(paths, files, project, project_directory, target, swarm_flag, fmt) -> None:
    """Validate x-luma blocks, the compose-spec schema of the result, and routing rules.

    PATHS are checked one by one (as separate projects, as pre-commit passes them);
    -f files are merged into one project, as with docker compose. --target swarm also
    reports what Swarm ignores (warning) or rejects (error), as `luma-compose swarm check`,
    for one project given with -f.
    """
    if resolve_target(target, swarm_flag, compose_only=("fmt",)) == "swarm":
        if paths:
            raise UsageError("check --target swarm checks one project, given with -f, not PATH arguments",
                             "use -f FILE (repeat -f to merge files into one project), once per project")
        from .swarm import run_check

        run_check(files, project, project_directory)
        return
    from . import commands

    sys.exit(commands.check(paths, files, project, project_directory, fmt))


if __name__ == "__main__":  # pragma: no cover
    main()
