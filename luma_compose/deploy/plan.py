"""The pure part of deploy: what to do with each routed service, conflicts, reports. No Docker here."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import contract, validate
from ..compose.rules import replicas_value
from ..contract import RoutedService
from ..errors import LumaError, UsageError
from ..records import COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL, ContainerRecord, is_draining

if TYPE_CHECKING:  # pragma: no cover
    from ..routing.claims import RouteTable

DEFAULT_TIMEOUT = 120.0
DEFAULT_DRAIN = 10.0
#: How long the new containers must keep running after traffic moved to them (deploy --settle);
#: they are watched for max(--drain, --settle) before the old ones are removed.
DEFAULT_SETTLE = 5.0
STOP_TIMEOUT = 10
LOG_TAIL = 15


class DeployFailed(LumaError):
    """A new version did not become healthy; the running version was kept."""


# ============================================================================ pure


@dataclass(frozen=True)
class ServicePlan:
    service: str
    action: str  # create | roll | scale | keep
    replicas: int
    old: tuple[str, ...] = ()  # ids of the running containers being replaced (roll)
    leftovers: tuple[str, ...] = ()  # ids of stopped/draining containers to remove
    why: str = ""


def plan_service(service: str, replicas: int, new_hash: str, new_image: str,
                 containers: Sequence[ContainerRecord]) -> ServicePlan:
    """What to do with one routed service, given its containers and the new config-hash/image id."""
    live = [c for c in containers if c.state == "running" and not is_draining(c.name)]
    leftovers = tuple(sorted(c.id for c in containers if c not in live))
    if not live:
        return ServicePlan(service, "create", replicas, (), leftovers, "no running container")
    stale = [c for c in live if c.config_hash != new_hash or (new_image and c.image and c.image != new_image)]
    if stale:
        what = "configuration" if any(c.config_hash != new_hash for c in stale) else "image"
        return ServicePlan(service, "roll", replicas, tuple(sorted(c.id for c in live)), leftovers,
                           f"{what} changed")
    if len(live) != replicas:
        return ServicePlan(service, "scale", replicas, (), leftovers, f"{len(live)} -> {replicas} replicas")
    return ServicePlan(service, "keep", replicas, (), leftovers, "up to date")


def replicas_of(config: dict[str, Any], service: str) -> int:
    """Replica count of a service in ``docker compose config --format json`` output."""
    v = replicas_value((config.get("services") or {}).get(service) or {})
    if v is None:
        return 1
    try:
        return max(int(v), 0)
    except (TypeError, ValueError):
        raise UsageError(f"service {service}: replicas {v!r} is not a number") from None


def parse_hashes(text: str) -> dict[str, str]:
    """``docker compose config --hash '*'`` output -> {service: hash}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


def owned_elsewhere(project: str, routed: Sequence[RoutedService], table: "RouteTable") -> list[str]:
    """Hosts or target aliases this project wants that another project *owns* by the proxy's
    ownership rule (routing.ownership): a host the other project only claims, and loses to this
    project, does not stop this project's deploy."""
    out: set[str] = set()
    owners = table.host_map()
    for r in routed:
        for h in (*r.hosts, *r.redirect_from):
            key = owners.get(h.lower())
            if key and key.partition("/")[0] != project:
                out.add(f"host {h.lower()} (service {r.service}) is already routed by project "
                        f"{key.partition('/')[0]} (service {key.partition('/')[2]}), which owns it while it is up")
    wanted_alias = {contract.alias(project, r.service): r.service for r in routed}
    for route in table.routes:
        if route.project != project and route.alias in wanted_alias:
            out.add(f"target alias {route.alias} (service {wanted_alias[route.alias]}) is already used by project "
                    f"{route.project} (service {route.service}); the proxy could not tell them apart")
    return sorted(out)


def orphans_of(containers: Sequence[ContainerRecord], services: Sequence[str]) -> list[ContainerRecord]:
    """Containers of the project whose service left the file (any state): deploy removes them, and
    ``--dry-run`` lists them; one definition for both."""
    return sorted((c for c in containers if c.labels.get(COMPOSE_SERVICE_LABEL) not in set(services)),
                  key=lambda c: (c.name, c.id))


def _network_names(config: dict[str, Any], svc: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """{network name: the aliases the service asks for there} for one service of a compose config."""
    nets = svc.get("networks")
    if isinstance(nets, list):
        nets = {k: None for k in nets}
    declared = config.get("networks") or {}
    out = {}
    for key, opts in (nets or {}).items():
        name = ((declared.get(key) or {}).get("name")) or f"{config.get('name', '')}_{key}"
        out[name] = tuple(str(a) for a in ((opts or {}).get("aliases") or ()))
    return out


def shadow_refusals(project: str, config: dict[str, Any], table: "RouteTable",
                    proxy_networks: Sequence[str] = ()) -> list[str]:
    """Names this project's containers would answer to (service name, ``container_name``, ``hostname``,
    network aliases), on a network the proxy joins or may join, that the proxy dials for another route:
    known from the file before ``up``, so deploy refuses before the proxy goes near such a network.
    Names are compared as Docker's DNS compares them (``validate.dns_name_key``: any case, a trailing dot ignored)."""
    dials: dict[str, tuple[str, str]] = {}
    for r in table.routes:
        for m in r.members:
            if m.name:
                dials.setdefault(validate.dns_name_key(m.name), (r.project, r.service))
    watched = set(proxy_networks) | {contract.ingress_network(project)}
    out = set()
    for service, svc in (config.get("services") or {}).items():
        svc = svc or {}
        for net, aliases in _network_names(config, svc).items():
            if net not in watched and not net.endswith("_" + contract.NETWORK_KEY):
                continue
            for name in {service, svc.get("container_name") or "", svc.get("hostname") or "", *aliases} - {""}:
                owner = dials.get(validate.dns_name_key(name))
                if owner is None or owner == (project, service):
                    continue
                out.add(f"service {service} would answer to {name} on {net}, the name the proxy dials for "
                        f"{owner[0]}/{owner[1]}: its traffic could reach this project")
    return sorted(out)


def fixed_name_refusals(config: dict[str, Any], plans: Sequence[ServicePlan]) -> list[str]:
    """Rolls that cannot happen: a rolled service starts new containers beside the old ones, and a fixed
    ``container_name`` allows one container only (Compose refuses to scale it)."""
    out = []
    for p in plans:
        name = ((config.get("services") or {}).get(p.service) or {}).get("container_name")
        if name and p.action == "roll":
            out.append(f"service {p.service} sets container_name {name!r} and must roll ({p.why}): deploy starts "
                       "the new container beside the old one, which a fixed container name forbids")
    return out


def grace_seconds(value: Any) -> int:
    """Compose's ``stop_grace_period`` (``"1m30s"``, ``"10s"``, ``"500ms"``) in whole seconds (default 10)."""
    if value is None or value == "":
        return STOP_TIMEOUT
    if isinstance(value, (int, float)):
        return max(int(value), 0)
    total = 0.0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)", str(value))
    if not parts:
        return STOP_TIMEOUT
    for num, unit in parts:
        total += float(num) * units[unit]
    return int(round(total))


def live_urls(hosts: Sequence[str], tls: str, http_port: int | None, https_port: int | None) -> list[str]:
    def url(scheme: str, host: str, port: int | None, default: int) -> str:
        return f"{scheme}://{host}" + ("" if port in (None, default) else f":{port}")

    if tls == "off":
        return [url("http", h, http_port, 80) + "/" for h in hosts]
    return [url("https", h, https_port, 443) + "/" for h in hosts]


def failure_report(service: str, container: str, status: str, detail: str, log_tail: str) -> str:
    lines = [f"service {service}: new container {container} did not become healthy: {status}"]
    if detail:
        lines.append(f"  last check: {detail}")
    tail = [ln for ln in log_tail.rstrip().splitlines() if ln.strip()][-LOG_TAIL:]
    if tail:
        lines.append(f"  last {len(tail)} log line(s) of {container}:")
        lines += [f"    | {ln}" for ln in tail]
    else:
        lines.append(f"  {container} wrote no log output")
    return "\n".join(lines)


def format_step(label: str, seconds: float, ok: bool = True, fancy: bool = True) -> str:
    mark = ("\u2714" if ok else "\u2718") if fancy else ("ok" if ok else "FAIL")
    return f" {mark} {label:<58} {seconds:6.1f}s"


# ============================================================================ dry run (deploy --dry-run)

#: deploy --dry-run exit code when the deploy would change something (0: nothing, 1: problems).
EXIT_CHANGES_PENDING = 4


@dataclass(frozen=True)
class HostChange:
    host: str
    change: str  # add | move | remove | keep
    service: str = ""  # the service that would route it ("" when removed)
    previous: str = ""  # the service that routes it now ("" when added)


def proxy_check_path(r: RoutedService) -> str | None:
    """The path deploy asks for through the proxy to reach ``r``'s health path: the health path, or,
    for a service with ``paths``, its first prefix + the health path when the prefix is stripped, the
    health path itself when it lies under a prefix; None when the proxy sends it to no path of ``r``."""
    if not r.paths:
        return r.health_path
    if r.strip_prefix:
        return r.paths[0] + r.health_path
    h = r.health_path.split("?", 1)[0].lower()
    return r.health_path if any(h == p.lower() or h.startswith(p.lower() + "/") for p in r.paths) else None


def claim_keys(service: str, hosts: Sequence[str], paths: Sequence[str], redirects: Sequence[str]) -> dict[str, str]:
    """What a service claims, as the dry run lists it: ``host`` or ``host/path`` -> the service, and
    each redirect host -> ``service (308)``."""
    out = {h.lower() + p: service for h in hosts for p in (paths or ("",))}
    out.update({h.lower(): f"{service} (308)" for h in redirects})
    return out


def host_changes(project: str, routed: Sequence[RoutedService],
                 running: Sequence[ContainerRecord]) -> list[HostChange]:
    """Hosts this project routes now (labels of its running, non-draining containers) vs the file."""
    now: dict[str, str] = {}
    for c in running:
        lb = c.labels
        if (c.state != "running" or is_draining(c.name) or lb.get(contract.LABEL_MANAGED) != "true"
                or (lb.get(contract.LABEL_PROJECT) or lb.get(COMPOSE_PROJECT_LABEL)) != project):
            continue
        svc = lb.get(contract.LABEL_SERVICE, "")
        for k, v in claim_keys(svc, contract.parse_hosts(lb.get(contract.LABEL_HOSTS, "")),
                               contract.parse_hosts(lb.get(contract.LABEL_PATHS, "")),
                               contract.parse_hosts(lb.get(contract.LABEL_REDIRECT_FROM, ""))).items():
            now.setdefault(k, v)
    want = {k: v for r in routed for k, v in claim_keys(r.service, r.hosts, r.paths, r.redirect_from).items()}
    out = []
    for h in sorted(set(now) | set(want)):
        if h not in now:
            out.append(HostChange(h, "add", want[h]))
        elif h not in want:
            out.append(HostChange(h, "remove", "", now[h]))
        elif now[h] != want[h]:
            out.append(HostChange(h, "move", want[h], now[h]))
        else:
            out.append(HostChange(h, "keep", want[h], now[h]))
    return out


@dataclass
class DryRun:
    """What ``deploy`` would do; printed by ``deploy --dry-run`` (schemas/deploy-plan.schema.json)."""

    project: str
    engine: dict[str, str]
    proxy_name: str
    proxy_action: str  # start | restart | keep
    services: list[tuple[ServicePlan, bool]]  # (plan, routed?)
    hosts: list[HostChange]
    conflicts: list[str]
    orphans: list[str]  # containers of services no longer in the file (deploy removes them: plan.orphans_of)

    @property
    def changes(self) -> bool:
        return (self.proxy_action != "keep" or any(p.action != "keep" or p.leftovers for p, _ in self.services)
                or any(h.change != "keep" for h in self.hosts) or bool(self.orphans))

    def exit_code(self) -> int:
        if self.conflicts:
            return 1
        return EXIT_CHANGES_PENDING if self.changes else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "project": self.project,
            "engine": self.engine,
            "ok": not self.conflicts,
            "changes": self.changes,
            "proxy": {"name": self.proxy_name, "action": self.proxy_action},
            "services": [{"service": p.service, "routed": routed, "action": p.action, "replicas": p.replicas,
                          "why": p.why, "replace": len(p.old), "remove_leftovers": len(p.leftovers)}
                         for p, routed in self.services],
            "hosts": [{"host": h.host, "change": h.change, "service": h.service or None,
                       "previous": h.previous or None} for h in self.hosts],
            "orphans": list(self.orphans),
            "conflicts": list(self.conflicts),
            "problems": [],
        }

    def text(self) -> str:
        marks = {"create": "+", "roll": "~", "scale": "~", "keep": "=", "recreate": "~"}
        lines = [f"engine: {self.engine.get('host', '')}"
                 + (f" (context {self.engine['context']})" if self.engine.get("context", "default") != "default" else ""),
                 f"project {self.project}:"]
        proxy = {"start": "would be started", "restart": "would be restarted", "keep": "running, left as it is"}
        lines.append(f"  proxy {self.proxy_name}: {proxy[self.proxy_action]}")
        for p, routed in self.services:
            what = {"create": f"create {p.replicas} replica(s)",
                    "roll": f"roll {len(p.old)} -> {p.replicas} replica(s) without downtime" if routed
                    else f"recreate ({p.replicas} replica(s))",
                    "scale": f"scale ({p.why})", "keep": f"{p.replicas} replica(s) up to date"}[p.action]
            why = f" ({p.why})" if p.action in ("roll", "create") and p.why else ""
            extra = f"; remove {len(p.leftovers)} stopped/draining container(s)" if p.leftovers else ""
            lines.append(f"  {marks[p.action]} service {p.service}{' [routed]' if routed else ''}: {what}{why}{extra}")
        for o in self.orphans:
            lines.append(f"  - orphan container {o}: would be removed (its service left the file)")
        for h in self.hosts:
            lines.append({"add": f"  + host {h.host} -> {h.service}",
                          "remove": f"  - host {h.host} (routed by {h.previous} now) would no longer be routed",
                          "move": f"  ~ host {h.host}: {h.previous} -> {h.service}",
                          "keep": f"  = host {h.host} -> {h.service}"}[h.change])
        for c in self.conflicts:
            lines.append(f"  ! conflict: {c}")
        if self.conflicts:
            lines.append("deploy would refuse: nothing would be changed (exit 1)")
        elif self.changes:
            lines.append(f"changes pending (exit {EXIT_CHANGES_PENDING})")
        else:
            lines.append("nothing to do (exit 0)")
        return "\n".join(lines)
