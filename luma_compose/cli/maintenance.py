"""``luma-compose maintenance on|off``: parse, call deploy/maintenance.py, print."""

from __future__ import annotations

import os

import click

from ..errors import UsageError
from .options import docker_engine, input_options, resolve_target, swarm_engine, target_options

SERVICE = click.option("--service", default=None, metavar="S",
                       help="Only this routed service of the project (default: every one).")
PROXY_NAME = click.option("--proxy-name", default=None, metavar="NAME",
                          help="The proxy to sync (default luma-proxy, or $LUMA_PROXY_NAME); with --target swarm, the "
                               "proxy service (default luma-proxy).")


@click.group()
def maintenance() -> None:
    """Serve a project's hosts (or one service's) as 503 with a maintenance page; its containers keep running.

    The state is kept on the engine (a labelled volume; on a swarm, a labelled config), so every
    later sync, deploy and restart keeps it until `maintenance off`.
    """


@maintenance.command("on")
@input_options
@target_options
@SERVICE
@click.option("--message", default=None, metavar="TEXT", help="The text of the default page (one line).")
@click.option("--page", "page_file", default=None, metavar="FILE.html", type=click.Path(dir_okay=False),
              help="Your own page instead, served as-is as text/html (UTF-8, at most 32 KiB).")
@PROXY_NAME
def on(files, project, project_directory, target, swarm_flag, service, message, page_file, proxy_name) -> None:
    """Turn maintenance on: the hosts answer 503 with Retry-After and the page, now and after any restart."""
    from ..deploy import maintenance as ops

    swarm = resolve_target(target, swarm_flag) == "swarm"
    text_message, page = ops.check_input(message, _read_page(page_file) if page_file is not None else None,
                                         f"--page {page_file}")
    name = _project(files, project, project_directory)
    _check_service(service)
    out = ops.turn_on(_target(swarm, proxy_name), name, service or "", text_message, page)
    what = f"{name}/{service}" if service else name
    click.echo(f"maintenance on for {what}: {', '.join(out.hosts)} answer 503")
    _synced(out, swarm)


@maintenance.command("off")
@input_options
@target_options
@SERVICE
@PROXY_NAME
def off(files, project, project_directory, target, swarm_flag, service, proxy_name) -> None:
    """Turn maintenance off: the hosts are served by their containers again."""
    from ..deploy import maintenance as ops

    swarm = resolve_target(target, swarm_flag) == "swarm"
    name = _project(files, project, project_directory)
    _check_service(service)
    out = ops.turn_off(_target(swarm, proxy_name), name, service or "")
    for n in out.notes:
        click.echo(n, err=True)
    what = f"{name}/{service}" if service else name
    click.echo(f"maintenance off for {what}: {', '.join(out.hosts) or 'no host'} served by its containers")
    _synced(out, swarm)


def _target(swarm: bool, proxy_name: str | None):
    from ..deploy import maintenance as ops

    if swarm:
        from . import swarm as on_swarm

        name = on_swarm.proxy_name(proxy_name, "--proxy-name")  # checked before any engine is asked
        engine = swarm_engine()
        engine.require_manager()
        from ..swarm.maintenance import SwarmTarget

        return SwarmTarget(engine, name)
    return ops.HostTarget(docker_engine(), proxy_name)


def _synced(out, swarm: bool) -> None:
    if not out.synced:
        click.echo("note: no proxy is running to serve it now; the proxy serves it from its first sync "
                   f"(luma-compose proxy up{' --swarm' if swarm else ''}, or a deploy)", err=True)


def _check_service(service: str | None) -> None:
    from .. import validate

    problem = service is not None and validate.service_problem(service)
    if problem:
        raise UsageError(f"--service: {problem}", "give the name of a routed service of the project")


def _read_page(path: str) -> bytes:
    from ..routing.maintenance import MAX_PAGE_BYTES

    try:
        with open(path, "rb") as fh:
            return fh.read(MAX_PAGE_BYTES + 1)  # one byte more is enough to say it is too big
    except OSError as e:
        raise UsageError(f"--page {path}: cannot read it: {e.strerror or e}", "give an HTML file that exists") from None


def _project(files, project, project_directory) -> str:
    """The project: -p NAME alone, or the compose file's (found as render finds it)."""
    from .. import api, validate

    if project and not files:
        problem = validate.project_problem(project)
        if problem:
            raise UsageError(f"-p: {problem}", "give the project name, as `luma-compose routes` lists it")
        return project
    try:
        result = api.render(files, project, project_directory)
    except UsageError as e:
        raise UsageError(e.message, e.hint or "give -p NAME, or -f with the project's compose file") from None
    if not result.project:
        raise UsageError(f"cannot tell the project of {os.path.basename(result.source)}", "give -p NAME")
    return result.project
