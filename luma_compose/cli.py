"""The command line: parses arguments, calls the library, prints. Nothing else."""

from __future__ import annotations

import importlib
import os
import sys

import click

from . import __version__
from .errors import EXIT_USAGE, LumaError

# Subcommands that live in their own modules are imported only when used, so
# `render` and `check` never pay for the docker SDK.
LAZY_COMMANDS = {
    "proxy": "luma_compose.cli_proxy:proxy",
    "routes": "luma_compose.cli_proxy:routes",
    "deploy": "luma_compose.cli_deploy:deploy",
    "down": "luma_compose.cli_deploy:down",
}


class LumaGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is not None or name not in LAZY_COMMANDS:
            return cmd
        module, attr = LAZY_COMMANDS[name].split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LumaError as e:
            fail(e)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as e:  # a bug: say so in one line, never a traceback
            if os.environ.get("LUMA_DEBUG"):
                raise
            click.echo(f"internal error: {type(e).__name__}: {e}", err=True)
            click.echo("  hint: this is a bug in luma-compose; rerun with LUMA_DEBUG=1 for details and report it",
                       err=True)
            sys.exit(70)


def fail(e: LumaError) -> None:
    click.echo(f"error: {e.message}", err=True)
    if e.hint:
        click.echo(f"  hint: {e.hint}", err=True)
    sys.exit(e.exit_code)


@click.group(cls=LumaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="luma-compose")
def main() -> None:
    """Route many Docker Compose projects behind one reverse proxy.

    Exit codes: 0 ok, 1 problems found, 2 usage error, 3 Docker/proxy unavailable.
    """


def _input_options(f):
    f = click.option("--project-directory", type=click.Path(file_okay=False),
                     help="Directory relative paths and .env are read from (default: the first file's).")(f)
    f = click.option("-p", "--project-name", "project", metavar="NAME",
                     help="Project name (default: COMPOSE_PROJECT_NAME, then `name:`, then the directory).")(f)
    f = click.option("-f", "--file", "files", multiple=True, metavar="FILE",
                     help="Compose file; repeat to merge (through docker compose); - reads stdin.")(f)
    return f


def print_problems(problems, stream_err: bool = True) -> None:
    for p in problems:
        loc = click.style(p.location(), bold=True)
        click.echo(f"{loc}: {click.style('error', fg='red')}: {p.message}", err=stream_err)
        if p.hint:
            click.echo(f"  {click.style('hint', fg='cyan')}: {p.hint}", err=stream_err)


@main.command()
@_input_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
def render(files, project, project_directory, output) -> None:
    """Rewrite a compose file so its x-luma services are routed without collisions.

    Writes nothing (and exits 1) when any check fails.
    """
    from . import api

    result = api.render(files, project, project_directory)
    if not result.ok:
        print_problems(result.problems)
        sys.exit(1)
    if output:
        _write_atomic(output, result.text)
    else:
        click.echo(result.text, nl=False)


@main.command()
@_input_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check(files, project, project_directory, fmt) -> None:
    """Validate x-luma blocks, the compose-spec schema of the result, and routing rules."""
    from . import api

    result = api.render(files, project, project_directory)
    if fmt == "json":
        import json

        click.echo(json.dumps({"version": 1, "ok": result.ok, "source": result.source, "project": result.project,
                               "problems": [p.to_json() for p in result.problems]}, indent=2))
    else:
        print_problems(result.problems, stream_err=False)
        n = len(result.problems)
        click.echo(f"{result.source}: ok" if not n else f"{n} problem{'s' if n > 1 else ''} found", err=bool(n))
    sys.exit(1 if result.problems else 0)


def _write_atomic(path: str, text: str) -> None:
    import os
    import tempfile

    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".luma-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
