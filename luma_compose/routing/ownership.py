"""The one ownership rule: who keeps a host or a target alias that two routes claim. Pure.

The same rule on both targets; each adapter gives what its target knows:

1. the route the proxy serves now (``incumbents``: host -> route id) keeps it as long as its
   project lives: restarts, redeploys, engine and proxy restarts never move a host. One host
   reads the served config back from Caddy; a swarm passes none (its edges' config is rebuilt
   from the services on every pass, so the next rule alone decides there);
2. otherwise the older claim: the project whose ingress network is older (durable: only ``down``
   removes it), without network data the older claim itself (one host: its oldest container; a
   swarm: its service, whose creation time survives every update);
3. ties by route id, so the answer never depends on input order.

A host belongs to one project; several routes of that project may share it by path (``paths``), each
path of a host (or the whole host) to one route, by the same seniority (a ``path`` conflict otherwise).
Redirect hosts (``redirect_from``) are claimed exactly like hosts.

A target alias (``P-S``) names one route only, compared as Docker's DNS compares names
(``a-Web`` is ``a-web``). A host another route names exactly is never taken by a wildcard (Caddy
matches exact hosts first); that overlap is reported as a ``wildcard`` conflict where asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from .. import validate
from .claims import Conflict, Route, covers, parse_time

#: A route's age for rule 2 (a sortable key).
Age = Callable[[Route], tuple[int, str]]


def claim_age(r: Route) -> tuple[int, str]:
    """Rule 2 without network data: the claim's own creation time."""
    return parse_time(r.created)


def resolve(candidates: Iterable[Route], incumbents: Mapping[str, str] | None = None, age: Age = claim_age,
            wildcards: bool = True) -> tuple[list[Route], list[Conflict]]:
    """The routes that keep at least one host (each with the hosts it keeps, sorted by id) and the
    conflicts, sorted. ``wildcards``: report wildcard overlaps too."""
    incumbents = dict(incumbents or {})
    served = set(incumbents.values())

    def seniority(r: Route) -> tuple[int, tuple[int, str], tuple[int, str], str]:
        return (0 if r.key in served else 1, age(r), parse_time(r.created), r.key)

    ordered = sorted(candidates, key=seniority)
    survivors, conflicts = _aliases(ordered, served)
    routes, lost = _hosts(survivors, incumbents)
    conflicts += lost
    if wildcards:
        conflicts += wildcard_overlaps(routes)
    conflicts.sort(key=lambda c: (c.kind, c.key, c.loser))
    return routes, conflicts


def _why(incumbent: bool) -> str:
    return "incumbent" if incumbent else "older"


def _aliases(ordered: list[Route], served: set[str]) -> tuple[list[Route], list[Conflict]]:
    """One route per target alias: the senior one."""
    owner_of: dict[str, Route] = {}
    survivors: list[Route] = []
    conflicts: list[Conflict] = []
    for r in ordered:
        owner = owner_of.setdefault(validate.dns_name_key(r.alias), r)
        if owner is not r:
            conflicts.append(Conflict("alias", r.alias, owner.key, r.key, _why(owner.key in served)))
            continue
        survivors.append(r)
    return survivors, conflicts


def _hosts(survivors: list[Route], incumbents: Mapping[str, str]) -> tuple[list[Route], list[Conflict]]:
    """Each host (served or redirected) to one project: the incumbent's, else the senior claim's.
    Inside that project each path of the host (:func:`slots`) goes to the senior route claiming it;
    a route keeps a host only with every path it asks for there."""
    owner_of = _incumbent_owners(survivors, incumbents)
    holder_of: dict[tuple[str, str], Route] = {}
    lost: dict[str, set[str]] = {r.key: set() for r in survivors}
    conflicts: list[Conflict] = []
    for r in survivors:
        for h in r.claimed:
            owner = owner_of.setdefault(h, r)
            if owner.project != r.project:
                conflicts.append(Conflict("host", h, owner.key, r.key, _why(incumbents.get(h) == owner.key)))
                lost[r.key].add(h)
                continue
            mine = slots(r, h)
            taken = [(s, holder_of[(h, s)]) for s in mine if (h, s) in holder_of]
            for s, holder in taken:
                conflicts.append(Conflict("path", h + s, holder.key, r.key, _why(holder.key in incumbents.values())))
            if taken:
                lost[r.key].add(h)
            else:
                holder_of.update({(h, s): r for s in mine})
    routes = [_kept(r, lost[r.key]) for r in survivors]
    return sorted((r for r in routes if r.hosts), key=lambda r: r.key), conflicts


def _incumbent_owners(survivors: list[Route], incumbents: Mapping[str, str]) -> dict[str, Route]:
    """host -> the served route that claims it, else a route of the served route's project that does
    (ownership is per project: several of its services may share a host by path)."""
    owner_of: dict[str, Route] = {}
    for h, key in incumbents.items():
        project = key.partition("/")[0]
        mine = [r for r in survivors if r.project == project and h in r.claimed]
        owner = next((r for r in mine if r.key == key), mine[0] if mine else None)
        if owner is not None:
            owner_of[h] = owner
    return owner_of


def slots(r: Route, h: str) -> tuple[str, ...]:
    """What route ``r`` asks for on host ``h``: its path prefixes (lower case: Caddy's path matcher
    ignores case), or ``""`` for every path (no paths, or a redirect host)."""
    if h in r.hosts and r.paths:
        return tuple(p.lower() for p in r.paths)
    return ("",)


def _kept(r: Route, lost: set[str]) -> Route:
    """``r`` with the hosts it keeps; its redirects only while it keeps the host they go to."""
    if not lost:
        return r
    target = r.redirect_to
    hosts = tuple(h for h in r.hosts if h not in lost)
    redirects = tuple(h for h in r.redirect_from if h not in lost) if target and target in hosts else ()
    return replace(r, hosts=hosts, redirect_from=redirects)


def wildcard_overlaps(routes: Iterable[Route]) -> list[Conflict]:
    """A wildcard route never takes a host another project routes by name: Caddy matches hosts
    named exactly before any wildcard (both layouts), reported so routes/status say so."""
    routes = list(routes)
    under: dict[str, list[tuple[str, Route]]] = {}  # parent domain -> exact hosts right under it
    for r in routes:
        for h in r.claimed:
            if not h.startswith("*") and "." in h:
                under.setdefault(h.split(".", 1)[1], []).append((h, r))
    return [Conflict("wildcard", h, owner.key, r.key, "exact")
            for r in routes for w in r.claimed if w.startswith("*.")
            for h, owner in under.get(w[2:], ()) if owner.project != r.project and covers(w, h)]
