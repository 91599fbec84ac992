"""``luma-compose proxy ...`` and ``luma-compose routes``: parse, call proxy.py (or, with --swarm,
the swarm target in swarm.py), print."""

from __future__ import annotations

import json
import signal
import sys
import threading

import click

from ..errors import EXIT_PROBLEMS, UsageError
from ..proxy import caddy_config
from ..routing.claims import RouteTable
from . import swarm as on_swarm
from .options import compose_only_command, docker_engine, resolve_target, target_options
from .report import reporter

NAME_OPTION = click.option("--name", default=None, metavar="NAME",
                           help="Proxy container name (default luma-proxy, or $LUMA_PROXY_NAME); with --swarm, "
                                "the proxy service (default luma-proxy).")


def _controller(name: str | None):
    from ..proxy.controller import Controller

    return Controller(docker_engine(), name)  # the docker SDK only when a proxy command runs


@click.group()
def proxy() -> None:
    """Run the one reverse proxy (Caddy) that routes every project by Host header."""


@proxy.command()
@NAME_OPTION
@target_options
@click.option("--image", default=None, help="Caddy image (default caddy:2, or $LUMA_PROXY_IMAGE).")
@click.option("--http-port", default=None, metavar="[IP:]PORT",
              help="Published HTTP port (default 80; 0: any free port). With --swarm: a port number, published on "
                   "every proxy node.")
@click.option("--https-port", default=None, metavar="[IP:]PORT",
              help="Published HTTPS port (default 443). With --swarm: a port number, with --tls acme or internal.")
@click.option("--tls", type=click.Choice(caddy_config.TLS_MODES), default=None,
              help="acme: automatic HTTPS (default); internal: Caddy's own CA; off: plain HTTP. With --swarm: HTTPS "
                   "on the edges, default off (terminate TLS at your load balancer).")
@click.option("--email", default=None, help="ACME account e-mail.")
@click.option("--volume", default=None,
              help="Volume for certificates (default NAME-data, or $LUMA_PROXY_VOLUME; not with --swarm: see "
                   "--storage).")
@click.option("--select", default=None, metavar="LABEL=VALUE",
              help="Route only managed containers that also carry this label (default: all; '' clears it; not "
                   "with --swarm).")
@click.option("--acme-ca", default=None, metavar="URL",
              help="ACME directory URL (default: Let's Encrypt; e.g. its staging, ZeroSSL, a company CA; '' resets).")
@click.option("--acme-ca-root", default=None, metavar="FILE", type=click.Path(dir_okay=False),
              help="PEM file of the root that signs the ACME server's own HTTPS (a private CA); '' clears it.")
@click.option("--nodes", default=None, metavar="all|label=KEY=VALUE",
              help="--swarm only: where the proxy runs, every node (default) or the nodes with this node label.")
@click.option("--storage", default=None, metavar="PATH|VOLUME",
              help="--swarm only, needed with TLS: what every edge mounts at /data for certificates, the ACME "
                   "account, challenge tokens and locks. An absolute path must be the same shared directory on "
                   "every proxy node (NFS, ...); a name is a volume whose driver shares it across nodes.")
@click.option("--metrics", default=None, metavar="[IP:]PORT",
              help="Serve Prometheus metrics there (IP defaults to 127.0.0.1; off by default; 'off' switches them "
                   "off). Only the host reads them: never a project container. With --swarm: a port number, "
                   "published on every proxy node, with --metrics-allow.")
@click.option("--metrics-allow", default=None, metavar="CIDR[,CIDR...]",
              help="--swarm only, needed with --metrics PORT: the addresses that may read the metrics (your "
                   "Prometheus); everyone else gets 403. Refused if it overlaps the swarm's overlays, the "
                   "docker_gwbridge or the nodes' addresses.")
@click.option("--access-log", type=click.Choice(["on", "off"]), default=None,
              help="One JSON line per request in the proxy's log (default on; read with `luma-compose logs`). "
                   "With --swarm: written by every edge (`luma-compose logs --swarm`).")
def up(name, target, swarm_flag, image, http_port, https_port, tls, email, volume, select, acme_ca, acme_ca_root,
       nodes, storage, metrics, access_log, metrics_allow) -> None:
    """Start (or reconcile) the proxy container, then sync the routes.

    Options left out keep the running proxy's settings. --swarm: create the proxy as swarm services
    (edges on every node, config server, gateways), or check it runs with these settings.
    """
    target = resolve_target(target, swarm_flag, compose_only=("volume", "select"),
                            swarm_only=("nodes", "storage", "metrics_allow"))
    root_pem = _read_root(acme_ca_root)
    if target == "swarm":
        on_swarm.proxy_up(name, image, http_port, https_port, tls, email, acme_ca, root_pem, nodes, storage,
                          on_swarm.edge_metrics(metrics, metrics_allow), access_log=access_log)
        return
    ctl = _controller(name)
    c, created = ctl.up(image=image, http_port=http_port, https_port=https_port, tls=tls, email=email, volume=volume,
                        select=select, acme_ca=acme_ca, acme_ca_root=root_pem, access_log=access_log,
                        metrics=metrics)
    res = ctl.sync()
    reporter("text").sync(res, quiet=True)
    ports = ", ".join(f"{k} -> {ip or '*'}:{port}" for k, (ip, port) in sorted(c.ports.items()))
    click.echo(f"{ctl.proxy.name} {'started' if created else 'running'} ({ports}); {len(res.table.routes)} route(s)")
    _exit_on_problems(res.table)


def _read_root(acme_ca_root: str | None) -> str | None:
    """--acme-ca-root FILE: its PEM text ('' clears it, None: not given)."""
    if not acme_ca_root:
        return acme_ca_root
    try:
        with open(acme_ca_root, encoding="ascii") as fh:
            root_pem = fh.read()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--acme-ca-root {acme_ca_root}: cannot read it: {e}", "give a PEM file") from None
    if "-----BEGIN CERTIFICATE-----" not in root_pem:
        raise UsageError(f"--acme-ca-root {acme_ca_root} holds no PEM certificate", "give a PEM file")
    return root_pem


def _exit_on_problems(table: RouteTable) -> None:
    """The same exit codes as every command: the work is done, but conflicts are problems found (1)."""
    if table.conflicts or table.problems:
        sys.exit(EXIT_PROBLEMS)


@proxy.command()
@NAME_OPTION
@target_options
def sync(name, target, swarm_flag) -> None:
    """One pass: labels -> networks -> Caddy config (loaded only when changed).

    Exits 1 when routes conflict or containers were ignored (the rest is applied).
    """
    if resolve_target(target, swarm_flag) == "swarm":
        on_swarm.proxy_sync(name)
        return
    res = _controller(name).sync()
    reporter("text").sync(res)
    _exit_on_problems(res.table)


@proxy.command()
@NAME_OPTION
@target_options
@click.option("--interval", type=click.FloatRange(min=0.2), default=None, metavar="SECONDS",
              help="--swarm only: how often to poll the manager (default 1).")
def run(name, target, swarm_flag, interval) -> None:
    """Sync, then follow Docker events and sync on every change, until stopped.

    --swarm: keep the proxy equal to the services' labels (polls a manager; survives its restarts).
    """
    if resolve_target(target, swarm_flag, swarm_only=("interval",)) == "swarm":
        on_swarm.proxy_run(name, 1.0 if interval is None else interval)
        return
    ctl = _controller(name)
    stop = threading.Event()

    def handler(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    last: list[str] = []

    def on_sync(res) -> None:
        from ..proxy.controller import log

        key = json.dumps(res.table.to_json(), sort_keys=True)
        if res.changed or res.connected or res.disconnected or res.removed_networks or key != (last[0] if last else ""):
            reporter("text").sync(res, quiet=True)
            log(f"proxy: {len(res.table.routes)} route(s), {'config loaded' if res.changed else 'no change'}")
        last[:] = [key]

    from ..proxy.watcher import run as watch

    watch(ctl, stop=stop, on_sync=on_sync)


@proxy.command()
@NAME_OPTION
@target_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def status(name, target, swarm_flag, fmt) -> None:
    """The proxy container and its live route table. Exit 1 on conflicts or drift, 3 when it is down.

    One host only (no --swarm): on a swarm, `routes --swarm` shows what the edges serve.
    """
    compose_only_command(target, swarm_flag, "`luma-compose routes --swarm` shows what the edges serve")
    ctrl = _controller(name)
    st = ctrl.status()
    reporter(fmt).status(st)
    _pools_warning(ctrl.engine)
    if st.table.conflicts or st.table.problems or not st.in_sync:
        sys.exit(EXIT_PROBLEMS)


def _pools_warning(engine) -> None:
    """Warn (stderr) when Docker's default address pools are nearly used up: new projects would fail."""
    from ..deploy.networks import pools_warning

    w = pools_warning(engine)
    if w:
        click.echo(f"warning: {w}", err=True)


@proxy.command()
@NAME_OPTION
@target_options
@click.option("--unit-dir", default=None, metavar="DIR",
              help="Where to write the systemd unit (default /etc/systemd/system).")
@click.option("--enable/--no-enable", default=True, show_default=True,
              help="Run systemctl daemon-reload and enable --now the unit.")
@click.option("--print", "print_only", is_flag=True, help="Print the unit instead of writing it.")
def install(name, target, swarm_flag, unit_dir, enable, print_only) -> None:
    """Keep `proxy run` running across reboots: a systemd unit that restarts it.

    Needed for routes to follow a plain `render | docker compose -f - up -d`; deploy, down
    and restarts of containers, the engine or the proxy do not need it. --swarm: a unit for
    `proxy run --swarm`, on a manager (routes follow changes made without luma-compose, and an
    impostor's victim is withheld within a second).
    """
    from ..proxy.container import proxy_name

    swarm = resolve_target(target, swarm_flag) == "swarm"
    pname = on_swarm.proxy_name(name) if swarm else proxy_name(name)
    _install_unit(pname, unit_dir, enable, print_only, swarm=swarm)


def _install_unit(pname: str, unit_dir: str | None, enable: bool, print_only: bool, swarm: bool) -> None:
    """Write (or print) the systemd unit that keeps `proxy run [--swarm]` running, and enable it."""
    import os
    import shutil
    from pathlib import Path

    from ..engine import systemd
    from ..proxy import service_unit

    exe = shutil.which("luma-compose")
    argv = [os.path.abspath(exe)] if exe else [os.path.abspath(sys.executable), "-m", "luma_compose.cli"]
    text = service_unit.unit_text(argv, pname, os.environ.get("DOCKER_HOST"), swarm=swarm)
    if print_only:
        click.echo(text, nl=False)
        return
    path = Path(unit_dir or service_unit.UNIT_DIR) / service_unit.unit_name(pname, swarm=swarm)
    systemd.write_unit(path, text)
    click.echo(f"wrote {path}")
    if enable:
        if not systemd.have_systemctl():
            click.echo("systemctl not found: enable the unit with your init system "
                       "(it runs: " + " ".join(service_unit.exec_start(text)) + ")", err=True)
            sys.exit(EXIT_PROBLEMS)
        failed = systemd.enable_now(path.name)
        if failed:
            click.echo(failed, err=True)
            sys.exit(EXIT_PROBLEMS)
        click.echo(f"enabled and started {path.name}")


@proxy.command()
@NAME_OPTION
@target_options
def down(name, target, swarm_flag) -> None:
    """Stop and remove the proxy container (its certificate volume is kept). --swarm: remove the proxy's
    swarm services."""
    if resolve_target(target, swarm_flag) == "swarm":
        on_swarm.proxy_down(name)
        return
    ctl = _controller(name)
    click.echo(f"{ctl.proxy.name} removed" if ctl.down() else f"{ctl.proxy.name} does not exist")


@click.command()
@NAME_OPTION
@target_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def routes(name, target, swarm_flag, fmt) -> None:
    """The route table the labels give (host -> target, project, service, containers, health),
    and where it differs, what Caddy serves now (its loaded config). --swarm: what the edges
    serve (exact hosts before wildcards), what is withheld, and conflicts."""
    if resolve_target(target, swarm_flag) == "swarm":
        on_swarm.routes(name, fmt)
        return
    ctl = _controller(name)
    c = ctl.proxy.container()
    table, current = ctl.table(c)
    served = caddy_config.served_upstreams(current) if current is not None else None
    reporter(fmt).routes(table, served)
