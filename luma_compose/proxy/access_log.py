"""The proxy's access log lines (Caddy's JSON, :mod:`.observe`) -> flat records, filters, text. Pure.

A record has the same keys for every request: ``time`` (RFC 3339, UTC), ``project``,
``service`` ("" for a host no route has), ``host``, ``method``, ``path``, ``status``,
``duration`` (seconds), ``bytes`` (response body), ``upstream`` (the container dialled,
``name:port``), ``client`` (the client's address) and ``request_id``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import UsageError
from .observe import ACCESS_LOG_NAME

FIELDS = ("time", "project", "service", "host", "method", "path", "status", "duration", "bytes", "upstream",
          "client", "request_id")


def parse(line: str) -> dict[str, Any] | None:
    """One line of the proxy's log -> a record; None for anything that is not an access log line."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict) or raw.get("logger") != ACCESS_LOG_NAME:
        return None
    req = raw.get("request") if isinstance(raw.get("request"), dict) else {}
    ts = raw.get("ts")
    when = (datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            if isinstance(ts, (int, float)) else "")
    return {
        "time": when,
        "project": _text(raw.get("luma_project")),
        "service": _text(raw.get("luma_service")),
        "host": _text(req.get("host")),
        "method": _text(req.get("method")),
        "path": _text(req.get("uri")),
        "status": raw.get("status") if isinstance(raw.get("status"), int) else 0,
        "duration": raw.get("duration") if isinstance(raw.get("duration"), (int, float)) else 0.0,
        "bytes": raw.get("size") if isinstance(raw.get("size"), int) else 0,
        "upstream": _upstream(_text(raw.get("luma_upstream"))),
        "client": _text(req.get("client_ip") or req.get("remote_ip")),
        "request_id": _text(raw.get("request_id") or raw.get("uuid")),
    }


def _text(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _upstream(hostport: str) -> str:
    """``gmail-web-1.:80`` (the absolute name Caddy dials) -> ``gmail-web-1:80``."""
    host, sep, port = hostport.rpartition(":")
    return f"{host.rstrip('.')}{sep}{port}" if sep else hostport


def status_filter(spec: str | None):
    """``--status 5xx`` / ``404`` / ``4xx,502``: a predicate on a status code (None: everything)."""
    if not spec:
        return None
    parts = [p.strip().lower() for p in spec.split(",") if p.strip()]
    for p in parts:
        if not re.fullmatch(r"[1-5](xx|\d\d)", p):
            raise UsageError(f"--status {spec!r}: {p!r} is not a status code or class",
                             "e.g. --status 5xx, --status 404, --status 4xx,502")

    def ok(code: int) -> bool:
        s = str(code)
        return any(s == p or (p.endswith("xx") and s[:1] == p[0]) for p in parts)
    return ok


_SINCE = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d)")


def since_time(spec: str | None, now: datetime | None = None) -> float | None:
    """``--since 10m`` / ``2h`` / ``1h30m`` / an RFC 3339 time -> Unix time (None: from the start)."""
    if not spec:
        return None
    now = now or datetime.now(timezone.utc)
    if re.fullmatch(r"(?:\d+(?:\.\d+)?[smhd])+", spec):
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        seconds = sum(float(n) * unit[u] for n, u in _SINCE.findall(spec))
        return (now - timedelta(seconds=seconds)).timestamp()
    try:
        t = datetime.fromisoformat(spec.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {spec!r} is not a duration or a time",
                         "e.g. --since 10m, --since 2h, --since 2026-01-31T12:00:00Z") from None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def select(lines: Iterable[str | tuple[str, str, str]], project: str | None = None, service: str | None = None,
           status: str | None = None) -> Iterator[dict[str, Any]]:
    """The records among ``lines`` that match the filters. A line given as (node, node id, line) (a
    swarm's edges, :meth:`~..engine.swarm.SwarmEngine.service_log_lines`) gives a record with the
    ``node`` (its hostname) and ``node_id`` whose edge wrote it."""
    ok = status_filter(status)
    for item in lines:
        where, line = (item[:2], item[2]) if isinstance(item, tuple) else (None, item)
        rec = parse(line)
        if rec is None:
            continue
        if where is not None:
            rec["node"], rec["node_id"] = where
        if project and rec["project"] != project:
            continue
        if service and rec["service"] != service:
            continue
        if ok is not None and not ok(rec["status"]):
            continue
        yield rec


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def _safe(text: str, limit: int = 200) -> str:
    """Control characters escaped (a log line never moves the terminal's cursor), long text cut."""
    out = _CONTROL.sub(lambda m: "\\\\" if m.group() == "\\" else f"\\x{ord(m.group()):02x}", text)
    return out if len(out) <= limit else out[:limit] + f"...({len(text)} chars)"


def text(rec: dict[str, Any]) -> str:
    """One record as a line for people: time, (a swarm's: the node,) project/service, status, method,
    host+path, duration, bytes, client, upstream, request id."""
    route = f"{rec['project']}/{rec['service']}" if rec["project"] else "-"
    node = [_safe(rec["node"] or "-", 64)] if "node" in rec else []
    return " ".join([
        rec["time"] or "-", *node, _safe(route), str(rec["status"]), _safe(rec["method"] or "-", 16),
        _safe(rec["host"] + rec["path"]), f"{rec['duration'] * 1000:.1f}ms", f"{rec['bytes']}B",
        _safe(rec["client"] or "-", 64), _safe(rec["upstream"] or "-", 100), _safe(rec["request_id"] or "-", 64),
    ])


def dumps(rec: dict[str, Any]) -> str:
    return json.dumps(rec, ensure_ascii=True, separators=(",", ":"))
