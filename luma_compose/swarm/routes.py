"""Swarm services -> routes -> Caddy config. Pure: no Docker.

A route depends only on a service's labels (hosts -> ``P-S:port``): the proxy resolves the alias
``P-S`` on ``P_luma`` at request time (Caddy's ``dynamic_upstreams`` of source ``a``, re-resolved
every second). With ``endpoint_mode: dnsrr`` the alias answers with the IP of every running,
healthy task on any node (Swarm leaves a task out of DNS until its health check passes), so tasks
starting, stopping or moving between nodes change no config at all. With Swarm's default VIP mode
it answers with the service's virtual IP and IPVS spreads the connections (needs IPVS in the
kernel of every node).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .. import contract
from ..proxy import caddy_config

#: DNS re-resolution interval of a route's upstreams.
REFRESH = "1s"
CONFIG_TARGET = "/etc/luma/caddy.json"


@dataclass(frozen=True)
class SwarmRoute:
    project: str
    service: str          # compose service name (S)
    swarm_service: str    # P_S
    hosts: tuple[str, ...]
    alias: str            # P-S
    port: int
    network: str          # P_luma
    health_path: str
    created: str = ""

    @property
    def target(self) -> str:
        return f"{self.alias}:{self.port}"


@dataclass
class Table:
    routes: list[SwarmRoute] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def networks(self) -> list[str]:
        return sorted({r.network for r in self.routes})


STACK_NAMESPACE_LABEL = "com.docker.stack.namespace"


def route_of(service: dict[str, Any]) -> SwarmRoute | None:
    """The route a ``docker service inspect`` record asks for, or None (not managed / invalid)."""
    spec = service.get("Spec") or {}
    labels = spec.get("Labels") or {}
    if labels.get(contract.LABEL_MANAGED) != "true":
        return None
    # The same strict rules as check and the container proxy (luma_compose.validate): no label
    # value that could be a Caddy placeholder ({...}) or anything but a DNS name reaches Caddy.
    from .. import validate

    checks = (validate.project_problem(labels.get(contract.LABEL_PROJECT, "")),
              validate.service_problem(labels.get(contract.LABEL_SERVICE, "")),
              validate.port_problem(labels.get(contract.LABEL_PORT, "")),
              validate.hosts_problem(labels.get(contract.LABEL_HOSTS, "").lower()),
              validate.health_path_problem(labels.get(contract.LABEL_HEALTH_PATH, "/up")))
    if any(checks):
        return None
    try:
        port = int(labels.get(contract.LABEL_PORT, ""))
        project, svc = labels[contract.LABEL_PROJECT], labels[contract.LABEL_SERVICE]
        hosts = tuple(contract.parse_hosts(labels[contract.LABEL_HOSTS]))
    except (KeyError, ValueError):
        return None
    if not hosts or not (0 < port < 65536):
        return None
    # A service routes only for its own stack: `docker stack deploy P` names it P_S and labels it with
    # the namespace P. Service names are unique on a swarm, so no other stack can pass as P's S.
    if spec.get("Name") != f"{project}_{svc}" or labels.get(STACK_NAMESPACE_LABEL) != project:
        return None
    return SwarmRoute(project, svc, spec.get("Name", ""), hosts, contract.alias(project, svc), port,
                      labels.get(contract.LABEL_NETWORK) or contract.ingress_network(project),
                      labels.get(contract.LABEL_HEALTH_PATH, "/up"), service.get("CreatedAt", ""))


def table(services: list[dict[str, Any]]) -> Table:
    """Routes of all managed services. A host (or alias) claimed twice stays with the older service."""
    out = Table()
    candidates = sorted((r for r in map(route_of, services) if r), key=lambda r: (r.created, r.swarm_service))
    hosts: dict[str, SwarmRoute] = {}
    aliases: dict[str, SwarmRoute] = {}
    for r in candidates:
        clash = [h for h in r.hosts if h in hosts]
        if clash:
            o = hosts[clash[0]]
            out.conflicts.append(f"{r.project}/{r.service} claims {', '.join(clash)}, already routed to "
                                 f"{o.project}/{o.service}: not routed")
            continue
        if r.alias in aliases:
            o = aliases[r.alias]
            out.conflicts.append(f"{r.project}/{r.service} has the target alias {r.alias} of "
                                 f"{o.project}/{o.service}: not routed")
            continue
        for h in r.hosts:
            hosts[h] = r
        aliases[r.alias] = r
        out.routes.append(r)
    return out


def _route(r: SwarmRoute) -> dict[str, Any]:
    return {
        "@id": caddy_config.route_handle_id(f"{r.project}/{r.service}"),
        "match": [{"host": list(r.hosts)}],
        "handle": [{
            "handler": "reverse_proxy",
            "dynamic_upstreams": {"source": "a", "name": r.alias, "port": str(r.port), "refresh": REFRESH},
            "transport": caddy_config.upstream_transport(),
            "load_balancing": {
                "selection_policy": {"policy": "round_robin"},
                "try_duration": caddy_config.TRY_DURATION,
                "try_interval": caddy_config.TRY_INTERVAL,
            },
            # Active health checks need a static upstream list; Swarm's own health check keeps
            # unhealthy tasks out of DNS, and a task failing anyway is skipped for a while.
            "health_checks": {"passive": {"fail_duration": caddy_config.FAIL_DURATION, "max_fails": 1}},
        }],
        "terminal": True,
    }


def build_config(t: Table, http_port: int = 80) -> dict[str, Any]:
    """The proxy's whole config. No admin API at all: the config arrives as a file (a Swarm config)."""
    routes = sorted(t.routes, key=lambda r: (all(h.startswith("*") for h in r.hosts), r.project, r.service))
    return {
        "admin": {"disabled": True},
        "apps": {"http": {"http_port": http_port, "servers": {caddy_config.SERVER_NAME: {
            "listen": [f":{http_port}"],
            "automatic_https": {"disable": True},
            "routes": [_route(r) for r in routes] + [caddy_config.NOT_FOUND],
        }}}},
    }


def dumps(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, indent=1)


def config_name(prefix: str, text: str) -> str:
    """Swarm configs are immutable: each content gets its own name."""
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def dns_names(service: dict[str, Any], net_names: dict[str, str]) -> dict[str, set[str]]:
    """network name -> the names a service answers to in DNS there: its name, its stack's short
    name for it, and its network aliases."""
    spec = service.get("Spec") or {}
    name = spec.get("Name") or ""
    ns = (spec.get("Labels") or {}).get(STACK_NAMESPACE_LABEL)
    base = {name} | ({name[len(ns) + 1:]} if ns and name.startswith(ns + "_") else set())
    out: dict[str, set[str]] = {}
    for n in (spec.get("TaskTemplate") or {}).get("Networks") or []:
        net = net_names.get(n.get("Target", ""), n.get("Target", ""))
        out.setdefault(net, set()).update(base | set(n.get("Aliases") or []))
    return out


def drop_shadowed(t: Table, services: list[dict[str, Any]], net_names: dict[str, str]) -> Table:
    """The proxy resolves each route's alias on every overlay it joins: a service that answers to
    another project's alias on one of them would receive that project's traffic. Such a service's
    own project is not routed (its overlay is not joined); if it sits on the owner's overlay itself,
    the owner's routes are withheld too: a 404 rather than another project's answer. Each is reported."""
    by_alias = {r.alias: r for r in t.routes}
    joined = {r.network for r in t.routes}
    bad_nets: dict[str, str] = {}
    for svc in services:
        spec_name = (svc.get("Spec") or {}).get("Name") or ""
        for net, names in dns_names(svc, net_names).items():
            if net not in joined:
                continue
            for alias in names & set(by_alias):
                owner = by_alias[alias]
                if spec_name == owner.swarm_service:
                    continue  # the owner itself
                bad_nets[net] = (f"service {spec_name} answers to {alias} (the target of "
                                 f"{owner.project}/{owner.service}) on {net}")
    if not bad_nets:
        return t
    kept = [r for r in t.routes if r.network not in bad_nets]
    conflicts = t.conflicts + [f"{why}: the routes on {net} are withheld (DNS shadowing)"
                               for net, why in sorted(bad_nets.items())]
    return Table(kept, conflicts)
