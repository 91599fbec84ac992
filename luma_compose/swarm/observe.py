"""Access logs on the swarm's edges (the same lines as one host's proxy, :mod:`..proxy.observe`). The
config part is pure; :func:`edge_service` and :func:`edge_log_lines` read through the engine they are given.

The edge writes the line: it has the client's address, the Host, the final status and the duration.
Each route names its project and service with the same ``vars``/``log_append`` handlers as on one
host (:func:`..proxy.observe.apply`). The upstream is the task the project's gateway dialled: the
gateway answers with it in ``Luma-Upstream`` (set, so an app's own header never counts), the edge
logs that header (Caddy's ``{http.reverse_proxy.header.*}`` of the gateway's response) and deletes it
from the response the client gets, logged or not. Caddy's own messages stay at WARN on stderr; the
access log goes to stdout, which Docker keeps (json-file, rotated: :data:`LOG_DRIVER`, :data:`LOG_OPTIONS`)
and ``docker service logs`` reads from every node.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from .. import contract
from ..errors import UnavailableError
from ..proxy import caddy_config, observe
from ..proxy.observe_inputs import LOG_DRIVER, LOG_OPTIONS
from ..records import ServiceRecord
from ..routing.claims import RouteTable
from .routes import HEADER_UPSTREAM

__all__ = ["LOG_DRIVER", "LOG_OPTIONS", "ACCESS_LOG_LABEL", "EDGE_UPSTREAM", "edge", "access_log_of", "edge_service",
           "edge_log_lines"]

#: The edge service's label that keeps ``--access-log`` (on | off), as one host's proxy container's.
ACCESS_LOG_LABEL = contract.PROXY_ACCESS_LOG_LABEL
#: What the edge logs as the upstream: the gateway's answer header.
EDGE_UPSTREAM = "{http.reverse_proxy.header.%s}" % HEADER_UPSTREAM


def access_log_of(labels: Mapping[str, str]) -> bool:
    """Whether an edge service (its labels) writes the access log: on unless switched off."""
    return labels.get(ACCESS_LOG_LABEL, "on") != "off"


def edge(config: dict[str, Any], table: RouteTable, access_log: bool = True) -> dict[str, Any]:
    """The edge ``config`` (routes.edge_config) with the access log (when on); the gateway's upstream
    header is never passed to the client. A copy: ``config`` is left as it is."""
    out = observe.apply(config, table.serving, access_log=access_log, upstream=EDGE_UPSTREAM)
    out = copy.deepcopy(out) if out is config else out
    # wherever a reverse_proxy sits, in every server, however deep in subroutes
    for h in observe.handlers(r for server in out["apps"]["http"]["servers"].values() for r in server.get("routes", [])):
        if h.get("handler") == "reverse_proxy":
            response = h.setdefault("headers", {}).setdefault("response", {})
            response["delete"] = sorted({*response.get("delete", []), HEADER_UPSTREAM})
    return out


def edge_service(engine: Any, name: str) -> ServiceRecord:
    """The proxy's edge service ``name``, read on a manager; exit 3 when the swarm or the proxy is not
    there (as ``logs``/``status`` on one host when the proxy container is not)."""
    engine.require_manager()
    svc = engine.service(name)
    if svc is None or svc.labels.get(contract.SWARM_ROLE_LABEL) != "edge" \
            or svc.labels.get(contract.SWARM_PROXY_LABEL) != name:
        raise UnavailableError(f"no proxy service {name} on this swarm",
                               "start it with: luma-compose proxy up --swarm (or name it: --name)")
    return svc


def edge_log_lines(engine: Any, edge: ServiceRecord, since: float | None = None,
                   follow: bool = False) -> Iterator[tuple[str, str, str]]:
    """(node, node id, line) of every edge task's stdout, on every node (``docker service logs`` on a manager)."""
    return engine.service_log_lines(edge.name, since=since, follow=follow)
