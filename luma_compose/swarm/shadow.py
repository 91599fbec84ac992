"""Who could receive a project's traffic by answering to one of its names in DNS. Pure: no Docker.

Project P's gateway resolves P's target aliases (``P-S``) on P_luma and on the edge network; the
edges resolve P's gateway name on the edge network. Anything that answers to one of those names
there, and is not what the name means, would get some of P's requests: a service with that name or
alias, or a plain container (``docker run --network P_luma``: the projects' overlays are attachable).
P's routes are then withheld (its hosts answer 404, never the intruder's answer) and the intruder is
reported. Names are compared as Docker's resolver compares them (:func:`validate.dns_name_key`:
case-insensitive, trailing dot ignored). Anything on other projects' overlays is out of every
gateway's reach and harmless.

The price: anyone who can put a container on P_luma (or a service on the edge network) can take P
offline, though never take its traffic. That is reported with the intruder's name.
"""

from __future__ import annotations

from dataclasses import replace

from .. import contract, validate
from ..records import ServiceRecord
from ..routing.claims import RouteTable
from .routes import config_server_name, gateway_name


def dns_names(service: ServiceRecord, net_names: dict[str, str]) -> dict[str, set[str]]:
    """network name -> the names a service answers to in DNS there, as written: its name, its stack's
    short name for it, and its network aliases."""
    name, ns = service.name, service.stack
    base = {name} | ({name[len(ns) + 1:]} if ns and name.startswith(ns + "_") else set())
    out: dict[str, set[str]] = {}
    for n in service.networks:
        out.setdefault(net_names.get(n.target, n.target), set()).update(base | set(n.aliases))
    return out


def drop_shadowed(t: RouteTable, services: list[ServiceRecord], net_names: dict[str, str],
                  proxy: str = "luma-proxy", containers: dict[str, list[str]] | None = None) -> RouteTable:
    """``t`` with the routes of projects whose names something else answers to withheld (they keep
    their hosts: 404).

    ``containers``: network name -> the plain containers (not swarm tasks) attached to it, as
    sentences (or why nobody can tell). Their aliases are not visible from a manager, so any one on P_luma withholds P,
    and any one on the edge network every project. A service posing as the config server on the
    edge network is reported too (the edges verify its certificate, so it gets nothing).
    """
    serving = t.serving
    withheld, problems = _intruders(serving, services, net_names, proxy)
    edge = f"{proxy}_edge"
    for net, found in sorted((containers or {}).items()):
        for r in serving:
            if found and net in (r.network, edge):
                withheld.setdefault(r.project, f"{found[0]}: it may answer to any of {r.project}'s names there")
    problems += [f"{why}: the routes of {p} are withheld (DNS shadowing); remove it to serve {p} again"
                 for p, why in sorted(withheld.items())]
    routes = tuple(replace(r, withheld=withheld[r.project]) if not r.withheld and r.project in withheld else r
                   for r in t.routes)
    return RouteTable(routes, t.conflicts, (*t.problems, *problems), t.refused_networks)


def _intruders(serving: tuple, services: list[ServiceRecord], net_names: dict[str, str],
               proxy: str) -> tuple[dict[str, str], list[str]]:
    """(project -> why its routes are withheld, problems) for the services that answer to a name
    of a project's route or gateway where the gateway or the edges resolve it."""
    edge = f"{proxy}_edge"
    cs = validate.dns_name_key(config_server_name(proxy))
    ours = {gateway_name(proxy, r.project) for r in serving} | {config_server_name(proxy), proxy}
    # (network, DNS name key) -> (project, the service that may answer to it, what the name is)
    watched: dict[tuple[str, str], tuple[str, str, str]] = {}
    for r in serving:
        for net in (r.network, edge):
            watched[(net, validate.dns_name_key(r.alias))] = (r.project, r.swarm_service,
                                                              f"the target of {r.project}/{r.service}")
        gw = gateway_name(proxy, r.project)
        watched[(edge, validate.dns_name_key(gw))] = (r.project, gw, f"the gateway of {r.project}")
    withheld: dict[str, str] = {}
    problems: list[str] = []
    for svc in services:
        spec_name = svc.name
        for net, names in dns_names(svc, net_names).items():
            for name in sorted(names):
                project, owner, what = watched.get((net, validate.dns_name_key(name)), ("", spec_name, ""))
                if owner != spec_name:
                    withheld.setdefault(project, f"service {spec_name} answers to {name} ({what}) on {net}")
            if net == edge and cs in {validate.dns_name_key(n) for n in names} and spec_name not in ours:
                problems.append(f"service {spec_name} answers to {cs} on {net}: the proxies do not trust it "
                                "(it cannot show the config server's certificate); remove it")
    return withheld, problems
