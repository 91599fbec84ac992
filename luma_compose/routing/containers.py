"""The adapter for one host: container records -> routes, into the routing core. Pure: no Docker.

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

Ownership (who gets a host or target alias two projects claim): :mod:`.ownership`, with the
route Caddy serves now as incumbent (it keeps its hosts as long as its project lives: has
containers or its ingress network exists; the controller decides when a project with no container
left was brought down) and the age of the ingress networks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .. import contract, validate
from ..records import ContainerRecord, NetworkRecord, is_draining
from . import ownership
from .claims import (Route, RouteTable, access_of, contract_problem, features_of, hosts_of, label_problem,
                     parse_route_id, parse_time)
from .neighbours import intruders, shadowing
from .pool import pool

Fields = dict[str, Any]
Claimed = dict[tuple[str, str], list[tuple[ContainerRecord, Fields]]]


def _validate(c: ContainerRecord) -> tuple[Fields | None, str]:
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
    problem = validate.container_name_problem(c.name) or contract_problem(lb)
    if problem:
        return None, f"{where}: {problem}; ignored"
    return {"project": project, "service": service, "port": int(lb[contract.LABEL_PORT]), "hosts": hosts_of(lb),
            "health": lb[contract.LABEL_HEALTH_PATH], "network": contract.ingress_network(project),
            "features": features_of(lb), "access": access_of(lb)}, ""


def _claims(records: list[ContainerRecord]) -> tuple[Claimed, list[str]]:
    """Phase 1: the managed containers with valid labels, by service; problems of the others."""
    problems: list[str] = []
    by_service: Claimed = {}
    for c in records:
        if c.labels.get(contract.LABEL_MANAGED) != "true":
            continue
        fields, problem = _validate(c)
        if fields is None:
            if c.running:  # a stopped container with bad labels can do no harm; no noise
                problems.append(problem)
            continue
        by_service.setdefault((fields["project"], fields["service"]), []).append((c, fields))
    return by_service, problems


def _live_incumbents(incumbents: Mapping[str, str], by_service: Claimed,
                     nets: Mapping[str, NetworkRecord] | None) -> dict[str, str]:
    """Phase 2: the served routes that count: those of live projects (with containers that route,
    running or not, or whose ingress network exists)."""
    alive = {p for p, _ in by_service}
    if nets is not None:
        alive |= {n.compose_project or n.name[: -len("_" + contract.NETWORK_KEY)]
                  for n in nets.values() if n.name.endswith("_" + contract.NETWORK_KEY)}
    return {h: k for h, k in ((h.lower(), k) for h, k in incumbents.items())
            if (pr := parse_route_id(k)) is not None and pr[0] in alive and not validate.host_problem(h)}


@dataclass(frozen=True)
class _Shadows:
    """Phase 3: who answers to another's name (:mod:`.neighbours`)."""

    refused: dict[str, str]  # network -> why the proxy does not join it
    victims: dict[str, str]  # container id -> why its route gets no upstreams
    intruded: dict[str, str]  # network -> a container of another project on it

    @classmethod
    def find(cls, records: list[ContainerRecord], bystanders: Iterable[ContainerRecord],
             by_service: Claimed) -> _Shadows:
        routed = [(c, f) for cs in by_service.values() for c, f in cs]
        everyone = list({c.id: c for c in [*records, *bystanders]}.values())
        refused, victims = shadowing(everyone, routed)
        return cls(refused, victims, intruders(everyone, {p for p, _ in by_service}))

    @property
    def problems(self) -> list[str]:
        return (sorted(set(self.refused.values())) + sorted(set(self.victims.values()))
                + sorted(self.intruded.values()))

    def withheld(self, network: str, cs: list[tuple[ContainerRecord, Fields]]) -> str:
        victim = next((self.victims[c.id] for c, _ in cs if c.id in self.victims), "")
        return self.refused.get(network) or victim or self.intruded.get(network, "")


def _candidates(by_service: Claimed, incumbents: Mapping[str, str], shadows: _Shadows) -> list[Route]:
    """Phase 4: one route per service with its pool, plus the held routes of live projects."""
    out: list[Route] = []
    for (project, service), cs in by_service.items():
        members, f = pool(cs)
        oldest = min((c.created for c, _ in cs), key=parse_time)
        out.append(Route(project, service, f["hosts"], f["port"], f["health"], f["network"],
                         tuple(members), oldest, withheld=shadows.withheld(f["network"], cs),
                         **f.get("features", {}), **f.get("access", {})))
    out += _held(out, incumbents)
    return [_hand_over(r, out) for r in out]


def _held(present: list[Route], incumbents: Mapping[str, str]) -> list[Route]:
    """Incumbent routes of live projects that have no container left hold their hosts, except a
    host another service of the same project now claims (a service renamed in the file)."""
    keys = {r.key for r in present}
    claimed = {(r.project, h) for r in present for h in r.claimed}
    held_hosts: dict[str, list[str]] = {}
    for h, k in sorted(incumbents.items()):
        if k not in keys and (k.partition("/")[0], h) not in claimed:
            held_hosts.setdefault(k, []).append(h)
    out = []
    for k, hosts in held_hosts.items():
        project, service = parse_route_id(k)  # type: ignore[misc]
        out.append(Route(project, service, tuple(hosts), 0, contract.DEFAULT_HEALTH_PATH,
                         contract.ingress_network(project), (), "", held=True))
    return out


def _hand_over(r: Route, candidates: list[Route]) -> Route:
    """A route whose containers all drain (deploy retires a service renamed in the file) gives up
    the hosts another service of its project claims, so they move before its containers stop."""
    if r.held or not r.members or not all(is_draining(m.name) for m in r.members):
        return r
    others = {h for c in candidates if c.project == r.project and c.service != r.service and not c.held
              for h in c.claimed}
    return replace(r, hosts=tuple(h for h in r.hosts if h not in others),
                   redirect_from=tuple(h for h in r.redirect_from if h not in others))



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
    nets = {n.name: n for n in networks} if networks is not None else None
    records = list(containers)
    by_service, problems = _claims(records)
    served = _live_incumbents(incumbents or {}, by_service, nets)
    shadows = _Shadows.find(records, bystanders, by_service)

    def age(r: Route) -> tuple[int, str]:
        if nets is not None and r.network in nets:
            return parse_time(nets[r.network].created)
        return parse_time(r.created)

    routes, conflicts = ownership.resolve(_candidates(by_service, served, shadows), served, age)
    return RouteTable(tuple(routes), tuple(conflicts), tuple(sorted(set(problems + shadows.problems))),
                      tuple(sorted(shadows.refused)))
