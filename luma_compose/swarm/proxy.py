"""The proxy on a swarm: one global service (Caddy), its config a Swarm config object.

* ``luma-proxy`` runs in ``mode: global`` (every node, or the nodes with a label), publishing
  its port with ``mode: host`` on each node (the routing mesh needs IPVS, and a host port keeps
  the client's address). It joins each project's attachable overlay ``P_luma`` and nothing else.
* Its config is a file: a Swarm config object named by its content hash, mounted at
  ``/etc/luma/caddy.json``. Caddy's admin API is disabled, so a proxy has no control surface,
  and no proxy task ever gets the Docker socket.
* The controller (``sync``/``run``, on a manager: the only place that knows every service) reads
  the services' labels, and when the routes or the set of ingress networks change it updates the
  proxy service once: new config object + network add/remove. Swarm rolls that out one node at a
  time (``stop-first``: a host port cannot be held twice on one node). Task changes (deploys,
  rescheduling, drained nodes) change neither, so they never touch the proxy.

The trade-off, measured (README, "Running on a swarm"): a route change restarts each node's proxy
in turn, a second or two without that node answering, while a redeploy of a routed service costs
nothing at the proxy.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from .. import contract
from . import routes as swarm_routes
from ..engine.swarm import SwarmEngine, SwarmError

DEFAULT_NAME = "luma-proxy"
DEFAULT_IMAGE = "caddy:2"
ROLE_LABEL = "luma.proxy.swarm"
CONFIG_LABEL = "luma.proxy.config"
HTTP_PORT_LABEL = "luma.proxy.http-port"


@dataclass
class SyncResult:
    changed: bool
    routes: list[swarm_routes.SwarmRoute]
    conflicts: list[str]
    config: str
    removed_networks: list[str]


def _placement_args(nodes: str) -> list[str]:
    """``all`` or ``label=KEY=VALUE`` (a node label) -> docker service create arguments."""
    if nodes in ("", "all"):
        return []
    if nodes.startswith("label="):
        kv = nodes[len("label="):]
        if "=" not in kv:
            raise SwarmError(f"--nodes {nodes}: want label=KEY=VALUE")
        k, v = kv.split("=", 1)
        return ["--constraint", f"node.labels.{k}=={v}"]
    raise SwarmError(f"--nodes {nodes}: want all or label=KEY=VALUE")


class SwarmProxy:
    def __init__(self, engine: SwarmEngine, name: str = DEFAULT_NAME, log: Callable[[str], None] | None = None):
        self.engine = engine
        self.name = name
        self.log = log or (lambda s: print(s, file=sys.stderr))

    # ------------------------------------------------------------------ state

    @property
    def edge(self) -> str:
        """The proxy's own overlay, always attached: a task on no network at all gets no host port
        (measured: with zero projects the published port refused connections); no project joins it."""
        return f"{self.name}_edge"

    def _ensure_edge(self) -> None:
        if not self.engine.networks(f"name={self.edge}", "driver=overlay"):
            self.engine.run("network", "create", "--driver", "overlay", "--label", f"{ROLE_LABEL}={self.name}",
                            self.edge, check=False)

    def desired(self, http_port: int) -> tuple[swarm_routes.Table, str]:
        everything = self.engine.services()
        managed = [s for s in everything
                   if ((s.get("Spec") or {}).get("Labels") or {}).get(contract.LABEL_MANAGED) == "true"]
        table = swarm_routes.table(managed)
        overlays = self.engine.networks("driver=overlay")
        existing = {n["Name"] for n in overlays}
        table.routes = [r for r in table.routes if r.network in existing]
        table = swarm_routes.drop_shadowed(table, everything, {n["Id"]: n["Name"] for n in overlays})
        return table, swarm_routes.dumps(swarm_routes.build_config(table, http_port))

    def _current(self, svc: dict[str, Any]) -> tuple[set[str], list[dict[str, Any]]]:
        tmpl = svc["Spec"]["TaskTemplate"]
        ids = [n["Target"] for n in tmpl.get("Networks") or []]
        names = set(self.engine.network_names(ids).values()) if ids else set()
        return names, tmpl.get("ContainerSpec", {}).get("Configs") or []

    # ------------------------------------------------------------------ operations

    def up(self, image: str = DEFAULT_IMAGE, http_port: int = 80, nodes: str = "all") -> SyncResult:
        """Create the proxy service if missing (then sync)."""
        if self.engine.service(self.name) is not None:
            return self.sync()
        table, text = self.desired(http_port)
        self._ensure_edge()
        cfg = self._ensure_config(text)
        args = ["service", "create", "--detach", "--name", self.name, "--mode", "global",
                "--label", f"{ROLE_LABEL}=true", "--label", f"{HTTP_PORT_LABEL}={http_port}",
                "--config", f"source={cfg},target={swarm_routes.CONFIG_TARGET},mode=0444",
                "--publish", f"mode=host,target={http_port},published={http_port},protocol=tcp",
                "--update-order", "stop-first", "--update-parallelism", "1", "--update-delay", "1s",
                "--update-failure-action", "rollback", "--restart-condition", "any",
                *_placement_args(nodes)]
        for n in [self.edge, *table.networks]:
            args += ["--network", n]
        args += [image, "caddy", "run", "--config", swarm_routes.CONFIG_TARGET]
        self.engine.run(*args)
        self.log(f"proxy: created global service {self.name} ({len(table.routes)} routes)")
        self._wait_converged()
        self._gc_configs(keep={cfg})
        return SyncResult(True, table.routes, table.conflicts, text, [])

    def sync(self, wait: bool = True) -> SyncResult:
        svc = self.engine.service(self.name)
        if svc is None:
            raise SwarmError(f"no proxy service {self.name} on this swarm", "luma-compose swarm proxy up")
        http_port = int((svc["Spec"].get("Labels") or {}).get(HTTP_PORT_LABEL, "80"))
        table, text = self.desired(http_port)
        for c in table.conflicts:
            self.log(f"conflict: {c}")
        have_nets, have_cfgs = self._current(svc)
        want_nets = set(table.networks) | {self.edge}
        self._ensure_edge()
        cfg = swarm_routes.config_name(self.name, text)
        have_cfg_names = {c.get("ConfigName") for c in have_cfgs}
        changed = want_nets != have_nets or have_cfg_names != {cfg}
        if changed:
            self._ensure_config(text)
            args = ["service", "update", "--detach"]
            for c in sorted(n for n in have_cfg_names if n and n != cfg):
                args += ["--config-rm", c]
            if cfg not in have_cfg_names:
                args += ["--config-add", f"source={cfg},target={swarm_routes.CONFIG_TARGET},mode=0444"]
            for n in sorted(want_nets - have_nets):
                args += ["--network-add", n]
            for n in sorted(have_nets - want_nets):
                args += ["--network-rm", n]
            started = (svc.get("UpdateStatus") or {}).get("StartedAt")
            self.engine.run(*args, self.name)
            self.log(f"proxy: {len(table.routes)} routes; networks +{sorted(want_nets - have_nets)} "
                     f"-{sorted(have_nets - want_nets)}; rolling the proxy tasks")
            if wait:
                self._wait_converged(previous=started)
            self._gc_configs(keep={cfg})
        removed = self._gc_networks(want_nets)
        return SyncResult(changed, table.routes, table.conflicts, text, removed)

    def run(self, interval: float = 1.0) -> None:  # pragma: no cover - exercised by the e2e tests
        """Converge forever: polling a manager survives its restarts and needs no event stream."""
        while True:
            try:
                self.sync()
            except Exception as e:  # keep running: the next pass retries
                self.log(f"sync failed: {e}")
            time.sleep(interval)

    def down(self) -> None:
        self.engine.run("service", "rm", self.name, check=False)
        time.sleep(1)
        self._gc_configs(keep=set())
        for _ in range(20):
            if self.engine.run("network", "rm", self.edge, check=False).returncode == 0:
                break
            time.sleep(0.5)

    # ------------------------------------------------------------------ helpers

    def _ensure_config(self, text: str) -> str:
        name = swarm_routes.config_name(self.name, text)
        if not self.engine.configs(f"name={name}"):
            p = self.engine.run("config", "create", "--label", f"{CONFIG_LABEL}={self.name}", name, "-",
                                input=text, check=False)
            if p.returncode != 0 and "already exists" not in p.stderr:
                raise SwarmError(f"config create {name}: {p.stderr.strip()}")
        return name

    def _gc_configs(self, keep: set[str]) -> None:
        for c in self.engine.configs(f"label={CONFIG_LABEL}={self.name}"):
            n = c["Spec"]["Name"]
            if n not in keep:
                self.engine.run("config", "rm", n, check=False)  # in use by a task still: next time

    def _gc_networks(self, routed: set[str]) -> list[str]:
        """Ingress networks whose stack has no service left (``docker stack rm`` could not remove them
        while the proxy was attached): removed now that the proxy has left them."""
        removed = []
        for n in self.engine.networks(f"label={contract.NETWORK_OWNER_LABEL}=true", "driver=overlay"):
            name = n["Name"]
            stack = (n.get("Labels") or {}).get("com.docker.stack.namespace")
            if name in routed or not stack:
                continue
            if self.engine.services(f"label=com.docker.stack.namespace={stack}"):
                continue
            if self.engine.run("network", "rm", name, check=False).returncode == 0:
                removed.append(name)
        return removed

    def _wait_converged(self, timeout: float = 120, previous: str | None = "") -> None:
        """Until the (latest) rollout is done. ``previous``: StartedAt of the update before ours,
        which the service shows until Swarm starts ours."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            svc = self.engine.service(self.name)
            st = (svc or {}).get("UpdateStatus") or {}
            state = st.get("State", "")
            if previous != "" and st.get("StartedAt") == previous:
                time.sleep(0.3)
                continue
            if state in ("", "completed", "rollback_completed"):
                if self._tasks_running():
                    if state == "rollback_completed":
                        raise SwarmError(f"the proxy update rolled back: {st.get('Message', '')}")
                    return
            elif state in ("paused", "rollback_paused"):
                raise SwarmError(f"the proxy update is {state}: {st.get('Message', '')}")
            time.sleep(0.5)
        raise SwarmError(f"the proxy service {self.name} did not converge within {timeout:.0f}s")

    def _tasks_running(self) -> bool:
        tasks = [t for t in self.engine.tasks(self.name) if t.get("DesiredState") == "running"]
        return bool(tasks) and all(t["Status"]["State"] == "running" for t in tasks)
