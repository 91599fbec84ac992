"""``luma-compose status --swarm``: one view of every routed project on a swarm, in the same shape and
rendering as one host's (:mod:`..proxy.server_status`). :func:`build` is pure: built from the route table ``routes
--swarm`` reads (withheld routes and conflicts included), each routed service's record and task list,
and the edges' access log records of the window.

A service's READY is its running tasks / the tasks Swarm wants (its replicas; a global service's
tasks meant to run). Health: Swarm starts a task with a health check as ``starting`` and runs it
only once the check passes (a failing one is replaced), so ``healthy`` is every wanted task running
with a health check, ``none`` without one, ``starting`` while one is, ``down`` with none running.
The last deploy is the newest ``UpdatedAt`` of the project's routed services. Certificates (TLS on)
live in the edges' shared storage: :mod:`.certs` reads them with a job on a proxy node, and each
host's state and expiry, and what needs attention (failing, expired, expiring within 14 days), are as
on one host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from .. import contract
from ..proxy import server_status
from ..proxy.server_status import ProjectView, ServerView, ServiceView
from ..records import ServiceRecord, TaskRecord
from ..routing.claims import RouteTable


def service_view(r: Any, svc: ServiceRecord | None, tasks: Iterable[TaskRecord]) -> ServiceView:
    """One routed service: hosts, running/wanted tasks, health."""
    tasks = list(tasks)
    wanted = [t for t in tasks if t.desired == "running"]
    running = sum(1 for t in wanted if t.state == "running")
    total = svc.replicas if svc is not None and svc.replicas is not None else len(wanted)
    if running == 0:
        health = "down"
    elif any(t.state in ("starting", "preparing", "assigned", "accepted", "ready", "pending", "new")
             for t in wanted):
        health = "starting"
    else:
        health = "healthy" if svc is not None and svc.healthcheck else "none"
    return ServiceView(r.service, list(r.hosts), running, total, health)


def build(table: RouteTable, services: Mapping[str, ServiceRecord], tasks: Mapping[str, list[TaskRecord]],
          records: Iterable[Mapping[str, Any]] | None, window: str, proxy: Mapping[str, Any], in_sync: bool,
          edges: tuple[int, int] = (1, 1), now: datetime | None = None,
          certificates: Iterable[Any] = (), cert_error: str = "") -> ServerView:
    """``services``/``tasks``: by stack service name (``P_S``); ``records``: the edges' access log of the
    window (None: the access log is off); ``proxy``: name, status, tls, access_log, metrics; ``edges``:
    the edge tasks running, and wanted; ``certificates``: :class:`..proxy.certs.CertState` per host (TLS on),
    ``cert_error``: why they could not be read."""
    now = now or datetime.now(timezone.utc)
    certs = {c.host: c for c in certificates}
    counts = server_status._counts(records)
    parse = server_status._parse
    newest: dict[str, datetime] = {}
    for r in table.routes:
        t = parse(getattr(services.get(contract.stack_service(r.project, r.service)), "updated", ""))
        if t is not None and (r.project not in newest or t > newest[r.project]):
            newest[r.project] = t
    projects: dict[str, ProjectView] = {}
    for r in sorted(table.routes, key=lambda r: (r.project, r.service)):
        name = contract.stack_service(r.project, r.service)
        svc = services.get(name)
        last = newest[r.project].strftime("%Y-%m-%dT%H:%M:%SZ") if r.project in newest else ""
        pv = projects.setdefault(r.project, ProjectView(r.project, last, [], []))
        sv = service_view(r, svc, tasks.get(name, []))
        sv.certificates = [certs[h].to_json() for h in r.hosts if h in certs]
        if counts is not None:
            sv.requests, sv.errors = counts.get((r.project, r.service), [0, 0])
        pv.services.append(sv)
        pv.attention += server_status._service_attention(r, sv, certs, now, window)
    attention = list(table.messages) + ([cert_error] if cert_error else [])
    if edges[0] < edges[1]:
        attention.append(f"{proxy.get('name')}: {edges[0]}/{edges[1]} edges running (the nodes without one "
                         "answer nothing)")
    if not in_sync:
        attention.append("the edges' config differs from the labels: run `luma-compose proxy sync --swarm`")
    return ServerView({**proxy, "in_sync": in_sync}, list(projects.values()), attention, window)


def read(engine: Any, edge: ServiceRecord, window: str) -> ServerView:
    """The view, read on a manager (the only part of this module that talks to the engine, through its
    records): the route table ``routes --swarm`` reads, each routed service and its tasks, the edges'
    tasks and the edges' access log of the last ``window``. Exit 3 when no edge runs."""
    from ..errors import UnavailableError
    from ..proxy import access_log
    from . import observe as swarm_observe
    from . import metrics as swarm_metrics
    from . import certs as swarm_certs
    from .options import tls_of
    from .proxy import SwarmProxy

    edge_tasks = [t for t in engine.tasks(edge.name) if t.desired == "running"]
    edges = (sum(1 for t in edge_tasks if t.state == "running"), len(edge_tasks))
    if not edges[0]:
        raise UnavailableError(f"no edge of the proxy {edge.name} is running", "luma-compose proxy up --swarm")
    px = SwarmProxy(engine, edge.name, log=lambda s: None)
    tls = tls_of(edge)
    on = swarm_observe.access_log_of(edge.labels)
    found, cert_error = _read_certificates(engine, edge) if tls.on else ({}, "")  # one job, now
    table, text = px.desired_of(edge, watch=False)  # the metrics' expiry: the read just made
    certificates = (swarm_certs.states(table.routes, found, engine.service_stderr(edge.name))
                    if tls.on and not cert_error else [])
    in_sync = _in_sync(engine, px.config_server, edge.name, text)
    names = {contract.stack_service(r.project, r.service) for r in table.routes}
    services = {n: s for n in names if (s := engine.service(n)) is not None}
    tasks = {n: engine.tasks(n) for n in services}
    records = (access_log.select(swarm_observe.edge_log_lines(engine, edge, access_log.since_time(window)))
               if on else None)  # counted as read, never held
    proxy = {"name": edge.name, "status": "running", "tls": tls.mode, "access_log": on,
             "metrics": swarm_metrics.of(edge).port if swarm_metrics.of(edge).on else None}
    return build(table, services, tasks, records, window, proxy, in_sync, edges, certificates=certificates,
                 cert_error=cert_error)


def _read_certificates(engine: Any, edge: ServiceRecord) -> tuple[dict[str, str], str]:
    """The certificates in the edges' storage (path -> PEM), or why they could not be read."""
    from ..errors import LumaError
    from . import certs as swarm_certs

    try:
        return swarm_certs.files(engine, edge), ""
    except LumaError as e:
        return {}, f"{edge.name}: cannot read the certificates in the edges' storage: {e.message}"


def _in_sync(engine: Any, config_server: str, proxy: str, text: str) -> bool:
    """Whether the config server serves ``text``, but for the certificates' expiry (a renewal since the last
    sync is no drift, as on one host: :func:`..proxy.observe.comparable`)."""
    import json

    from ..proxy.observe import comparable
    from .routes import EDGE_CONFIG_TARGET, config_name

    server = engine.service(config_server)
    served = server.configs.get(EDGE_CONFIG_TARGET) if server is not None else None
    if served is None or served == config_name(f"{proxy}-edge", text):
        return served is not None
    published = engine.config_text(served)
    try:
        return published is not None and comparable(json.loads(published)) == comparable(json.loads(text))
    except ValueError:
        return False
