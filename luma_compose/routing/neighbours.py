"""Who else is on a project's ingress network: DNS shadowing and foreign containers. Pure.

The proxy dials container names on the ingress networks, and Docker's embedded DNS answers a
name in any case and with or without a trailing dot, from the container's name, short id,
hostname and network aliases. :func:`shadowing` finds containers that answer to a name the
proxy dials for another container; :func:`intruders` finds containers on a project's
``P_luma`` that are neither the project's (made by Compose for it) nor a proxy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import contract, validate
from ..records import ContainerRecord


dns_name = validate.dns_name_key  # one rule for both targets


def answers_to(c: ContainerRecord, network: str, name: bool = True) -> frozenset[str]:
    """Every name ``c`` may answer to on ``network`` (as :func:`dns_name`): its container name
    (unless ``name`` is false), its short id, its hostname and its aliases there (which hold the
    service name and, on engines >= 25, DNSNames). Read from inspect data every engine version
    reports."""
    att = c.networks.get(network)
    if att is None:
        return frozenset()
    names = (c.name if name else "", c.short_id, c.hostname, *att.aliases)
    return frozenset(dns_name(n) for n in names if n and dns_name(n))


def shadowing(records: list[ContainerRecord], routed: list[tuple[ContainerRecord, dict[str, Any]]],
               ) -> tuple[dict[str, str], dict[str, str]]:
    """Containers that answer to a routed container's name on some network (Docker DNS shadowing).

    Names are compared the way Docker's resolver does (:func:`dns_name`), and every name a
    container answers to counts (:func:`answers_to`). Returns (network -> problem) for foreign
    ingress networks the proxy must not join, and (container id -> problem) for routed
    containers shadowed on their own ingress network.
    """
    dial_names = {dns_name(c.name): (c, f) for c, f in routed}
    refused: dict[str, str] = {}
    victims: dict[str, str] = {}
    for other in records:
        for net in other.networks:
            for n in sorted(answers_to(other, net) & dial_names.keys()):
                victim, f = dial_names[n]
                # Names are unique on an engine: the very same name is the same container (read twice).
                if victim.id == other.id or (other.name == victim.name and n not in answers_to(other, net, False)):
                    continue
                msg = (f"container {other.name} answers to {n} on {net}, the name the proxy dials for "
                       f"{victim.name} ({f['project']}/{f['service']})")
                if net == f["network"]:
                    victims[victim.id] = msg + f"; {f['project']}/{f['service']} gets no traffic until it is gone"
                else:
                    refused.setdefault(net, msg + f"; the proxy does not join {net} until it is gone")
    return refused, victims


def is_proxy(c: ContainerRecord) -> bool:
    """A luma-compose proxy: labelled so, and not made by Compose (a compose file cannot drop
    the ``com.docker.compose.*`` labels Compose sets, so no project's service passes for one)."""
    return c.labels.get(contract.PROXY_LABEL) == "true" and c.compose_project is None


def intruders(records: list[ContainerRecord], projects: Iterable[str]) -> dict[str, str]:
    """(ingress network -> problem) for each routed project whose ``P_luma`` has a container
    that is neither the project's own (made by Compose for P) nor a proxy: it can answer the
    project's internal calls (a service called like one of P's), so the project is withheld."""
    ingress = {contract.ingress_network(p): p for p in projects}
    found: dict[str, list[str]] = {}
    for c in records:
        for net in c.networks:
            p = ingress.get(net)
            if p is None or c.compose_project == p or is_proxy(c):
                continue
            who = (f"compose project {c.compose_project}, service {c.compose_service}" if c.compose_project
                   else "not made by Compose")
            found.setdefault(net, []).append(f"{c.name} ({who})")
    return {net: (f"{net} has container(s) that are not {ingress[net]}'s: {', '.join(sorted(set(who)))}; they can "
                  f"answer {ingress[net]}'s internal calls, so its routes get no traffic until they leave "
                  f"(docker network disconnect {net} NAME)")
            for net, who in found.items()}
