"""The command line: parses arguments, calls the library, prints. Nothing else."""

from __future__ import annotations

import importlib
import sys

import click

from .. import __version__
from ..errors import UsageError
from . import spec
from .options import options, resolve_target
from .report import exit_code_for

# Subcommands that live in their own modules are imported only when used, so
# `render` and `check` never pay for the docker SDK.
LAZY_COMMANDS = {
    "proxy": "luma_compose.cli.proxy:proxy",
    "routes": "luma_compose.cli.proxy:routes",
    "deploy": "luma_compose.cli.deploy:deploy",
    "down": "luma_compose.cli.deploy:down",
    "maintenance": "luma_compose.cli.maintenance:maintenance",
    "releases": "luma_compose.cli.releases:releases",
    "rollback": "luma_compose.cli.rollback:rollback",
    "ls": "luma_compose.cli.ls:ls",
    "logs": "luma_compose.cli.logs:logs",
    "status": "luma_compose.cli.status:status",
}


class LumaGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx, name):
        if name == "swarm":  # the old spelling: say the one there is now
            raise click.UsageError("there is no `swarm` command: every action takes --swarm (or --target swarm), "
                                   "e.g. `luma-compose deploy --swarm`, `luma-compose proxy up --swarm`", ctx)
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


@main.command()
@options(spec.RENDER.options)
def render(files, project, project_directory, target, swarm_flag, output, check_only, show_diff,
           fail_if_changed) -> None:
    """Rewrite a compose file so its x-luma services are routed without collisions.

    Writes nothing (and exits 1) when any check fails. --swarm writes the file
    `docker stack deploy -c - NAME` takes (overlay, attachable P_luma; deploy.labels).
    """
    if resolve_target(target, swarm_flag, compose_only=("check_only", "show_diff", "fail_if_changed")) == "swarm":
        from .swarm import run_render

        run_render(files, project, project_directory, output)
        return
    from . import commands

    sys.exit(commands.render(files, project, project_directory, output, check_only, show_diff, fail_if_changed))


@main.command()
@click.argument(spec.CHECK.arguments, nargs=-1, type=click.Path(dir_okay=False))
@options(spec.CHECK.options)
def check(paths, files, project, project_directory, target, swarm_flag, fmt) -> None:
    """Validate x-luma blocks, the compose-spec schema of the result, and routing rules.

    PATHS are checked one by one (as separate projects, as pre-commit passes them);
    -f files are merged into one project, as with docker compose. --swarm also
    reports what Swarm ignores (warning) or rejects (error), for one project given with -f.
    """
    if resolve_target(target, swarm_flag, compose_only=("fmt",)) == "swarm":
        if paths:
            raise UsageError("check --swarm checks one project, given with -f, not PATH arguments",
                             "use -f FILE (repeat -f to merge files into one project), once per project")
        from .swarm import run_check

        run_check(files, project, project_directory)
        return
    from . import commands

    sys.exit(commands.check(paths, files, project, project_directory, fmt))


if __name__ == "__main__":  # pragma: no cover
    main()
