"""``luma-compose proxy ...`` and ``luma-compose routes``: parse, call proxy.py, print."""

from __future__ import annotations

import json
import signal
import sys
import threading

import click

from ..errors import EXIT_PROBLEMS
from ..proxy import caddy_config
from ..proxy.route_table import RouteTable

NAME_OPTION = click.option("--name", default=None, metavar="NAME",
                           help="Proxy container name (default luma-proxy, or $LUMA_PROXY_NAME).")


def _controller(name: str | None):
    from ..engine.docker_engine import DockerEngine  # the docker SDK only when a proxy command runs
    from ..proxy.controller import Controller

    return Controller(DockerEngine(), name)


def _report(table: RouteTable) -> None:
    for c in table.conflicts:
        click.echo(f"conflict: {c.message}", err=True)
    for p in table.problems:
        click.echo(f"ignored: {p}", err=True)


def _print_sync(res, quiet: bool = False) -> None:
    from ..proxy.controller import log

    for n in res.connected:
        log(f"proxy: attached to {n}")
    for n in res.disconnected:
        log(f"proxy: detached from {n}")
    for n in res.removed_networks:
        log(f"proxy: removed network {n} (its project is gone)")
    for w in res.warnings:
        log(f"warning: {w}")
    _report(res.table)
    if not quiet:
        state = "config loaded" if res.changed else "no change"
        click.echo(f"{len(res.table.routes)} route(s), {state}")


def _health(h: str) -> str:
    return "no Docker health check" if h == "none" else f"docker health {h}"


def render_table(table: RouteTable, served: dict[str, list[str]] | None = None) -> str:
    """The table the labels give; with ``served`` (from Caddy's loaded config), each route whose
    served upstreams differ says what Caddy serves now."""
    rows = [("HOST", "TARGET", "PROJECT", "SERVICE", "CONTAINERS")]
    notes: list[str] = []
    for r in table.routes:
        members = ", ".join(
            f"{m.name} ({_health(m.health)}, {'in pool' if m.in_pool else m.reason})" for m in r.members
        ) or ("- (no container; the project is up, the host is held)" if r.held else "-")
        if r.withheld:
            members += f" [no traffic: {r.withheld}]"
        if served is not None:
            now = served.get(r.key)
            if now is None:
                notes.append(f"not served yet: {r.key} (run: luma-compose proxy sync)")
            elif sorted(now) != sorted(r.upstreams):
                notes.append(f"served now: {r.key} -> {', '.join(now) or '503'} "
                             f"(labels say {', '.join(r.upstreams) or '503'}; run: luma-compose proxy sync)")
        for h in r.hosts:
            rows.append((h, r.target, r.project, r.service, members))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(col.ljust(widths[i]) if i < 4 else col for i, col in enumerate(row)).rstrip() for row in rows]
    lines += notes
    if served is not None:
        gone = sorted(set(served) - {r.key for r in table.routes})
        lines += [f"served now but not in the labels: {k} (run: luma-compose proxy sync)" for k in gone]
    for c in table.conflicts:
        lines.append(f"conflict: {c.message}")
    for p in table.problems:
        lines.append(f"ignored: {p}")
    return "\n".join(lines)


@click.group()
def proxy() -> None:
    """Run the one reverse proxy (Caddy) that routes every project by Host header."""


@proxy.command()
@NAME_OPTION
@click.option("--image", default=None, help="Caddy image (default caddy:2, or $LUMA_PROXY_IMAGE).")
@click.option("--http-port", default=None, metavar="[IP:]PORT", help="Published HTTP port (default 80; 0: any free port).")
@click.option("--https-port", default=None, metavar="[IP:]PORT", help="Published HTTPS port (default 443).")
@click.option("--tls", type=click.Choice(caddy_config.TLS_MODES), default=None,
              help="acme: automatic HTTPS (default); internal: Caddy's own CA; off: plain HTTP.")
@click.option("--email", default=None, help="ACME account e-mail.")
@click.option("--volume", default=None, help="Volume for certificates (default NAME-data, or $LUMA_PROXY_VOLUME).")
@click.option("--select", default=None, metavar="LABEL=VALUE",
              help="Route only managed containers that also carry this label (default: all; '' clears it).")
def up(name, image, http_port, https_port, tls, email, volume, select) -> None:
    """Start (or reconcile) the proxy container, then sync the routes.

    Options left out keep the running proxy's settings.
    """
    ctl = _controller(name)
    c, created = ctl.up(image=image, http_port=http_port, https_port=https_port, tls=tls, email=email, volume=volume,
                        select=select)
    res = ctl.sync()
    _print_sync(res, quiet=True)
    ports = ", ".join(f"{k} -> {ip or '*'}:{port}" for k, (ip, port) in sorted(c.ports.items()))
    click.echo(f"{ctl.proxy.name} {'started' if created else 'running'} ({ports}); {len(res.table.routes)} route(s)")
    _exit_on_problems(res.table)


def _exit_on_problems(table: RouteTable) -> None:
    """The same exit codes as every command: the work is done, but conflicts are problems found (1)."""
    if table.conflicts or table.problems:
        sys.exit(EXIT_PROBLEMS)


@proxy.command()
@NAME_OPTION
def sync(name) -> None:
    """One pass: labels -> networks -> Caddy config (loaded only when changed).

    Exits 1 when routes conflict or containers were ignored (the rest is applied).
    """
    res = _controller(name).sync()
    _print_sync(res)
    _exit_on_problems(res.table)


@proxy.command()
@NAME_OPTION
def run(name) -> None:
    """Sync, then follow Docker events and sync on every change, until stopped."""
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
            _print_sync(res, quiet=True)
            log(f"proxy: {len(res.table.routes)} route(s), {'config loaded' if res.changed else 'no change'}")
        last[:] = [key]

    from ..proxy.watcher import run as watch

    watch(ctl, stop=stop, on_sync=on_sync)


@proxy.command()
@NAME_OPTION
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def status(name, fmt) -> None:
    """The proxy container and its live route table. Exit 1 on conflicts or drift, 3 when it is down."""
    st = _controller(name).status()
    if fmt == "json":
        click.echo(json.dumps(st.to_json(), indent=2))
        _report(st.table)
    else:
        click.echo(f"engine: {st.endpoint}")
        click.echo(f"proxy {st.name}: {st.state}, image {st.image}, tls {st.tls}, "
                   f"ports {', '.join(f'{k} -> {v}' for k, v in sorted(st.ports.items())) or 'none'}")
        click.echo(f"config: {'in sync with the labels' if st.in_sync else 'OUT OF SYNC (run: luma-compose proxy sync)'}")
        click.echo(render_table(st.table))
    if st.table.conflicts or st.table.problems or not st.in_sync:
        sys.exit(EXIT_PROBLEMS)


@proxy.command()
@NAME_OPTION
@click.option("--unit-dir", default=None, metavar="DIR",
              help="Where to write the systemd unit (default /etc/systemd/system).")
@click.option("--enable/--no-enable", default=True, show_default=True,
              help="Run systemctl daemon-reload and enable --now the unit.")
@click.option("--print", "print_only", is_flag=True, help="Print the unit instead of writing it.")
def install(name, unit_dir, enable, print_only) -> None:
    """Keep `proxy run` running across reboots: a systemd unit that restarts it.

    Needed for routes to follow a plain `render | docker compose -f - up -d`; deploy, down
    and restarts of containers, the engine or the proxy do not need it.
    """
    import os
    import shutil
    import subprocess
    from pathlib import Path

    from ..proxy import service_unit
    from ..proxy.container import proxy_name

    pname = proxy_name(name)
    exe = shutil.which("luma-compose")
    argv = [os.path.abspath(exe)] if exe else [os.path.abspath(sys.executable), "-m", "luma_compose.cli"]
    text = service_unit.unit_text(argv, pname, os.environ.get("DOCKER_HOST"))
    if print_only:
        click.echo(text, nl=False)
        return
    path = Path(unit_dir or service_unit.UNIT_DIR) / service_unit.unit_name(pname)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    click.echo(f"wrote {path}")
    if enable:
        if not shutil.which("systemctl"):
            click.echo("systemctl not found: enable the unit with your init system "
                       "(it runs: " + " ".join(service_unit.exec_start(text)) + ")", err=True)
            sys.exit(EXIT_PROBLEMS)
        for cmd in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", path.name]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                click.echo(f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip()}", err=True)
                sys.exit(EXIT_PROBLEMS)
        click.echo(f"enabled and started {path.name}")


@proxy.command()
@NAME_OPTION
def down(name) -> None:
    """Stop and remove the proxy container (its certificate volume is kept)."""
    ctl = _controller(name)
    click.echo(f"{ctl.proxy.name} removed" if ctl.down() else f"{ctl.proxy.name} does not exist")


@click.command()
@NAME_OPTION
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def routes(name, fmt) -> None:
    """The route table the labels give (host -> target, project, service, containers, health),
    and where it differs, what Caddy serves now (its loaded config)."""
    ctl = _controller(name)
    c = ctl.proxy.container()
    table, current = ctl.table(c)
    served = caddy_config.served_upstreams(current) if current is not None else None
    if fmt == "json":
        out = {"version": 1, **table.to_json()}
        for r in out["routes"]:
            r["served_upstreams"] = (served or {}).get(f"{r['project']}/{r['service']}")
        click.echo(json.dumps(out, indent=2))
        _report(table)
    else:
        if served is None:
            click.echo("(the proxy is not running: this is what the labels say, nothing is served)")
        click.echo(render_table(table, served))
