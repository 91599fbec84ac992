"""The one factory of container records for the unit tests (route table, Caddy config, deploy, controller)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from luma_compose import contract
from luma_compose.records import (
    COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
    CONFIG_HASH_LABEL,
    ContainerRecord,
    NetworkAttachment,
)

_ips = itertools.count(2)
T0 = "2026-01-01T00:00:00Z"


def routed(project: str, service: str, n: int = 1, *, hosts=("x.test",), port: int = 3000, health_path: str = "/up",
           created: str = T0, state: str = "running", health: str | None = None, config_hash: str = "h1",
           ip: str | None = None, labels: Mapping[str, str] | None = None, aliases=None, network: str | None = None,
           compose: bool = True, image: str = "", name: str | None = None, cid: str | None = None,
           extra_networks: Mapping[str, NetworkAttachment] | None = None) -> ContainerRecord:
    """A container of ``project``/``service`` as render + compose make it: luma labels, compose labels,
    the ingress network with the alias ``project-service`` (and the plain name)."""
    lb = contract.route_labels(project, service, list(hosts), port, health_path)
    if compose:
        lb[COMPOSE_PROJECT_LABEL] = project
        lb[COMPOSE_SERVICE_LABEL] = service
    lb[CONFIG_HASH_LABEL] = config_hash
    lb.update(labels or {})
    net = network or contract.ingress_network(project)
    al = (contract.alias(project, service), service) if aliases is None else tuple(aliases)
    name = name or f"{project}-{service}-{n}"
    i = next(_ips)
    nets = {net: NetworkAttachment(ip or f"10.0.{i // 250}.{i % 250 + 2}", al)}
    nets.update(extra_networks or {})
    return ContainerRecord(id=cid or f"{name}-{config_hash}-id", name=name, labels=lb, created=created, state=state,
                           health=health, networks=nets, image=image)


def plain(cid: str, *, config_hash: str = "h1", state: str = "running", name: str = "", image: str = "",
          labels: Mapping[str, str] | None = None) -> ContainerRecord:
    """A container with only a config-hash (deploy plans look at nothing else)."""
    return ContainerRecord(id=cid, name=name or f"p-web-{cid}", labels={CONFIG_HASH_LABEL: config_hash, **(labels or {})},
                           created="", state=state, image=image)
