"""The command line: parses arguments, calls the library, prints. Nothing else."""

from __future__ import annotations

import importlib
import sys

import click

from .. import __version__
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


@main.command()
@input_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.option("--check", "check_only", is_flag=True,
              help="With -o: write nothing; exit 0 if FILE already holds the output, else 1 and show a diff.")
@click.option("--diff", "show_diff", is_flag=True, help="Print what render changes, as a unified diff.")
@click.option("--fail-if-changed", is_flag=True,
              help="With -o: write FILE, and exit 1 if that changed it (for pre-commit).")
def render(files, project, project_directory, output, check_only, show_diff, fail_if_changed) -> None:
    """Rewrite a compose file so its x-luma services are routed without collisions.

    Writes nothing (and exits 1) when any check fails.
    """
    from . import commands

    sys.exit(commands.render(files, project, project_directory, output, check_only, show_diff, fail_if_changed))


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
@input_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: the shape in schemas/check-output.schema.json.")
def check(paths, files, project, project_directory, fmt) -> None:
    """Validate x-luma blocks, the compose-spec schema of the result, and routing rules.

    PATHS are checked one by one (as separate projects, as pre-commit passes them);
    -f files are merged into one project, as with docker compose.
    """
    from . import commands

    sys.exit(commands.check(paths, files, project, project_directory, fmt))


if __name__ == "__main__":  # pragma: no cover
    main()
