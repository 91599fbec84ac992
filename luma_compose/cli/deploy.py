"""``luma-compose deploy`` and ``luma-compose down``: parse, call deploy.py, print."""

from __future__ import annotations

import os
import sys
import time

import click

from ..proxy import caddy_config
from . import swarm as on_swarm
from .options import docker_engine, endpoint, input_options, resolve_target, target_options
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
@target_options
@click.option("--timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="How long each new container may take to become healthy (default 120); with --target swarm, "
                   "how long the stack may take to converge (default 300).")
@click.option("--drain", type=click.FloatRange(min=0), default=10, show_default=True, metavar="SECONDS",
              help="How long old containers keep running for in-flight requests after traffic left them.")
@click.option("--settle", type=click.FloatRange(min=0), default=5, show_default=True, metavar="SECONDS",
              help="How long new containers must keep running after traffic moved to them (watched during the "
                   "drain, at least this long); one that stops brings the old ones back and deploy exits 1.")
@click.option("--force-unlock", is_flag=True,
              help="Remove the project's deploy lock first, whoever holds it (a deploy that died on another "
                   "machine); says whose it was.")
@click.option("--dry-run", "dry_run", is_flag=True,
              help="Print what deploy would do and change nothing. Exit 0: nothing to do, 1: problems "
                   "(deploy would refuse), 4: changes pending.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="With --dry-run: json is the shape in schemas/deploy-plan.schema.json.")
@_proxy_options
@click.option("--ingress-pool", default=None, metavar="base=CIDR,size=N",
              help="Where each project's ingress network gets its subnet (default base=172.16.0.0/16,size=26, "
                   "or $LUMA_INGRESS_POOL); it then takes none of Docker's default address pools.")
@click.option("--resolve-image", type=click.Choice(["always", "changed", "never"]), default=None,
              help="--target swarm only, passed to docker stack deploy (default always; never: images already on "
                   "every node).")
@click.option("--proxy-nodes", default=None, metavar="all|label=KEY=VALUE",
              help="--target swarm only, when deploy starts the proxy: every node (default), or the nodes with this "
                   "node label.")
@click.option("--maintenance", "maintenance", is_flag=True,
              help="The project's hosts answer 503 with the maintenance page during the deploy (for migrations that "
                   "cannot run under traffic); off after success. A deploy that fails after it was turned on leaves "
                   "it on (docs/maintenance.md).")
@click.option("--keep-releases", "keep_releases", type=click.IntRange(min=1), default=None, metavar="N",
              help="How many releases of the project the engine keeps (default 10, or $LUMA_KEEP_RELEASES); see "
                   "`luma-compose releases`.")
def deploy(files, project, project_directory, target, swarm_flag, timeout, drain, settle, force_unlock, dry_run, fmt,
           proxy_name, proxy_image, proxy_http_port, proxy_https_port, proxy_tls, proxy_select, ingress_pool,
           resolve_image,
           proxy_nodes, maintenance, keep_releases) -> None:
    """Render, check and deploy a project behind the proxy, without downtime.

    First deploy: docker compose up -d, wait until healthy, route. Redeploy: every routed
    service is rolled (new containers beside the old, each checked on its own, traffic
    moved, old ones drained and removed); a new container that fails leaves the old
    version serving and exits 1.

    --swarm: render for Swarm and deploy as a stack; Swarm rolls routed services
    health-gated, with rollback.
    """
    target = resolve_target(target, swarm_flag,
                            compose_only=("drain", "settle", "force_unlock", "fmt", "proxy_https_port",
                                          "proxy_tls", "proxy_select", "ingress_pool", "keep_releases"),
                            swarm_only=("resolve_image", "proxy_nodes"))
    if dry_run and maintenance:
        raise UsageError("--dry-run changes nothing, so it turns no maintenance on", "drop --maintenance or --dry-run")
    if target == "swarm" and dry_run:
        sys.exit(on_swarm.run_dry_run(files, project, project_directory,
                                      on_swarm.proxy_name(proxy_name, "--proxy-name")))
    if target == "swarm":
        _swarm_deploy(files, project, project_directory, timeout, proxy_name, proxy_image, proxy_http_port,
                      resolve_image, proxy_nodes, maintenance)
        return
    from ..deploy.progress import Progress
    from ..deploy.rollout import Deployer, ProxyOptions
    from ..engine.docker_engine import DockerEngine
    from .report import print_problems

    timeout = 120 if timeout is None else timeout
    if fmt == "json" and not dry_run:
        raise UsageError("--format json is for --dry-run (deploy itself prints progress lines)", "add --dry-run")
    pool = _ingress_pool(ingress_pool)
    from ..deploy import releases

    keep = releases.keep_setting(keep_releases)
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
                 timeout=timeout, drain=drain, progress=progress, settle=settle, force_unlock=force_unlock,
                 ingress_pool=pool)
    d.after = releases.recorder(d, releases.origin(result.project_directory), keep)
    res = _maintained(d, maintenance)
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"deployed {res.project} in {time.monotonic() - t0:.1f}s", err=True)
    for u in res.urls:
        click.echo(u)


def _maintained(d, maintenance: bool):
    """d.deploy(), with --maintenance around its rollout; a failure says what state maintenance is left in."""
    if not maintenance:
        return d.deploy()
    from ..deploy.maintenance import DeployMaintenance

    d.maintenance = DeployMaintenance(lambda s: click.echo(s, err=True))
    try:
        return d.deploy()
    except BaseException:
        click.echo(d.maintenance.failed_note(d.project), err=True)
        raise


def _ingress_pool(option: str | None):
    """--ingress-pool, else $LUMA_INGRESS_POOL, else the default range."""
    from ..deploy import subnets

    if option is not None:
        return subnets.parse_pool(option, subnets.POOL_OPTION)
    env = os.environ.get(subnets.POOL_ENV, "").strip()
    return subnets.parse_pool(env, "$" + subnets.POOL_ENV) if env else subnets.default_pool()


def _swarm_deploy(files, project, project_directory, timeout, proxy_name, proxy_image, proxy_http_port,
                  resolve_image, proxy_nodes, maintenance=False) -> None:
    """deploy --swarm: the swarm defaults for the options not given; bad values refused before any engine."""
    pick = on_swarm.pick
    http_port = on_swarm.port(proxy_http_port, "--proxy-http-port", on_swarm.DEFAULTS["proxy_http_port"])
    nodes = on_swarm.nodes(proxy_nodes, "--proxy-nodes")
    on_swarm.run_deploy(files, project, project_directory, pick("resolve_image", resolve_image),
                        pick("timeout", timeout), on_swarm.proxy_name(proxy_name, "--proxy-name"),
                        pick("proxy_image", proxy_image),
                        http_port, nodes, maintenance)


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
    _pools_warning(d)
    return plan.exit_code()


def _pools_warning(d) -> None:
    """Warn (stderr, the plan's output unchanged) when Docker's default address pools are nearly used up."""
    import json

    from ..deploy import networks

    cfg = json.loads(d.compose.run("config", "--format", "json"))
    w = networks.pools_warning(d.engine, networks.default_pool_networks(d.engine, cfg, d.project))
    if w:
        click.echo(f"warning: {w}", err=True)


@click.command()
@input_options
@target_options
@click.option("-v", "--volumes", is_flag=True, help="Also remove the project's named and anonymous volumes "
                                                  "(--target compose only).")
@click.option("--proxy-name", default=None, metavar="NAME",
              help="Proxy container (default luma-proxy, or $LUMA_PROXY_NAME); with --target swarm, the proxy "
                   "service (default luma-proxy).")
@click.option("--force-unlock", is_flag=True,
              help="Remove the project's deploy lock first, whoever holds it (a deploy that died on another "
                   "machine); says whose it was.")
@click.option("--keep-releases", "keep_releases", is_flag=True,
              help="Keep the project's releases on the engine (and the images they pin), so `luma-compose rollback "
                   "-p NAME RELEASE` can bring it back (--target compose only).")
def down(files, project, project_directory, target, swarm_flag, volumes, proxy_name, force_unlock,
         keep_releases) -> None:
    """Unroute a project, docker compose down, and remove its ingress network.

    Other projects keep serving. Volumes are kept unless --volumes. --target swarm: docker
    stack rm, unroute, and remove the project's networks.
    The project is the compose file's (found as render finds it), or -p NAME.
    """
    from ..deploy.progress import Progress
    from ..deploy.teardown import down as teardown

    target = resolve_target(target, swarm_flag, compose_only=("volumes", "force_unlock", "keep_releases"))
    project, directory, text = _project_of(files, project, project_directory)
    if target == "swarm":
        on_swarm.run_down(project, on_swarm.proxy_name(proxy_name, "--proxy-name"))
        return
    from ..deploy import releases

    progress = Progress()
    engine = docker_engine()
    for w in teardown(engine, project, directory, text, proxy_name, volumes, progress,
                      force_unlock=force_unlock):
        click.echo(f"warning: {w}", err=True)
    if not keep_releases:
        with progress.step(f"Remove the releases of {project}") as note:
            note.append(f"({releases.forget(engine, project)})")
    click.echo(f"{project} is down", err=True)


def _project_of(files, project, project_directory) -> tuple[str, str, str]:
    """(project name, project directory, rendered text or "") for down: from the compose file, or -p NAME alone."""
    from .report import print_problems

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
    return project, directory, text
