"""``maintenance on|off`` and ``deploy --maintenance``, on one host and on a swarm.

The state is an engine object per project (or service) that every sync reads
(:mod:`luma_compose.routing.maintenance`); these operations write it, then sync the proxy so it is
served at once. A :class:`Target` is what they need of either target: the engine (its
``maintenance_states``/``keep_maintenance``/``drop_maintenance``), the route table, and a sync.

``deploy --maintenance`` turns it on once deploy holds the project's lock (a deploy refused before
anything changed leaves it as it was) and off after a deploy that succeeded, then checks every host
through the proxy (a host that fails turns it on again, and deploy fails). A deploy that fails
after it was turned on leaves it **on**: the new version may have migrated data the old one cannot
read, so nothing is served until someone has looked (``maintenance off``). A project that was
already in maintenance stays in it: the deploy neither changes its page nor turns it off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import LumaError, UsageError
from ..records import MaintenanceRecord
from ..routing import maintenance as rules
from ..routing.claims import RouteTable


class Target:
    """One host's proxy (:class:`HostTarget`) or a swarm's (``swarm.maintenance.SwarmTarget``)."""

    engine: Any
    where: str = ""

    def table(self) -> RouteTable:
        raise NotImplementedError

    def sync(self) -> bool:
        """Sync the proxy; False when there is no proxy running to sync."""
        raise NotImplementedError


class HostTarget(Target):
    def __init__(self, engine: Any, proxy_name: str | None = None):
        from ..proxy.controller import Controller

        self.engine = engine
        self.ctrl = Controller(engine, proxy_name)
        self.where = engine.endpoint.describe()

    def table(self) -> RouteTable:
        return self.ctrl.table(self.ctrl.proxy.container())[0]

    def sync(self) -> bool:
        c = self.ctrl.proxy.container()
        if c is None or not c.running:
            return False
        self.ctrl.sync()
        return True


@dataclass
class Outcome:
    project: str
    service: str
    on: bool
    hosts: list[str] = field(default_factory=list)
    synced: bool = False
    notes: list[str] = field(default_factory=list)


def set_state(engine: Any, rec: MaintenanceRecord) -> MaintenanceRecord:
    """Keep ``rec`` on the engine (one host or a swarm), then remove the older states of its key: there
    is no moment without one."""
    kept = engine.keep_maintenance(rec)
    for old in engine.maintenance_states():
        if old.key == rec.key and old.name != kept.name:
            engine.drop_maintenance(old.name)
    return kept


def clear_states(engine: Any, project: str, service: str | None = None) -> list[MaintenanceRecord]:
    """Remove the states of ``project`` (every one, or only ``service``'s); the ones removed."""
    gone = [m for m in engine.maintenance_states()
            if m.project == project and (service is None or m.service == service)]
    for m in gone:
        engine.drop_maintenance(m.name)
    return gone


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def check_input(message: str | None, page: bytes | None, page_name: str = "--page") -> tuple[str, str]:
    """(message, page text) of ``--message``/``--page``, or a usage error saying what is wrong."""
    if message is not None and page is not None:
        raise UsageError("--message and --page are two kinds of page: give one",
                         "--message TEXT for the default page with your text, --page FILE.html for your own")
    text = ""
    if page is not None:
        text, problem = rules.page_text(page)
        if problem:
            raise UsageError(f"{page_name} {problem}",
                             f"give an HTML file in UTF-8 of at most {rules.MAX_PAGE_BYTES} bytes")
    message = message or ""
    problem = rules.message_problem(message)
    if problem:
        raise UsageError(f"--message {problem}", "e.g. --message 'Back at 14:00 UTC'")
    return message, text


def _routes(target: Target, project: str, service: str) -> list:
    table = target.table()
    routes = rules.routes_of(table, project)
    if not routes:
        known = sorted({r.project for r in table.routes})
        raise UsageError(f"no project {project} is routed on {target.where}",
                         "check the name (-p NAME, or the file's project with -f)"
                         + (f"; routed projects: {', '.join(known[:10])}{', ...' if len(known) > 10 else ''}"
                            if known else "; no project is routed there"))
    if service and not any(r.service == service for r in routes):
        raise UsageError(f"project {project} routes no service {service}",
                         f"routed services of {project}: {', '.join(sorted(r.service for r in routes))}")
    return [r for r in routes if not service or r.service == service]


def turn_on(target: Target, project: str, service: str = "", message: str = "", page: str = "") -> Outcome:
    """Put a project's routed services (or one) in maintenance, and serve it now."""
    routes = _routes(target, project, service)
    set_state(target.engine, MaintenanceRecord(project, service, message, page, now()))
    out = Outcome(project, service, True, sorted({h for r in routes for h in r.hosts}))
    out.synced = target.sync()
    return out


def turn_off(target: Target, project: str, service: str = "") -> Outcome:
    """End a project's maintenance (every state of it, or only the service's), and serve it now."""
    states, _ = rules.current(target.engine.maintenance_states())
    whole = states.get((project, ""))
    if service and whole is not None:
        raise UsageError(f"the whole project {project} is in maintenance (since {whole.since}), so {service} is too",
                         f"maintenance off -p {project} ends it for every service; then maintenance on "
                         f"--service S for the ones that stay")
    ours = [k for k in states if k[0] == project and (not service or k[1] == service)]
    if not ours:
        _routes(target, project, service)  # an unknown project or service is an error; a known one is fine
    gone = clear_states(target.engine, project, service or None)
    table = target.table()
    out = Outcome(project, service, False, sorted({h for r in rules.routes_of(table, project, service)
                                                   for h in r.hosts}))
    if not gone:
        out.notes.append(f"{project}{'/' + service if service else ''} was not in maintenance")
    out.synced = target.sync()
    return out


class DeployMaintenance:
    """``deploy --maintenance`` around one host's rollout (the Deployer calls begin/finish)."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log
        self.began = False  # this deploy turned it on (and is to turn it off)
        self.kept: MaintenanceRecord | None = None  # it was on already: left as it was

    def begin(self, d: Any) -> None:
        """Turn the project's maintenance on (the Deployer holds the lock), and serve it."""
        states, _ = rules.current(d.engine.maintenance_states())
        self.kept = states.get((d.project, ""))
        with d.progress.step(f"Maintenance on for {d.project}") as note:
            if self.kept is not None:
                note.append(f"(already on since {self.kept.since}: kept, and left on after the deploy)")
                return
            set_state(d.engine, MaintenanceRecord(d.project, "", "", "", now()))
            self.began = True
            d._sync()

    def finish(self, d: Any) -> None:
        """After a deploy that succeeded: off, then every host checked through the proxy (on again if one fails)."""
        if not self.began:
            return
        with d.progress.step(f"Maintenance off for {d.project}"):
            clear_states(d.engine, d.project, "")
            d._sync()
        self.began = False
        try:
            with d.progress.step("Check every host through the proxy, out of maintenance"):
                for r in d.routed.values():
                    for h in r.hosts:
                        d.checks.check_host(h, r.health_path)
        except LumaError as e:
            set_state(d.engine, MaintenanceRecord(d.project, "", "", "", now()))
            self.began = True
            d._sync()
            raise LumaError(f"{e.message}; maintenance is on again for {d.project}", e.hint) from None

    def failed_note(self, project: str) -> str:
        """What a failed deploy says of maintenance."""
        if self.began:
            return (f"maintenance stays ON for {project}: the deploy failed after it was turned on, and the data may "
                    f"be half-migrated; look, then: luma-compose maintenance off -p {project}")
        if self.kept is not None:
            return f"maintenance stays on for {project}, as it was before this deploy"
        return f"maintenance was not turned on for {project} (the deploy stopped before its rollout)"


def swarm_deploy_maintenance(target: Target, project: str, log: Callable[[str], None], deploy: Callable[[], Any]) -> Any:
    """``deploy --swarm --maintenance``: on before ``docker stack deploy``, off after success; a failure leaves
    it on (as on one host; a swarm deploy has no host check through the edges)."""
    states, _ = rules.current(target.engine.maintenance_states())
    kept = states.get((project, ""))
    if kept is not None:
        log(f"maintenance: {project} is in maintenance since {kept.since}: kept, and left on after the deploy")
        return deploy()
    set_state(target.engine, MaintenanceRecord(project, "", "", "", now()))
    target.sync()
    log(f"maintenance: on for {project}")
    try:
        res = deploy()
    except BaseException:
        log(f"maintenance stays ON for {project}: the deploy failed after it was turned on, and the data may be "
            f"half-migrated; look, then: luma-compose maintenance off --swarm -p {project}")
        raise
    clear_states(target.engine, project, "")
    target.sync()
    log(f"maintenance: off for {project}")
    return res
