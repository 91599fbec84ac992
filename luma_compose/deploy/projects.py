"""``ls``: every project on the engine, from what is there (no store of its own): managed containers,
ingress networks and releases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import contract
from ..records import COMPOSE_PROJECT_LABEL, ContainerRecord, NetworkRecord
from .releases import Release, releases

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.protocols import Engine


@dataclass
class ProjectRow:
    project: str
    hosts: list[str] = field(default_factory=list)
    ready: int = 0
    total: int = 0
    release: Release | None = None
    network_created: str = ""

    def to_json(self) -> dict:
        r = self.release
        return {"project": self.project, "hosts": self.hosts, "ready": self.ready, "total": self.total,
                "release": r.number if r else None, "released": r.time if r else None,
                "by": r.origin.by if r else None, "ingress_network_created": self.network_created or None}


def projects(containers: list[ContainerRecord], networks: list[NetworkRecord],
             found: list[Release]) -> list[ProjectRow]:
    """One row per project that has luma-managed containers, an ingress network or releases. Replicas
    count the project's containers (draining ones of a deploy under way, and the deploy lock, left out)."""
    managed = {c.labels.get(contract.LABEL_PROJECT) or c.compose_project for c in containers
               if c.labels.get(contract.LABEL_MANAGED) == "true"}
    names = managed | {n.compose_project for n in networks} | {r.project for r in found}
    rows = {p: ProjectRow(p) for p in sorted(n for n in names if n)}
    for c in containers:
        row = rows.get(c.compose_project or "")
        if row is None or c.draining:
            continue
        row.total += 1
        row.ready += c.ready
        row.hosts += [h for h in contract.parse_hosts(c.labels.get(contract.LABEL_HOSTS, "")) if h not in row.hosts]
    for n in networks:
        if n.compose_project in rows:
            rows[n.compose_project].network_created = n.created
    for r in found:
        rows[r.project].release = r  # oldest first: the last one stays
        if not rows[r.project].hosts:
            rows[r.project].hosts = sorted({h for x in r.routes for h in x.hosts})
    for row in rows.values():
        row.hosts.sort()
    return list(rows.values())


def read(engine: "Engine") -> list[ProjectRow]:
    containers = engine.containers([COMPOSE_PROJECT_LABEL], all=True)
    networks = engine.networks([contract.NETWORK_OWNER_LABEL])
    return projects(containers, networks, releases(engine))
