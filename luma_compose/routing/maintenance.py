"""Maintenance: a project's hosts (or one service's) answer 503 with a page while its containers keep
running. Pure: no Docker.

The state is one object per project (or service) on the engine, found by its ``luma.*`` labels
(:class:`luma_compose.records.MaintenanceRecord`): a volume on one host, a config on a swarm. Every
sync reads it (``engine.maintenance_states()``, the one reader) and :func:`apply` marks the routes,
so any ``proxy sync``/``proxy run``/``deploy``, from any machine, keeps serving it; the Caddy layouts
render a marked route as the page (:mod:`luma_compose.proxy.maintenance`), and Caddy's autosaved
config keeps serving it across proxy and engine restarts with no luma-compose process.

A state for service S wins over the project's; a state whose labels break these rules (they are
checked as every label the proxy reads) is reported and ignored.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import replace
from .. import validate
from ..records import MaintenanceRecord
from .claims import Route, RouteTable

#: The largest --page (bytes of UTF-8): it is part of every config load (and on a swarm of the edge
#: config, a Swarm config object of at most 500 kB, once per route in maintenance).
MAX_PAGE_BYTES = 32 * 1024
MAX_MESSAGE_CHARS = 1000
DEFAULT_MESSAGE = "This site is down for maintenance. Please try again in a few minutes."


def message_problem(message: str) -> str | None:
    """Why ``message`` may not be shown (None when it may): printable text of bounded length."""
    if len(message) > MAX_MESSAGE_CHARS:
        return f"is {len(message)} characters long; at most {MAX_MESSAGE_CHARS}"
    bad = next((c for c in message if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        return (f"holds the control character {bad!r} at {message.index(bad) + 1}; give one line of "
                f"printable text (use --page FILE.html for a page of your own)")
    return None


def page_text(data: bytes) -> tuple[str, str | None]:
    """(the page as text, why it may not be served or None): UTF-8 text, NUL-free, at most MAX_PAGE_BYTES."""
    if len(data) > MAX_PAGE_BYTES:
        return "", f"is larger than {MAX_PAGE_BYTES} bytes (inline small assets, link the big ones)"
    if not data.strip():
        return "", "is empty"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return "", f"is not UTF-8 text (byte {e.start + 1}); save it as UTF-8"
    if "\0" in text:
        return "", "holds a NUL byte: it is not an HTML page"
    return text, None


def record_problem(rec: MaintenanceRecord) -> str | None:
    """Why a state read from the engine may not be applied (None when it may)."""
    problem = validate.project_problem(rec.project) or (rec.service and validate.service_problem(rec.service))
    if problem:
        return problem
    if (problem := message_problem(rec.message)):
        return f"message {problem}"
    if rec.page and (problem := page_text(rec.page.encode("utf-8", "surrogatepass"))[1]):
        return f"page {problem}"
    return None


def current(records: Iterable[MaintenanceRecord]) -> tuple[dict[tuple[str, str], MaintenanceRecord], list[str]]:
    """The state of each (project, service) key: the newest (``since``, then name) of the valid records;
    problems of the others."""
    out: dict[tuple[str, str], MaintenanceRecord] = {}
    problems = []
    for rec in sorted(records, key=lambda r: (r.since, r.name)):
        problem = record_problem(rec)
        if problem:
            problems.append(f"maintenance state {rec.name}: {problem}; ignored")
            continue
        out[rec.key] = rec
    return out, problems


def state_of(states: dict[tuple[str, str], MaintenanceRecord], project: str, service: str) -> MaintenanceRecord | None:
    return states.get((project, service)) or states.get((project, ""))


def apply(table: RouteTable, records: Iterable[MaintenanceRecord]) -> RouteTable:
    """The table with each route in maintenance marked (``Route.maintenance``)."""
    states, problems = current(records)
    if not states and not problems:
        return table
    routes = tuple(replace(r, maintenance=m) if (m := state_of(states, r.project, r.service)) else r
                   for r in table.routes)
    return replace(table, routes=routes, problems=tuple(sorted(set(table.problems) | set(problems))))


def describe(rec: MaintenanceRecord) -> str:
    """One line for ``routes``/``status``: since when, and which page."""
    what = f"page of {len(rec.page.encode('utf-8', 'surrogatepass'))} bytes" if rec.page else \
        f"message {rec.message or DEFAULT_MESSAGE!r}"
    scope = "" if rec.service else ", whole project"
    return f"maintenance since {rec.since or '?'}{scope}: 503 with the {what}"


def routes_of(table: RouteTable, project: str, service: str = "") -> list[Route]:
    return [r for r in table.routes if r.project == project and (not service or r.service == service)]
