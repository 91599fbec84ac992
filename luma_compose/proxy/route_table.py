"""The route table, derived from plain container records. Pure: no Docker here.

The labels of the running containers are the only state. Given the same
containers (and the same incumbent routes), every process computes the same
table: which host goes to which ``project-service`` target, and which
containers are in the pool behind it.

Rules:

* A container counts only if it is running, has ``luma.managed=true`` and
  labels that agree with the contract (``luma.target`` and ``luma.network``
  are what :mod:`luma_compose.contract` derives from project/service/port),
  and, when compose made it, ``luma.project`` equals its compose project.
  Anything else is reported as a problem and ignored, so a container cannot
  claim another project's network or name.
* The pool behind ``P-S:port`` is the set of containers that answer to the
  alias ``P-S`` on ``P_luma``, each dialled by its own IP on that network.
  Containers whose Docker health check is ``starting``/``unhealthy`` are not
  in it. A generation is a ``com.docker.compose.config-hash`` plus image id.
  When a service has containers of several generations and the newest one is
  *verified*, only the newest generation is routed; until then every ready
  container is, except newest-generation containers that have no Docker
  health check (running is not ready for them: their app may still be
  booting). The newest generation is verified when every running container
  of it is ready and either each has a Docker health check or ``deploy``
  has marked the older containers as draining (it does so only after probing
  each new container itself).
* Draining containers (renamed ``NAME--luma-draining`` by ``deploy``, a
  marker that lives in Docker's state, so every process derives the same
  pool) are never routed while any other container of the service is ready.
* Two routes claiming one host, or two projects whose routes share one target
  alias (project ``a-b`` service ``c`` and project ``a`` service ``b-c``), are
  a conflict: the incumbent (the route currently loaded in the proxy) wins;
  without one, the route whose oldest running container was created first
  wins (ties broken by name, so the answer never depends on input order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import contract

from ..records import COMPOSE_PROJECT_LABEL, ContainerRecord


@dataclass(frozen=True)
class Member:
    """One running container behind a route, in the pool or not (with why)."""

    name: str
    id: str
    dial: str  # ip:port on the ingress network, "" when it has none
    health: str  # docker health: none|starting|healthy|unhealthy
    in_pool: bool
    reason: str = ""
    config_hash: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id[:12],
            "dial": self.dial,
            "health": self.health,
            "in_pool": self.in_pool,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Route:
    project: str
    service: str
    hosts: tuple[str, ...]
    port: int
    health_path: str
    network: str
    members: tuple[Member, ...]
    created: str  # creation time of the oldest running container

    @property
    def key(self) -> str:
        return route_id(self.project, self.service)

    @property
    def alias(self) -> str:
        return contract.alias(self.project, self.service)

    @property
    def target(self) -> str:
        return contract.target(self.project, self.service, self.port)

    @property
    def upstreams(self) -> tuple[str, ...]:
        return tuple(m.dial for m in self.members if m.in_pool)

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "service": self.service,
            "hosts": list(self.hosts),
            "target": self.target,
            "network": self.network,
            "health_path": self.health_path,
            "upstreams": list(self.upstreams),
            "containers": [m.to_json() for m in self.members],
        }


@dataclass(frozen=True)
class Conflict:
    kind: str  # "host" or "alias"
    key: str  # the host or the alias both claim
    winner: str  # route id "project/service"
    loser: str
    why: str  # "incumbent" or "older"

    @property
    def message(self) -> str:
        what = f"host {self.key}" if self.kind == "host" else f"target alias {self.key}"
        reason = "it is the route already served" if self.why == "incumbent" else "its containers are older"
        return f"{what} is claimed by {self.winner} and {self.loser}; keeping {self.winner} ({reason}), {self.loser} gets no traffic for it"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "key": self.key, "winner": self.winner, "loser": self.loser,
                "why": self.why, "message": self.message}


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    problems: tuple[str, ...] = ()

    def networks(self) -> frozenset[str]:
        """Ingress networks the proxy must be attached to."""
        return frozenset(r.network for r in self.routes)

    def host_map(self) -> dict[str, str]:
        return {h: r.key for r in self.routes for h in r.hosts}

    def to_json(self) -> dict[str, Any]:
        return {
            "routes": [r.to_json() for r in self.routes],
            "conflicts": [c.to_json() for c in self.conflicts],
            "problems": list(self.problems),
        }


def route_id(project: str, service: str) -> str:
    return f"{project}/{service}"


def _parse_time(value: str) -> tuple[int, str]:
    """Sortable key for an engine timestamp (RFC 3339 with up to ns precision)."""
    # Engine timestamps look like 2026-11-27T10:22:11.123456789Z; comparing the
    # normalised string works once the fractional part has a fixed width.
    v = value.strip()
    if not v:
        return (1, "")
    tz = ""
    if v.endswith("Z"):
        v = v[:-1]
    elif len(v) > 6 and v[-6] in "+-" and v[-3] == ":":
        v, tz = v[:-6], v[-6:]
    if "." in v:
        head, frac = v.split(".", 1)
    else:
        head, frac = v, ""
    frac = (frac + "0" * 9)[:9]
    if tz:
        # Rare (the engine writes UTC); fold the offset in with datetime.
        from datetime import datetime, timezone

        dt = datetime.fromisoformat(head + tz).astimezone(timezone.utc).replace(tzinfo=None)
        head = dt.isoformat()
    return (0, f"{head}.{frac}")


def _validate(c: ContainerRecord) -> tuple[dict[str, Any] | None, str]:
    """Check one container's labels; return its route fields or a problem."""
    lb = c.labels
    where = f"container {c.name}"
    missing = [k for k in contract.ROUTE_LABELS if not lb.get(k)]
    if missing:
        return None, f"{where}: missing label(s) {', '.join(missing)}; re-render its compose file with luma-compose render"
    project, service = lb[contract.LABEL_PROJECT], lb[contract.LABEL_SERVICE]
    compose_project = lb.get(COMPOSE_PROJECT_LABEL)
    if compose_project is not None and compose_project != project:
        return None, (f"{where}: label {contract.LABEL_PROJECT}={project} but it belongs to compose project "
                      f"{compose_project}; a container may only route for its own project")
    try:
        port = int(lb[contract.LABEL_PORT])
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        return None, f"{where}: label {contract.LABEL_PORT}={lb[contract.LABEL_PORT]!r} is not a port number (1-65535)"
    expected_target = contract.target(project, service, port)
    if lb[contract.LABEL_TARGET] != expected_target:
        return None, (f"{where}: label {contract.LABEL_TARGET}={lb[contract.LABEL_TARGET]} but project {project} "
                      f"service {service} port {port} gives {expected_target}; re-render the compose file")
    expected_net = contract.ingress_network(project)
    if lb[contract.LABEL_NETWORK] != expected_net:
        return None, (f"{where}: label {contract.LABEL_NETWORK}={lb[contract.LABEL_NETWORK]} but project {project} "
                      f"must use {expected_net}; re-render the compose file")
    hosts = tuple(dict.fromkeys(h.lower() for h in contract.parse_hosts(lb[contract.LABEL_HOSTS])))
    if not hosts:
        return None, f"{where}: label {contract.LABEL_HOSTS} names no host"
    health = lb[contract.LABEL_HEALTH_PATH]
    if not health.startswith("/"):
        return None, f"{where}: label {contract.LABEL_HEALTH_PATH}={health!r} must be a path starting with /"
    return {"project": project, "service": service, "port": port, "hosts": hosts, "health": health,
            "network": expected_net}, ""


def _member(c: ContainerRecord, fields: Mapping[str, Any]) -> Member:
    net = c.networks.get(fields["network"])
    health = c.health or "none"
    al = contract.alias(fields["project"], fields["service"])
    if net is None:
        return Member(c.name, c.id, "", health, False, f"not attached to {fields['network']}", c.config_hash)
    if al not in net.aliases:
        return Member(c.name, c.id, "", health, False, f"no alias {al} on {fields['network']}", c.config_hash)
    if not net.ip:
        return Member(c.name, c.id, "", health, False, f"no IP on {fields['network']}", c.config_hash)
    dial = f"{net.ip}:{fields['port']}"
    if not c.ready:
        return Member(c.name, c.id, dial, health, False, f"docker health is {health}", c.config_hash)
    return Member(c.name, c.id, dial, health, True, "", c.config_hash)


def _demote(m: Member, reason: str) -> Member:
    return Member(m.name, m.id, m.dial, m.health, False, reason, m.config_hash)


def _pool(cs: list[tuple[ContainerRecord, dict[str, Any]]]) -> tuple[list[Member], dict[str, Any]]:
    """Members of one service and the fields (labels) the route takes.

    Generations (config-hash + image) are ordered by their newest container.
    See the module docstring for who is routed.
    """
    members = {c.id: _member(c, f) for c, f in cs}
    live = [(c, f) for c, f in cs if not c.draining]
    draining = [(c, f) for c, f in cs if c.draining]
    if any(members[c.id].in_pool for c, _ in live):
        for c, _ in draining:
            if members[c.id].in_pool:
                members[c.id] = _demote(members[c.id], "draining: replaced by a newer deploy")
    gens: dict[str, list[tuple[ContainerRecord, dict[str, Any]]]] = {}
    for c, f in live or cs:
        gens.setdefault(c.generation, []).append((c, f))
    order = sorted(gens, key=lambda h: (max(_parse_time(c.created) for c, _ in gens[h]), h))
    newest = gens[order[-1]]
    if len(gens) > 1:
        all_ready = all(members[c.id].in_pool for c, _ in newest)
        verified = all_ready and (bool(draining) or all(c.health is not None for c, _ in newest))
        if verified:
            for h in order[:-1]:
                for c, _ in gens[h]:
                    if members[c.id].in_pool:
                        members[c.id] = _demote(members[c.id],
                                                "older generation (config-hash) replaced by a ready newer one")
        else:
            unverified = [c for c, _ in newest if c.health is None and members[c.id].in_pool]
            others = any(members[c.id].in_pool for h in order[:-1] for c, _ in gens[h])
            if others:
                for c in unverified:
                    members[c.id] = _demote(members[c.id], "newer generation without a Docker health check, "
                                                           "not verified yet (deploy probes it first)")
    # The route takes its labels from the newest generation that has a pooled container.
    fields = newest[0][1]
    for h in reversed(order):
        pooled = [f for c, f in gens[h] if members[c.id].in_pool]
        if pooled:
            fields = pooled[0]
            break
    ms = sorted(members.values(), key=lambda m: (m.name, m.id))
    return ms, fields


def build_table(
    containers: Iterable[ContainerRecord],
    incumbents: Mapping[str, str] | None = None,
) -> RouteTable:
    """The route table from container records.

    ``incumbents`` maps host -> route id ("project/service") as currently served
    by the proxy; in a conflict the incumbent keeps the host (and its alias).
    """
    incumbents = {h.lower(): r for h, r in (incumbents or {}).items()}
    incumbent_routes = set(incumbents.values())
    problems: list[str] = []
    by_service: dict[tuple[str, str], list[tuple[ContainerRecord, dict[str, Any]]]] = {}
    for c in containers:
        if c.state != "running" or c.labels.get(contract.LABEL_MANAGED) != "true":
            continue
        fields, problem = _validate(c)
        if fields is None:
            problems.append(problem)
            continue
        by_service.setdefault((fields["project"], fields["service"]), []).append((c, fields))

    candidates: list[Route] = []
    for (project, service), cs in by_service.items():
        members, f = _pool(cs)
        oldest = min((c.created for c, _ in cs), key=_parse_time)
        candidates.append(Route(project, service, f["hosts"], f["port"], f["health"], f["network"],
                                tuple(members), oldest))

    def seniority(r: Route) -> tuple[int, tuple[int, str], str]:
        return (0 if r.key in incumbent_routes else 1, _parse_time(r.created), r.key)

    candidates.sort(key=seniority)
    conflicts: list[Conflict] = []

    # Target alias: one alias may name one route only (the proxy joins every ingress network).
    alias_owner: dict[str, Route] = {}
    survivors: list[Route] = []
    for r in candidates:
        owner = alias_owner.get(r.alias)
        if owner is not None:
            why = "incumbent" if owner.key in incumbent_routes else "older"
            conflicts.append(Conflict("alias", r.alias, owner.key, r.key, why))
            continue
        alias_owner[r.alias] = r
        survivors.append(r)

    # Hosts: the incumbent owner of a host keeps it, then the senior route.
    host_owner: dict[str, Route] = {}
    for h, key in incumbents.items():
        for r in survivors:
            if r.key == key and h in r.hosts:
                host_owner[h] = r
    kept_hosts: dict[str, list[str]] = {r.key: [] for r in survivors}
    for r in survivors:
        for h in r.hosts:
            owner = host_owner.setdefault(h, r)
            if owner is r:
                kept_hosts[r.key].append(h)
            else:
                why = "incumbent" if incumbents.get(h) == owner.key else "older"
                conflicts.append(Conflict("host", h, owner.key, r.key, why))

    routes = []
    for r in survivors:
        hosts = tuple(kept_hosts[r.key])
        if hosts:
            routes.append(Route(r.project, r.service, hosts, r.port, r.health_path, r.network, r.members,
                                r.created))
    routes.sort(key=lambda r: r.key)
    conflicts.sort(key=lambda c: (c.kind, c.key, c.loser))
    return RouteTable(tuple(routes), tuple(conflicts), tuple(sorted(problems)))
