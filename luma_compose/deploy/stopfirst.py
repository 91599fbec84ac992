"""Stop-first rollouts: for a service that must never run two copies at once (issue 23, item 1).

A service whose compose file says ``deploy.update_config.order: stop-first`` is rolled like this:

1. ``up -d --no-start --no-deps --no-recreate --scale S=OLD+N S`` creates the N new containers
   without starting them (nothing of the new version runs yet).
2. The old containers are stopped (their stop_grace_period). The proxy's config is not changed:
   a request for the service now waits in Caddy's retry loop (its dial finds no running
   container) for up to the service's ``hold`` (x-luma, default 30 s: its route's try_duration).
3. The new containers are started and must pass their checks, as in a start-first roll.
4. The old (stopped) containers are renamed ``--luma-draining`` and the proxy synced: that config
   load sends every waiting request again through the new config (caddy_config.REPLAY_MATCH),
   to the new containers. Then the old ones are removed.

A new container that fails: the new ones are removed and the old ones started again (the config
never stopped naming them, so waiting requests reach them). Past ``hold`` a waiting request
gets the proxy's 503 with Retry-After.
"""

from __future__ import annotations

from ..errors import LumaError
from ..records import draining_name
from .plan import STOP_TIMEOUT, DeployFailed, ServicePlan

STOP_FIRST = "stop-first"


def is_stop_first(cfg: dict, service: str, rollout: str = "") -> bool:
    """``x-luma: {rollout: stop-first}``, or Compose's own ``deploy.update_config.order: stop-first``."""
    if rollout == STOP_FIRST:
        return True
    svc = (cfg.get("services") or {}).get(service) or {}
    return (((svc.get("deploy") or {}).get("update_config") or {}).get("order") or "") == STOP_FIRST


def roll(d, plan: ServicePlan) -> None:
    """Roll one service stop-first; ``d`` is the rollout.Deployer (not imported: it imports this module)."""
    s, n = plan.service, plan.replicas
    old = list(plan.old)
    grace = d.grace.get(s, STOP_TIMEOUT)
    with d.progress.step(f"Roll {s} stop-first: create {n} new, not started ({plan.why})"):
        total = len(d.containers(s))
        d.compose.run("up", "-d", "--no-start", "--no-deps", "--no-recreate", "--scale", f"{s}={total + n}", s)
        new = [c.id for c in d.containers(s) if c.id not in old]
    if len(new) != n:
        d._remove(new)
        raise DeployFailed(f"service {s}: docker compose created {len(new)} new container(s), expected {n}",
                           "the running version was kept; see docker compose ps")

    def back_out() -> None:
        d._remove(new)
        d._unrename(old)
        for cid in old:
            try:
                d.engine.start(cid)
            except LumaError as e:
                d.warnings.append(f"service {s}: could not start old container {cid[:12]} again: {e.message}")
        try:
            d._sync()
        except LumaError:
            pass

    try:
        with d.progress.step(f"Stop {len(old)} old container(s) of {s} (the proxy holds its requests)"):
            for cid in old:
                d.engine.stop(cid, timeout=grace)
        with d.progress.step(f"Start {n} new container(s) of {s}"):
            for cid in new:
                d.engine.start(cid)
            d._attach_proxy()
        with d.progress.step(f"Wait for {s}: each new container healthy on its own"):
            d.checks.wait_healthy(d.routed[s], new, on_failure=back_out)
        with d.progress.step(f"Move traffic of {s} to the new containers"):
            for cid in old:
                c = d.engine.container(cid)
                if c is not None:
                    d.engine.rename(cid, draining_name(c.name))
            d._sync()
            for h in d.routed[s].hosts:
                d.checks.check_host(h, d.routed[s].health_path)
    except DeployFailed:
        raise
    except BaseException:
        back_out()
        raise
    with d.progress.step(f"Remove {len(old)} old container(s) of {s}"):
        d._remove(old)
        d.compose.run("up", "-d", "--no-deps", "--no-recreate", "--scale", f"{s}={n}", s)
