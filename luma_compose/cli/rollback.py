"""``luma-compose rollback``: redeploy a recorded release through deploy's health-gated rollout."""

from __future__ import annotations

import json
import sys
import tempfile
import time

import click

from ..errors import LumaError, UsageError
from .options import endpoint, input_options, project_name


@click.command()
@input_options
@click.argument("release", type=click.IntRange(min=1), required=False)
@click.option("--timeout", type=click.FloatRange(min=1), default=120, show_default=True, metavar="SECONDS",
              help="How long each new container may take to become healthy.")
@click.option("--drain", type=click.FloatRange(min=0), default=10, show_default=True, metavar="SECONDS",
              help="How long old containers keep running for in-flight requests after traffic left them.")
@click.option("--settle", type=click.FloatRange(min=0), default=5, show_default=True, metavar="SECONDS",
              help="How long new containers must keep running after traffic moved to them.")
@click.option("--force-unlock", is_flag=True, help="Remove the project's deploy lock first, whoever holds it.")
@click.option("--dry-run", "dry_run", is_flag=True,
              help="Print what the rollback would do and change nothing. Exit 0: nothing to do, 1: problems "
                   "(it would refuse), 4: changes pending.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="With --dry-run: json is the shape in schemas/deploy-plan.schema.json.")
@click.option("--proxy-name", default=None, metavar="NAME",
              help="Proxy container (default luma-proxy, or $LUMA_PROXY_NAME).")
@click.option("--keep-releases", "keep_releases", type=click.IntRange(min=1), default=None, metavar="N",
              help="How many releases of the project the engine keeps (default 10, or $LUMA_KEEP_RELEASES).")
def rollback(files, project, project_directory, release, timeout, drain, settle, force_unlock, dry_run, fmt,
             proxy_name, keep_releases) -> None:
    """Redeploy an earlier release of a project: its file, its images by id.

    RELEASE is a number from `luma-compose releases` (default: the one before the release now
    deployed). The same rollout as deploy: new containers beside the old, each health-checked,
    traffic moved, old ones drained; a failure keeps what runs. Refuses, changing nothing,
    when an image of the release is gone. Records itself as a new release. Works from any
    machine that reaches the engine (-H, --context, DOCKER_HOST): no compose file needed with -p.
    """
    from ..deploy import releases as rel
    from ..deploy import rollback as rb
    from ..deploy.progress import Progress
    from ..deploy.rollout import Deployer, ProxyOptions
    from ..engine.docker_engine import DockerEngine

    if fmt == "json" and not dry_run:
        raise UsageError("--format json is for --dry-run (rollback itself prints progress lines)", "add --dry-run")
    keep = rel.keep_setting(keep_releases)
    name, _ = project_name(files, project, project_directory)
    t0 = time.monotonic()
    ep = endpoint()
    engine = DockerEngine(ep)
    target = rb.choose(rel.releases(engine, name), name, release)
    try:
        plan = rb.plan(engine, target)
    except LumaError as e:
        if dry_run and fmt == "json":
            click.echo(json.dumps({"version": 1, "project": name, "engine": ep.to_json(), "ok": False,
                                   "changes": False, "problems": [{"message": e.message, "hint": e.hint}]}, indent=2))
            sys.exit(1)
        raise
    for w in plan.warnings:
        click.echo(f"warning: {w}", err=True)
    with tempfile.TemporaryDirectory(prefix="luma-rollback-") as workdir:  # no .env of this machine applies
        if dry_run:
            d = Deployer(engine, name, workdir, plan.text, target.routes, ProxyOptions(proxy_name))
            p = d.dry_run()
            if fmt == "text":
                click.echo(f"rollback of {name} to release {target.number} ({target.time}, {target.origin.by})")
            click.echo(json.dumps(p.to_json(), indent=2) if fmt == "json" else p.text())
            sys.exit(p.exit_code())
        progress = Progress()
        progress.line(f" engine: {ep.describe()}")
        progress.line(f" rollback of {name} to release {target.number} ({target.time}, {target.origin.by})")
        rb.restore_pins(engine, plan)
        d = Deployer(engine, name, workdir, plan.text, target.routes, ProxyOptions(proxy_name), timeout=timeout,
                     drain=drain, progress=progress, settle=settle, force_unlock=force_unlock)
        who = rel.Origin(rel.origin(workdir).by, target.origin.source, target.origin.commit)
        d.after = rel.recorder(d, who, keep, note=f"rollback to {target.number}",
                               refs={s: i.ref for s, i in target.images.items()})
        res = d.deploy()
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"rolled {name} back to release {target.number} in {time.monotonic() - t0:.1f}s", err=True)
    for u in res.urls:
        click.echo(u)
