"""``luma-compose status``: one view of every routed project on the engine. Pure: built from the
proxy's status (route table, certificates, in sync), the managed containers' records and the
access log's records of the last minutes; decides what needs attention.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .. import contract
from ..records import ContainerRecord

#: A certificate that expires sooner than this needs attention (Caddy renews 30 days before).
CERT_WARN_DAYS = 14


@dataclass
class ServiceView:
    service: str
    hosts: list[str]
    ready: int
    total: int
    health: str  # healthy | starting | unhealthy | none (no health check) | mixed | down
    certificates: list[dict[str, Any]] = field(default_factory=list)
    requests: int | None = None
    errors: int | None = None  # 5xx

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "hosts": self.hosts, "ready": self.ready, "total": self.total,
                "health": self.health, "certificates": self.certificates, "requests": self.requests,
                "errors": self.errors}


@dataclass
class ProjectView:
    project: str
    last_deploy: str
    services: list[ServiceView]
    attention: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "last_deploy": self.last_deploy or None,
                "services": [s.to_json() for s in self.services], "attention": self.attention}


@dataclass
class ServerView:
    proxy: dict[str, Any]
    projects: list[ProjectView]
    attention: list[str]  # the server's own (conflicts, config drift)
    window: str

    @property
    def needs_attention(self) -> bool:
        return bool(self.attention or any(p.attention for p in self.projects))

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "proxy": self.proxy, "window": self.window,
                "needs_attention": self.needs_attention, "attention": self.attention,
                "projects": [p.to_json() for p in self.projects]}


def _health(members) -> str:
    if not members:
        return "down"
    kinds = {m.health for m in members}
    if "unhealthy" in kinds:
        return "unhealthy"
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _counts(records: Iterable[Mapping[str, Any]] | None) -> dict[tuple[str, str], list[int]] | None:
    if records is None:
        return None
    out: dict[tuple[str, str], list[int]] = {}
    for r in records:
        c = out.setdefault((r["project"], r["service"]), [0, 0])
        c[0] += 1
        c[1] += 1 if r["status"] >= 500 else 0
    return out


def build(st: Any, containers: Iterable[ContainerRecord], records: Iterable[Mapping[str, Any]] | None,
          window: str, now: datetime | None = None, access_log: bool = True, metrics: str = "") -> ServerView:
    """``st``: :class:`~.controller.ProxyStatus`; ``containers``: the managed containers (for the last
    deploy); ``records``: the access log's records of the window (None: no access log)."""
    now = now or datetime.now(timezone.utc)
    certs = {c.host: c for c in st.certificates}
    counts = _counts(records)
    newest: dict[str, str] = {}
    for c in containers:
        p = c.labels.get(contract.LABEL_PROJECT, "")
        if p and _parse(c.created) and (p not in newest or _parse(c.created) > _parse(newest[p])):
            newest[p] = c.created
    projects: dict[str, ProjectView] = {}
    for r in sorted(st.table.routes, key=lambda r: (r.project, r.service)):
        pv = projects.setdefault(r.project, ProjectView(r.project, _iso(newest.get(r.project, "")), [], []))
        members = [m for m in r.members if m.state != "removing"]
        ready = sum(1 for m in members if m.in_pool)
        sv = ServiceView(r.service, list(r.hosts), ready, len(members), _health(members),
                         [certs[h].to_json() for h in r.hosts if h in certs])
        if counts is not None:
            sv.requests, sv.errors = counts.get((r.project, r.service), [0, 0])
        pv.services.append(sv)
        pv.attention += _service_attention(r, sv, certs, now, window)
    attention = list(st.table.messages)
    if not st.in_sync:
        attention.append("the proxy's loaded config differs from the labels: run `luma-compose proxy sync`")
    proxy = {"name": st.name, "status": st.state, "tls": st.tls, "in_sync": st.in_sync,
             "access_log": access_log, "metrics": metrics or None}
    return ServerView(proxy, list(projects.values()), attention, window)


def _service_attention(r: Any, sv: ServiceView, certs: Mapping[str, Any], now: datetime, window: str) -> list[str]:
    out = []
    who = f"{r.project}/{r.service}"
    if r.withheld:
        out.append(f"{who}: withheld ({r.withheld})")
    if sv.total == 0:
        out.append(f"{who}: no container (its hosts answer 503)")
    elif sv.ready < sv.total:
        out.append(f"{who}: {sv.ready}/{sv.total} containers ready")
    if sv.health == "unhealthy":
        out.append(f"{who}: a container is unhealthy")
    for h in r.hosts:
        c = certs.get(h)
        if c is None:
            continue
        exp = _parse(c.not_after)
        if c.state in ("failing", "expired"):
            out.append(f"{who}: certificate of {h} {c.state}" + (f": {c.error}" if c.error else ""))
        elif exp is not None and exp - now < timedelta(days=CERT_WARN_DAYS):
            out.append(f"{who}: certificate of {h} expires {c.not_after}")
    if sv.errors:
        out.append(f"{who}: {sv.errors} of {sv.requests} requests got 5xx in the last {window}")
    return out


def _parse(ts: str) -> datetime | None:
    if not ts:
        return None
    try:
        # the engine gives nanoseconds: keep microseconds
        head, dot, frac = ts.rstrip("Z").partition(".")
        t = datetime.fromisoformat(head + (("." + frac[:6]) if dot else "") + "+00:00")
    except ValueError:
        return None
    return t


def _iso(ts: str) -> str:
    t = _parse(ts)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else ""


def _ago(ts: str, now: datetime) -> str:
    t = _parse(ts)
    if t is None:
        return "-"
    s = int((now - t).total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s // n}{unit} ago"
    return f"{max(s, 0)}s ago"


def _cert_cell(certs: list[dict[str, Any]]) -> str:
    if not certs:
        return "-"
    bad = [c for c in certs if c["state"] != "valid"]
    if bad:
        return bad[0]["state"]
    soonest = min(c["not_after"] for c in certs)
    return f"valid to {soonest[:10]}"


def text(view: ServerView, now: datetime | None = None) -> str:
    """A readable table, then what needs attention."""
    now = now or datetime.now(timezone.utc)
    head = ["PROJECT", "SERVICE", "HOSTS", "READY", "HEALTH", "CERTIFICATE", "LAST DEPLOY",
            f"REQ/{view.window}", "5XX"]
    rows = [head]
    for p in view.projects:
        for s in p.services:
            rows.append([p.project, s.service, ",".join(s.hosts), f"{s.ready}/{s.total}", s.health,
                         _cert_cell(s.certificates), _ago(p.last_deploy, now),
                         "-" if s.requests is None else str(s.requests), "-" if s.errors is None else str(s.errors)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    px = view.proxy
    lines = [f"proxy {px['name']}: {px['status']}, tls {px['tls']}, "
             f"{'in sync' if px['in_sync'] else 'NOT in sync'}, access log {'on' if px['access_log'] else 'off'}, "
             f"metrics {px['metrics'] or 'off'}"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if len(rows) == 1:
        lines.append("(no routed project)")
    notes = view.attention + [a for p in view.projects for a in p.attention]
    lines.append("needs attention:" if notes else "nothing needs attention")
    lines += [f"  - {n}" for n in notes]
    return "\n".join(lines)
