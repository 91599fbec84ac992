"""``luma-compose releases``: the releases the engine keeps of a project (deploy/releases.py)."""

from __future__ import annotations

import json
import time

import click

from .options import docker_engine, input_options, project_name


def age(when: str, now: float | None = None) -> str:
    """"3m", "2h", "5d" since an RFC 3339 UTC time; "?" when it cannot be read."""
    import calendar

    try:
        t = calendar.timegm(time.strptime(when[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return "?"
    s = max(0, int((now if now is not None else time.time()) - t))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


@click.command()
@input_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: a list of releases, oldest first, each with its images and its file.")
def releases(files, project, project_directory, fmt) -> None:
    """List the releases of a project the engine keeps, oldest first.

    Every successful deploy (and rollback) records one on the engine: number, time, who
    and from where, git commit, each service's image by id. The project is -p NAME, else the
    compose file's (as render finds it); with neither, every project's releases.
    The current release is marked with *.
    """
    from ..deploy import releases as rel

    name, _ = project_name(files, project, project_directory, required=False)
    found = rel.releases(docker_engine(), name or None)
    if fmt == "json":
        click.echo(json.dumps([r.to_json() for r in found], indent=2))
        return
    if not found:
        click.echo(f"no releases of {name} on this engine" if name else "no releases on this engine", err=True)
        return
    latest = {r.project: r.number for r in found}
    rows = [["PROJECT", "RELEASE", "AGE", "BY", "SOURCE", "COMMIT", "IMAGES", "NOTE"]]
    for r in found:
        mark = "*" if latest[r.project] == r.number else ""
        images = ", ".join(f"{s}={i.ref}@{i.id[7:19] if i.id else '?'}" for s, i in sorted(r.images.items()))
        rows.append([r.project, f"{r.number}{mark}", age(r.time), r.origin.by, r.origin.source,
                     r.origin.commit[:12] + ("-dirty" if r.origin.commit.endswith("-dirty") else ""), images, r.note])
    click.echo(table(rows))
