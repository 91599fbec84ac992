"""``luma-compose ls``: every project on the engine, with hosts, replicas, last release and age."""

from __future__ import annotations

import json

import click

from .options import docker_engine
from .releases import age, table


@click.command(name="ls")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: a list of projects, each with hosts, ready/total, last release and its time.")
def ls(fmt) -> None:
    """List every project on the engine: hosts, replicas ready/total, last release and its age.

    A project is listed when it has luma-managed containers, an ingress network or releases
    (one taken down with --keep-releases shows 0/0). Read from the engine alone: any client
    of the engine sees the same list.
    """
    from ..deploy.projects import read

    rows = read(docker_engine())
    if fmt == "json":
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    if not rows:
        click.echo("no projects on this engine", err=True)
        return
    out = [["PROJECT", "HOSTS", "READY", "RELEASE", "AGE"]]
    for r in rows:
        rel = r.release
        out.append([r.project, ",".join(r.hosts) or "-", f"{r.ready}/{r.total}", str(rel.number) if rel else "-",
                    age(rel.time) if rel else (age(r.network_created) if r.network_created else "-")])
    click.echo(table(out))
