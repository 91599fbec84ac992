"""The swarm target of the shared commands (`render --swarm`, `deploy --swarm`, `proxy up --swarm`,
...): the same compose file and x-luma on a Docker Swarm cluster. Plain functions the click commands
of main.py, deploy.py and proxy.py call once they have read --swarm; this module defines no command.

render/check need no engine; deploy, down, proxy and routes talk to a manager (-H/--context,
else DOCKER_HOST or the docker CLI's default, as every command).
"""

from __future__ import annotations

import json
import re
import sys

import click

from ..errors import UsageError
from .options import swarm_engine

# The swarm defaults of options the shared commands spell alike for both targets (their compose defaults
# differ, so the shared options default to None and the swarm side fills these in).
DEFAULTS = {"resolve_image": "always", "timeout": 300, "proxy_name": "luma-proxy", "proxy_image": "caddy:2",
            "proxy_http_port": 80, "proxy_https_port": 443, "proxy_nodes": "all", "tls": "off"}
PORT = click.IntRange(1, 65535)


def pick(name: str, value):
    return DEFAULTS[name] if value is None else value


def proxy_name(value: str | None, option: str = "--name") -> str:
    """The swarm proxy's service name (its other services and networks are named after it)."""
    name = pick("proxy_name", value)
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,55}", name):
        raise UsageError(f"{option} {name!r} is not a swarm service name",
                         f"letters, digits, '_', '.' or '-', at most 56, e.g. {option} luma-proxy")
    return name


def port(value: str | None, option: str, default: int) -> int:
    """A published port of the swarm proxy (a number, on every proxy node), from the shared [IP:]PORT option."""
    if value is None:
        return default
    try:
        return PORT.convert(value, None, None)
    except click.BadParameter:
        raise UsageError(f"{option} {value}: with --swarm it is a port number (1-65535), published on every "
                         "proxy node", f"give a port, e.g. {option} 8080") from None


def nodes(value: str | None, option: str) -> str:
    """Where the swarm proxy runs: `all` or `label=KEY=VALUE` (checked before any engine is asked)."""
    from ..swarm.options import check_nodes

    value = pick("proxy_nodes", value)
    check_nodes(value, option)
    return value


def _stack(files, project, project_directory):
    """(result, stack text or None, problems, warnings): render's swarm output, read back by docker stack config."""
    from .. import api
    from ..compose import stack
    from ..engine.stack_cli import read_back

    result = api.render(files, project, project_directory)
    out = read_back(stack.render(result), result.source, result.project, result.routes)
    return result, out.text, out.problems, out.warnings


def _print(problems, warnings) -> None:
    from .report import print_problems

    for w in warnings:
        click.echo(f"{w.location()}: warning: {w.message}" + (f"\n  hint: {w.hint}" if w.hint else ""), err=True)
    if problems:
        print_problems(problems)


def run_render(files, project, project_directory, output) -> None:
    """`render --swarm`: the file `docker stack deploy -c - NAME` takes."""
    _, text, problems, warnings = _stack(files, project, project_directory)
    _print(problems, warnings)
    if problems:
        sys.exit(1)
    if output:
        from .commands import write_text_atomic  # the whole file or none of it, and a clear error

        write_text_atomic(output, text)
    else:
        sys.stdout.write(text)


def run_check(files, project, project_directory) -> None:
    """`check --swarm`: check, plus what Swarm ignores (warning) or rejects (error)."""
    _, _, problems, warnings = _stack(files, project, project_directory)
    _print(problems, warnings)
    sys.exit(1 if problems else 0)


def run_deploy(files, project, project_directory, resolve_image, timeout, proxy_name, proxy_image,
               proxy_http_port, proxy_nodes, maintenance=False) -> None:
    """`deploy --swarm`: render for Swarm and deploy as a stack; Swarm rolls routed services health-gated."""
    from ..swarm import deploy as sd

    result, text, problems, warnings = _stack(files, project, project_directory)
    _print(problems, warnings)
    if problems:
        click.echo("nothing was deployed: fix the problems above", err=True)
        sys.exit(1)
    res = sd.deploy(swarm_engine(), result.project, text, result.routes, proxy_name=proxy_name,
                    proxy_image=proxy_image, proxy_http_port=proxy_http_port, proxy_nodes=proxy_nodes,
                    resolve_image=resolve_image, timeout=timeout, log=lambda s: click.echo(s, err=True),
                    maintenance=maintenance)
    click.echo(f"deployed {res.project}", err=True)
    for u in res.urls:
        click.echo(u)


def run_dry_run(files, project, project_directory, proxy_name) -> int:
    """`deploy --swarm --dry-run`: render and read back the stack, then read (never change) the swarm."""
    from ruamel.yaml import YAML

    from ..swarm import deploy as sd

    result, text, problems, warnings = _stack(files, project, project_directory)
    _print(problems, warnings)
    if problems:
        click.echo("deploy would refuse: fix the problems above (exit 1)", err=True)
        return 1
    services = list((YAML(typ="safe").load(text) or {}).get("services") or {})
    plan = sd.dry_run(swarm_engine(), result.project, services, result.routes, proxy_name=proxy_name)
    click.echo(plan.text())
    return plan.exit_code


def run_down(project, proxy_name) -> None:
    """`down --swarm`: docker stack rm, unroute, and remove the project's networks."""
    from ..swarm import deploy as sd

    sd.down(swarm_engine(), project, proxy_name, log=lambda s: click.echo(s, err=True))
    click.echo(f"{project} is down", err=True)


def _proxy(name: str | None, manager: bool = True, **kw):
    from ..swarm.proxy import SwarmProxy

    name = proxy_name(name)
    eng = swarm_engine()
    if manager:
        eng.require_manager()
    return SwarmProxy(eng, name, **kw)


def edge_metrics(metrics: str | None, allow: str | None):
    """`--metrics PORT|off` and `--metrics-allow` on a swarm -> the edges' metrics settings (None: keep them)."""
    from ..swarm.metrics import settings

    off = metrics is not None and metrics.strip() == "off"
    return settings(None if metrics is None or off else port(metrics, "--metrics", 0), off, allow)


def proxy_up(name, image, http_port, https_port, tls, email, acme_ca, acme_root_pem, nodes_, storage,
             metrics=None, access_log=None) -> None:
    """`proxy up --swarm`: the edges on every node (or the labelled ones), config server, gateways."""
    from ..swarm.options import check_storage
    from ..swarm.routes import EdgeTLS

    tls = pick("tls", tls)
    http = port(http_port, "--http-port", DEFAULTS["proxy_http_port"])
    https = port(https_port, "--https-port", DEFAULTS["proxy_https_port"])
    if tls == "off" and (email or acme_ca or acme_root_pem or storage):
        raise UsageError("--email/--acme-ca/--acme-ca-root/--storage are for HTTPS",
                         "add --tls acme (or internal), or drop them")
    if tls == "off" and https_port is not None:
        raise UsageError("--https-port is for HTTPS", "add --tls acme (or internal), or drop it")
    if tls != "off" and not storage:
        raise UsageError(f"--tls {tls} on a swarm needs storage every edge shares (certificates, the ACME account, "
                         "challenge tokens, locks): without it each node would get its own certificates, and an "
                         "HTTP-01 challenge reaching another node would fail",
                         "--storage /shared/path (the same directory on every node, e.g. NFS) or --storage VOLUME "
                         "(a volume driver every node shares); or terminate TLS at your load balancer and keep "
                         "--tls off")
    if storage:
        check_storage(storage)
    where = nodes(nodes_, "--nodes")
    name = proxy_name(name)
    root = acme_root_pem or None
    edge_tls = EdgeTLS() if tls == "off" else EdgeTLS(tls, https, email or "", acme_ca or "", bool(root))
    _proxy(name).up(pick("proxy_image", image), http, where, edge_tls, storage or "", root, metrics, access_log=access_log)


def proxy_sync(name) -> None:
    res = _proxy(name).sync()
    sys.exit(1 if res.table.messages else 0)


def proxy_run(name, interval) -> None:
    """Keep the proxy equal to the services' labels (polls a manager; survives its restarts)."""
    _proxy(name, manager=False).run(interval)


def proxy_down(name) -> None:
    _proxy(name, manager=False).down()


def routes(name, fmt) -> None:
    """`routes --swarm`: host -> target of what the edges serve (exact hosts before wildcards), what is
    withheld, and conflicts."""
    from ..routing.maintenance import describe

    t = _proxy(name, log=lambda s: None).served()
    if fmt == "json":
        def rows(rs):
            return [{"hosts": list(r.hosts), "target": r.target, "project": r.project, "service": r.service,
                     **r.features_json(), **r.access_json(),  # user names and networks, never a hash
                     "maintenance": r.maintenance.to_json() if r.maintenance else None} for r in rs]
        click.echo(json.dumps({"routes": rows(t.serving), "withheld": rows(t.withheld), "conflicts": t.messages}))
    else:
        for r in t.serving:
            paths = f" paths {','.join(r.paths)}{' (stripped)' if r.strip_prefix else ''}" if r.paths else ""
            access = r.access_json().get("access", {})
            guard = "".join(f" [basic auth: {', '.join(v)}]" if k == "basic_auth" else f" [allow {', '.join(v)}]"
                            for k, v in access.items())
            click.echo(f"{','.join(r.hosts)}{paths} -> {r.target} ({r.project}/{r.service}){guard}"
                       + (f" [{describe(r.maintenance)}]" if r.maintenance else ""))
            if r.redirect_from:
                click.echo(f"{','.join(r.redirect_from)} -> 308 to {r.redirect_to} ({r.project}/{r.service})")
        for r in t.withheld:
            click.echo(f"{','.join(r.hosts)} -> withheld, 404 ({r.project}/{r.service})")
        for c in t.messages:
            click.echo(f"conflict: {c}", err=True)
    sys.exit(1 if t.messages else 0)
