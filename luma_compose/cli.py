"""The command line: parses arguments, calls the library, prints. Nothing else."""

from __future__ import annotations

import importlib
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


if __name__ == "__main__":  # pragma: no cover
    main()
