"""``luma-compose status``: every routed project on the engine in one view (hosts, containers ready,
health, certificates, last deploy, requests and 5xx of the last minutes from the access log).
Exit 1 when something needs attention, 3 when the proxy (or the engine) is down."""

from __future__ import annotations

import json
import sys

import click

from .. import contract
from ..errors import EXIT_PROBLEMS
from .options import docker_engine, resolve_target, swarm_engine, target_options


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--window", default="5m", show_default=True, metavar="DURATION",
              help="Count requests and 5xx over this last stretch of the access log (10m, 1h, ...).")
@click.option("--name", default=None, metavar="NAME",
              help="Proxy container name (default luma-proxy, or $LUMA_PROXY_NAME); with --swarm, the proxy "
                   "service (default luma-proxy).")
@target_options
def status(fmt, window, name, target, swarm_flag) -> None:
    """All routed projects on this engine: hosts, containers ready/total, health, certificate state and
    expiry, last deploy, requests and 5xx over the last minutes (when the access log is on).

    Exit 1 when something needs attention (a conflict, a container not ready or unhealthy, a certificate
    failing or expiring within 14 days, 5xx answers in the window, config drift), 3 when the proxy is down.
    --swarm: every project the edges route, tasks running/wanted per service, read on a manager.
    """
    from ..proxy import access_log, server_status
    from ..proxy.controller import Controller

    since = access_log.since_time(window)
    if resolve_target(target, swarm_flag) == "swarm":
        _show(_swarm_view(name, window), fmt)
        return
    engine = docker_engine()
    ctl = Controller(engine, name)
    st = ctl.status()  # exit 3 (UnavailableError) when the proxy is not running
    settings = ctl.settings
    containers = engine.containers([f"{contract.LABEL_MANAGED}=true"], all=True)
    records = None
    if settings.access_log != "off":
        lines = engine.log_lines(ctl.proxy.name, since=since, stdout=True, stderr=False)
        records = access_log.select(lines)  # counted as read, never held
    view = server_status.build(st, containers, records, window, access_log=settings.access_log != "off",
                               metrics=settings.metrics)
    _show(view, fmt)


def _swarm_view(name, window):
    from ..swarm import observe as swarm_observe, status as swarm_status
    from .swarm import proxy_name

    engine = swarm_engine()
    return swarm_status.read(engine, swarm_observe.edge_service(engine, proxy_name(name)), window)


def _show(view, fmt) -> None:
    from ..proxy import server_status

    if fmt == "json":
        click.echo(json.dumps(view.to_json(), indent=2))
    else:
        click.echo(server_status.text(view))
    if view.needs_attention:
        sys.exit(EXIT_PROBLEMS)
