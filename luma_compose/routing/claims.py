"""The records of the routing core, the same on both targets. Pure: no Docker.

A :class:`Route` is what one service claims (hosts, port, health path, network, created) plus, on
one host, the containers behind it (:class:`Member`); on a swarm the tasks are found by DNS at
request time, so a route has no members there. A :class:`Conflict` is a host or target alias two
routes claim (:mod:`.ownership` decides who keeps it). A :class:`RouteTable` is what the proxy
serves and what ``routes``, ``proxy status``, ``deploy`` (and ``--dry-run``) read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import contract, validate
from ..records import MaintenanceRecord


@dataclass(frozen=True)
class Member:
    """One container behind a route, in the pool or not (with why)."""

    name: str
    id: str
    dial: str  # container-name:port on the ingress network, "" when it cannot be dialled
    health: str  # docker health: none|starting|healthy|unhealthy
    in_pool: bool
    reason: str = ""
    config_hash: str = ""
    state: str = "running"
    #: Dialled only while no container of the route is in the pool (restarting, booting).
    standby: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id[:12],
            "dial": self.dial,
            "state": self.state,
            "health": self.health,
            "in_pool": self.in_pool,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Route:
    """The claim of one service (``project/service``) and, on one host, its containers."""

    project: str
    service: str
    hosts: tuple[str, ...]
    port: int
    health_path: str
    network: str
    members: tuple[Member, ...] = ()
    created: str = ""  # one host: the oldest container; a swarm: the service
    #: One host: no container left, but the project lives (its ingress network exists): the route
    #: holds its hosts and answers 503 until the project is back or brought down.
    held: bool = False
    #: Why the route gets no upstreams at all (DNS shadowing, ...); "" normally. Its hosts stay its own.
    withheld: str = ""
    #: In maintenance (routing/maintenance.py): its hosts answer 503 with the page; nothing is dialled.
    maintenance: MaintenanceRecord | None = None

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
    def swarm_service(self) -> str:
        """The name ``docker stack deploy P`` gives service S: ``P_S``."""
        return contract.stack_service(self.project, self.service)

    @property
    def upstreams(self) -> tuple[str, ...]:
        """What Caddy dials on one host: the pool, or the standby containers while the pool is empty."""
        if self.withheld or self.maintenance:
            return ()
        pool = tuple(m.dial for m in self.members if m.in_pool and m.dial)
        if pool:
            return pool
        return tuple(m.dial for m in self.members if m.standby and m.dial)

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
            "maintenance": self.maintenance.to_json() if self.maintenance else None,
        }


@dataclass(frozen=True)
class Conflict:
    kind: str  # "host", "alias", or "wildcard" (a wildcard covers a host another project names)
    key: str  # the host or the alias both claim
    winner: str  # route id "project/service"
    loser: str
    why: str  # "incumbent", "older" (ingress network, else the claim itself), "exact" (wildcard)

    @property
    def message(self) -> str:
        if self.kind == "wildcard":
            return (f"host {self.key} is covered by a wildcard of {self.loser} but routed by name by {self.winner}; "
                    f"keeping {self.winner} (a host named exactly always wins over a wildcard)")
        what = f"host {self.key}" if self.kind == "host" else f"target alias {self.key}"
        reason = ("it is the route already served, and its project is still up" if self.why == "incumbent"
                  else "its project's ingress network is older, or without network data its claim")
        return (f"{self.loser} claims {self.key}, already routed to {self.winner}: {what} stays with "
                f"{self.winner} ({reason}), {self.loser} gets no traffic for it")

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "key": self.key, "winner": self.winner, "loser": self.loser,
                "why": self.why, "message": self.message}


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    problems: tuple[str, ...] = ()
    #: Ingress networks the proxy must not join (a container there shadows another's name).
    refused_networks: tuple[str, ...] = ()

    @property
    def serving(self) -> tuple[Route, ...]:
        """Routes not withheld."""
        return tuple(r for r in self.routes if not r.withheld)

    @property
    def withheld(self) -> tuple[Route, ...]:
        """Routes that keep their hosts but get no traffic (DNS shadowing, no network yet)."""
        return tuple(r for r in self.routes if r.withheld)

    @property
    def messages(self) -> list[str]:
        """Every conflict and problem, as sentences."""
        return [c.message for c in self.conflicts] + list(self.problems)

    def networks(self) -> frozenset[str]:
        """Ingress networks the proxy must be attached to."""
        return frozenset(r.network for r in self.routes if not r.held) - set(self.refused_networks)

    def host_map(self) -> dict[str, str]:
        return {h: r.key for r in self.routes for h in r.hosts}

    def to_json(self) -> dict[str, Any]:
        return {
            "routes": [r.to_json() for r in self.routes],
            "conflicts": [c.to_json() for c in self.conflicts],
            "problems": list(self.problems),
        }


@dataclass
class SyncResult:
    """What one proxy pass did, on either target."""

    table: RouteTable
    changed: bool
    connected: list[str] = field(default_factory=list)
    disconnected: list[str] = field(default_factory=list)
    removed_networks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: The config served (a swarm's edge config, as published).
    config: str = ""


def route_id(project: str, service: str) -> str:
    return f"{project}/{service}"


def parse_route_id(key: str) -> tuple[str, str] | None:
    project, sep, service = key.partition("/")
    if not sep or validate.project_problem(project) or validate.service_problem(service):
        return None
    return project, service


def parse_time(value: str) -> tuple[int, str]:
    """Sortable key for an engine timestamp (RFC 3339 with up to ns precision); "" sorts last."""
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


def covers(wildcard: str, host: str) -> bool:
    """Whether Caddy's host matcher ``wildcard`` (``*.`` first: one label) matches ``host``."""
    return (wildcard.startswith("*.") and not host.startswith("*") and "." in host
            and host.split(".", 1)[1] == wildcard[2:])


def label_problem(labels: Mapping[str, str], required: Sequence[str] = contract.ROUTE_LABELS) -> str | None:
    """Why these route labels may not be routed (None when they may): the shared strict rules of
    :mod:`luma_compose.validate`, on both targets. ``required``: the labels that must be there
    (a swarm service may leave out the ones with a default)."""
    missing = [k for k in required if not labels.get(k)]
    if missing:
        return f"missing label(s) {', '.join(missing)}; re-render its compose file with luma-compose render"
    checks = (
        (contract.LABEL_PROJECT, validate.project_problem(labels[contract.LABEL_PROJECT])),
        (contract.LABEL_SERVICE, validate.service_problem(labels[contract.LABEL_SERVICE])),
        (contract.LABEL_PORT, validate.port_problem(labels[contract.LABEL_PORT])),
        (contract.LABEL_HOSTS, validate.hosts_problem(labels[contract.LABEL_HOSTS].lower())),
        (contract.LABEL_HEALTH_PATH,
         validate.health_path_problem(labels.get(contract.LABEL_HEALTH_PATH, contract.DEFAULT_HEALTH_PATH))),
    )
    for key, problem in checks:
        if problem:
            return f"label {key}: {problem}"
    return None


def contract_problem(labels: Mapping[str, str]) -> str | None:
    """Labels that disagree with what project, service and port give (``luma.target``,
    ``luma.network``; a missing optional one is taken as given)."""
    project, service = labels[contract.LABEL_PROJECT], labels[contract.LABEL_SERVICE]
    port = int(labels[contract.LABEL_PORT])
    expected_target = contract.target(project, service, port)
    if labels.get(contract.LABEL_TARGET, expected_target) != expected_target:
        return (f"label {contract.LABEL_TARGET}={labels[contract.LABEL_TARGET]} but project {project} "
                f"service {service} port {port} gives {expected_target}; re-render the compose file")
    own = contract.ingress_network(project)
    if labels.get(contract.LABEL_NETWORK, own) != own:
        return (f"{project}/{service} asks for the network {labels[contract.LABEL_NETWORK]} (label "
                f"{contract.LABEL_NETWORK}); a project is routed on its own {own} only; re-render the compose file")
    return None


def hosts_of(labels: Mapping[str, str]) -> tuple[str, ...]:
    """The hosts of valid labels: lower case (host names are case-insensitive), each once."""
    return tuple(dict.fromkeys(h.lower() for h in contract.parse_hosts(labels[contract.LABEL_HOSTS])))
