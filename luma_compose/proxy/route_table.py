"""The route table, derived from plain container records. Pure: no Docker here.

The labels of the project containers are the only state, plus two durable facts the
engine keeps: the ingress networks (they live from a project's first ``up`` to its
``down``) and the routes Caddy serves (autosaved on the proxy's volume). Given the
same inputs every process computes the same table.

Trust model (what a container must show to be routed):

* ``luma.managed=true`` and every route label valid by :mod:`luma_compose.validate`
  (the same rules ``check`` applies to ``x-luma``: a host is a DNS name, never a
  placeholder; no ``$``, ``{``, ``}`` ever reaches Caddy), agreeing with the contract
  (``luma.target``/``luma.network`` are what project/service/port give);
* made by Compose for the project and service the labels name
  (``com.docker.compose.project``/``.service`` equal ``luma.project``/``luma.service``);
  a hand-started container with copied labels is reported and ignored;
* attached to ``P_luma`` with the alias ``P-S``;
* its ``P_luma`` has no container that is not P's (made by Compose for P) or a proxy: another
  project may join it as an external network and answer P's internal calls; P's routes are
  withheld (503) and the intruder named until it leaves.

Limit: a ``docker run`` with every label copied (``com.docker.compose.*`` too) cannot be told
from a container Compose made: the engine records no creator. Socket holders are trusted.

Dialling: each container is dialled by its container name on ``P_luma``
(``gmail-web-1:3000``). Docker's DNS answers that name with the container's current
address, so a restart, an IP swap or an engine restart never sends a host to another
container, and the config does not change when an address does. Container names are
unique on an engine; a container on any ingress network that answers to another
container's name (a hand-made alias, or its own name, short id or hostname in another
case or with a trailing dot: Docker's DNS ignores both) is reported, and the proxy does
not join its network (or, on the victim's own network, the victim route gets no
upstreams) until it is gone.

Pools:

* The route of a project stays while the project has containers (any state) or its
  ingress network exists, so a restarting single replica never turns its host into a
  404. Containers that are running and ready form the pool. When none is, the
  route keeps the non-ready ones as *standby* upstreams: Caddy waits for them
  (its retry window) and answers 503 after it.
* Containers whose Docker health check is ``starting``/``unhealthy`` are not in the
  pool. A generation is a ``com.docker.compose.config-hash`` plus image id.
  When a service has running containers of several generations and the newest one is
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

Ownership (who gets a host or target alias two projects claim):

1. the route Caddy serves now (``incumbents``) keeps it as long as its project lives
   (has containers or its ingress network exists; the controller decides when a project
   with no container left was brought down): container restarts, recreation by
   deploy, engine and proxy restarts never move a host, since the served config is
   autosaved on the proxy's volume and the route stays while the project does;
2. otherwise the project whose ingress network is older (durable: only ``down``
   removes it); without network data, the older oldest container;
3. ties by route id, so the answer never depends on input order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..records import is_draining

from .. import contract, validate
from ..records import ContainerRecord, NetworkRecord
from .neighbours import intruders, shadowing


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
    project: str
    service: str
    hosts: tuple[str, ...]
    port: int
    health_path: str
    network: str
    members: tuple[Member, ...]
    created: str  # creation time of the oldest container
    #: No container left, but the project lives (its ingress network exists): the route
    #: holds its hosts and answers 503 until the project is back or brought down.
    held: bool = False
    #: Why the route gets no upstreams at all (DNS shadowing); "" normally.
    withheld: str = ""

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
        """What Caddy dials: the pool, or the standby containers while the pool is empty."""
        if self.withheld:
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
        }


@dataclass(frozen=True)
class Conflict:
    kind: str  # "host", "alias", or "wildcard" (a wildcard covers a host another project names)
    key: str  # the host or the alias both claim
    winner: str  # route id "project/service"
    loser: str
    why: str  # "incumbent" or "older"

    @property
    def message(self) -> str:
        if self.kind == "wildcard":
            return (f"host {self.key} is covered by a wildcard of {self.loser} but routed by name by {self.winner}; "
                    f"keeping {self.winner} (a host named exactly always wins over a wildcard)")
        what = f"host {self.key}" if self.kind == "host" else f"target alias {self.key}"
        reason = ("it is the route already served, and its project is still up" if self.why == "incumbent"
                  else "its project's ingress network is older")
        return f"{what} is claimed by {self.winner} and {self.loser}; keeping {self.winner} ({reason}), {self.loser} gets no traffic for it"

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


def route_id(project: str, service: str) -> str:
    return f"{project}/{service}"


def parse_route_id(key: str) -> tuple[str, str] | None:
    project, sep, service = key.partition("/")
    if not sep or validate.project_problem(project) or validate.service_problem(service):
        return None
    return project, service


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


def label_problem(labels: Mapping[str, str]) -> str | None:
    """Why these route labels may not be routed (None when they may): the shared strict rules."""
    missing = [k for k in contract.ROUTE_LABELS if not labels.get(k)]
    if missing:
        return f"missing label(s) {', '.join(missing)}; re-render its compose file with luma-compose render"
    checks = (
        (contract.LABEL_PROJECT, validate.project_problem(labels[contract.LABEL_PROJECT])),
        (contract.LABEL_SERVICE, validate.service_problem(labels[contract.LABEL_SERVICE])),
        (contract.LABEL_PORT, validate.port_problem(labels[contract.LABEL_PORT])),
        (contract.LABEL_HOSTS, validate.hosts_problem(labels[contract.LABEL_HOSTS].lower())),
        (contract.LABEL_HEALTH_PATH, validate.health_path_problem(labels[contract.LABEL_HEALTH_PATH])),
    )
    for key, problem in checks:
        if problem:
            return f"label {key}: {problem}"
    return None


def _validate(c: ContainerRecord) -> tuple[dict[str, Any] | None, str]:
    """Check one container's labels and origin; return its route fields or a problem."""
    lb = c.labels
    where = f"container {c.name}"
    problem = label_problem(lb)
    if problem:
        return None, f"{where}: {problem}; ignored"
    project, service = lb[contract.LABEL_PROJECT], lb[contract.LABEL_SERVICE]
    if c.compose_project != project or c.compose_service != service:
        if c.compose_project is None:
            return None, (f"{where}: labels route it for {project}/{service} but Compose did not create it "
                          f"(no com.docker.compose.project label); only containers Compose created for the "
                          f"project are routed; ignored")
        return None, (f"{where}: labels route it for {project}/{service} but it belongs to compose project "
                      f"{c.compose_project} service {c.compose_service}; a container may only route for its own "
                      f"project and service; ignored")
    if validate.container_name_problem(c.name):
        return None, f"{where}: {validate.container_name_problem(c.name)}; ignored"
    port = int(lb[contract.LABEL_PORT])
    expected_target = contract.target(project, service, port)
    if lb[contract.LABEL_TARGET] != expected_target:
        return None, (f"{where}: label {contract.LABEL_TARGET}={lb[contract.LABEL_TARGET]} but project {project} "
                      f"service {service} port {port} gives {expected_target}; re-render the compose file")
    expected_net = contract.ingress_network(project)
    if lb[contract.LABEL_NETWORK] != expected_net:
        return None, (f"{where}: label {contract.LABEL_NETWORK}={lb[contract.LABEL_NETWORK]} but project {project} "
                      f"must use {expected_net}; re-render the compose file")
    hosts = tuple(dict.fromkeys(h.strip().lower() for h in contract.parse_hosts(lb[contract.LABEL_HOSTS])))
    return {"project": project, "service": service, "port": port, "hosts": hosts,
            "health": lb[contract.LABEL_HEALTH_PATH], "network": expected_net}, ""


def _member(c: ContainerRecord, fields: Mapping[str, Any]) -> Member:
    net = c.networks.get(fields["network"])
    health = c.health or "none"
    al = contract.alias(fields["project"], fields["service"])

    def out(dial: str, reason: str, standby: bool = False) -> Member:
        return Member(c.name, c.id, dial, health, False, reason, c.config_hash, c.state, standby)

    if net is None:
        return out("", f"not attached to {fields['network']}")
    if al not in net.aliases:
        return out("", f"no alias {al} on {fields['network']}")
    dial = f"{c.name}:{fields['port']}"
    if not c.running:
        return out(dial, f"not running ({c.state or 'unknown'})", standby=not c.draining)
    if not c.ready:
        return out(dial, f"docker health is {health}", standby=not c.draining)
    return Member(c.name, c.id, dial, health, True, "", c.config_hash, c.state)


def _demote(m: Member, reason: str) -> Member:
    return replace(m, in_pool=False, reason=reason, standby=False)


def _pool(cs: list[tuple[ContainerRecord, dict[str, Any]]]) -> tuple[list[Member], dict[str, Any]]:
    """Members of one service and the fields (labels) the route takes.

    Generations (config-hash + image) of the running containers are ordered by their
    newest container. See the module docstring for who is routed.
    """
    members = {c.id: _member(c, f) for c, f in cs}
    running = [(c, f) for c, f in cs if c.running]
    live = [(c, f) for c, f in running if not c.draining]
    draining = [(c, f) for c, f in running if c.draining]
    if any(members[c.id].in_pool for c, _ in live):
        for c, _ in draining:
            if members[c.id].in_pool:
                members[c.id] = _demote(members[c.id], "draining: replaced by a newer deploy")
    gens: dict[str, list[tuple[ContainerRecord, dict[str, Any]]]] = {}
    for c, f in live or running or cs:
        gens.setdefault(c.generation, []).append((c, f))
    order = sorted(gens, key=lambda h: (max(_parse_time(c.created) for c, _ in gens[h]), h))
    newest = gens[order[-1]]
    if len(gens) > 1 and running:
        all_ready = all(members[c.id].in_pool for c, _ in newest)
        verified = all_ready and (bool(draining) or all(c.health is not None for c, _ in newest))
        if verified:
            for h in order[:-1]:
                for c, _ in gens[h]:
                    if members[c.id].in_pool or members[c.id].standby:
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


def covers(wildcard: str, host: str) -> bool:
    """Whether Caddy's host matcher ``wildcard`` (``*.`` first: one label) matches ``host``."""
    return (wildcard.startswith("*.") and not host.startswith("*") and "." in host
            and host.split(".", 1)[1] == wildcard[2:])


def _wildcard_overlaps(routes: list[Route]) -> list[Conflict]:
    """A wildcard route never takes a host another project routes by name: Caddy matches hosts
    named exactly before any wildcard (caddy_config), reported here so routes/status say so."""
    under: dict[str, list[tuple[str, Route]]] = {}  # parent domain -> exact hosts right under it
    for r in routes:
        for h in r.hosts:
            if not h.startswith("*") and "." in h:
                under.setdefault(h.split(".", 1)[1], []).append((h, r))
    return [Conflict("wildcard", h, owner.key, r.key, "exact")
            for r in routes for w in r.hosts if w.startswith("*.")
            for h, owner in under.get(w[2:], ()) if owner.project != r.project and covers(w, h)]


def _hand_over(r: Route, candidates: list[Route]) -> Route:
    """A route whose containers all drain (deploy retires a service renamed in the file) gives up
    the hosts another service of its project claims, so they move before its containers stop."""
    if r.held or not r.members or not all(is_draining(m.name) for m in r.members):
        return r
    others = {h for c in candidates if c.project == r.project and c.service != r.service and not c.held
              for h in c.hosts}
    return replace(r, hosts=tuple(h for h in r.hosts if h not in others))


def build_table(
    containers: Iterable[ContainerRecord],
    incumbents: Mapping[str, str] | None = None,
    networks: Iterable[NetworkRecord] | None = None,
    bystanders: Iterable[ContainerRecord] = (),
) -> RouteTable:
    """The route table from container records (any state; unmanaged ones are read only to
    detect DNS shadowing, as are ``bystanders``: other containers on the ingress networks,
    never routed).

    ``incumbents`` maps host -> route id ("project/service") as currently served
    by the proxy; in a conflict the incumbent keeps the host (and its alias) for as long
    as its project lives. ``networks``: the existing ingress networks (their age decides
    a conflict without an incumbent, and a project whose network exists is alive); None
    when unknown (then only containers make a project alive).
    """
    incumbents = {h.lower(): r for h, r in (incumbents or {}).items()}
    nets = {n.name: n for n in networks} if networks is not None else None
    records = list(containers)
    problems: list[str] = []
    by_service: dict[tuple[str, str], list[tuple[ContainerRecord, dict[str, Any]]]] = {}
    for c in records:
        if c.labels.get(contract.LABEL_MANAGED) != "true":
            continue
        fields, problem = _validate(c)
        if fields is None:
            if c.running:  # a stopped container with bad labels can do no harm; no noise
                problems.append(problem)
            continue
        by_service.setdefault((fields["project"], fields["service"]), []).append((c, fields))

    # Projects with containers that route (running or not) are alive; so are projects
    # whose ingress network exists.
    alive = {p for p, _ in by_service}
    if nets is not None:
        alive |= {n.compose_project or n.name[: -len("_" + contract.NETWORK_KEY)]
                  for n in nets.values() if n.name.endswith("_" + contract.NETWORK_KEY)}
    # Only a live project's incumbent routes count.
    incumbents = {h: k for h, k in incumbents.items()
                  if (pr := parse_route_id(k)) is not None and pr[0] in alive and not validate.host_problem(h)}
    incumbent_routes = set(incumbents.values())

    routed = [(c, f) for cs in by_service.values() for c, f in cs]
    everyone = list({c.id: c for c in [*records, *bystanders]}.values())
    refused, victims = shadowing(everyone, routed)
    intruded = intruders(everyone, {p for p, _ in by_service})
    problems += sorted(set(refused.values())) + sorted(set(victims.values())) + sorted(intruded.values())

    candidates: list[Route] = []
    for (project, service), cs in by_service.items():
        members, f = _pool(cs)
        oldest = min((c.created for c, _ in cs), key=_parse_time)
        withheld = next((victims[c.id] for c, _ in cs if c.id in victims), "")
        withheld = refused.get(f["network"]) or withheld or intruded.get(f["network"], "")
        candidates.append(Route(project, service, f["hosts"], f["port"], f["health"], f["network"],
                                tuple(members), oldest, withheld=withheld))
    # Incumbent routes of live projects that have no container left hold their hosts.
    present = {r.key for r in candidates}
    # ... except a host another service of the same project now claims (a service renamed in the file).
    claimed = {(r.project, h) for r in candidates for h in r.hosts}
    held_hosts: dict[str, list[str]] = {}
    for h, k in sorted(incumbents.items()):
        if k not in present and (k.partition("/")[0], h) not in claimed:
            held_hosts.setdefault(k, []).append(h)
    for k, hosts in held_hosts.items():
        project, service = parse_route_id(k)  # type: ignore[misc]
        candidates.append(Route(project, service, tuple(hosts), 0, contract.DEFAULT_HEALTH_PATH,
                                contract.ingress_network(project), (), "", held=True))

    candidates = [_hand_over(r, candidates) for r in candidates]

    def age(r: Route) -> tuple[int, str]:
        if nets is not None and r.network in nets:
            return _parse_time(nets[r.network].created)
        return _parse_time(r.created) if r.created else (1, "")

    def seniority(r: Route) -> tuple[int, tuple[int, str], tuple[int, str], str]:
        return (0 if r.key in incumbent_routes else 1, age(r), _parse_time(r.created) if r.created else (1, ""), r.key)

    candidates.sort(key=seniority)
    conflicts: list[Conflict] = []

    # Target alias: one alias may name one route only (the proxy joins every ingress network).
    alias_owner: dict[str, Route] = {}
    survivors: list[Route] = []
    for r in candidates:
        owner = alias_owner.get(r.alias)
        if owner is not None and owner.project != r.project:
            why = "incumbent" if owner.key in incumbent_routes else "older"
            conflicts.append(Conflict("alias", r.alias, owner.key, r.key, why))
            continue
        alias_owner.setdefault(r.alias, r)
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
            routes.append(replace(r, hosts=hosts))
    routes.sort(key=lambda r: r.key)
    conflicts += _wildcard_overlaps(routes)
    conflicts.sort(key=lambda c: (c.kind, c.key, c.loser))
    return RouteTable(tuple(routes), tuple(conflicts), tuple(sorted(set(problems))),
                      tuple(sorted(refused)))
