"""``deploy`` and ``down``: health-gated, zero-downtime rollouts through ``docker compose``.

The pure part (plans, conflicts, messages, formatting) has no Docker in it and is
unit-tested. The :class:`Deployer` is the edge: it runs ``docker compose`` with the
rendered file on stdin and drives the proxy :class:`~luma_compose.proxy.Controller`.

A routed service is rolled like this (measured on Compose v2.40; see the README):

1. ``up -d --no-deps --no-recreate --scale S=OLD+N S`` starts N new containers beside
   the old ones (Compose gives them the new config-hash, and never touches the old).
2. Each new container must pass its own check: its Docker health check if it has one,
   else ``GET luma.health.path`` answered 2xx/3xx, sent from inside the proxy container
   to the container's own IP on the ingress network (what the proxy dials).
   Until then the pool (routes.build_table) keeps serving the old containers only.
3. The old containers are renamed ``NAME--luma-draining``. That rename is the marker:
   from then on every sync, from any process (``proxy run`` too), routes only the new
   containers. deploy syncs the proxy itself and checks each host through it.
4. After ``--drain`` seconds the old containers are stopped and removed by deploy
   itself: on scale-down Compose removes the *highest-numbered* containers, which are
   the new ones. ``up --scale S=N`` then finds exactly N and changes nothing.

If a new container fails, the new containers are removed and the old ones (never
renamed, never out of the pool) keep serving.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import contract
from ..contract import RoutedService
from ..errors import LumaError, UnavailableError, UsageError
from ..records import (
    COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
    ContainerRecord,
    draining_name,
    is_draining,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..proxy.controller import Controller

DEFAULT_TIMEOUT = 120.0
DEFAULT_DRAIN = 10.0
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
    svc = (config.get("services") or {}).get(service) or {}
    deploy = svc.get("deploy") or {}
    for v in (deploy.get("replicas"), svc.get("scale")):
        if v is not None:
            try:
                return max(int(v), 0)
            except (TypeError, ValueError):
                raise UsageError(f"service {service}: replicas {v!r} is not a number") from None
    return 1


def parse_hashes(text: str) -> dict[str, str]:
    """``docker compose config --hash '*'`` output -> {service: hash}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


def claim_conflicts(project: str, routed: Sequence[RoutedService],
                    running: Sequence[ContainerRecord]) -> list[str]:
    """Hosts or target aliases this project wants that another project's running containers route."""
    wanted_hosts = {h.lower(): r.service for r in routed for h in r.hosts}
    wanted_alias = {contract.alias(project, r.service): r.service for r in routed}
    out: set[str] = set()
    for c in running:
        lb = c.labels
        if c.state != "running" or lb.get(contract.LABEL_MANAGED) != "true":
            continue
        other = lb.get(contract.LABEL_PROJECT) or lb.get(COMPOSE_PROJECT_LABEL) or ""
        svc = lb.get(contract.LABEL_SERVICE, "")
        if not other or other == project:
            continue
        for h in contract.parse_hosts(lb.get(contract.LABEL_HOSTS, "")):
            if h.lower() in wanted_hosts:
                out.add(f"host {h.lower()} (service {wanted_hosts[h.lower()]}) is already routed by project "
                        f"{other} (service {svc})")
        al = contract.alias(other, svc)
        if al in wanted_alias:
            out.add(f"target alias {al} (service {wanted_alias[al]}) is already used by project {other} "
                    f"(service {svc}); the proxy could not tell them apart")
    return sorted(out)


def grace_seconds(value: Any) -> int:
    """Compose's ``stop_grace_period`` (``"1m30s"``, ``"10s"``, ``"500ms"``) in whole seconds (default 10)."""
    import re

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


# ============================================================================ progress


class Progress:
    """One line per finished step, with its duration (stderr)."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stderr
        enc = (getattr(self.stream, "encoding", "") or "").lower()
        self.fancy = "utf" in enc

    def line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    @contextmanager
    def step(self, label: str) -> Iterator[list[str]]:
        """``with progress.step("x") as note:``; append to ``note`` to amend the label,
        append ``Progress.FAILED`` to mark the step failed without raising."""
        t0 = time.monotonic()
        note: list[str] = []
        try:
            yield note
        except BaseException:
            self.line(format_step(" ".join([label, *note]), time.monotonic() - t0, False, self.fancy))
            raise
        ok = self.FAILED not in note
        words = [w for w in note if w is not self.FAILED]
        self.line(format_step(" ".join([label, *words]), time.monotonic() - t0, ok, self.fancy))

    FAILED = "\0failed"


# ============================================================================ compose


@dataclass
class Compose:
    project: str
    directory: str
    text: str  # the rendered compose file, fed through -f -

    def run(self, *args: str, timeout: float = 600, check: bool = True, with_file: bool = True) -> str:
        cmd = ["docker", "compose", "-p", self.project, "--project-directory", self.directory]
        if with_file:
            cmd += ["-f", "-"]
        cmd += list(args)
        try:
            p = subprocess.run(cmd, input=self.text if with_file else None, capture_output=True, text=True,
                               timeout=timeout, cwd=self.directory if os.path.isdir(self.directory) else None)
        except FileNotFoundError:
            raise UnavailableError("`docker` is not installed", "install Docker and the compose plugin") from None
        except subprocess.TimeoutExpired:
            raise UnavailableError(f"`docker compose {' '.join(args)}` did not finish within {timeout:.0f}s") from None
        if check and p.returncode != 0:
            err = (p.stderr or p.stdout).strip()
            if "is not a docker command" in err or "unknown shorthand flag: 'p'" in err:
                raise UnavailableError("deploy needs Docker Compose v2 (`docker compose`)", "install the compose plugin")
            raise LumaError(f"`docker compose {' '.join(args)}` failed (exit {p.returncode}):\n{err}",
                            "fix what Compose reports; the running version was not changed by this step")
        return p.stdout


# ============================================================================ the edge


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
    def __init__(self, project: str, directory: str, text: str, routed: Sequence[RoutedService],
                 proxy: ProxyOptions | None = None, timeout: float = DEFAULT_TIMEOUT,
                 drain: float = DEFAULT_DRAIN, progress: Progress | None = None,
                 log: Callable[[str], None] | None = None):
        from ..proxy import controller as proxy_mod

        self.pm = proxy_mod
        self.project = project
        self.network = contract.ingress_network(project)
        self.compose = Compose(project, directory, text)
        self.routed = {r.service: r for r in routed}
        self.popts = proxy or ProxyOptions()
        self.timeout = timeout
        self.drain = drain
        self.progress = progress or Progress()
        self.dc = proxy_mod.client()
        self.ctrl: Controller = proxy_mod.Controller(self.popts.name, self.dc)
        self.warnings: list[str] = []
        self.grace: dict[str, int] = {}

    # -------------------------------------------------------------- docker state

    def containers(self, service: str | None = None, all_states: bool = True) -> list[ContainerRecord]:
        labels = [f"{COMPOSE_PROJECT_LABEL}={self.project}"]
        if service:
            labels.append(f"{COMPOSE_SERVICE_LABEL}={service}")
        cs = self.dc.containers.list(all=all_states, filters={"label": labels}, ignore_removed=True)
        return [self.pm.record(c.attrs) for c in cs]

    def image_id(self, ref: str) -> str:
        try:
            return self.dc.images.get(ref).id
        except Exception:  # not built/pulled yet: compose will say
            return ""

    # -------------------------------------------------------------- deploy

    def deploy(self) -> DeployResult:
        res = DeployResult(self.project)
        with self.progress.step("Check claims on hosts and aliases"):
            running = [self.pm.record(c.attrs) for c in self.dc.containers.list(
                filters={"label": f"{contract.LABEL_MANAGED}=true", "status": "running"}, ignore_removed=True)]
            conflicts = claim_conflicts(self.project, list(self.routed.values()), running)
            if conflicts:
                raise LumaError("refusing to deploy, nothing was changed:\n  " + "\n  ".join(conflicts),
                                "choose other hosts in x-luma, or take the other project down first")
        with self.progress.step("Proxy") as note:
            pc = self._ensure_proxy(note)
        with self.progress.step("Read the compose configuration"):
            import json

            cfg = json.loads(self.compose.run("config", "--format", "json"))
            hashes = parse_hashes(self.compose.run("config", "--hash", "*"))
            self.grace = {name: grace_seconds(svc.get("stop_grace_period"))
                          for name, svc in (cfg.get("services") or {}).items()}
        services = list((cfg.get("services") or {}).keys())
        plain = [s for s in services if s not in self.routed]
        existing = self.containers()
        if not existing:
            with self.progress.step(f"Create project {self.project} (docker compose up -d)"):
                self.compose.run("up", "-d", "--remove-orphans")
        elif plain:
            with self.progress.step(f"Update {', '.join(plain)} (docker compose up -d)"):
                self.compose.run("up", "-d", "--no-deps", "--remove-orphans", *plain)
        self._attach_proxy(pc)
        if not existing:
            for s in self.routed:
                ids = [c.id for c in self.containers(s) if c.state == "running"]
                with self.progress.step(f"Wait for {s}: {len(ids)} container(s) healthy"):
                    self._wait_healthy(s, ids, remove_on_failure=False)
        for s in self.routed if existing else ():
            image = ((cfg.get("services") or {}).get(s) or {}).get("image") or ""
            plan = plan_service(s, replicas_of(cfg, s), hashes.get(s, ""), self.image_id(image) if image else "",
                                self.containers(s))
            res.plans.append(plan)
            self._apply(plan)
        with self.progress.step("Sync the proxy"):
            self._sync()
        with self.progress.step("Check every host through the proxy"):
            for r in self.routed.values():
                for h in r.hosts:
                    self._check_host(h, r.health_path)
        res.urls = self._urls()
        res.warnings = self.warnings
        return res

    def _ensure_proxy(self, note: list[str]):
        c = self.ctrl.proxy.container()
        if c is None:
            o = self.popts
            c, _ = self.ctrl.up(image=o.image, http_port=o.http_port, https_port=o.https_port, tls=o.tls,
                                select=o.select)
            note.append(f"{self.ctrl.proxy.name}: started")
            return c
        if c.status != "running":
            c.start()
            self.ctrl.proxy.wait_admin(c)
            note.append(f"{self.ctrl.proxy.name}: restarted")
        else:
            note.append(f"{self.ctrl.proxy.name}: running")
        c.reload()
        return c

    def _attach_proxy(self, pc) -> None:
        """The proxy joins the ingress network now: the health probes run from its namespace."""
        if not self.routed:
            return
        pc.reload()
        if self.network in ((pc.attrs.get("NetworkSettings") or {}).get("Networks") or {}):
            return
        try:
            self.dc.networks.get(self.network).connect(pc)
        except self.pm._errors().APIError as e:
            if "already exists" not in str(e):
                raise UnavailableError(f"cannot attach the proxy to {self.network}: {self.pm._short(e)}") from e

    def _sync(self):
        res = self.ctrl.sync()
        for w in res.warnings:
            self.warnings.append(w)
        return res

    def _apply(self, plan: ServicePlan) -> None:
        s, n = plan.service, plan.replicas
        if plan.leftovers:
            self._remove(plan.leftovers)
        if plan.action == "keep":
            self.progress.line(f"   {s}: {n} replica(s) up to date")
            return
        if plan.action in ("create", "scale"):
            label = f"Start {s} ({n} replica(s))" if plan.action == "create" else f"Scale {s} ({plan.why})"
            with self.progress.step(label):
                before = {c.id for c in self.containers(s)}
                self.compose.run("up", "-d", "--no-deps", "--no-recreate", "--scale", f"{s}={n}", s)
                self._attach_proxy(self.ctrl.proxy.running())
                fresh = [c.id for c in self.containers(s) if c.id not in before and c.state == "running"]
            if fresh:
                with self.progress.step(f"Wait for {s}: {len(fresh)} new container(s) healthy"):
                    self._wait_healthy(s, fresh, remove_on_failure=False)
            return
        self._roll(plan)

    def _roll(self, plan: ServicePlan) -> None:
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
        with self.progress.step(f"Wait for {s}: each new container healthy on its own"):
            self._wait_healthy(s, new, remove_on_failure=True)
        with self.progress.step(f"Move traffic of {s} to the new containers"):
            for cid in old:
                c = self.dc.containers.get(cid)
                c.rename(draining_name(c.name))
            res = self._sync()
            route = next((r for r in res.table.routes if r.project == self.project and r.service == s), None)
            want = {c.id for c in self.containers(s) if c.id in set(new)}
            pooled = {m.id for m in route.members if m.in_pool} if route else set()
            if pooled != want:
                self._unrename(old)
                self._remove(new)
                self._sync()
                raise DeployFailed(f"service {s}: the proxy did not route to exactly the new containers "
                                   f"(pooled {len(pooled)}, new {len(want)})", "the running version was kept")
            try:
                for h in self.routed[s].hosts:
                    self._check_host(h, self.routed[s].health_path)
            except LumaError as e:
                self._unrename(old)
                self._remove(new)
                self._sync()
                raise DeployFailed(f"service {s}: {e.message}; rolled back to the running version", e.hint) from None
        with self.progress.step(f"Drain {len(old)} old container(s) of {s} ({self.drain:g}s)"):
            time.sleep(self.drain)
        with self.progress.step(f"Stop and remove {len(old)} old container(s) of {s}"):
            self._remove(old, graceful=True, grace=self.grace.get(s, STOP_TIMEOUT))
        with self.progress.step(f"Reconcile {s} at {n} replica(s)"):
            self.compose.run("up", "-d", "--no-deps", "--no-recreate", "--scale", f"{s}={n}", s)
            left = [c.id for c in self.containers(s) if c.state == "running"]
            if sorted(left) != sorted(new):
                self.warnings.append(f"service {s}: after the rollout {len(left)} container(s) run, expected the "
                                     f"{len(new)} new one(s)")

    def _unrename(self, ids: Sequence[str]) -> None:
        for cid in ids:
            try:
                c = self.dc.containers.get(cid)
                if is_draining(c.name):
                    c.rename(c.name[: -len(draining_name(""))])
            except self.pm._errors().APIError:
                pass

    def _remove(self, ids: Sequence[str], graceful: bool = False, grace: int = STOP_TIMEOUT) -> None:
        """Stop (with the service's stop_grace_period) and remove containers, all at once."""
        from concurrent.futures import ThreadPoolExecutor

        errors = self.pm._errors()

        def one(cid: str) -> None:
            try:
                c = self.dc.containers.get(cid)
                if graceful and c.status == "running":
                    c.stop(timeout=grace)
                c.remove(force=True, v=True)
            except errors.NotFound:
                pass
            except errors.APIError as e:
                self.warnings.append(f"could not remove container {cid[:12]}: {self.pm._short(e)}")

        with ThreadPoolExecutor(max_workers=max(1, min(len(ids), 16))) as pool:
            list(pool.map(one, ids))

    # -------------------------------------------------------------- health

    def _wait_healthy(self, service: str, ids: Sequence[str], remove_on_failure: bool) -> None:
        r = self.routed[service]
        deadline = time.monotonic() + self.timeout
        pending = list(ids)
        last: dict[str, str] = {}
        pc = self.ctrl.proxy.running()
        errors = self.pm._errors()
        while pending:
            for cid in list(pending):
                try:
                    c = self.dc.containers.get(cid)
                except errors.NotFound:
                    self._fail(service, cid, "the container was removed", "", ids, remove_on_failure)
                st = c.attrs.get("State") or {}
                if st.get("Status") in ("exited", "dead") or (st.get("Status") == "created" and st.get("Error")):
                    self._fail(service, cid, f"it {st.get('Status')} (exit code {st.get('ExitCode')})",
                               st.get("Error") or "", ids, remove_on_failure)
                health = st.get("Health")
                if health:
                    status = health.get("Status")
                    log = health.get("Log") or []
                    last[cid] = (log[-1].get("Output") or "").strip() if log else ""
                    if status == "healthy":
                        pending.remove(cid)
                    elif status == "unhealthy":
                        self._fail(service, cid, "its Docker health check reports unhealthy", last[cid], ids,
                                   remove_on_failure)
                    continue
                ip = (((c.attrs.get("NetworkSettings") or {}).get("Networks") or {}).get(self.network) or {}) \
                    .get("IPAddress")
                if not ip:
                    last[cid] = f"no IP on {self.network} yet"
                    continue
                ok, detail = self._probe(pc, f"http://{ip}:{r.port}{r.health_path}")
                if ok:
                    pending.remove(cid)
                else:
                    last[cid] = f"GET http://{ip}:{r.port}{r.health_path} from the proxy: {detail}"
            if not pending:
                return
            if time.monotonic() > deadline:
                cid = pending[0]
                self._fail(service, cid, f"not healthy within --timeout {self.timeout:g}s", last.get(cid, ""), ids,
                           remove_on_failure)
            time.sleep(0.25)

    def _probe(self, pc, url: str) -> tuple[bool, str]:
        code, out, err = self.ctrl.proxy.exec(pc, ["timeout", "5", "wget", "-q", "-O", "/dev/null", url])
        if code == 127 or "timeout: not found" in err or "executable file not found" in (out + err):
            code, out, err = self.ctrl.proxy.exec(pc, ["wget", "-q", "-O", "/dev/null", url])
        if code == 0:
            return True, ""
        msg = (err or out).strip().splitlines()
        return False, (msg[-1] if msg else f"exit {code}") if code != 143 else "no answer within 5s"

    def _fail(self, service: str, cid: str, status: str, detail: str, ids: Sequence[str], remove: bool) -> None:
        name, logs = cid[:12], ""
        try:
            c = self.dc.containers.get(cid)
            name = c.name
            logs = c.logs(tail=LOG_TAIL).decode(errors="replace")
        except Exception:
            pass
        msg = failure_report(service, name, status, detail, logs)
        if remove:
            self._remove(ids)
            try:
                self._sync()
            except LumaError:
                pass
            raise DeployFailed(msg, "the new container(s) were removed; the running version keeps serving")
        raise DeployFailed(msg, "fix the service and deploy again; see: docker compose -p "
                                f"{self.project} logs {service}")

    # -------------------------------------------------------------- through the proxy

    def _proxy_ports(self) -> tuple[str, int | None, int | None, str]:
        pc = self.ctrl.proxy.running()
        s = self.pm._settings_of(pc)
        ports = (pc.attrs.get("NetworkSettings") or {}).get("Ports") or {}

        def hp(key: str) -> int | None:
            b = ports.get(key) or []
            return int(b[0]["HostPort"]) if b and b[0].get("HostPort") else None

        return s["tls"], hp(f"{self.pm.INTERNAL_HTTP_PORT}/tcp"), hp(f"{self.pm.INTERNAL_HTTPS_PORT}/tcp"), \
            ((ports.get(f"{self.pm.INTERNAL_HTTPS_PORT}/tcp") or ports.get(f"{self.pm.INTERNAL_HTTP_PORT}/tcp")
              or [{}])[0].get("HostIp") or "")

    def _check_host(self, host: str, path: str) -> None:
        """GET the health path of ``host`` through the proxy; 2xx/3xx or an error."""
        pc = self.ctrl.proxy.running()
        tls = self.pm._settings_of(pc)["tls"]
        if tls == "off":
            url = f"http://127.0.0.1:{self.pm.INTERNAL_HTTP_PORT}{path}"
            last = ""
            for _ in range(20):
                code, out, err = self.ctrl.proxy.exec(pc, ["wget", "-q", "-O", "/dev/null", "--header",
                                                           f"Host: {host}", url])
                if code == 0:
                    return
                last = (err or out).strip().splitlines()[-1:] or [f"exit {code}"]
                last = last[0]
                time.sleep(0.25)
            raise LumaError(f"GET {path} for host {host} through the proxy failed: {last}",
                            f"see: luma-compose routes --name {self.ctrl.proxy.name}")
        # HTTPS: from this machine to the published port, with the host as SNI.
        _, _, https_port, ip = self._proxy_ports()
        if https_port is None:
            self.warnings.append(f"{host}: the proxy publishes no HTTPS port here; not checked end to end")
            return
        addr = "127.0.0.1" if ip in ("", "0.0.0.0", "::") else ip
        last = ""
        for _ in range(40):
            try:
                status = https_get(addr, https_port, host, path)
                if 200 <= status < 400:
                    return
                last = f"HTTP {status}"
                if tls == "acme" and status >= 500:
                    break
            except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                last = f"{type(e).__name__}: {e}"
                if tls == "acme":
                    break
            time.sleep(0.25)
        if tls == "acme":
            self.warnings.append(f"{host}: not reachable over HTTPS yet ({last}); the ACME certificate may still "
                                 "be on its way (DNS must point here)")
            return
        raise LumaError(f"GET {path} for host {host} through the proxy (HTTPS) failed: {last}",
                        f"see: luma-compose routes --name {self.ctrl.proxy.name}")

    def _urls(self) -> list[str]:
        tls, http_port, https_port, _ = self._proxy_ports()
        hosts = [h for r in self.routed.values() for h in r.hosts]
        return live_urls(hosts, tls, http_port, https_port)

    # -------------------------------------------------------------- down

    def down(self, volumes: bool = False) -> None:
        errors = self.pm._errors()
        pc = self.ctrl.proxy.container()
        if pc is not None and pc.status == "running":
            with self.progress.step(f"Remove the routes of {self.project}"):
                self.ctrl.sync(exclude_projects=frozenset({self.project}))
        with self.progress.step(f"docker compose down{' --volumes' if volumes else ''}"):
            self.compose.run("down", "--remove-orphans", *(["--volumes"] if volumes else []),
                             with_file=bool(self.compose.text))
        with self.progress.step(f"Remove the ingress network {self.network}"):
            for c in self.dc.containers.list(all=True, filters={"label": f"{COMPOSE_PROJECT_LABEL}={self.project}"}):
                c.remove(force=True, v=True)
            try:
                net = self.dc.networks.get(self.network)
            except errors.NotFound:
                net = None
            if net is not None:
                for cid in list((net.attrs.get("Containers") or {}).keys()):
                    try:
                        net.disconnect(cid, force=True)
                    except errors.APIError:
                        pass
                try:
                    net.remove()
                except errors.NotFound:
                    pass
        if pc is not None and pc.status == "running":
            with self.progress.step("Sync the proxy"):
                self._sync()


def https_get(addr: str, port: int, host: str, path: str, timeout: float = 5) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((addr, port), timeout=timeout) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        head = tls.recv(64).decode(errors="replace")
    parts = head.split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise http.client.HTTPException(f"no HTTP status line: {head!r}")
    return int(parts[1])
