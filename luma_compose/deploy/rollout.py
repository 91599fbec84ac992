"""``deploy``: health-gated, zero-downtime rollouts through ``docker compose``.

A routed service is rolled like this (measured on Compose v2.40; see docs/deploy.md):

1. ``up -d --no-deps --no-recreate --scale S=OLD+N S`` starts N new containers beside
   the old ones (Compose gives them the new config-hash, and never touches the old).
2. Each new container must pass its own check (:mod:`.checks`). Until then the pool
   (routing.containers.build_table) keeps serving the old containers only.
3. The old containers are renamed ``NAME--luma-draining``. That rename is the marker:
   from then on every sync, from any process (``proxy run`` too), routes only the new
   containers. deploy syncs the proxy itself and checks each host through it.
4. After ``--drain`` seconds the old containers are stopped and removed by deploy
   itself: on scale-down Compose removes the *highest-numbered* containers, which are
   the new ones. ``up --scale S=N`` then finds exactly N and changes nothing.

If a new container fails, the new containers are removed and the old ones (never
renamed, never out of the pool) keep serving; one that dies during the drain (watched at
least ``--settle`` seconds) brings the old ones back. A redeploy starts by syncing the proxy
with whatever an interrupted deploy left, and removes leftovers only once nothing dials them. The Deployer takes its engine as a
parameter, so its decisions are unit-tested on a fake engine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import contract
from ..contract import RoutedService
from ..errors import LumaError, UnavailableError
from ..proxy.controller import Controller
from ..records import COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL, ContainerRecord, draining_name, is_draining
from .checks import Checks, watch_running
from .plan import (
    DEFAULT_DRAIN,
    DEFAULT_SETTLE,
    DEFAULT_TIMEOUT,
    STOP_TIMEOUT,
    DeployFailed,
    DryRun,
    ServicePlan,
    fixed_name_refusals,
    grace_seconds,
    host_changes,
    orphans_of,
    owned_elsewhere,
    proxy_check_path,
    parse_hashes,
    plan_service,
    replicas_of,
    shadow_refusals,
)
from .lock import ProjectLock
from .networks import prepared as networks_prepared
from .subnets import IngressPool, default_pool
from .progress import Progress
from . import stopfirst

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.protocols import Engine


@dataclass
class ProxyOptions:
    name: str | None = None
    image: str | None = None
    http_port: str | None = None
    https_port: str | None = None
    tls: str | None = None
    select: str | None = None


@dataclass
class DeployResult:
    project: str
    urls: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    plans: list[ServicePlan] = field(default_factory=list)


class Deployer:
    def __init__(self, engine: "Engine", project: str, directory: str, text: str, routed: Sequence[RoutedService],
                 proxy: ProxyOptions | None = None, timeout: float = DEFAULT_TIMEOUT,
                 drain: float = DEFAULT_DRAIN, progress: Progress | None = None,
                 sleep: Callable[[float], None] = time.sleep, settle: float = DEFAULT_SETTLE,
                 force_unlock: bool = False, ingress_pool: IngressPool | None = None):
        self.engine = engine
        self.ingress_pool = ingress_pool or default_pool()
        self.project = project
        self.network = contract.ingress_network(project)
        self.compose = engine.compose(project, directory, text)
        self.routed = {r.service: r for r in routed}
        self.popts = proxy or ProxyOptions()
        self.drain = drain
        self.settle = settle
        self.force_unlock = force_unlock
        self.sleep = sleep
        self.progress = progress or Progress()
        self.ctrl = Controller(engine, self.popts.name)
        self.warnings: list[str] = []
        self.checks = Checks(engine, self.ctrl.proxy, self.network, timeout, self.warnings.append, sleep)
        self.grace: dict[str, int] = {}
        self.lock = ProjectLock(engine, project, self.ctrl.proxy.name, timeout=max(timeout * 2, 60),
                                progress=self.progress, sleep=sleep)
        #: deploy --maintenance (deploy/maintenance.py): on once locked, off after success
        self.maintenance = None
        #: run last, under the lock, with the compose config: records the release (deploy/releases.py)
        self.after: Callable[[dict], None] | None = None
        self.stop_first: set[str] = set()  # routed services rolled stop-first (deploy/stopfirst.py)

    def containers(self, service: str | None = None) -> list[ContainerRecord]:
        """The project's containers (of one service), in any state."""
        labels = [f"{COMPOSE_PROJECT_LABEL}={self.project}"]
        if service:
            labels.append(f"{COMPOSE_SERVICE_LABEL}={service}")
        return self.engine.containers(labels, all=True)

    # -------------------------------------------------------------- deploy

    def deploy(self) -> DeployResult:
        res = DeployResult(self.project)
        with self.progress.step("Check claims on hosts and aliases"):
            # The proxy's own ownership rule decides (the route served while its project is up,
            # else the older ingress network): a project that only claims one of our hosts, and
            # loses it to us, does not stop our deploy.
            pc = self.ctrl.proxy.container()
            table, _ = self.ctrl.table(pc)
            conflicts = owned_elsewhere(self.project, list(self.routed.values()), table)
            if conflicts:
                raise LumaError("refusing to deploy, nothing was changed:\n  " + "\n  ".join(conflicts),
                                "choose other hosts in x-luma, or take the other project down first")
        with self.progress.step("Read the compose configuration"):
            cfg = json.loads(self.compose.run("config", "--format", "json"))
            hashes = parse_hashes(self.compose.run("config", "--hash", "*"))
            self.grace = {name: grace_seconds(svc.get("stop_grace_period"))
                          for name, svc in (cfg.get("services") or {}).items()}
        services = list((cfg.get("services") or {}).keys())
        self.stop_first = {s for s, r in self.routed.items() if stopfirst.is_stop_first(cfg, s, r.rollout)}
        plain = [s for s in services if s not in self.routed]
        shadows = shadow_refusals(self.project, cfg, table, list(pc.networks) if pc is not None else [])
        if shadows:
            raise LumaError("refusing to deploy, nothing was changed:\n  " + "\n  ".join(shadows),
                            "rename the service, or drop the container_name or alias: the proxy never joins a "
                            "network where a name it dials answers for another container")
        existing = self.containers()
        if existing:
            refusals = fixed_name_refusals(cfg, [self._plan(cfg, hashes, s) for s in self.routed])
            if refusals:
                raise LumaError("refusing to deploy, nothing was changed:\n  " + "\n  ".join(refusals),
                                "remove container_name from the routed service (the proxy reaches it by its alias; "
                                "the name is not needed), or update it yourself with `docker compose up -d`, "
                                "with downtime")
        with self.progress.step("Proxy") as note:
            self._ensure_proxy(note)
        with self.progress.step("Lock the project on the engine") as note:
            if self.force_unlock:
                self.lock.force(note)
            self.lock.acquire(note)
        try:
            if self.maintenance is not None:
                self.maintenance.begin(self)
            self._deploy_locked(res, cfg, hashes, plain, services)
            if self.maintenance is not None:
                self.maintenance.finish(self)
            return res
        except BaseException as e:
            self._after_failure()
            if isinstance(e, UnavailableError) and not self._proxy_running():
                raise UnavailableError(
                    f"the proxy container {self.ctrl.proxy.name} stopped during the deploy ({e.message}); "
                    "new containers that were not serving yet were removed",
                    "start the proxy (luma-compose proxy up) and deploy again: the next deploy takes over "
                    "whatever this one left") from None
            raise
        finally:
            self.lock.release()

    def _proxy_running(self) -> bool:
        try:
            c = self.ctrl.proxy.container()
        except LumaError:
            return False
        return c is not None and c.running

    def _after_failure(self) -> None:
        """Every failure path: the routes again follow what exists, and the proxy leaves the
        networks the route table refuses (sync detaches them). Best effort: the proxy may be gone."""
        try:
            self._sync()
        except LumaError:
            pass

    def _deploy_locked(self, res: DeployResult, cfg: dict, hashes: dict[str, str], plain: list[str],
                       services: list[str]) -> DeployResult:
        existing = self.containers()  # again: another deploy of the project may have run meanwhile
        if existing:
            with self.progress.step("Bring the routes up to date (what the last deploy left)"):
                self._recover()
        # P_luma on a subnet of our own range; out of Docker's pools: the fix named, nothing left behind
        with networks_prepared(self.engine, self.compose, self.project, cfg, self.ingress_pool, self.progress):
            if not existing:
                with self.progress.step(f"Create project {self.project} (docker compose up -d)"):
                    self.compose.run("up", "-d", "--remove-orphans")
            elif plain:
                with self.progress.step(f"Update {', '.join(plain)} (docker compose up -d)"):
                    self.compose.run("up", "-d", "--no-deps", *plain)
        self._attach_proxy()
        if not existing:
            for s, r in self.routed.items():
                ids = [c.id for c in self.containers(s) if c.running]
                with self.progress.step(f"Wait for {s}: {len(ids)} container(s) healthy"):
                    self.checks.wait_healthy(r, ids, on_failure=None)
        for s in self.routed if existing else ():
            plan = self._plan(cfg, hashes, s)
            res.plans.append(plan)
            self._apply(plan)
        self._retire_orphans(services)
        with self.progress.step("Sync the proxy"):
            paused = {r.service for r in self._sync().table.routes if r.project == self.project and r.maintenance}
        with self.progress.step("Check every host through the proxy") as note:
            note += [f"({', '.join(sorted(paused))} in maintenance: its containers were checked)"] if paused else []
            for r in self.routed.values():
                for h in r.hosts if r.service not in paused else ():
                    self.checks.check_host(h, proxy_check_path(r))
        if self.after is not None:
            self.after(cfg)
        res.urls = self.checks.urls(list(self.routed.values()))
        res.warnings = self.warnings
        return res

    def _plan(self, cfg: dict, hashes: dict[str, str], s: str) -> ServicePlan:
        image = ((cfg.get("services") or {}).get(s) or {}).get("image") or ""
        return plan_service(s, replicas_of(cfg, s), hashes.get(s, ""),
                            self.engine.image_id(image) if image else "", self.containers(s))

    def dry_run(self) -> DryRun:
        """What :meth:`deploy` would do, read from the engine and ``docker compose config``; changes nothing."""
        running = self.engine.containers([f"{contract.LABEL_MANAGED}=true"])
        pc = self.ctrl.proxy.container()
        table = self.ctrl.table(pc)[0]
        conflicts = owned_elsewhere(self.project, list(self.routed.values()), table)
        proxy_action = "start" if pc is None else ("restart" if pc.state != "running" else "keep")
        cfg = json.loads(self.compose.run("config", "--format", "json"))
        hashes = parse_hashes(self.compose.run("config", "--hash", "*"))
        services = cfg.get("services") or {}
        existing = self.containers()
        plans = []
        for s, svc in services.items():
            mine = [c for c in existing if c.labels.get(COMPOSE_SERVICE_LABEL) == s]
            image = (svc or {}).get("image") or ""
            plan = plan_service(s, replicas_of(cfg, s), hashes.get(s, ""),
                                self.engine.image_id(image) if image and mine else "", mine)
            plans.append((plan, s in self.routed))
        conflicts += fixed_name_refusals(cfg, [p for p, routed in plans if routed])
        conflicts += shadow_refusals(self.project, cfg, table, list(pc.networks) if pc is not None else [])
        orphans = [c.name for c in orphans_of(existing, list(services))]
        return DryRun(self.project, self.engine.endpoint.to_json(), self.ctrl.proxy.name, proxy_action, plans,
                      host_changes(self.project, list(self.routed.values()), running), conflicts, orphans)

    def _ensure_proxy(self, note: list[str]) -> None:
        c = self.ctrl.proxy.container()
        name = self.ctrl.proxy.name
        if c is None:
            o = self.popts
            self.ctrl.up(image=o.image, http_port=o.http_port, https_port=o.https_port, tls=o.tls, select=o.select)
            note.append(f"{name}: started")
        elif c.state != "running":
            self.engine.start(name)
            self.ctrl.proxy.wait_admin()
            note.append(f"{name}: restarted")
        else:
            note.append(f"{name}: running")

    def _attach_proxy(self) -> None:
        """The proxy joins the ingress network now: the health probes run from its namespace. Never
        where a name it dials answers for another container (the route table's shadow check)."""
        if not self.routed:
            return
        table, _ = self.ctrl.table(self.ctrl.proxy.container())
        if self.network in table.refused_networks:
            why = [p for p in table.problems if f" on {self.network}" in p] or list(table.problems)
            raise LumaError(f"refusing to attach the proxy to {self.network}:\n  " + "\n  ".join(why),
                            "remove or rename that container, then deploy again")
        if self.network not in set(self.ctrl.proxy.running().networks):
            self.ctrl.attach(self.network)

    def _recover(self) -> None:
        """Routes first, containers after: sync the proxy with what an interrupted deploy left, and
        bring back into the pool draining containers the proxy still serves (the new ones of that
        deploy never took over). Leftovers are removed later, once nothing dials them."""
        res = self._sync()
        pooled = {m.id for r in res.table.routes if r.project == self.project for m in r.members if m.in_pool}
        back = [c.id for s in self.routed for c in self.containers(s) if c.draining and c.id in pooled]
        if back:
            self._unrename(back)
            self._sync()

    def _sync(self):
        res = self.ctrl.sync()
        self.warnings.extend(res.warnings)
        return res

    def _apply(self, plan: ServicePlan) -> None:
        s, n = plan.service, plan.replicas
        if plan.leftovers:  # stopped, or draining and out of the pool since _recover's sync
            self._remove(plan.leftovers, graceful=True, grace=self.grace.get(s, STOP_TIMEOUT))
        if plan.action == "keep":
            self.progress.line(f"   {s}: {n} replica(s) up to date")
            return
        if plan.action in ("create", "scale"):
            label = f"Start {s} ({n} replica(s))" if plan.action == "create" else f"Scale {s} ({plan.why})"
            with self.progress.step(label):
                before = {c.id for c in self.containers(s)}
                self.compose.run("up", "-d", "--no-deps", "--no-recreate", "--scale", f"{s}={n}", s)
                self._attach_proxy()
                fresh = [c.id for c in self.containers(s) if c.id not in before and c.running]
            if fresh:
                with self.progress.step(f"Wait for {s}: {len(fresh)} new container(s) healthy"):
                    self.checks.wait_healthy(self.routed[s], fresh, on_failure=None)
            return
        self._roll(plan)

    def _roll(self, plan: ServicePlan) -> None:
        if plan.service in self.stop_first:
            return stopfirst.roll(self, plan)
        s, n = plan.service, plan.replicas
        old = list(plan.old)
        with self.progress.step(f"Roll {s}: start {n} new beside {len(old)} old ({plan.why})"):
            total = len(self.containers(s))
            self.compose.run("up", "-d", "--no-deps", "--no-recreate", "--scale", f"{s}={total + n}", s)
            new = [c.id for c in self.containers(s) if c.id not in old]
        if len(new) != n:
            self._remove(new)
            raise DeployFailed(f"service {s}: docker compose started {len(new)} new container(s), expected {n}",
                               "the running version was kept; see docker compose ps")

        def back_out() -> None:
            self._unrename(old)
            self._remove(new)
            try:
                self._sync()
            except LumaError:
                pass

        try:
            self._switch(plan, old, new, back_out)
        except DeployFailed:
            raise
        except BaseException:
            back_out()  # the proxy died, Ctrl-C, ...: the old version serves, nothing new is left
            raise
        with self.progress.step(f"Stop and remove {len(old)} old container(s) of {s}"):
            self._remove(old, graceful=True, grace=self.grace.get(s, STOP_TIMEOUT))
        with self.progress.step(f"Reconcile {s} at {n} replica(s)"):
            self.compose.run("up", "-d", "--no-deps", "--no-recreate", "--scale", f"{s}={n}", s)
            left = [c.id for c in self.containers(s) if c.running]
            if sorted(left) != sorted(new):
                self.warnings.append(f"service {s}: after the rollout {len(left)} container(s) run, expected the "
                                     f"{len(new)} new one(s)")

    def _switch(self, plan: ServicePlan, old: list[str], new: list[str], back_out: Callable[[], None]) -> None:
        """Health-check the new containers, move traffic to them, then watch them through the drain."""
        s = plan.service
        with self.progress.step(f"Wait for {s}: each new container healthy on its own"):
            self.checks.wait_healthy(self.routed[s], new, on_failure=back_out)
        with self.progress.step(f"Move traffic of {s} to the new containers"):
            for cid in old:
                c = self.engine.container(cid)
                if c is not None:
                    self.engine.rename(cid, draining_name(c.name))
            res = self._sync()
            route = next((r for r in res.table.routes if r.project == self.project and r.service == s), None)
            want = {c.id for c in self.containers(s) if c.id in set(new)}
            pooled = {m.id for m in route.members if m.in_pool} if route else set()
            if pooled != want:
                back_out()
                raise DeployFailed(f"service {s}: the proxy did not route to exactly the new containers "
                                   f"(pooled {len(pooled)}, new {len(want)})", "the running version was kept")
            try:
                for h in self.routed[s].hosts if not (route and route.maintenance) else ():  # 503 by design
                    self.checks.check_host(h, proxy_check_path(self.routed[s]))
            except LumaError as e:
                if not self._proxy_running():
                    raise
                back_out()
                raise DeployFailed(f"service {s}: {e.message}; rolled back to the running version", e.hint) from None
        watch = max(self.drain, self.settle)
        with self.progress.step(f"Drain {len(old)} old container(s) of {s} ({self.drain:g}s), "
                                f"watching the new ones ({watch:g}s)"):
            dead = watch_running(self.engine, new, watch, self.sleep)
            if dead:
                back_out()
                raise DeployFailed(f"service {s}: new container {dead} stopped after traffic moved to it; "
                                   "the old containers serve again", f"see: docker compose logs {s}")

    def _retire_orphans(self, services: list[str]) -> None:
        """Containers of services that left the file (the list ``--dry-run`` shows): like old containers
        in a roll, marked draining (their hosts move to the service that now claims them), drained,
        then removed."""
        orphans = orphans_of(self.containers(), services)
        if not orphans:
            return
        live = [c for c in orphans if c.running and not c.draining]
        with self.progress.step(f"Retire {len(orphans)} orphan container(s) (their service left the file)"):
            for c in live:
                self.engine.rename(c.id, draining_name(c.name))
            if live:
                self._sync()
                self.sleep(self.drain)
            self._remove([c.id for c in orphans], graceful=True)

    def _unrename(self, ids: Sequence[str]) -> None:
        for cid in ids:
            c = self.engine.container(cid)
            if c is not None and is_draining(c.name):
                try:
                    self.engine.rename(cid, c.name[: -len(draining_name(""))])
                except LumaError:
                    pass

    def _remove(self, ids: Sequence[str], graceful: bool = False, grace: int = STOP_TIMEOUT) -> None:
        """Stop (with the service's stop_grace_period) and remove containers, all at once."""

        def one(cid: str) -> None:
            try:
                if graceful:
                    self.engine.stop(cid, timeout=grace)
                self.engine.remove(cid, volumes=True)
            except LumaError as e:
                self.warnings.append(f"could not remove container {cid[:12]}: {e.message}")

        if ids:
            with ThreadPoolExecutor(max_workers=max(1, min(len(ids), 16))) as pool:
                list(pool.map(one, ids))
