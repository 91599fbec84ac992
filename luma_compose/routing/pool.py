"""Who of a service's containers Caddy dials on one host (the pool). Pure: no Docker.

See :mod:`.containers` for the rules (generations, verification, draining, standby).
"""

from __future__ import annotations

from dataclasses import replace
from collections.abc import Mapping
from typing import Any

from .. import contract

from ..records import ContainerRecord
from .claims import Member, parse_time


def _member(c: ContainerRecord, fields: Mapping[str, Any]) -> Member:
    net = c.networks.get(fields["network"])
    health = c.health or "none"
    al = contract.alias(fields["project"], fields["service"])

    def out(dial: str, reason: str, standby: bool = False) -> Member:
        return Member(c.name, c.id, dial, health, False, reason, c.config_hash, c.state, standby)

    if net is None:
        return out("", f"not attached to {fields['network']}")
    if al not in net.aliases:
        return out("", f"no alias {al} on {fields['network']}")
    dial = f"{c.name}:{fields['port']}"
    if not c.running:
        return out(dial, f"not running ({c.state or 'unknown'})", standby=not c.draining)
    if not c.ready:
        return out(dial, f"docker health is {health}", standby=not c.draining)
    return Member(c.name, c.id, dial, health, True, "", c.config_hash, c.state)


def _demote(m: Member, reason: str) -> Member:
    return replace(m, in_pool=False, reason=reason, standby=False)


def pool(cs: list[tuple[ContainerRecord, dict[str, Any]]]) -> tuple[list[Member], dict[str, Any]]:
    """Members of one service and the fields (labels) the route takes.

    Generations (config-hash + image) of the running containers are ordered by their
    newest container. See the module docstring for who is routed.
    """
    members = {c.id: _member(c, f) for c, f in cs}
    running = [(c, f) for c, f in cs if c.running]
    live = [(c, f) for c, f in running if not c.draining]
    draining = [(c, f) for c, f in running if c.draining]
    if any(members[c.id].in_pool for c, _ in live):
        for c, _ in draining:
            if members[c.id].in_pool:
                members[c.id] = _demote(members[c.id], "draining: replaced by a newer deploy")
    gens: dict[str, list[tuple[ContainerRecord, dict[str, Any]]]] = {}
    for c, f in live or running or cs:
        gens.setdefault(c.generation, []).append((c, f))
    order = sorted(gens, key=lambda h: (max(parse_time(c.created) for c, _ in gens[h]), h))
    newest = gens[order[-1]]
    if len(gens) > 1 and running:
        all_ready = all(members[c.id].in_pool for c, _ in newest)
        verified = all_ready and (bool(draining) or all(c.health is not None for c, _ in newest))
        if verified:
            for h in order[:-1]:
                for c, _ in gens[h]:
                    if members[c.id].in_pool or members[c.id].standby:
                        members[c.id] = _demote(members[c.id],
                                                "older generation (config-hash) replaced by a ready newer one")
        else:
            unverified = [c for c, _ in newest if c.health is None and members[c.id].in_pool]
            others = any(members[c.id].in_pool for h in order[:-1] for c, _ in gens[h])
            if others:
                for c in unverified:
                    members[c.id] = _demote(members[c.id], "newer generation without a Docker health check, "
                                                           "not verified yet (deploy probes it first)")
    # The route takes its labels from the newest generation that has a pooled container.
    fields = newest[0][1]
    for h in reversed(order):
        pooled = [f for c, f in gens[h] if members[c.id].in_pool]
        if pooled:
            fields = pooled[0]
            break
    ms = sorted(members.values(), key=lambda m: (m.name, m.id))
    return ms, fields
