"""``luma-compose swarm ...``: the same compose file and x-luma on a Docker Swarm cluster.

render/check need no engine; deploy, down, proxy and routes talk to a manager (-H/--context,
else DOCKER_HOST or the docker CLI's default, as every command).
"""

from __future__ import annotations

import json
import sys

import click

from .main import endpoint, input_options


def _stack(files, project, project_directory):
    """(result, stack text or None, problems, warnings)."""
    from .. import api
    from ..compose.source import parse
    from ..swarm import stack

    result = api.render(files, project, project_directory)
    src, errs = parse(result.source, result.input_text)
    swarm_problems = [] if errs else stack.problems(src)
    warnings = [p for p in swarm_problems if stack.is_warning(p)]
    problems = list(result.problems) + [p for p in swarm_problems if not stack.is_warning(p)]
    text = None
    if not problems:
        try:
            text = stack.to_stack(result.source, result.text, result.project, result.routes)
        except stack.StackRefused as e:
            problems.append(e.problem)
    return result, text, problems, warnings


def _engine():
    """The swarm engine on the one endpoint: the global -H/--context, else the docker CLI's own rules."""
    from ..engine.swarm import SwarmEngine

    return SwarmEngine(endpoint())


def _print(problems, warnings) -> None:
    from .report import print_problems

    for w in warnings:
        click.echo(f"{w.location()}: warning: {w.message}" + (f"\n  hint: {w.hint}" if w.hint else ""), err=True)
    if problems:
        print_problems(problems)


@click.group()
def swarm() -> None:
    """Deploy projects as stacks on a Docker Swarm, behind a global proxy service."""


@swarm.command("render")
@input_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
def render(files, project, project_directory, output) -> None:
    """The file `docker stack deploy -c - NAME` takes (overlay, attachable P_luma; deploy.labels)."""
    run_render(files, project, project_directory, output)


def run_render(files, project, project_directory, output) -> None:
    """`swarm render` and `render --target swarm`."""
    _, text, problems, warnings = _stack(files, project, project_directory)
    _print(problems, warnings)
    if problems:
        sys.exit(1)
    if output:
        from .commands import _write_atomic  # the whole file or none of it, and a clear error

        _write_atomic(output, text)
    else:
        sys.stdout.write(text)


@swarm.command("check")
@input_options
def check(files, project, project_directory) -> None:
    """Like check, plus what Swarm ignores (warning) or rejects (error)."""
    run_check(files, project, project_directory)


def run_check(files, project, project_directory) -> None:
    """`swarm check` and `check --target swarm`."""
    _, _, problems, warnings = _stack(files, project, project_directory)
    _print(problems, warnings)
    sys.exit(1 if problems else 0)


# The swarm defaults and types, shared by `swarm deploy` and `deploy --target swarm` (whose options default
# to None, as their compose defaults differ).
DEFAULTS = {"resolve_image": "always", "timeout": 300, "proxy_name": "luma-proxy", "proxy_image": "caddy:2",
            "proxy_http_port": 80, "proxy_nodes": "all"}
PORT = click.IntRange(1, 65535)
RESOLVE_IMAGE = click.Choice(["always", "changed", "never"])


def _proxy_opts(f):
    f = click.option("--proxy-nodes", default=DEFAULTS["proxy_nodes"], show_default=True,
                     metavar="all|label=KEY=VALUE",
                     help="Where the proxy runs: every node, or the nodes with this node label.")(f)
    f = click.option("--proxy-http-port", type=PORT, default=DEFAULTS["proxy_http_port"], show_default=True)(f)
    f = click.option("--proxy-image", default=DEFAULTS["proxy_image"], show_default=True)(f)
    f = click.option("--proxy-name", default=DEFAULTS["proxy_name"], show_default=True)(f)
    return f


@swarm.command("deploy")
@input_options
@click.option("--resolve-image", type=RESOLVE_IMAGE, default=DEFAULTS["resolve_image"],
              show_default=True, help="Passed to docker stack deploy (never: images already on every node).")
@click.option("--timeout", type=click.FloatRange(min=1), default=DEFAULTS["timeout"], show_default=True)
@_proxy_opts
def deploy(files, project, project_directory, resolve_image, timeout, proxy_name, proxy_image,
           proxy_http_port, proxy_nodes) -> None:
    """Render for Swarm and deploy as a stack; Swarm rolls routed services health-gated, with rollback."""
    run_deploy(files, project, project_directory, resolve_image, timeout, proxy_name, proxy_image, proxy_http_port,
               proxy_nodes)


def run_deploy(files, project, project_directory, resolve_image, timeout, proxy_name, proxy_image,
               proxy_http_port, proxy_nodes) -> None:
    """`swarm deploy` and `deploy --target swarm`."""
    from ..swarm import deploy as sd

    result, text, problems, warnings = _stack(files, project, project_directory)
    _print(problems, warnings)
    if problems:
        click.echo("nothing was deployed: fix the problems above", err=True)
        sys.exit(1)
    res = sd.deploy(_engine(), result.project, text, result.routes, proxy_name=proxy_name,
                    proxy_image=proxy_image, proxy_http_port=proxy_http_port, proxy_nodes=proxy_nodes,
                    resolve_image=resolve_image, timeout=timeout, log=lambda s: click.echo(s, err=True))
    click.echo(f"deployed {res.project}", err=True)
    for u in res.urls:
        click.echo(u)


@swarm.command("down")
@click.option("-p", "--project-name", "project", required=True, metavar="NAME")
@click.option("--proxy-name", default=DEFAULTS["proxy_name"], show_default=True)
def down(project, proxy_name) -> None:
    """docker stack rm, unroute, and remove the project's networks."""
    run_down(project, proxy_name)


def run_down(project, proxy_name) -> None:
    """`swarm down` and `down --target swarm`."""
    from ..swarm import deploy as sd

    sd.down(_engine(), project, proxy_name, log=lambda s: click.echo(s, err=True))
    click.echo(f"{project} is down", err=True)


@swarm.group("proxy")
def proxy() -> None:
    """The proxy as a global swarm service."""


@proxy.command("up")
@_proxy_opts
@click.option("--proxy-tls", type=click.Choice(["off", "acme", "internal"]), default="off", show_default=True,
              help="HTTPS on the edges: acme (certificates from an ACME CA, Let's Encrypt by default), internal "
                   "(Caddy's own CA, shared by every edge) or off (terminate TLS at your load balancer).")
@click.option("--proxy-https-port", type=PORT, default=443, show_default=True)
@click.option("--proxy-storage", default="", metavar="PATH|VOLUME",
              help="Needed with TLS: what every edge mounts at /data for certificates, the ACME account, challenge "
                   "tokens and locks. An absolute path must be the same shared directory on every proxy node (NFS, "
                   "...); a name is a volume whose driver shares it across nodes.")
@click.option("--proxy-email", default="", help="ACME account email.")
@click.option("--proxy-acme-ca", default="", metavar="URL", help="ACME directory (default: Let's Encrypt).")
@click.option("--proxy-acme-ca-root", type=click.File("r"), default=None, metavar="FILE",
              help="PEM root the ACME CA's HTTPS is signed with (a private CA), given to every edge.")
def proxy_up(proxy_name, proxy_image, proxy_http_port, proxy_nodes, proxy_tls, proxy_https_port, proxy_storage,
             proxy_email, proxy_acme_ca, proxy_acme_ca_root) -> None:
    """Create the proxy (edges on every node, config server, gateways), or check it runs with these settings."""
    from ..errors import UsageError
    from ..swarm.proxy import SwarmProxy
    from ..swarm.routes import EdgeTLS

    if proxy_tls == "off" and (proxy_email or proxy_acme_ca or proxy_acme_ca_root or proxy_storage):
        raise UsageError("--proxy-email/--proxy-acme-ca/--proxy-acme-ca-root/--proxy-storage are for HTTPS",
                         "add --proxy-tls acme (or internal), or drop them")
    if proxy_tls == "off" and proxy_https_port != 443:
        raise UsageError("--proxy-https-port is for HTTPS", "add --proxy-tls acme (or internal), or drop it")
    root = proxy_acme_ca_root.read() if proxy_acme_ca_root else None
    tls = EdgeTLS() if proxy_tls == "off" else EdgeTLS(proxy_tls, proxy_https_port, proxy_email, proxy_acme_ca,
                                                       bool(root))
    eng = _engine()
    eng.require_manager()
    SwarmProxy(eng, proxy_name).up(proxy_image, proxy_http_port, proxy_nodes, tls, proxy_storage, root)


@proxy.command("sync")
@click.option("--proxy-name", default=DEFAULTS["proxy_name"], show_default=True)
def proxy_sync(proxy_name) -> None:
    from ..swarm.proxy import SwarmProxy

    eng = _engine()
    eng.require_manager()
    res = SwarmProxy(eng, proxy_name).sync()
    sys.exit(1 if res.table.messages else 0)


@proxy.command("run")
@click.option("--proxy-name", default=DEFAULTS["proxy_name"], show_default=True)
@click.option("--interval", type=click.FloatRange(min=0.2), default=1.0, show_default=True)
def proxy_run(proxy_name, interval) -> None:
    """Keep the proxy equal to the services' labels (polls a manager; survives its restarts)."""
    from ..swarm.proxy import SwarmProxy

    SwarmProxy(_engine(), proxy_name).run(interval)


@proxy.command("install")
@click.option("--proxy-name", default=DEFAULTS["proxy_name"], show_default=True)
@click.option("--unit-dir", default=None, metavar="DIR", help="Where to write the unit (default /etc/systemd/system).")
@click.option("--enable/--no-enable", default=True, show_default=True,
              help="Run systemctl daemon-reload and enable --now the unit.")
@click.option("--print", "print_only", is_flag=True, help="Print the unit instead of writing it.")
def proxy_install(proxy_name, unit_dir, enable, print_only) -> None:
    """Keep `swarm proxy run` running (a systemd unit, on a manager): routes follow changes made
    without luma-compose, and an impostor's victim is withheld within a second."""
    from .proxy import install_unit

    install_unit(proxy_name, unit_dir, enable, print_only, swarm=True)


@proxy.command("down")
@click.option("--proxy-name", default=DEFAULTS["proxy_name"], show_default=True)
def proxy_down(proxy_name) -> None:
    from ..swarm.proxy import SwarmProxy

    SwarmProxy(_engine(), proxy_name).down()


@swarm.command("routes")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--proxy-name", default=DEFAULTS["proxy_name"], show_default=True)
def routes(fmt, proxy_name) -> None:
    """host -> target of what the edges serve (exact hosts before wildcards), what is withheld, and
    conflicts."""
    from ..swarm.proxy import SwarmProxy

    eng = _engine()
    eng.require_manager()
    t = SwarmProxy(eng, proxy_name, log=lambda s: None).served()
    if fmt == "json":
        def rows(rs):
            return [{"hosts": list(r.hosts), "target": r.target, "project": r.project, "service": r.service}
                    for r in rs]
        click.echo(json.dumps({"routes": rows(t.serving), "withheld": rows(t.withheld), "conflicts": t.messages}))
    else:
        for r in t.serving:
            click.echo(f"{','.join(r.hosts)} -> {r.target} ({r.project}/{r.service})")
        for r in t.withheld:
            click.echo(f"{','.join(r.hosts)} -> withheld, 404 ({r.project}/{r.service})")
        for c in t.messages:
            click.echo(f"conflict: {c}", err=True)
    sys.exit(1 if t.messages else 0)
