"""Waiting for a rollout of one of the swarm proxy's services to finish (or fail)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..errors import SwarmError

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.protocols import SwarmEngineProtocol


def wait_converged(engine: SwarmEngineProtocol, name: str, timeout: float = 120, previous: str | None = "") -> None:
    """Until the (latest) rollout of service ``name`` is done. ``previous``: StartedAt of the
    update before ours, which the service shows until Swarm starts ours."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc = engine.service(name)
        state = svc.update_state if svc is not None else ""
        message = svc.update_message if svc is not None else ""
        if previous != "" and (svc.update_started if svc is not None else None) == previous:
            time.sleep(0.3)
            continue
        if state in ("", "completed", "rollback_completed"):
            if _tasks_running(engine, name):
                if state == "rollback_completed":
                    raise SwarmError(f"the update of {name} rolled back: {message}")
                return
        elif state in ("paused", "rollback_paused"):
            raise SwarmError(f"the update of {name} is {state}: {message}")
        time.sleep(0.3)
    raise SwarmError(f"the proxy's service {name} did not converge within {timeout:.0f}s")


def _tasks_running(engine: SwarmEngineProtocol, name: str) -> bool:
    tasks = [t for t in engine.tasks(name) if t.desired == "running"]
    return bool(tasks) and all(t.state == "running" for t in tasks)
