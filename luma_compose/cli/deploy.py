"""``luma-compose deploy`` and ``luma-compose down``: parse, call deploy.py, print."""

from __future__ import annotations

import os
import sys
import time

import click

from ..proxy import caddy_config
from .main import docker_engine, endpoint, input_options
from ..errors import UsageError

_TLS = click.Choice(caddy_config.TLS_MODES)


def _proxy_options(f):
    f = click.option("--proxy-select", default=None, metavar="LABEL=VALUE",
                     help="Only when deploy starts the proxy: route only containers with this label.")(f)
    f = click.option("--proxy-tls", type=_TLS, default=None,
                     help="Only when deploy starts the proxy: acme (default), internal or off.")(f)
    f = click.option("--proxy-https-port", default=None, metavar="[IP:]PORT",
                     help="Only when deploy starts the proxy (default 443).")(f)
    f = click.option("--proxy-http-port", default=None, metavar="[IP:]PORT",
                     help="Only when deploy starts the proxy (default 80).")(f)
    f = click.option("--proxy-image", default=None, help="Only when deploy starts the proxy (default caddy:2).")(f)
    f = click.option("--proxy-name", default=None, metavar="NAME",
                     help="Proxy container (default luma-proxy, or $LUMA_PROXY_NAME).")(f)
    return f


def _render(files, project, project_directory):
    from .. import api

    return api.render(files, project, project_directory)


@click.command()
@input_options
@click.option("--timeout", type=click.FloatRange(min=1), default=120, show_default=True, metavar="SECONDS",
              help="How long each new container may take to become healthy.")
@click.option("--drain", type=click.FloatRange(min=0), default=10, show_default=True, metavar="SECONDS",
              help="How long old containers keep running for in-flight requests after traffic left them.")
@click.option("--dry-run", "--plan", "dry_run", is_flag=True,
              help="Print what deploy would do and change nothing. Exit 0: nothing to do, 1: problems "
                   "(deploy would refuse), 4: changes pending.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="With --dry-run: json is the shape in schemas/deploy-plan.schema.json.")
@_proxy_options
def deploy(files, project, project_directory, timeout, drain, dry_run, fmt, proxy_name, proxy_image, proxy_http_port,
           proxy_https_port, proxy_tls, proxy_select) -> None:
    """Render, check and deploy a project behind the proxy, without downtime.

    First deploy: docker compose up -d, wait until healthy, route. Redeploy: every routed
    service is rolled (new containers beside the old, each checked on its own, traffic
    moved, old ones drained and removed); a new container that fails leaves the old
    version serving and exits 1.
    """
    from ..deploy.progress import Progress
    from ..deploy.rollout import Deployer, ProxyOptions
    from ..engine.docker_engine import DockerEngine
    from .report import print_problems

    if fmt == "json" and not dry_run:
        raise UsageError("--format json is for --dry-run (deploy itself prints progress lines)", "add --dry-run")
    if dry_run:
        sys.exit(_dry_run(files, project, project_directory, fmt, proxy_name))
    t0 = time.monotonic()
    progress = Progress()
    ep = endpoint()  # resolved once, shown first: every step below talks to this engine only
    progress.line(f" engine: {ep.describe()}")
    with progress.step("Render and check") as note:
        result = _render(files, project, project_directory)
        note.append(os.path.basename(result.source) if os.path.exists(result.source) else result.source)
        if not result.ok:
            note.append(Progress.FAILED)
    if not result.ok:
        print_problems(result.problems)
        click.echo("nothing was deployed: fix the problems above", err=True)
        sys.exit(1)
    engine = DockerEngine(ep)
    d = Deployer(engine, result.project, result.project_directory, result.text, result.routes,
                 ProxyOptions(proxy_name, proxy_image, proxy_http_port, proxy_https_port, proxy_tls, proxy_select),
                 timeout=timeout, drain=drain, progress=progress)
    res = d.deploy()
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"deployed {res.project} in {time.monotonic() - t0:.1f}s", err=True)
    for u in res.urls:
        click.echo(u)


def _dry_run(files, project, project_directory, fmt, proxy_name) -> int:
    """deploy --dry-run: render and check, then read (never change) the engine; the exit code says what it found."""
    import json

    from ..deploy.plan import DryRun
    from ..deploy.rollout import Deployer, ProxyOptions
    from ..engine.docker_engine import DockerEngine
    from .report import print_problems

    ep = endpoint()
    result = _render(files, project, project_directory)
    if not result.ok:
        if fmt == "json":
            click.echo(json.dumps({"version": 1, "project": result.project or "", "engine": ep.to_json(), "ok": False,
                                   "changes": False, "proxy": None, "services": [], "hosts": [], "orphans": [],
                                   "conflicts": [], "problems": [p.to_json() for p in result.problems]}, indent=2))
        else:
            print_problems(result.problems)
            click.echo("deploy would refuse: fix the problems above (exit 1)", err=True)
        return 1
    d = Deployer(DockerEngine(ep), result.project, result.project_directory, result.text, result.routes,
                 ProxyOptions(proxy_name))
    plan: DryRun = d.dry_run()
    click.echo(json.dumps(plan.to_json(), indent=2) if fmt == "json" else plan.text())
    return plan.exit_code()


@click.command()
@input_options
@click.option("-v", "--volumes", is_flag=True, help="Also remove the project's named and anonymous volumes.")
@click.option("--proxy-name", default=None, metavar="NAME",
              help="Proxy container (default luma-proxy, or $LUMA_PROXY_NAME).")
def down(files, project, project_directory, volumes, proxy_name) -> None:
    """Unroute a project, docker compose down, and remove its ingress network.

    Other projects keep serving. Volumes are kept unless --volumes.
    """
    from ..deploy.progress import Progress
    from ..deploy.teardown import down as teardown
    from .report import print_problems

    progress = Progress()
    text = ""
    directory = os.path.abspath(project_directory or ".")  # `down -p NAME` with no file here
    try:
        result = _render(files, project, project_directory)
    except UsageError:
        if not project or files:
            raise
        result = None  # no compose file here: `down -p NAME` works from Docker's labels alone
    if result is not None:
        if not result.ok and not project:
            print_problems(result.problems)
            click.echo("cannot tell the project from a broken file: fix it, or give -p NAME", err=True)
            sys.exit(1)
        if result.ok:
            text = result.text or ""
            project = result.project
        directory = result.project_directory
    for w in teardown(docker_engine(), project, directory, text, proxy_name, volumes, progress):
        click.echo(f"warning: {w}", err=True)
    click.echo(f"{project} is down", err=True)
