"""Metrics on a swarm: every edge serves the single host's metrics listener. Pure: no Docker.

``proxy up --swarm --metrics PORT --metrics-allow CIDR[,CIDR...]`` publishes the listener of
:mod:`..proxy.observe` (Caddy's ``metrics {per_host}`` on ``/metrics``, the luma series on
``/luma/metrics``, built by the same :func:`..proxy.observe.add_metrics`) in host mode on PORT of every
proxy node. A swarm port cannot be published on loopback only, so the listener answers only the
sources in the allow list (the user's Prometheus) and 403 to every other. An allow list that overlaps
what a task's connection can come from is refused (exit 2): the overlays' subnets and the pool new
overlays are cut from, the docker_gwbridge subnet (a task's way out of its node: a connection to its
own node's port comes from there) and every node's address (a task's connection to another node
leaves masqueraded as its node's address). Those ranges are also refused by the listener itself, even
inside the allow list, as read at every sync: an overlay or a node added later stays refused.

The settings live on the edge service as labels (as ``--http-port`` and the TLS settings do), so every
``proxy sync --swarm`` builds the same listener.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import contract
from ..errors import UsageError
from ..proxy import observe
from ..records import Publish, ServiceRecord, ServiceUpdate
from ..routing.claims import RouteTable
from . import routes as swarm_routes

PORT_LABEL = contract.PROXY_METRICS_LABEL
ALLOW_LABEL = contract.SWARM_METRICS_ALLOW_LABEL
#: The listener's port inside an edge (one host's too); published in host mode on the user's port.
TARGET_PORT = observe.METRICS_PORT
ALLOW_HINT = ("--metrics-allow CIDR[,CIDR...]: the addresses of your Prometheus (e.g. --metrics-allow "
              "203.0.113.7/32), outside the swarm's overlay networks, the nodes' docker_gwbridge and the "
              "nodes' own addresses")


@dataclass(frozen=True)
class EdgeMetrics:
    """The edges' metrics listener: ``port`` 0 is off."""
    port: int = 0
    allow: tuple[str, ...] = ()

    @property
    def on(self) -> bool:
        return self.port != 0


@dataclass(frozen=True)
class EdgeRoute:
    """What ``/luma/metrics`` says about a route on a swarm: the edge dials the project's gateway."""
    project: str
    service: str
    hosts: tuple[str, ...]
    upstreams: tuple[str, ...]


def parse_allow(value: str) -> tuple[str, ...]:
    """``CIDR[,CIDR...]`` (an address alone is its /32 or /128) -> normalized networks, sorted."""
    out = set()
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            out.add(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise UsageError(f"--metrics-allow {value!r}: {part!r} is not an address or a CIDR", ALLOW_HINT) from None
    if not out:
        raise UsageError("--metrics-allow is empty", ALLOW_HINT)
    return tuple(sorted(out))


def settings(port: int | None, off: bool, allow: str | None) -> EdgeMetrics | None:
    """The CLI's ``--metrics PORT|off`` and ``--metrics-allow`` -> the new settings (None: keep the running ones)."""
    if off:
        if allow is not None:
            raise UsageError("--metrics-allow goes with --metrics PORT, not --metrics off", "drop --metrics-allow")
        return EdgeMetrics()
    if port is None:
        if allow is not None:
            raise UsageError("--metrics-allow goes with --metrics PORT",
                             "give both, e.g. --metrics 9180 --metrics-allow 203.0.113.7/32")
        return None
    if allow is None:
        raise UsageError(f"--metrics {port} on a swarm needs --metrics-allow: a swarm port is published on every "
                         "node's addresses (there is no loopback-only publishing), so the listener answers only the "
                         "addresses you name", ALLOW_HINT)
    return EdgeMetrics(port, parse_allow(allow))


def of(edge: ServiceRecord) -> EdgeMetrics:
    """The settings an edge service keeps in its labels."""
    try:
        port = int(edge.labels.get(PORT_LABEL, "0") or "0")
    except ValueError:
        port = 0
    allow = tuple(a for a in edge.labels.get(ALLOW_LABEL, "").split(",") if a)
    return EdgeMetrics(port, allow) if port and allow else EdgeMetrics()


def labels(m: EdgeMetrics) -> dict[str, str]:
    return {PORT_LABEL: str(m.port), ALLOW_LABEL: ",".join(m.allow)} if m.on else {}


def publish(m: EdgeMetrics) -> tuple[Publish, ...]:
    return (Publish(TARGET_PORT, m.port),) if m.on else ()


def change(old: EdgeMetrics, new: EdgeMetrics) -> ServiceUpdate:
    """The edge service's update from ``old`` to ``new`` (empty when equal). A new port recreates the
    edges one node at a time (Swarm's update of a host-mode publish); a new allow list is a label only."""
    if old == new:
        return ServiceUpdate()
    port_moved = old.port != new.port
    return ServiceUpdate(label_add=labels(new), label_rm=() if new.on else (PORT_LABEL, ALLOW_LABEL),
                         publish_rm=(TARGET_PORT,) if port_moved and old.on else (),
                         publish_add=publish(new) if port_moved else ())


def overlaps(allow: tuple[str, ...], ranges: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Each allowed network that overlaps a range a task's connection can come from, said in words."""
    out = []
    for a in allow:
        net = ipaddress.ip_network(a)
        for what, cidrs in sorted(ranges.items()):
            for c in cidrs:
                other = ipaddress.ip_network(c, strict=False)
                if net.version == other.version and net.overlaps(other):
                    out.append(f"{a} overlaps {c} ({what})")
    return out


def check(m: EdgeMetrics, http_ports: tuple[int, ...], ranges: Mapping[str, tuple[str, ...]]) -> None:
    """Refuse (usage error) a listener a task could read, or whose port the edges already publish."""
    if not m.on:
        return
    if m.port in http_ports:
        raise UsageError(f"--metrics {m.port}: the edges publish that port for HTTP(S) already",
                         "give another port, e.g. --metrics 9180")
    found = overlaps(m.allow, ranges)
    if found:
        raise UsageError("--metrics-allow would let tasks of this swarm read the metrics: " + "; ".join(found),
                         ALLOW_HINT)


def edge_routes(t: RouteTable, proxy: str) -> list[EdgeRoute]:
    """The route table as ``/luma/metrics`` names it on a swarm: the upstream of a served route is its
    project's gateway (``luma-proxy-gw-P:8080``), none while it is withheld or in maintenance."""
    def dials(r: Any) -> tuple[str, ...]:
        if r.withheld or r.maintenance:
            return ()
        return (f"{swarm_routes.gateway_name(proxy, r.project)}:{swarm_routes.GATEWAY_PORT}",)

    return [EdgeRoute(r.project, r.service, tuple(r.hosts), dials(r)) for r in t.routes]


def apply(config: dict[str, Any], t: RouteTable, proxy: str, m: EdgeMetrics,
          ranges: Mapping[str, tuple[str, ...]], cert_expiry: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The edge config with the metrics listener (``config`` itself, changed), or as it was when off;
    ``cert_expiry``: host -> certificate expiry (Unix time, :func:`.certs.expiry`)."""
    if not m.on:
        return config
    deny = sorted({c for cidrs in ranges.values() for c in cidrs})
    observe.add_metrics(config, edge_routes(t, proxy), m.allow, cert_expiry or {}, deny=deny, dial=lambda u: u)
    return config
