"""``luma-compose logs``: the proxy's access log, read from the engine (``docker logs`` of the proxy
container, its stdout; with --swarm, ``docker service logs`` of every edge on a manager, each line
with its node), filtered and printed as JSON lines or text."""

from __future__ import annotations

import signal
import sys

import click

from ..errors import UnavailableError
from .options import docker_engine, resolve_target, swarm_engine, target_options


@click.command()
@click.option("-p", "--project", default=None, metavar="NAME", help="Only requests routed to this project.")
@click.option("--service", default=None, metavar="SERVICE", help="Only requests routed to this service.")
@click.option("--follow", is_flag=True, help="Keep printing new requests until stopped (Ctrl-C).")
@click.option("--since", default=None, metavar="DURATION|TIME",
              help="Only requests since then: 10m, 2h, 1h30m, or an RFC 3339 time.")
@click.option("--status", default=None, metavar="CODES", help="Only these statuses: 5xx, 404, 4xx,502, ...")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="text: one line per request for people; json: one JSON object per line.")
@click.option("--name", default=None, metavar="NAME",
              help="Proxy container name (default luma-proxy, or $LUMA_PROXY_NAME); with --swarm, the proxy "
                   "service (default luma-proxy).")
@target_options
def logs(project, service, follow, since, status, fmt, name, target, swarm_flag) -> None:
    """The proxy's access log: one line per request (time, project, service, host, method, path,
    status, duration, bytes, upstream container, client, request id), from the engine, like
    `docker compose logs` (the proxy's log is rotated: see docs/observability.md). --swarm: every
    edge's, read on a manager, each request with the node whose edge answered it."""
    from ..proxy import access_log

    since_t = access_log.since_time(since)
    access_log.status_filter(status)  # a bad --status is a usage error before anything is read
    swarm = resolve_target(target, swarm_flag) == "swarm"
    lines, off, who = (_swarm_lines if swarm else _host_lines)(name, since_t, follow)
    if off:
        click.echo(f"warning: {who} writes no access log (proxy up{' --swarm' if swarm else ''} --access-log on)",
                   err=True)
    show = access_log.dumps if fmt == "json" else access_log.text
    if follow:  # stopped by SIGTERM as by Ctrl-C: the reader's own child (`docker service logs -f`) goes too
        signal.signal(signal.SIGTERM, _terminated)
    try:
        for rec in access_log.select(lines, project, service, status):
            sys.stdout.write(show(rec) + "\n")
            if follow:
                sys.stdout.flush()
    except BrokenPipeError:  # `logs | head`
        sys.stderr.close()
        sys.exit(0)
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()  # a generator's cleanup (kill its child) runs now, not whenever it is collected


def _terminated(signum, frame) -> None:
    sys.exit(128 + signum)


def _host_lines(name, since_t, follow):
    from ..proxy.container import ProxyContainer, proxy_name, settings_of

    engine = docker_engine()
    px = ProxyContainer(engine, proxy_name(name))
    c = px.container()
    if c is None:
        raise UnavailableError(f"the proxy container {px.name} does not exist", "start it with: luma-compose proxy up")
    lines = engine.log_lines(px.name, since=since_t, follow=follow, stdout=True, stderr=False)
    return lines, settings_of(c).access_log == "off", px.name


def _swarm_lines(name, since_t, follow):
    from ..swarm import observe as swarm_observe
    from .swarm import proxy_name

    engine = swarm_engine()
    edge = swarm_observe.edge_service(engine, proxy_name(name))
    lines = swarm_observe.edge_log_lines(engine, edge, since_t, follow)
    return lines, not swarm_observe.access_log_of(edge.labels), f"the edges of {edge.name}"
