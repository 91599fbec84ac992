"""The command line: parses arguments, calls the library, prints. Nothing else."""

from __future__ import annotations

import importlib
import os
import sys

import click

from . import __version__
from .errors import LumaError, UsageError

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
@click.option("--check", "check_only", is_flag=True,
              help="With -o: write nothing; exit 0 if FILE already holds the output, else 1 and show a diff.")
@click.option("--diff", "show_diff", is_flag=True, help="Print what render changes, as a unified diff.")
@click.option("--fail-if-changed", is_flag=True,
              help="With -o: write FILE, and exit 1 if that changed it (for pre-commit).")
def render(files, project, project_directory, output, check_only, show_diff, fail_if_changed) -> None:
    """Rewrite a compose file so its x-luma services are routed without collisions.

    Writes nothing (and exits 1) when any check fails.
    """
    from . import api

    if (check_only or fail_if_changed) and not output:
        raise UsageError("--check and --fail-if-changed compare with the file given by -o FILE",
                         "add -o FILE (the committed rendered file)")
    if check_only and fail_if_changed:
        raise UsageError("--check writes nothing and --fail-if-changed writes FILE: use one", "")
    result = api.render(files, project, project_directory)
    if not result.ok:
        print_problems(result.problems)
        sys.exit(1)
    if show_diff and not output:
        click.echo(_diff(result.input_text, result.text, result.source, result.source + " (rendered)"), nl=False)
        return
    if output:
        current = _read_or_none(output)
        if check_only:
            if current == result.text:
                return
            click.echo(_diff(current or "", result.text, output, output + " (rendered)"), nl=False)
            click.echo(f"{output} is out of date: run `luma-compose render ... -o {output}`", err=True)
            sys.exit(1)
        if show_diff:
            click.echo(_diff(current or "", result.text, output, output + " (rendered)"), nl=False)
        if current != result.text:
            _write_atomic(output, result.text)
            if fail_if_changed:
                click.echo(f"{output} was out of date and has been rewritten", err=True)
                sys.exit(1)
        return
    click.echo(result.text, nl=False)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
@_input_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: the shape in schemas/check-output.schema.json.")
def check(paths, files, project, project_directory, fmt) -> None:
    """Validate x-luma blocks, the compose-spec schema of the result, and routing rules.

    PATHS are checked one by one (as separate projects, as pre-commit passes them);
    -f files are merged into one project, as with docker compose.
    """
    from . import api

    if paths and files:
        raise UsageError("give files either as arguments (checked one by one) or with -f (merged), not both", "")
    results = [api.render([p], project, project_directory) for p in paths] if paths else \
        [api.render(files, project, project_directory)]
    problems = [p for r in results for p in r.problems]
    if fmt == "json":
        import json

        click.echo(json.dumps({
            "version": 1, "ok": not problems, "problem_count": len(problems),
            "results": [{"source": r.source, "project": r.project, "ok": r.ok,
                         "problems": [p.to_json() for p in r.problems]} for r in results],
        }, indent=2))
    else:
        print_problems(problems, stream_err=False)
        for r in results:
            if r.ok:
                click.echo(f"{r.source}: ok")
        if problems:
            n = len(problems)
            click.echo(f"{n} problem{'s' if n > 1 else ''} found", err=True)
    sys.exit(1 if problems else 0)


def _read_or_none(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _diff(a: str, b: str, name_a: str, name_b: str) -> str:
    import difflib

    lines = difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True), name_a, name_b)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


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
