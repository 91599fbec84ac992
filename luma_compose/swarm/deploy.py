"""``deploy --swarm`` and ``down --swarm``: a project as a stack, behind the swarm proxy.

Zero downtime comes from Swarm itself, measured sufficient (docs/swarm.md): render gives each routed
service ``update_config: {order: start-first, failure_action: rollback}``, so each new task runs
beside the old ones, enters DNS (and so the proxy's pool) only once its health check passes, and
an update whose new tasks fail their health check is rolled back by Swarm. We wait for that
outcome and report it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from .. import contract
from ..errors import LumaError, SwarmError
from ..deploy.plan import live_urls, owned_elsewhere
from .options import tls_of
from ..records import ServiceRecord
from .proxy import SwarmProxy

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.protocols import SwarmEngineProtocol


class RolledBack(LumaError):
    pass


@dataclass
class StackResult:
    project: str
    urls: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _conflicts(engine: SwarmEngineProtocol, project: str, routed: list[contract.RoutedService], proxy_name: str) -> list[str]:
    """Hosts or target aliases another project owns in the table the edges serve (one host's check)."""
    table = SwarmProxy(engine, proxy_name, log=lambda s: None).served()
    return owned_elsewhere(project, routed, table)


def deploy(engine: SwarmEngineProtocol, project: str, stack_text: str, routed: list[contract.RoutedService], *,
           proxy_name: str = "luma-proxy", proxy_image: str = "caddy:2", proxy_http_port: int = 80,
           proxy_nodes: str = "all", resolve_image: str = "always", timeout: float = 300,
           log: Callable[[str], None] = print, maintenance: bool = False) -> StackResult:
    engine.require_manager()
    clash = _conflicts(engine, project, routed, proxy_name)
    if clash:
        raise SwarmError("refusing to deploy, nothing changed: " + "; ".join(clash))
    if not maintenance:
        return _deploy(engine, project, stack_text, routed, proxy_name, proxy_image, proxy_http_port, proxy_nodes,
                       resolve_image, timeout, log)
    from ..deploy.maintenance import swarm_deploy_maintenance
    from .maintenance import SwarmTarget

    return swarm_deploy_maintenance(SwarmTarget(engine, proxy_name, log), project, log, lambda: _deploy(
        engine, project, stack_text, routed, proxy_name, proxy_image, proxy_http_port, proxy_nodes, resolve_image,
        timeout, log))


def _deploy(engine: SwarmEngineProtocol, project: str, stack_text: str, routed: list[contract.RoutedService],
            proxy_name: str, proxy_image: str, proxy_http_port: int, proxy_nodes: str, resolve_image: str,
            timeout: float, log: Callable[[str], None]) -> StackResult:
    before = {s.name: s.version for s in engine.services(f"label={contract.STACK_NAMESPACE_LABEL}={project}")}
    t0 = time.monotonic()
    engine.stack_deploy(project, stack_text, resolve_image, timeout)
    log(f"stack deploy {project}: {time.monotonic() - t0:.1f}s")
    wait_stack(engine, project, before, timeout)
    log(f"services converged: {time.monotonic() - t0:.1f}s")
    proxy = SwarmProxy(engine, proxy_name, log=log)
    if engine.service(proxy_name) is None:
        synced = proxy.up(proxy_image, proxy_http_port, proxy_nodes)
    else:
        synced = proxy.sync()
    log(f"proxy in sync: {time.monotonic() - t0:.1f}s")
    if routed and project not in {r.project for r in synced.table.serving}:
        why = [c for c in synced.table.messages if f"{project}/" in c or f"routes of {project} " in c]
        raise SwarmError(f"{project} is deployed, but the proxy does not route it: {'; '.join(why) or 'see above'}",
                         "remove what the message names, then luma-compose proxy sync --swarm")
    return StackResult(project, urls(engine, proxy_name, routed))


@dataclass
class StackPlan:
    """What ``deploy --swarm`` would do (``--dry-run``): read from the manager, nothing changed."""

    project: str
    create: list[str] = field(default_factory=list)  # stack services that do not exist yet
    update: list[str] = field(default_factory=list)  # existing ones (Swarm rolls those whose spec changed)
    remove: list[str] = field(default_factory=list)  # existing ones the file no longer has (--prune)
    conflicts: list[str] = field(default_factory=list)  # what deploy would refuse, from the served table
    proxy: str = "running"  # or "would be created"
    urls: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1: deploy would refuse; 4: it would change something; 0: nothing to do (as on one host)."""
        return 1 if self.conflicts else 4 if (self.create or self.update or self.remove) else 0

    def text(self) -> str:
        lines = [f"deploy --swarm {self.project} (dry run: nothing was changed)", f"  proxy: {self.proxy}"]
        lines += [f"  create {s}" for s in self.create]
        lines += [f"  update {s} (Swarm rolls it, start-first, only if its spec changed)" for s in self.update]
        lines += [f"  remove {s} (no longer in the file)" for s in self.remove]
        lines += [f"  url {u}" for u in self.urls]
        lines += [f"  refuse: {c}" for c in self.conflicts]
        if self.conflicts:
            lines.append("deploy would refuse, nothing would change (exit 1)")
        return "\n".join(lines)


def dry_run(engine: SwarmEngineProtocol, project: str, services: list[str], routed: list[contract.RoutedService],
            proxy_name: str = "luma-proxy") -> StackPlan:
    """``deploy --swarm --dry-run``: the refusals deploy would make (the same served table), and the stack's
    services it would create, update or remove."""
    engine.require_manager()
    plan = StackPlan(project, conflicts=_conflicts(engine, project, routed, proxy_name))
    existing = {s.name for s in engine.services(f"label={contract.STACK_NAMESPACE_LABEL}={project}")}
    wanted = [contract.stack_service(project, s) for s in services]
    plan.create = [w for w in wanted if w not in existing]
    plan.update = [w for w in wanted if w in existing]
    plan.remove = sorted(existing - set(wanted))
    if engine.service(proxy_name) is None:
        plan.proxy = "would be created (proxy up --swarm)"
    else:
        plan.urls = urls(engine, proxy_name, routed)
    return plan


def urls(engine: SwarmEngineProtocol, proxy_name: str, routed: list[contract.RoutedService]) -> list[str]:
    """The URLs the edges serve the hosts at (https with TLS on), as one host's deploy says them."""
    edge = engine.service(proxy_name)
    if edge is None:
        return []
    tls = tls_of(edge)
    http_port = int(edge.labels.get(contract.PROXY_HTTP_LABEL, "80"))
    return [u for r in routed for u in live_urls(r.hosts, tls.mode, http_port, tls.https_port)]


def wait_stack(engine: SwarmEngineProtocol, project: str, before: dict[str, int], timeout: float) -> None:
    """Until every service of the stack has converged; RolledBack when Swarm rolled one back."""
    deadline = time.monotonic() + timeout
    pending: list[str] = []
    while time.monotonic() < deadline:
        pending = []
        for s in engine.services(f"label={contract.STACK_NAMESPACE_LABEL}={project}"):
            name, state = s.name, s.update_state
            updated = name not in before or before[name] != s.version
            if state == "rollback_completed" and updated:
                raise RolledBack(f"{name}: the new version failed and Swarm rolled it back "
                                 f"({s.update_message}); the old version kept serving",
                                 f"docker service ps --no-trunc {name}")
            if state in ("paused", "rollback_paused"):
                raise SwarmError(f"{name}: update {state}: {s.update_message}")
            if state in ("updating", "rollback_started"):
                pending.append(f"{name} {state}")
                continue
            if not _tasks_ready(engine, s):
                pending.append(f"{name} starting")
        if not pending:
            return
        time.sleep(0.5)
    raise SwarmError(f"stack {project} did not converge within {timeout:.0f}s: {', '.join(pending)}")


def _tasks_ready(engine: SwarmEngineProtocol, svc: ServiceRecord) -> bool:
    want = svc.replicas
    tasks = [t for t in engine.tasks(svc.name) if t.desired == "running"]
    running = [t for t in tasks if t.state == "running" and t.container_id]
    if want is None:
        return bool(tasks) and len(running) == len(tasks)
    return len(running) >= want


def down(engine: SwarmEngineProtocol, project: str, proxy_name: str = "luma-proxy", timeout: float = 120,
         log: Callable[[str], None] = print) -> None:
    engine.require_manager()
    engine.stack_rm(project)
    deadline = time.monotonic() + timeout
    while engine.services(f"label={contract.STACK_NAMESPACE_LABEL}={project}"):
        if time.monotonic() > deadline:
            raise SwarmError(f"services of {project} still there after {timeout:.0f}s")
        time.sleep(0.5)
    if engine.service(proxy_name) is not None:
        SwarmProxy(engine, proxy_name, log=log).sync()
    # Networks go once their tasks are gone (the proxy has left P_luma now).
    while True:
        left = [n.name for n in engine.networks(f"label={contract.STACK_NAMESPACE_LABEL}={project}")]
        for n in left:
            engine.remove_network(n)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
