"""Waiting for a rollout of one of the swarm proxy's services to finish (or fail)."""

from __future__ import annotations

import time

from ..engine.swarm import SwarmEngine, SwarmError


def wait_converged(engine: SwarmEngine, name: str, timeout: float = 120, previous: str | None = "") -> None:
    """Until the (latest) rollout of service ``name`` is done. ``previous``: StartedAt of the
    update before ours, which the service shows until Swarm starts ours."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc = engine.service(name)
        st = (svc or {}).get("UpdateStatus") or {}
        state = st.get("State", "")
        if previous != "" and st.get("StartedAt") == previous:
            time.sleep(0.3)
            continue
        if state in ("", "completed", "rollback_completed"):
            if _tasks_running(engine, name):
                if state == "rollback_completed":
                    raise SwarmError(f"the update of {name} rolled back: {st.get('Message', '')}")
                return
        elif state in ("paused", "rollback_paused"):
            raise SwarmError(f"the update of {name} is {state}: {st.get('Message', '')}")
        time.sleep(0.3)
    raise SwarmError(f"the proxy's service {name} did not converge within {timeout:.0f}s")


def _tasks_running(engine: SwarmEngine, name: str) -> bool:
    tasks = [t for t in engine.tasks(name) if t.get("DesiredState") == "running"]
    return bool(tasks) and all(t["Status"]["State"] == "running" for t in tasks)
