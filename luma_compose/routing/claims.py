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
    #: Path prefixes (``luma.paths``): only these (``/api`` and ``/api/*``) of its hosts; () = every path.
    paths: tuple[str, ...] = ()
    #: Strip the matched prefix before proxying (``luma.strip_prefix``).
    strip_prefix: bool = False
    #: Hosts answered with a 308 to :attr:`redirect_to` (``luma.redirect_from``), claimed like hosts.
    redirect_from: tuple[str, ...] = ()
    #: Stop-first (``luma.hold``): seconds the proxy holds a request while no container runs; 0: the default window.
    hold: int = 0
    #: Seconds between the proxy's active probes of ``health_path`` (``luma.health.interval``); 0: no
    #: probes (Docker's health check and passive checks decide). One host only (a swarm: Swarm's checks).
    health_interval: int = 0
    #: Access control (docs/access.md): (user, base64 bcrypt hash) and admitted networks; never in output.
    basic_auth: tuple[tuple[str, str], ...] = ()
    allow: tuple[str, ...] = ()
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
    def redirect_to(self) -> str:
        """Where ``redirect_from`` hosts go: the first of its hosts ("" when that is a wildcard)."""
        return self.hosts[0] if self.hosts and not self.hosts[0].startswith("*") else ""

    @property
    def claimed(self) -> tuple[str, ...]:
        """Every host this route claims: its hosts, then its redirect hosts."""
        return self.hosts + self.redirect_from

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
            **self.features_json(),
            **self.access_json(),
            "maintenance": self.maintenance.to_json() if self.maintenance else None,
        }

    def features_json(self) -> dict[str, Any]:
        """The optional keys (``paths``, ``strip_prefix``, ``redirect_from``/``redirect_to``, ``hold``,
        ``health_interval``) when set."""
        out: dict[str, Any] = {}
        if self.paths:
            out.update(paths=list(self.paths), strip_prefix=self.strip_prefix)
        if self.redirect_from:
            out.update(redirect_from=list(self.redirect_from), redirect_to=self.redirect_to)
        if self.hold:
            out.update(hold=self.hold)
        if self.health_interval:
            out.update(health_interval=self.health_interval)
        return out

    def access_json(self) -> dict[str, Any]:
        """The route's access control as ``routes``/``status`` show it: user names, never hashes."""
        access: dict[str, Any] = {}
        if self.basic_auth:
            access["basic_auth"] = [u for u, _ in self.basic_auth]
        if self.allow:
            access["allow"] = list(self.allow)
        return {"access": access} if access else {}


@dataclass(frozen=True)
class Conflict:
    kind: str  # "host", "alias", "wildcard" (a wildcard covers a host another project names), or "path"
    #           (two services of one project claim the same path of a host; key: host + path, "host/*" for all)
    key: str  # the host or the alias both claim
    winner: str  # route id "project/service"
    loser: str
    why: str  # "incumbent", "older" (ingress network, else the claim itself), "exact" (wildcard)

    @property
    def message(self) -> str:
        if self.kind == "path":
            return (f"{self.loser} claims {self.key}, which {self.winner} of the same project already routes: "
                    f"it stays with {self.winner}, {self.loser} gets no traffic for that host (give each service "
                    "its own paths; a host without paths takes every path the others do not)")
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
        """host -> the route id that owns it (with paths: one of its project's routes on it)."""
        out: dict[str, str] = {}
        for r in self.routes:
            for h in r.claimed:
                out.setdefault(h, r.key)
        return out

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
    for key, problem in _feature_checks(labels):
        if problem:
            return f"label {key}: {problem}"
    return access_problem(labels)


def _feature_checks(labels: Mapping[str, str]) -> tuple[tuple[str, str | None], ...]:
    """The optional labels (paths, strip_prefix, redirect_from), each checked when present."""
    out: list[tuple[str, str | None]] = []
    if contract.LABEL_PATHS in labels:
        out.append((contract.LABEL_PATHS, validate.paths_problem(labels[contract.LABEL_PATHS])))
    if contract.LABEL_STRIP_PREFIX in labels:
        value = labels[contract.LABEL_STRIP_PREFIX]
        out.append((contract.LABEL_STRIP_PREFIX, validate.strip_prefix_problem(value) or (
            "strip_prefix without paths" if value == "true" and not labels.get(contract.LABEL_PATHS) else None)))
    if contract.LABEL_REDIRECT_FROM in labels:
        value = labels[contract.LABEL_REDIRECT_FROM].lower()
        first = contract.parse_hosts(labels[contract.LABEL_HOSTS].lower())[0]
        out.append((contract.LABEL_REDIRECT_FROM, validate.hosts_problem(value) or (
            f"redirect_from needs a first host to redirect to, and {first} is a wildcard"
            if first.startswith("*") else None) or (
            "a redirect host is also one of hosts" if set(contract.parse_hosts(value))
            & set(hosts_of(labels)) else None)))
    if contract.LABEL_HOLD in labels:
        out.append((contract.LABEL_HOLD, validate.hold_problem(labels[contract.LABEL_HOLD])))
    if contract.LABEL_HEALTH_INTERVAL in labels:
        out.append((contract.LABEL_HEALTH_INTERVAL,
                    validate.health_interval_problem(labels[contract.LABEL_HEALTH_INTERVAL])))
    return tuple(out)


def paths_of(labels: Mapping[str, str]) -> tuple[str, ...]:
    """The path prefixes of valid labels, each once, in the order written."""
    return tuple(dict.fromkeys(contract.parse_hosts(labels.get(contract.LABEL_PATHS, ""))))


def redirects_of(labels: Mapping[str, str]) -> tuple[str, ...]:
    """The redirect hosts of valid labels: lower case, each once."""
    return tuple(dict.fromkeys(h.lower() for h in contract.parse_hosts(labels.get(contract.LABEL_REDIRECT_FROM, ""))))


def features_of(labels: Mapping[str, str]) -> dict[str, Any]:
    """The Route keyword arguments of the optional labels."""
    return {"paths": paths_of(labels), "strip_prefix": labels.get(contract.LABEL_STRIP_PREFIX) == "true",
            "redirect_from": redirects_of(labels),
            "hold": int(labels[contract.LABEL_HOLD]) if contract.LABEL_HOLD in labels else 0,
            "health_interval": int(labels.get(contract.LABEL_HEALTH_INTERVAL, 0))}


def access_problem(labels: Mapping[str, str]) -> str | None:
    """Why the access labels (``luma.auth.basic``, ``luma.allow``) may not be served, if present."""
    if contract.LABEL_BASIC_AUTH in labels:
        problem = validate.basic_auth_problem(labels[contract.LABEL_BASIC_AUTH])
        if problem:
            return f"label {contract.LABEL_BASIC_AUTH}: {problem}"
    if contract.LABEL_ALLOW in labels:
        problem = validate.allow_problem(labels[contract.LABEL_ALLOW].split(","))
        if problem:
            return f"label {contract.LABEL_ALLOW}: {problem}"
    return None


def access_of(labels: Mapping[str, str]) -> dict[str, Any]:
    """The access fields of a :class:`Route` from valid labels (:func:`access_problem` passed)."""
    users = tuple(tuple(e.split(":", 1)) for e in labels.get(contract.LABEL_BASIC_AUTH, "").split(",") if e)
    allow = tuple(validate.cidr(e)[0] for e in labels.get(contract.LABEL_ALLOW, "").split(",") if e)
    return {"basic_auth": users, "allow": allow}


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
