"""The adapter for a swarm: ``docker service inspect`` records -> routes, into the routing core. Pure.

A route depends only on a service's labels (hosts -> ``P-S:port``): the swarm finds the tasks by DNS
at request time (swarm/routes.py), so a route has no members here. A service routes only for its
own stack: ``docker stack deploy P`` names it ``P_S`` and labels it with the namespace P; service
names are unique on a swarm, so no other stack can pass as P's S. Its labels pass the same checks as
a container's on one host (:func:`.claims.label_problem`, :func:`.claims.contract_problem`).
Ownership: :mod:`.ownership` with no incumbent (the edges' config is rebuilt from the services on
every pass) and the services' creation time (kept through every update).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace

from .. import contract
from ..records import ServiceRecord
from . import ownership
from .claims import Route, RouteTable, access_of, contract_problem, features_of, hosts_of, label_problem

#: What a service must say; the health path and ``luma.target``/``luma.network`` have defaults here.
REQUIRED = (contract.LABEL_MANAGED, contract.LABEL_PROJECT, contract.LABEL_SERVICE, contract.LABEL_HOSTS,
            contract.LABEL_PORT)


def claim(service: ServiceRecord) -> tuple[Route | None, str]:
    """The route a managed service asks for, or why it is not routed ("" when it is not managed)."""
    labels = service.labels
    if labels.get(contract.LABEL_MANAGED) != "true":
        return None, ""
    name = service.name
    where = f"service {name}"
    problem = label_problem(labels, REQUIRED)
    if problem:
        return None, f"{where}: {problem}; ignored"
    project, svc = labels[contract.LABEL_PROJECT], labels[contract.LABEL_SERVICE]
    if name != contract.stack_service(project, svc) or labels.get(contract.STACK_NAMESPACE_LABEL) != project:
        return None, (f"{where}: labels route it for {project}/{svc} but only the service "
                      f"{contract.stack_service(project, svc)} of the stack {project} may; ignored")
    problem = contract_problem(labels)
    if problem:
        return None, f"{where}: {problem}; ignored"
    return Route(project, svc, hosts_of(labels), int(labels[contract.LABEL_PORT]),
                 labels.get(contract.LABEL_HEALTH_PATH, contract.DEFAULT_HEALTH_PATH),
                 contract.ingress_network(project), created=service.created,
                 # Swarm's own health checks gate a task's DNS entry: the gateways do not probe (docs/swarm.md)
                 **{**features_of(labels), "health_interval": 0},
                 **access_of(labels)), ""


def route_of(service: ServiceRecord) -> Route | None:
    """The route a service asks for, or None (not managed / not valid)."""
    return claim(service)[0]


def table(services: Iterable[ServiceRecord], networks: Collection[str] | None = None) -> RouteTable:
    """The routes of every managed service, owned by the one rule. ``networks``: the overlays that
    exist (None: unknown); a route whose network is missing keeps its hosts but is withheld."""
    candidates: list[Route] = []
    problems: list[str] = []
    for s in services:
        route, problem = claim(s)
        if route is not None:
            candidates.append(route)
        elif problem:
            problems.append(problem)
    if networks is not None:
        candidates = [r if r.network in networks else replace(r, withheld=f"its network {r.network} does not exist")
                      for r in candidates]
    # A wildcard never covers a host named exactly on the edges either; a swarm does not report it.
    routes, conflicts = ownership.resolve(candidates, wildcards=False)
    return RouteTable(tuple(routes), tuple(conflicts), tuple(problems))
